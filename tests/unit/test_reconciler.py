"""The Reconciler: quiet jobs looked up at their vendor and brought up to date, on a schedule.

The Reconciler function end to end (moto's table, queue and bucket) where the wiring is the point;
the reconciler's own rules (who is quiet, in what order, how much per run) on the in-memory store
(tests/fakes), with the Playment sandbox over HTTP as before."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.reconciler import app as reconciler_app
from functions.submit_job import app as submit_app
from handoff.backoff import Backoff
from handoff.callbacks import CallbackApplier
from handoff.pacing import Unlimited
from handoff.reconcile import Reconciler
from handoff.settings import ReconcilerSettings
from handoff.submission import Outcome, Submitter
from handoff.vendors import parse_submit_request
from local.context import LocalContext
from local.sandboxes.playment import PlaymentSandbox
from tests.conftest import (
    PLAYMENT_GENERATIONS,
    LambdaContext,
    archived,
    load_event,
    queued_messages,
    reset_function_caches,
    table_items,
)
from tests.fakes.archive import FakeArchive
from tests.fakes.queues import FakeRetryQueue
from tests.fakes.store import FakeJobStore
from tests.fakes.textking import TextkingFake
from tests.fakes.vendors import clients, playment_client


def playment_request(reference_id: str) -> dict[str, Any]:
    body = copy.deepcopy(load_event("submit_job/direct_invoke_playment.json"))
    body["reference_id"] = reference_id
    return body


def job(reference_id: str) -> dict[str, Any]:
    return next(i for i in table_items() if i["reference_id"] == reference_id)


def ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def age(reference_id: str, hours: float = 2) -> str:
    """Make a job look quiet: its last write `hours` ago."""
    then = ago(hours)
    boto3.client("dynamodb").update_item(
        TableName="handoff-jobs",
        Key={"reference_id": {"S": reference_id}},
        UpdateExpression="SET updated_at = :t",
        ExpressionAttributeValues={":t": {"S": then}},
    )
    return then


def run_reconciler() -> dict[str, int]:
    report: dict[str, int] = reconciler_app.lambda_handler(
        load_event("reconciler/scheduled.json"), LocalContext("Reconciler", timeout_seconds=300)
    )
    return report


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("playment_generation", PLAYMENT_GENERATIONS)
def test_a_completed_job_whose_callback_was_dropped_is_brought_up_to_date(
    sandbox: PlaymentSandbox, context: LambdaContext
) -> None:
    # given a SUBMITTED job that Playment completed, but whose callback never arrived
    submit_app.lambda_handler(playment_request("quiet-1"), context)
    vendor_job_id = job("quiet-1")["vendor_job_id"]
    sandbox.complete(vendor_job_id, {"data": {"annotations": {"rectangles": [{"label": "car"}]}}})
    age("quiet-1")

    # when the reconciler runs
    report = run_reconciler()

    # then the job is COMPLETED with the result fetched through the attachment API (not with the key at S3)
    assert report["advanced"] == 1
    stored = job("quiet-1")
    assert stored["status"] == "COMPLETED"
    assert stored["result"] == {"data": {"annotations": {"rectangles": [{"label": "car"}]}}}
    assert stored["history"][-1]["source"] == "reconciler"
    paths = [r.path for r in sandbox.received]
    assert sandbox.generation.get_job.format(p="proj-1", j=vendor_job_id) in paths  # the generation's own path
    assert "/v1/attachments" in paths
    assert any(p.startswith("/signed/") for p in paths)


@pytest.mark.usefixtures("aws")
def test_a_quiet_queued_job_that_nobody_holds_is_enqueued_again(context: LambdaContext) -> None:
    # given a job recorded QUEUED whose message was lost (the queue is empty)
    submit_app.lambda_handler({"jobs": [playment_request("stuck-1")]}, context)
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="handoff-submissions")["QueueUrl"]
    sqs.purge_queue(QueueUrl=url)
    age("stuck-1")

    report = run_reconciler()

    assert report["requeued"] == 1
    assert queued_messages() == [{"reference_id": "stuck-1"}]


@pytest.mark.usefixtures("aws")
def test_a_delivered_textking_translation_is_fetched_by_the_reconciler(
    textking: TextkingFake, context: LambdaContext
) -> None:
    # given an ordered TEXTKING job whose delivery callback was lost
    body = copy.deepcopy(load_event("submit_job/direct_invoke_textking.json"))
    body["order"] = True
    submitted = submit_app.lambda_handler(body, context)
    reference_id = submitted["reference_id"]
    textking.set_state(textking.only_job().id, "translation-delivered")
    age(reference_id)

    report = run_reconciler()

    assert report["advanced"] == 1
    stored = job(reference_id)
    assert stored["status"] == "DELIVERED"
    key = stored["result_ref"].removeprefix("s3://handoff-results/")
    assert key.startswith(f"deliveries/textking/{reference_id}/")
    assert archived(key)[key] == b"Hallo Welt"


@pytest.mark.usefixtures("aws")
def test_a_delivered_job_waits_on_the_customer_and_is_looked_up_after_the_delivered_budget(
    textking: TextkingFake, context: LambdaContext
) -> None:
    # given a DELIVERED TEXTKING job (its translation in S3) that the customer accepted while the
    # callback was lost
    body = copy.deepcopy(load_event("submit_job/direct_invoke_textking.json"))
    body["order"] = True
    reference_id = submit_app.lambda_handler(body, context)["reference_id"]
    textking.set_state(textking.only_job().id, "translation-delivered")
    age(reference_id)
    assert run_reconciler()["advanced"] == 1
    textking.set_state(textking.only_job().id, "completed")

    # when it has been quiet for longer than TEXTKING's budget, but not the delivered one (a day)
    age(reference_id, hours=2)
    calls_before = len(textking.calls)
    early = run_reconciler()

    # then nobody asked TEXTKING: the job waits on the customer
    assert early["advanced"] == 0
    assert len(textking.calls) == calls_before
    assert job(reference_id)["status"] == "DELIVERED"

    # when it has been quiet for longer than the delivered budget, the acceptance is read
    age(reference_id, hours=25)
    assert run_reconciler()["advanced"] == 1
    assert job(reference_id)["status"] == "COMPLETED"


def test_a_silence_budget_that_is_not_whole_seconds_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from handoff.settings import ConfigurationError, reconciler_settings

    monkeypatch.setenv("RECONCILE_AFTER_SECONDS_BY_VENDOR", "playment=1.5")
    reset_function_caches()
    with pytest.raises(ConfigurationError, match="RECONCILE_AFTER_SECONDS_BY_VENDOR"):
        reconciler_settings()


# --- the reconciler's rules, on the in-memory store -------------------------------------------------


@dataclass
class World:
    """The Reconciler and a Submitter on the fakes, with Playment's sandbox over HTTP."""

    store: FakeJobStore
    queue: FakeRetryQueue
    submitter: Submitter

    def submit(self, reference_id: str) -> str:
        """A job Playment accepted; returns Playment's job id."""
        result = self.submitter.submit(parse_submit_request(playment_request(reference_id)))
        assert result.outcome is Outcome.SUBMITTED
        assert result.job.vendor_job_id is not None
        return result.job.vendor_job_id

    def age(self, reference_id: str, hours: float = 2) -> str:
        """Make a job look quiet: its last write `hours` ago."""
        then = ago(hours)
        self.store.set_attribute(reference_id, "updated_at", {"S": then})
        return then

    def job(self, reference_id: str) -> dict[str, Any]:
        return next(j for j in self.store.jobs() if j["reference_id"] == reference_id)

    def run(self, **settings: Any) -> dict[str, int]:
        store, archive = self.store, FakeArchive()
        reconciler = Reconciler(
            store,
            clients(playment=playment_client()),
            lambda vendor: CallbackApplier(store, archive, vendor),
            self.queue,
            ReconcilerSettings(**{"silent_after_seconds": 3600, **settings}),
        )
        return reconciler.run()


