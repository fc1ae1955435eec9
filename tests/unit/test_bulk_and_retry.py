"""Bulk submission through POST /jobs and direct invoke, and the operator's resubmission."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import pytest

from functions.submission_worker import app as worker_app
from functions.submit_job import app as submit_app
from local.sandboxes.playment import PlaymentSandbox
from local.sqs_poller import SqsPoller
from tests.conftest import LambdaContext, load_event, queue_depth, queued_messages, table_items

pytestmark = pytest.mark.usefixtures("aws")

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/handoff-submissions"


def playment_request(reference_id: str) -> dict[str, Any]:
    body = copy.deepcopy(load_event("submit_job/direct_invoke_playment.json"))
    body["reference_id"] = reference_id
    return body


def api_post(body: Any, context: LambdaContext, sample: str = "api_post_bulk.json") -> tuple[int, dict[str, Any]]:
    event = load_event(f"submit_job/{sample}")
    event["body"] = json.dumps(body)
    response = submit_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def api_retry(reference_id: str, context: LambdaContext) -> tuple[int, dict[str, Any]]:
    event = load_event("submit_job/api_post_retry.json")
    event["path"] = f"/jobs/{reference_id}/retry"
    event["pathParameters"] = {"reference_id": reference_id}
    response = submit_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def drain_queue() -> None:
    workers = SqsPoller(boto3.client("sqs"), QUEUE_URL, worker_app.lambda_handler, wait_seconds=0)
    for _ in range(20):
        if queue_depth() == 0:
            return
        workers.poll_once()
    raise AssertionError("the queue did not drain")


# --- bulk ----------------------------------------------------------------------------------------


def test_the_sample_bulk_event_queues_every_job(context: LambdaContext) -> None:
    status, body = api_post(json.loads(load_event("submit_job/api_post_bulk.json")["body"]), context)

    assert status == 202
    assert body["totals"] == {"queued": 4, "replayed": 0, "conflict": 0, "invalid": 0}
    assert {i["status"] for i in table_items()} == {"QUEUED"}
    assert sorted(m["reference_id"] for m in queued_messages()) == sorted(r["reference_id"] for r in body["jobs"])


def test_one_invalid_job_does_not_reject_the_others(context: LambdaContext) -> None:
    # given an earlier job, then a batch: a new job, an invalid one, a replay, a conflict and a
    # repeat of the new job inside the batch itself
    existing = playment_request("bulk-existing")
    api_post({"jobs": [existing]}, context)
    conflicting = playment_request("bulk-existing")
    conflicting["priority_weight"] = 9
    invalid = playment_request("bulk-invalid")
    invalid["data"] = {"image_url": "ftp://nope"}
    batch = [playment_request("bulk-new"), invalid, existing, conflicting, playment_request("bulk-new")]

    status, body = api_post({"jobs": batch}, context)

    # then the answer has one row per job, in order, and the valid new job is queued
    assert status == 202
    outcomes = [(r["index"], r["reference_id"], r["outcome"]) for r in body["jobs"]]
    assert outcomes[:4] == [
        (0, "bulk-new", "queued"),
        (1, "bulk-invalid", "invalid"),
        (2, "bulk-existing", "replayed"),
        (3, "bulk-existing", "conflict"),
    ]
    assert outcomes[4] in {(4, "bulk-new", "replayed"), (4, "bulk-new", "queued")}
    assert body["jobs"][1]["error"]["code"] == "invalid_request"
    assert body["jobs"][1]["error"]["details"][0]["field"] == "data.image_url"
    assert body["jobs"][3]["error"]["code"] == "conflict"
    # and only valid jobs are in the table, each once, and each new job is enqueued once
    assert sorted(i["reference_id"] for i in table_items()) == ["bulk-existing", "bulk-new"]
    assert sorted(m["reference_id"] for m in queued_messages()) == ["bulk-existing", "bulk-new"]


def test_a_batch_with_no_acceptable_job_is_422_and_writes_nothing(context: LambdaContext) -> None:
    invalid = playment_request("bulk-invalid")
    del invalid["data"]

    status, body = api_post({"jobs": [invalid, {"vendor": "scale"}]}, context)

    assert status == 422
    assert body["error"]["code"] == "invalid_request"
    assert [d["index"] for d in body["error"]["details"]] == [0, 1]
    assert table_items() == []
    assert queue_depth() == 0


@pytest.mark.parametrize("count", [0, 501])
def test_a_batch_must_hold_1_to_500_jobs(context: LambdaContext, count: int) -> None:
    status, body = api_post({"jobs": [playment_request(f"j-{n}") for n in range(count)]}, context)

    assert status == 422
    assert body["error"]["details"][0]["field"] == "jobs"
    assert table_items() == []


def test_bulk_by_direct_invoke_answers_the_same_rows(context: LambdaContext) -> None:
    answer = submit_app.lambda_handler(load_event("submit_job/direct_invoke_bulk.json"), context)

    assert answer["totals"]["queued"] == 4
    assert [r["status"] for r in answer["jobs"]] == ["QUEUED"] * 4


# --- resubmission --------------------------------------------------------------------------------


def test_a_job_rejected_before_the_vendor_accepted_it_can_be_resubmitted(
    sandbox: PlaymentSandbox, context: LambdaContext
) -> None:
    # given a job that Playment rejected (say the tag was wrong; the operator has fixed Playment's side)
    request = playment_request("order-9")
    request["tag"] = "unknown"
    sandbox.fail_next.clear()
    original = sandbox._create_job

    def reject_once(*args: Any) -> Any:
        sandbox._create_job = original  # type: ignore[method-assign]
        from local.sandboxes.playment import _error

        return _error(400, "FS_0005", "tag missing")

    sandbox._create_job = reject_once  # type: ignore[method-assign]
    rejected = submit_app.lambda_handler(request, context)
    assert rejected["error"]["code"] == "vendor_rejected"

    # when the operator asks for it to be tried again
    status, body = api_retry("order-9", context)

    # then it is QUEUED again, on the queue, and the worker submits it
    assert (status, body["status"]) == (202, "QUEUED")
    assert queued_messages() == [{"reference_id": "order-9"}]
    drain_queue()
    stored = table_items()[0]
    assert stored["status"] == "SUBMITTED"
    assert [h["status"] for h in stored["history"]] == ["QUEUED", "FAILED", "QUEUED", "SUBMITTED"]
    assert stored["history"][2]["source"] == "operator"


def test_resubmission_is_refused_for_unknown_submitted_or_vendor_failed_jobs(
    sandbox: PlaymentSandbox, context: LambdaContext
) -> None:
    submit_app.lambda_handler(playment_request("order-10"), context)  # SUBMITTED

    assert api_retry("order-10", context)[0] == 409
    assert api_retry("no-such-job", context)[0] == 404
    status, body = api_retry("bad id!", context)
    assert (status, body["error"]["code"]) == (422, "invalid_request")
    assert table_items()[0]["status"] == "SUBMITTED"
    assert queue_depth() == 0


def test_resubmission_by_direct_invoke(context: LambdaContext) -> None:
    answer = submit_app.lambda_handler(load_event("submit_job/direct_invoke_retry.json"), context)

    assert answer["error"]["code"] == "job_not_found"


def test_a_redriven_message_gives_an_exhausted_job_another_round(
    sandbox: PlaymentSandbox, context: LambdaContext
) -> None:
    # given a job that used up its attempts while Playment was down
    sandbox.fail_next.extend([503] * 4)
    submit_app.lambda_handler(playment_request("order-11"), context)
    workers = SqsPoller(boto3.client("sqs"), QUEUE_URL, worker_app.lambda_handler, wait_seconds=0)
    for _ in range(10):
        workers.poll_once()
    assert table_items()[0]["last_error"]["code"] == "retries_exhausted"
    dead = queued_messages("handoff-submissions-dlq")
    assert dead == [{"reference_id": "order-11"}]

    # when Playment is back and an operator moves the message back to the queue (make redrive)
    boto3.client("sqs").send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps(dead[0]))
    drain_queue()

    # then the job is SUBMITTED, once
    stored = table_items()[0]
    assert stored["status"] == "SUBMITTED"
    assert [h["status"] for h in stored["history"]] == ["QUEUED", "FAILED", "QUEUED", "SUBMITTED"]
    assert stored["history"][2]["source"] == "redrive"
    assert len(sandbox.jobs) == 1
