"""Vendor faults during 300 submissions: Playment answers 503 to 30% of job creations, lets 10%
time out (nothing created) and loses the answer of 5% (the job IS created, the answer never comes).
Every job must end up submitted exactly once at Playment.

SubmitJob takes the 300 in one bulk request; eight concurrent SubmissionWorker invocations (the
Lambda-like poller over moto's SQS) submit them to the Playment sandbox over real HTTP.
"""

from __future__ import annotations

import json
from collections import Counter

import boto3
import pytest

from functions.submit_job import app as submit_app
from local.sandboxes.playment import PlaymentSandbox
from tests.conftest import LambdaContext, queued_messages, reset_function_caches, table_items
from tests.integration.faults import drain_under_faults

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


def test_300_submissions_under_5xx_timeouts_and_lost_answers_are_each_submitted_exactly_once(
    faulty_playment: PlaymentSandbox, context: LambdaContext
) -> None:
    # given 300 jobs queued in one bulk, when eight workers drain them, then each fault happened many times
    sample = "submit_job/direct_invoke_playment.json"
    creations, _, crashed = drain_under_faults(context, sample, JOBS, faulty_playment.creations)

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
    assert crashed == 0