@pytest.fixture
def world(sandbox: PlaymentSandbox) -> World:
    store, queue = FakeJobStore(), FakeRetryQueue()
    submitter = Submitter(store, clients(playment=playment_client()), queue, Unlimited(), Backoff(0, 1))
    return World(store, queue, submitter)


def test_a_job_with_nothing_new_is_left_alone_and_moves_to_the_back_of_the_line(world: World) -> None:
    # given a job IN_PROGRESS (the first lookup found Playment's "pending") and still pending there
    world.submit("quiet-2")
    world.age("quiet-2")
    assert world.run()["advanced"] == 1
    before = world.age("quiet-2")
    version = world.job("quiet-2")["version"]

    # when the reconciler looks again
    report = world.run()

    # then nothing is written but the time it looked
    assert report["unchanged"] == 1
    stored = world.job("quiet-2")
    assert stored["status"] == "IN_PROGRESS"
    assert stored["version"] == version  # no status change written
    assert stored["updated_at"] > before  # looked at: the next run starts with other jobs
    item = world.store.item("quiet-2") or {}
    assert item["checked_at"] == item["updated_at"]
    assert world.run()["unchanged"] == 0


def test_work_per_run_is_bounded_and_the_next_run_continues(sandbox: PlaymentSandbox, world: World) -> None:
    for n in range(3):
        world.submit(f"quiet-{n}")
        world.age(f"quiet-{n}", hours=3 - n)  # quiet-0 is the oldest

    first, second = world.run(max_jobs_per_run=2), world.run(max_jobs_per_run=2)

    assert (first["advanced"], second["advanced"]) == (2, 1)  # Playment says pending: IN_PROGRESS
    looked_up = [r.path.rsplit("/", 1)[-1] for r in sandbox.received if r.method == "GET" and "/jobs/" in r.path]
    ids = {world.job(f"quiet-{n}")["vendor_job_id"]: f"quiet-{n}" for n in range(3)}
    assert [ids[i] for i in looked_up] == ["quiet-0", "quiet-1", "quiet-2"]


