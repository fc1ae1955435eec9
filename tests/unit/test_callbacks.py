"""Applying what a vendor says (CallbackApplier) and keeping every callback (CallbackIntake,
reapply_message), on the in-memory ports: FakeJobStore, FakeArchive, FakeCallbackRetries.

The callback functions end to end (authentication, S3, SQS, the retry function) are tested in
test_playment_callback.py, test_textking.py and test_callback_retry.py on moto.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from handoff.callbacks import CallbackApplier, CallbackIntake, NotKept, Tally, Verdict, reapply_message
from handoff.lifecycle import Document, Observation, VendorUpdate
from handoff.models import HistoryEntry, Job, JobError, JobStatus
from handoff.queue import Disposition
from handoff.settings import CallbackRetrySettings
from handoff.store import STORED_BUDGETS, fits
from handoff.vendors.playment import CALLBACK_CONTENT_TYPE, apply_callback
from tests.fakes.archive import FakeArchive
from tests.fakes.queues import FakeCallbackRetries
from tests.fakes.store import FakeJobStore

REF = "order-1042-img-7"
JOB_ID = "j-1"


@dataclass
class World:
    store: FakeJobStore
    archive: FakeArchive
    retries: FakeCallbackRetries
    applier: CallbackApplier
    intake: CallbackIntake

    def job(self, reference_id: str = REF) -> dict[str, Any]:
        return next(j for j in self.store.jobs() if j["reference_id"] == reference_id)


@pytest.fixture
def world() -> World:
    store, archive, retries = FakeJobStore(), FakeArchive(), FakeCallbackRetries()
    applier = CallbackApplier(store, archive, "playment")
    intake = CallbackIntake("playment", CALLBACK_CONTENT_TYPE, applier, retries, apply_callback)
    store.put_job(submitted_job())
    return World(store, archive, retries, applier, intake)


def submitted_job(reference_id: str = REF, vendor: str = "playment") -> Job:
    at = "2026-01-01T00:00:00.000Z"
    return Job(
        reference_id=reference_id,
        vendor=vendor,
        status=JobStatus.SUBMITTED,
        request={},
        request_hash="h",
        vendor_job_id=JOB_ID,
        created_at=at,
        updated_at=at,
        history=[HistoryEntry(at=at, status=JobStatus.SUBMITTED, source="submit")],
    )


def seen(status: JobStatus, **fields: Any) -> Observation:
    return Observation(
        reference_id=fields.pop("reference_id", REF),
        vendor_job_id=fields.pop("vendor_job_id", JOB_ID),
        update=VendorUpdate(status, revision=fields.pop("revision", False)),
        **fields,
    )


# --- the applier: one observation, at most one write -------------------------------------------------


def test_a_new_status_is_applied_with_its_result_inline(world: World) -> None:
    verdict = world.applier.apply(seen(JobStatus.COMPLETED, result={"boxes": 3}, detail="done"), source="callback")

    assert verdict is Verdict.APPLIED
    stored = world.job()
    assert (stored["status"], stored["result"], stored["result_ref"]) == ("COMPLETED", {"boxes": 3}, None)
    assert stored["history"][-1] | {"at": None} == {
        "at": None,
        "status": "COMPLETED",
        "source": "callback",
        "detail": "done",
    }
    assert world.archive.objects == {}


@pytest.mark.parametrize(
    ("status", "observed", "verdict"),
    [
        pytest.param(JobStatus.SUBMITTED, seen(JobStatus.SUBMITTED), Verdict.DUPLICATE, id="repeat"),
        pytest.param(JobStatus.COMPLETED, seen(JobStatus.IN_PROGRESS), Verdict.DUPLICATE, id="stale"),
        pytest.param(JobStatus.DELIVERED, seen(JobStatus.IN_PROGRESS), Verdict.DUPLICATE, id="not-a-revision"),
        pytest.param(
            JobStatus.SUBMITTED,
            seen(JobStatus.COMPLETED, vendor_job_id="another-job"),
            Verdict.INVALID,
            id="other-vendor-job",
        ),
        pytest.param(
            JobStatus.SUBMITTED, seen(JobStatus.COMPLETED, reference_id="nobody"), Verdict.UNKNOWN, id="no-such-job"
        ),
        pytest.param(
            JobStatus.SUBMITTED,
            seen(JobStatus.COMPLETED, reference_id="textking-job"),
            Verdict.UNKNOWN,
            id="another-vendors-job",
        ),
    ],
)
def test_what_cannot_apply_writes_nothing_and_says_why(
    world: World, status: JobStatus, observed: Observation, verdict: Verdict
) -> None:
    world.store.put_job(submitted_job().model_copy(update={"status": status}))
    world.store.put_job(submitted_job("textking-job", vendor="textking"))
    before = world.store.jobs()

    assert world.applier.apply(observed, source="callback") is verdict

    assert world.store.jobs() == before


def test_a_callback_that_beats_the_submitted_write_lands_and_records_the_vendor_job(world: World) -> None:
    queued = submitted_job().model_copy(update={"status": JobStatus.QUEUED, "vendor_job_id": None})
    world.store.put_job(queued)

    verdict = world.applier.apply(seen(JobStatus.IN_PROGRESS), source="callback")

    assert verdict is Verdict.APPLIED
    assert (world.job()["status"], world.job()["vendor_job_id"]) == ("IN_PROGRESS", JOB_ID)


def test_a_result_over_its_budget_is_archived_and_the_job_points_at_it(world: World) -> None:
    result = {"landmarks": [{"_id": f"lm-{i}", "points": {"x": 0.17, "y": 0.58}} for i in range(2000)]}
    assert not fits("result", result)

    world.applier.apply(seen(JobStatus.COMPLETED, result=result), source="callback")

    stored = world.job()
    assert (stored["status"], stored["result"]) == ("COMPLETED", None)
    assert stored["result_ref"].startswith(f"s3://handoff-results/results/playment/{REF}/")
    assert json.loads(world.archive.read_uri(stored["result_ref"])) == result


def test_a_result_strict_json_cannot_carry_is_archived_as_the_vendor_wrote_it(world: World) -> None:
    world.applier.apply(seen(JobStatus.COMPLETED, result={"score": float("nan")}), source="callback")

    stored = world.job()
    assert stored["result"] is None
    assert world.archive.read_uri(stored["result_ref"]) == b'{"score":NaN}'


def test_an_error_over_its_budget_is_kept_whole_in_the_archive_and_bounded_in_the_job(world: World) -> None:
    details = [{"url": f"https://x.example.com/{i}.jpg", "type": "INVALID_IMAGE_LINK"} for i in range(3000)]
    error = JobError(code="FS_0003", message="Invalid data passed", details=details)

    world.applier.apply(seen(JobStatus.FAILED, error=error), source="callback")

    stored = world.job()
    assert stored["status"] == "FAILED"
    assert (stored["last_error"]["code"], stored["last_error"]["message"]) == ("FS_0003", "Invalid data passed")
    (pointer,) = stored["last_error"]["details"]
    assert pointer["count"] == 3000
    assert json.loads(world.archive.read_uri(pointer["details_ref"]))["details"] == details
    item = world.store.item(REF) or {}
    assert len(item["last_error"]["S"]) <= STORED_BUDGETS["last_error"]


def test_a_delivered_document_is_archived_and_the_job_points_at_it(world: World) -> None:
    document = Document("Übersetzung.txt", b"Hallo Welt", "text/plain; charset=utf-8")

    world.applier.apply(seen(JobStatus.DELIVERED, document=document), source="callback")

    stored = world.job()
    assert stored["status"] == "DELIVERED"
    assert stored["result_ref"] == f"s3://handoff-results/deliveries/playment/{REF}/%C3%9Cbersetzung.txt"
    assert world.archive.read_uri(stored["result_ref"]) == b"Hallo Welt"


# --- the intake: archive, apply, keep what could not be applied ----------------------------------------


def body(*annotations: dict[str, Any]) -> bytes:
    return json.dumps({"annotations": list(annotations)}).encode()


def completed(result: Any = None) -> dict[str, Any]:
    return {"reference_id": REF, "job_id": JOB_ID, "status": "COMPLETED", "result": result or {"boxes": 3}}


def test_a_callback_is_archived_byte_for_byte_then_applied(world: World) -> None:
    received = world.intake.receive(body(completed()))

    assert received.tally.as_dict() == {"applied": 1, "duplicate": 0, "unknown": 0, "invalid": 0, "deferred": 0}
    assert received.archive_key.startswith("raw/playment/")
    assert received.archive_key.endswith(".json")
    assert world.archive.archived("raw/") == {received.archive_key: body(completed())}
    assert world.job()["status"] == "COMPLETED"
    assert world.retries.sent == []


def test_a_callback_that_cannot_be_archived_is_not_kept_and_nothing_is_written(world: World) -> None:
    world.archive.unavailable = True
    before = world.store.jobs()

    with pytest.raises(NotKept):
        world.intake.receive(body(completed()))

    assert world.store.jobs() == before


def test_what_cannot_be_applied_now_is_deferred_and_applied_again_from_the_archive(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the table refuses the next write
    real = world.store.transition
    monkeypatch.setattr(world.store, "transition", _fails_once(real))

    # when the callback arrives
    received = world.intake.receive(body(completed()))

    # then it is deferred: archived, and its key queued for another try; the job is as it was
    assert received.tally.deferred == 1
    assert world.retries.sent == [("playment", received.archive_key, 0)]
    assert world.job()["status"] == "SUBMITTED"

    # and when it is applied again from the archive, the job is COMPLETED
    again = world.intake.reapply(received.archive_key)
    assert again.as_dict()["applied"] == 1
    assert (world.job()["status"], world.job()["result"]) == ("COMPLETED", {"boxes": 3})


def test_a_deferred_callback_that_cannot_be_queued_is_not_kept(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.store, "transition", _fails_once(world.store.transition))
    world.retries.unavailable = True

    with pytest.raises(NotKept):
        world.intake.receive(body(completed()))

    assert len(world.archive.archived("raw/")) == 1  # archived all the same: `make replay` finds it


def _fails_once(real: Any) -> Any:
    calls: list[str] = []

    def transition(*args: Any, **kwargs: Any) -> Any:
        if not calls:
            calls.append("refused")
            raise ConnectionError("the table is unreachable")
        return real(*args, **kwargs)

    return transition


# --- CallbackRetry: one message ---------------------------------------------------------------------


SETTINGS = CallbackRetrySettings(queue_url="https://sqs.example/q", max_receives=3, retry_base_seconds=0)


def reapply(world: World, message: str, receives: int = 1) -> Any:
    return reapply_message(message, receives, lambda vendor: world.intake, SETTINGS)


def message(key: str, vendor: str = "playment") -> str:
    return json.dumps({"vendor": vendor, "archive_key": key})


def test_an_archived_callback_is_applied_again_and_its_message_done(world: World) -> None:
    key = world.archive.put_callback("playment", body(completed()), CALLBACK_CONTENT_TYPE)

    outcome = reapply(world, message(key))

    assert outcome.disposition is Disposition.DONE
    assert world.job()["status"] == "COMPLETED"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("not json", id="not-a-message"),
        pytest.param(message("raw/playment/2026/01/01/000000-gone.json"), id="archive-gone"),
    ],
)
def test_a_message_that_names_no_archived_callback_is_poison(world: World, raw: str) -> None:
    assert reapply(world, raw).disposition is Disposition.POISON


def test_a_callback_still_deferred_is_retried_then_given_up_on_its_last_receive(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = world.archive.put_callback("playment", body(completed()), CALLBACK_CONTENT_TYPE)
    deferred = Tally()
    deferred.add(Verdict.DEFERRED)
    monkeypatch.setattr(world.intake, "reapply", lambda archive_key: deferred)

    assert reapply(world, message(key), receives=2).disposition is Disposition.RETRY
    assert reapply(world, message(key), receives=3).disposition is Disposition.GIVE_UP
    assert world.job()["status"] == "SUBMITTED"
