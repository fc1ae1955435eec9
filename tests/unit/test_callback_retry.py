"""A received callback is never lost: what cannot be applied at once is answered 200, kept in the
archive and applied again by Handoff (CallbackRetryQueue -> CallbackRetry), whatever the vendor's
redelivery (Playment never resends a callback it got 200 for, nor after a 4xx: REFERENCE.md §1.4)."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from pytest_httpserver import HTTPServer
from werkzeug import Response

from functions.callback_retry import app as retry_app
from functions.playment_callback import app as playment_app
from functions.submit_job import app as submit_app
from local.sqs_poller import SqsPoller
from tests.conftest import (
    PLAYMENT_API_KEY,
    LambdaContext,
    archived,
    load_event,
    queue_depth,
    table_items,
)

pytestmark = pytest.mark.usefixtures("aws")

REF = "order-1042-img-7"
JOB_ID = "3f3e8675-ca69-46d7-aa34-96f90fcbb732"
RETRIES = "handoff-callback-retries"
RESULT_URL = "https://playment-results.s3.amazonaws.com/jobs/3f3e8675/result.json"


def job(reference_id: str = REF) -> dict[str, Any]:
    (item,) = [i for i in table_items() if i["reference_id"] == reference_id]
    return item


def playment_callback(context: LambdaContext, *annotations: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    event = load_event("playment_callback/api_completed.json")
    event["body"] = json.dumps({"annotations": list(annotations)})
    response = playment_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def completed(result: Any = None) -> dict[str, Any]:
    return {"reference_id": REF, "job_id": JOB_ID, "status": "COMPLETED", "result": result or {"boxes": 3}}


def run_retries(context: LambdaContext, *, expect: bool = True) -> int:
    """One invocation of CallbackRetry with what is visible in the queue (as Lambda's SQS source);
    returns how many messages it was handed. SQS moves a message that has been received
    maxReceiveCount times to the dead-letter queue at the next receive."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=RETRIES)["QueueUrl"]
    poller = SqsPoller(sqs, url, retry_app.lambda_handler, function_name="CallbackRetryFunction", wait_seconds=0)
    handed = poller.poll_once()
    assert bool(handed) is expect
    return handed


def dead_letters() -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=f"{RETRIES}-dlq")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def submitted(aws: None, playment: HTTPServer, context: LambdaContext) -> HTTPServer:
    """Given: the sample Playment job, accepted by Playment."""
    playment.expect_request("/v0/projects/proj-1/jobs", method="POST").respond_with_json(
        {"data": {"job_id": JOB_ID}, "success": True}
    )
    answer = submit_app.lambda_handler(load_event("submit_job/direct_invoke_playment.json"), context)
    assert answer["status"] == "SUBMITTED"
    return playment