def test_a_vendor_that_cannot_answer_is_counted_and_the_job_kept(
    sandbox: PlaymentSandbox, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.submit("quiet-3")
    sandbox.jobs.clear()  # Playment answers FS_0006 (400) for the lookup
    before = world.age("quiet-3")

    report = world.run()

    assert report["errors"] == 1
    stored = world.job("quiet-3")
    assert stored["status"] == "SUBMITTED"
    assert stored["updated_at"] > before  # marked checked: the next run starts with other jobs
    # and a refusal (not an outage) is an error line the ReconcileLookupRefusedAlarm counts
    (line,) = [r for r in caplog.records if r.getMessage() == "vendor refused the lookup"]
    assert (line.levelname, getattr(line, "reference_id", None)) == ("ERROR", "quiet-3")


def test_each_vendor_is_looked_up_after_its_own_silence_budget(sandbox: PlaymentSandbox, world: World) -> None:
    # given budgets of 10 minutes for Playment and an hour for everyone else
    budgets = {"silent_after_by_vendor": "playment=600", "silent_after_seconds": 3600}
    # and two Playment jobs completed at Playment without a callback, quiet 11 and 5 minutes
    for reference_id, minutes in (("quiet-11", 11), ("quiet-5", 5)):
        sandbox.complete(world.submit(reference_id), {"ok": True})
        world.age(reference_id, hours=minutes / 60)

    # when the reconciler runs
    report = world.run(**budgets)

    # then only the job past Playment's budget was looked up (well before the one-hour default)
    assert report["advanced"] == 1
    assert world.job("quiet-11")["status"] == "COMPLETED"
    assert world.job("quiet-11")["result"] == {"ok": True}
    assert world.job("quiet-5")["status"] == "SUBMITTED"


def test_a_quiet_queued_job_is_enqueued_again_unless_a_retry_is_due(world: World) -> None:
    # given two jobs recorded QUEUED (bulk) whose messages were lost, one with a retry due in an hour
    world.submitter.submit_many([parse_submit_request(playment_request(r)) for r in ("stuck-1", "stuck-2")])
    world.queue.sent.clear()
    world.store.set_attribute("stuck-2", "next_attempt_at", {"S": ago(-1)})
    before = world.age("stuck-1")
    world.age("stuck-2")

    # when the reconciler runs
    report = world.run()

    # then only the one without a retry due is enqueued again, and it goes to the back of the line
    assert (report["requeued"], report["skipped"]) == (1, 1)
    assert world.queue.messages() == ["stuck-1"]
    stored = world.job("stuck-1")
    assert (stored["status"], stored["version"]) == ("QUEUED", 1)
    assert stored["updated_at"] > before
