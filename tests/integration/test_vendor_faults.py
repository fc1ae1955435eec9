"""Vendor faults during 300 submissions: Playment answers 503 to 30% of job creations, lets 10%
time out (nothing created) and loses the answer of 5% (the job IS created, the answer never comes).
Every job must end up submitted exactly once at Playment.

SubmitJob takes the 300 in one bulk request; eight concurrent SubmissionWorker invocations (the
Lambda-like poller over moto's SQS) submit them to the Playment sandbox over real HTTP.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import boto3
import pytest

from functions.submission_worker import app as worker_app
from functions.submit_job import app as submit_app
from local.sandboxes.playment import PlaymentSandbox
from local.sqs_poller import SqsPoller
from tests.conftest import LambdaContext, load_event, queue_depth, queued_messages, reset_function_caches, table_items

pytestmark = pytest.mark.usefixtures("aws")

JOBS = 300
# Attempts per job. A job fails all of them only if every one is a 503 or a timeout (p = 0.4 each;
# a lost answer is found afterwards): 0.4^16 * 300 jobs = 1 run in ~8,000 with a job FAILED.
RECEIVES = 16


@pytest.fixture
def faulty_playment(sandbox: PlaymentSandbox, monkeypatch: pytest.MonkeyPatch) -> PlaymentSandbox:
    sqs = boto3.client("sqs")
    url = submit_app.submitter().queue.url
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
    )
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"RedrivePolicy": json.dumps({**policy, "maxReceiveCount": RECEIVES})}
    )
    monkeypatch.setenv("SUBMISSION_MAX_RECEIVES", str(RECEIVES))
    reset_function_caches()
    sandbox.error_rate, sandbox.timeout_rate, sandbox.lost_rate = 0.30, 0.10, 0.05
    return sandbox


def request(n: int) -> dict[str, Any]:
    body: dict[str, Any] = load_event("submit_job/direct_invoke_playment.json")
    return {**body, "reference_id": f"fault-{n:03d}"}


def test_300_submissions_under_5xx_timeouts_and_lost_answers_are_each_submitted_exactly_once(
    faulty_playment: PlaymentSandbox, context: LambdaContext
) -> None:
    # given 300 jobs recorded and queued in one bulk request
    answer = submit_app.lambda_handler({"jobs": [request(n) for n in range(JOBS)]}, context)
    assert answer["totals"]["queued"] == JOBS

    # when eight concurrent workers drain the queue against the faulty vendor
    workers = SqsPoller(
        boto3.client("sqs"),
        submit_app.submitter().queue.url,
        worker_app.lambda_handler,
        concurrency=8,
        batch_size=5,
        wait_seconds=0,
    )
    deadline = time.monotonic() + 240
    with workers:
        while queue_depth() > 0:
            assert time.monotonic() < deadline, f"{queue_depth()} messages still queued"
            time.sleep(0.1)

    # then the faults really happened, each kind many times
    creations = faulty_playment.creations()
    faults = Counter(c.fault for c in creations)
    assert faults["error"] >= 50, faults
    assert faults["timeout"] >= 10, faults
    assert faults["lost"] >= 5, faults

    # and Playment holds exactly one job per reference_id: none missing, none doubled
    held = Counter(job.reference_id for job in faulty_playment.jobs.values())
    assert sorted(held) == [f"fault-{n:03d}" for n in range(JOBS)]
    assert set(held.values()) == {1}

    # and every job is SUBMITTED with the id of the job Playment holds for it
    jobs = {job["reference_id"]: job for job in table_items()}
    assert Counter(job["status"] for job in jobs.values()) == {"SUBMITTED": JOBS}
    for vendor_job in faulty_playment.jobs.values():
        assert jobs[vendor_job.reference_id]["vendor_job_id"] == vendor_job.id
    # and every attempt is accounted for: the attempts recorded are the creations Playment saw
    assert sum(job["attempts"] for job in jobs.values()) == len(creations)
    # and nothing is left over or dead-lettered; no invocation crashed
    assert queued_messages("handoff-submissions-dlq") == []
    assert workers.errors == 0