@pytest.fixture
def table_down_once(aws: None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The next state write of the Playment callback function fails (DynamoDB throttles), once."""
    store = playment_app.intake().applier.store
    real = store.transition
    failures: list[str] = []

    def transition(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append("throttled")
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "transition", transition)
    return failures


# --- Playment -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("submitted")
def test_a_callback_the_table_refuses_is_answered_200_and_applied_later(
    context: LambdaContext, table_down_once: list[str]
) -> None:
    # when the COMPLETED callback arrives while the table refuses the write
    status, body = playment_callback(context, completed())

    # then Playment gets its 200 (it would never resend after one), the body is archived and kept
    assert status == 200
    assert body["deferred"] == 1
    assert table_down_once == ["throttled"]
    assert job()["status"] == "SUBMITTED"
    (raw,) = archived("raw/playment/").items()
    assert queue_depth(RETRIES) == 1

    # when CallbackRetry runs, the archived body is applied: the job is COMPLETED, the message gone
    run_retries(context)
    assert job()["status"] == "COMPLETED"
    assert job()["result"] == {"boxes": 3}
    assert queue_depth(RETRIES) == 0
    assert raw[1] == json.dumps({"annotations": [completed()]}).encode()


def attachments(playment: HTTPServer, status: int = 302) -> None:
    """Playment's Attachment API: a redirect to the signed URL (or a failure), and the file behind it."""
    if status == 302:
        signed = playment.url_for("/signed/result.json")
        playment.expect_request("/v1/attachments", query_string={"url": RESULT_URL}).respond_with_response(
            Response(status=302, headers={"Location": signed})
        )
    else:
        playment.expect_oneshot_request("/v1/attachments").respond_with_json({"error": "busy"}, status=status)
    playment.expect_request("/signed/result.json").respond_with_json({"annotations": [{"label": "car"}]})


def test_a_result_given_as_a_url_is_fetched_with_the_api_key_before_completed(
    submitted: HTTPServer, context: LambdaContext
) -> None:
    # given Playment's Attachment API serves the result file
    attachments(submitted)

    # when the callback names the result by its (private) URL
    status, body = playment_callback(context, completed(RESULT_URL))

    # then the job is COMPLETED with the file's content, fetched with the API key
    assert (status, body["applied"]) == (200, 1)
    assert job()["status"] == "COMPLETED"
    assert job()["result"] == {"annotations": [{"label": "car"}]}
    fetch = next(r for r, _ in submitted.log if r.path == "/v1/attachments")
    assert fetch.headers.get("x-api-key") == PLAYMENT_API_KEY
    signed = next(r for r, _ in submitted.log if r.path == "/signed/result.json")
    assert "x-api-key" not in signed.headers  # the signed URL is fetched without the key


def test_a_result_url_that_cannot_be_fetched_now_is_not_completed_with_a_dead_link(
    submitted: HTTPServer, context: LambdaContext
) -> None:
    # given the Attachment API fails once
    attachments(submitted, status=503)

    # when the callback names its result by URL
    status, body = playment_callback(context, completed(RESULT_URL))

    # then the job stays where it was, and the callback is kept for another try
    assert (status, body["deferred"]) == (200, 1)
    assert job()["status"] == "SUBMITTED"
    assert job()["result"] is None

    # when CallbackRetry runs and the Attachment API is back
    attachments(submitted)
    run_retries(context)

    # then the job is COMPLETED with the content, not the link
    assert job()["status"] == "COMPLETED"
    assert job()["result"] == {"annotations": [{"label": "car"}]}
    assert queue_depth(RETRIES) == 0


def test_result_urls_are_fetched_only_while_the_callback_has_time_the_rest_later(
    submitted: HTTPServer, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an Attachment API that answers in 1.5 s (inside the 2 s read timeout), and a callback
    # whose time to fetch is 1 s (FETCH_SECONDS: a hanging API must not run it past its timeout)
    from handoff.vendors.playment import client as playment_client

    monkeypatch.setattr(playment_client, "FETCH_SECONDS", 1.0)

    def slow(request: Any) -> Response:
        time.sleep(1.5)
        return Response(status=302, headers={"Location": submitted.url_for("/signed/result.json")})

    submitted.expect_oneshot_request("/v1/attachments").respond_with_handler(slow)

    # when the callback names its result by URL
    status, body = playment_callback(context, completed(RESULT_URL))

    # then the fetch is given up at the callback's deadline: 200 deferred, the job not COMPLETED yet
    assert (status, body["deferred"]) == (200, 1)
    assert job()["status"] == "SUBMITTED"
    assert queue_depth(RETRIES) == 1

    # when CallbackRetry runs with the Attachment API answering at once
    attachments(submitted)
    run_retries(context)

    # then the job is COMPLETED with the file's content
    assert job()["status"] == "COMPLETED"
    assert job()["result"] == {"annotations": [{"label": "car"}]}


def test_a_result_url_playment_refuses_for_good_is_invalid_not_retried_for_an_hour(
    submitted: HTTPServer, context: LambdaContext
) -> None:
    # given an Attachment API that refuses the URL (not one of Playment's results: 400)
    submitted.expect_oneshot_request("/v1/attachments").respond_with_json({"error": "bad url"}, status=400)

    # when the callback names it
    status, body = playment_callback(context, completed(RESULT_URL))

    # then the annotation is invalid (no retry could fetch it), nothing is queued, the job waits
    # for the reconciler, which reads Playment's own result URL
    assert (status, body["invalid"], body["deferred"]) == (200, 1, 0)
    assert job()["status"] == "SUBMITTED"
    assert queue_depth(RETRIES) == 0


def test_a_result_behind_relative_and_further_redirects_is_fetched(
    submitted: HTTPServer, context: LambdaContext
) -> None:
    # given an Attachment API that redirects with a relative Location, to a signed URL that
    # redirects again with a protocol-relative one (RFC 9110 §10.2.2 allows both)
    host = submitted.url_for("/").split("://", 1)[1].rstrip("/")
    submitted.expect_request("/v1/attachments").respond_with_response(
        Response(status=302, headers={"Location": "/signed/hop"})
    )
    submitted.expect_request("/signed/hop").respond_with_response(
        Response(status=307, headers={"Location": f"//{host}/signed/result.json"})
    )
    submitted.expect_request("/signed/result.json").respond_with_json({"annotations": [{"label": "car"}]})

    # when the callback names the result by URL
    status, body = playment_callback(context, completed(RESULT_URL))

    # then the job is COMPLETED with the file behind the last hop, the key sent only to Playment
    assert (status, body["applied"]) == (200, 1)
    assert job()["result"] == {"annotations": [{"label": "car"}]}
    hops = [r for r, _ in submitted.log if r.path.startswith("/signed/")]
    assert [r.path for r in hops] == ["/signed/hop", "/signed/result.json"]
    assert all("x-api-key" not in r.headers for r in hops)


def test_a_result_file_that_is_not_json_is_kept_as_it_came_and_the_job_completed(
    submitted: HTTPServer, context: LambdaContext
) -> None:
    # given an Attachment API whose result file is CSV, not JSON (no retry would make it JSON)
    signed = submitted.url_for("/signed/result.csv")
    submitted.expect_request("/v1/attachments").respond_with_response(
        Response(status=302, headers={"Location": signed})
    )
    submitted.expect_request("/signed/result.csv").respond_with_data("a,b\n1,2\n", content_type="text/csv")

    # when the callback names it
    status, body = playment_callback(context, completed(RESULT_URL))

    # then the job is COMPLETED with the file in S3 as it came, never deferred until the DLQ
    assert (status, body["applied"], body["deferred"]) == (200, 1, 0)
    assert job()["status"] == "COMPLETED"
    key = job()["result_ref"].removeprefix("s3://handoff-results/")
    assert archived(key)[key] == b"a,b\n1,2\n"
    assert queue_depth(RETRIES) == 0


def test_a_body_that_cannot_be_archived_is_503_and_nothing_is_written(
    submitted: HTTPServer, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given S3 refuses the archive
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "SlowDown"}}, "PutObject")

    monkeypatch.setattr(playment_app.intake().archive, "put_callback", refuse)

    status, body = playment_callback(context, completed())

    # then only now does Playment get a 5xx (it resends on 503), and nothing was applied or queued
    assert (status, body["error"]["code"]) == (503, "not_kept")
    assert job()["status"] == "SUBMITTED"
    assert queue_depth(RETRIES) == 0


