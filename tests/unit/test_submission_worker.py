"""The retry path end to end: SubmitJob -> SubmissionQueue -> SubmissionWorker -> the Playment sandbox,
driven by a Lambda-like poller over moto's SQS (moto's own mapping ignores batchItemFailures).

The submission rules on their own (FS_0001 after a lost answer, the last look before giving up,
leases, a busy rate limiter) are in test_submission.py, on the in-memory ports."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests

from functions.submission_worker import app as worker_app
from functions.submit_job import app as submit_app
from handoff.backoff import Backoff
from local.sandboxes.playment import PlaymentSandbox
from local.sandboxes.server import peak_rate
from local.sqs_poller import SqsPoller
from tests.conftest import (
    PLAYMENT_API_KEY,
    PLAYMENT_GENERATIONS,
    ROOT,
    LambdaContext,
    load_event,
    queue_depth,
    queued_messages,
    reset_function_caches,
    table_items,
)

pytestmark = pytest.mark.usefixtures("aws")

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/handoff-submissions"


def request(reference_id: str = "order-1042-img-7") -> dict[str, Any]:
    body = copy.deepcopy(load_event("submit_job/direct_invoke_playment.json"))
    body["reference_id"] = reference_id
    return body


def job(reference_id: str = "order-1042-img-7") -> dict[str, Any]:
    return next(i for i in table_items() if i["reference_id"] == reference_id)


def poller(concurrency: int = 1, batch_size: int = 5) -> SqsPoller:
    return SqsPoller(
        boto3.client("sqs"),
        QUEUE_URL,
        worker_app.lambda_handler,
        concurrency=concurrency,
        batch_size=batch_size,
        wait_seconds=0,
    )


def run_until(workers: SqsPoller, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with workers:
        while not done():
            assert time.monotonic() < deadline, "the worker did not get there in time"
            time.sleep(0.05)


def dead_letter_bodies() -> list[str]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="handoff-submissions-dlq")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return sorted(m["Body"] for m in messages)


@pytest.fixture
def delays() -> Iterator[list[int]]:
    """Every delay the retry path asked SQS for: DelaySeconds of SubmitJob's message, then each
    VisibilityTimeout the worker set, in order."""
    seen: list[int] = []

    def on_send(params: dict[str, Any], **_: Any) -> None:
        seen.append(int(params.get("DelaySeconds", 0)))

    def on_visibility(params: dict[str, Any], **_: Any) -> None:
        seen.append(int(params["VisibilityTimeout"]))

    submit_app.sqs.meta.events.register("before-parameter-build.sqs.SendMessage", on_send)
    worker_app.sqs.meta.events.register("before-parameter-build.sqs.ChangeMessageVisibility", on_visibility)
    yield seen
    submit_app.sqs.meta.events.unregister("before-parameter-build.sqs.SendMessage", on_send)
    worker_app.sqs.meta.events.unregister("before-parameter-build.sqs.ChangeMessageVisibility", on_visibility)


@pytest.mark.parametrize("playment_generation", PLAYMENT_GENERATIONS)
def test_a_vendor_that_fails_three_times_then_accepts_gets_one_job_after_four_attempts(
    sandbox: PlaymentSandbox, context: LambdaContext, delays: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a backoff of base 1 s, cap 2 s, and Playment answering 503 to the first three creations
    monkeypatch.setenv("RETRY_BASE_SECONDS", "1")
    monkeypatch.setenv("RETRY_CAP_SECONDS", "2")
    reset_function_caches()
    sandbox.fail_next.extend([503, 503, 503])

    # when the job is submitted (inline attempt fails) and the worker drains the queue
    answer = submit_app.lambda_handler(request(), context)
    assert answer["status"] == "QUEUED"
    run_until(poller(), lambda: job()["status"] == "SUBMITTED")

    # then Playment holds exactly one job, and it is the one recorded
    assert len(sandbox.jobs) == 1
    (vendor_job,) = sandbox.jobs.values()
    stored = job()
    assert stored["vendor_job_id"] == vendor_job.id
    assert stored["attempts"] == 4
    assert [r.status for r in sandbox.creations()] == [503, 503, 503, 200]
    # and every wait was within the schedule: 0..min(cap, base * 2^(n-1)) after the n-th failure
    schedule = Backoff(1, 2)
    assert len(delays) == 3
    assert all(0 <= d <= schedule.ceiling(n) for n, d in enumerate(delays, start=1)), delays
    assert "last_error" not in stored or stored["last_error"] is None
    assert queued_messages() == []


def test_a_vendor_that_always_fails_ends_failed_retries_exhausted_with_the_message_dead_lettered(
    sandbox: PlaymentSandbox, context: LambdaContext
) -> None:
    # given Playment answers 503 to everything
    sandbox.fail_next.extend([503] * 20)

    # when the job is submitted and the worker keeps at it (the queue allows 3 receives)
    submit_app.lambda_handler(request(), context)
    run_until(poller(), lambda: len(queued_messages("handoff-submissions-dlq")) == 1)

    # then the job is FAILED retries_exhausted, after 1 inline + 3 worker attempts, saying why
    stored = job()
    assert stored["status"] == "FAILED"
    assert stored["attempts"] == 4
    assert stored["last_error"]["code"] == "retries_exhausted"
    assert stored["last_error"]["details"][0]["code"] == "FS_0000"
    assert [h["status"] for h in stored["history"]] == ["QUEUED", "FAILED"]
    # and the message sits in the dead-letter queue, not in the queue
    assert queued_messages("handoff-submissions-dlq") == [{"reference_id": "order-1042-img-7"}]
    assert queued_messages() == []
    assert len(sandbox.creations()) == 4
    assert sandbox.jobs == {}


def test_a_failure_inside_handoff_is_retried_visibly_and_given_up_loudly(
    sandbox: PlaymentSandbox, context: LambdaContext
) -> None:
    # given the Playment secret is missing (a deployment mistake)
    boto3.client("secretsmanager").delete_secret(SecretId="handoff/playment", ForceDeleteWithoutRecovery=True)

    # when a job is submitted: the answer is 202 with the reason, not a 500
    answer = submit_app.lambda_handler(request(), context)
    assert answer["status"] == "QUEUED"
    assert answer["last_error"] == {
        "code": "internal_error",
        "message": "GetParameterError while preparing",
        "retryable": True,
        "details": [],
    }

    # then the worker retries it and, attempts used up, fails it loudly into the dead-letter queue
    run_until(poller(), lambda: len(dead_letter_bodies()) == 1)
    stored = job()
    assert stored["status"] == "FAILED"
    assert stored["last_error"]["code"] == "retries_exhausted"
    assert stored["last_error"]["details"][0]["code"] == "internal_error"
    assert sandbox.received == []


def test_a_vendor_failing_30_percent_of_the_time_gets_every_job_exactly_once(
    sandbox: PlaymentSandbox, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given Playment answers 503 to 30% of job creations, and 10 attempts per job (queue and worker agree)
    sqs = boto3.client("sqs")
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=QUEUE_URL, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
    )
    policy["maxReceiveCount"] = 10
    sqs.set_queue_attributes(QueueUrl=QUEUE_URL, Attributes={"RedrivePolicy": json.dumps(policy)})
    monkeypatch.setenv("SUBMISSION_MAX_RECEIVES", "10")
    reset_function_caches()
    sandbox.error_rate = 0.3

    # when 100 jobs are submitted in bulk and four workers drain the queue at once
    submit_app.lambda_handler({"jobs": [request(f"flaky-{n:03d}") for n in range(100)]}, context)
    run_until(poller(concurrency=4), lambda: queue_depth() == 0, timeout=60)

    # then no job is lost or doubled: every one SUBMITTED, one Playment job per reference_id
    assert {i["status"] for i in table_items()} == {"SUBMITTED"}
    assert sorted(j.reference_id for j in sandbox.jobs.values()) == [f"flaky-{n:03d}" for n in range(100)]
    # and the attempts recorded are the requests Playment saw
    assert sum(i["attempts"] for i in table_items()) == len(sandbox.creations())


def test_poison_messages_go_to_the_dead_letter_queue_without_holding_up_their_batch(
    sandbox: PlaymentSandbox, context: LambdaContext
) -> None:
    # given one good job in the queue and, in the same batch, a message that is not JSON and one
    # that names no job
    answer = submit_app.lambda_handler({"jobs": [request("good-1")]}, context)
    assert answer["totals"]["queued"] == 1
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=QUEUE_URL, MessageBody="this is not json")
    sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps({"reference_id": "no-such-job"}))

    # when the worker gets all three in one invocation
    workers = poller(batch_size=10)
    assert workers.poll_once() == 3

    # then the good job was submitted in that same invocation
    assert job("good-1")["status"] == "SUBMITTED"
    # and the two poison messages end in the dead-letter queue
    run_until(workers, lambda: len(dead_letter_bodies()) == 2)
    assert dead_letter_bodies() == sorted(['{"reference_id": "no-such-job"}', "this is not json"])
    assert queued_messages() == []
    assert workers.errors == 0  # record failures, never a crashed invocation


@pytest.fixture
def sandbox_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The Playment sandbox in a process of its own, allowing 40 job creations per second: its
    arrival times are then not skewed by this process's threads waiting for the interpreter."""
    process = subprocess.Popen(
        [sys.executable, "-m", "local.sandboxes.playment", PLAYMENT_API_KEY, "proj-1", "40"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    url = process.stdout.readline().strip()
    monkeypatch.setenv("PLAYMENT_BASE_URL", url)
    reset_function_caches()
    yield url
    process.stdin.close()
    process.wait(timeout=10)


def test_500_jobs_in_bulk_are_all_submitted_without_passing_the_rate_limit(
    sandbox_process: str, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given Playment allows 40 job creations per second (429 beyond) and the stack is set to 40
    monkeypatch.setenv("VENDOR_MAX_REQUESTS_PER_SECOND", "playment=40")
    reset_function_caches()

    # when 500 jobs arrive in one direct invoke
    jobs = [request(f"bulk-{n:03d}") for n in range(500)]
    answer = submit_app.lambda_handler({"jobs": jobs}, context)

    # then all 500 are recorded QUEUED and enqueued
    assert answer["totals"] == {"queued": 500, "replayed": 0, "conflict": 0, "invalid": 0}
    assert {i["status"] for i in table_items()} == {"QUEUED"}
    assert queue_depth() == 500

    # and four concurrent workers submit every one of them
    run_until(poller(concurrency=4, batch_size=10), lambda: queue_depth() == 0, timeout=120)
    assert {i["status"] for i in table_items()} == {"SUBMITTED"}
    vendor_jobs = requests.get(f"{sandbox_process}/_sandbox/jobs", timeout=5).json()
    assert sorted(j["reference_id"] for j in vendor_jobs) == [f"bulk-{n:03d}" for n in range(500)]
    # and Playment never saw more than 25 creations in any second, nor answered 429
    creations = requests.get(f"{sandbox_process}/_sandbox/creations", timeout=5).json()
    assert [c["status"] for c in creations] == [200] * 500
    peak = peak_rate([c["at"] for c in creations])
    assert peak <= 40
    assert all(i["attempts"] == 1 for i in table_items())