@pytest.mark.usefixtures("submitted")
def test_a_callback_still_deferred_after_every_attempt_ends_in_the_dead_letter_queue(
    context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the table refuses every write of the callback functions
    store = playment_app.intake().applier.store

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError"}}, "UpdateItem")

    monkeypatch.setattr(store, "transition", refuse)
    monkeypatch.setattr(retry_app.intake("playment").applier.store, "transition", refuse)
    status, body = playment_callback(context, completed())
    assert (status, body["deferred"]) == (200, 1)
    archive_key = next(iter(archived("raw/playment/")))

    # when CallbackRetry has tried CALLBACK_RETRY_MAX_RECEIVES (3) times
    for _ in range(3):
        run_retries(context)
    run_retries(context, expect=False)

    # then the message is in the dead-letter queue, naming the archived body for `make replay`
    assert queue_depth(RETRIES) == 0
    assert dead_letters() == [{"vendor": "playment", "archive_key": archive_key}]


def test_a_message_that_names_no_archived_body_is_dead_lettered(context: LambdaContext) -> None:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=RETRIES)["QueueUrl"]
    poison = [
        {"vendor": "playment", "archive_key": "raw/playment/2026/01/01/000000-gone.json"},
        {"vendor": "base", "archive_key": "raw/base/x.json"},
        {"not": "a retry message"},
    ]
    for body in poison:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))

    for _ in range(3):
        run_retries(context)
    run_retries(context, expect=False)

    assert queue_depth(RETRIES) == 0
    assert sorted(map(json.dumps, dead_letters())) == sorted(map(json.dumps, poison))


@pytest.mark.usefixtures("submitted")
def test_the_sample_event_applies_its_archived_callback(context: LambdaContext) -> None:
    # given the archived body that the sample message names
    event = load_event("callback_retry/sqs_batch.json")
    key = json.loads(event["Records"][0]["body"])["archive_key"]
    boto3.client("s3").put_object(
        Bucket="handoff-results", Key=key, Body=json.dumps({"annotations": [completed()]}).encode()
    )

    # when CallbackRetry is invoked with the sample
    answer = retry_app.lambda_handler(event, context)

    # then the record succeeded and the job is COMPLETED from the archive
    assert answer == {"batchItemFailures": []}
    assert job()["status"] == "COMPLETED"
    assert job()["history"][-1]["source"] == "playment-callback"


def test_a_result_url_for_another_playment_job_is_invalid_and_never_fetched(
    submitted: HTTPServer, context: LambdaContext
) -> None:
    # when a callback names the job with a Playment job id that is not its own, and a result URL
    status, body = playment_callback(context, {**completed(RESULT_URL), "job_id": "not-this-job"})

    # then it is invalid at once, as with an inline result: nothing fetched, nothing kept to retry
    assert (status, body["invalid"], body["deferred"]) == (200, 1, 0)
    assert not [r for r, _ in submitted.log if r.path == "/v1/attachments"]
    assert queue_depth(RETRIES) == 0
    assert job()["status"] == "SUBMITTED"
