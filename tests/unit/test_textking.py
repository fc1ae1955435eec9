"""TEXTKING: submission through SubmitJob and callbacks through TextkingCallback, against the fake."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from functions.callback_retry import app as retry_app
from functions.submit_job import app as submit_app
from functions.textking_callback import app as callback_app
from handoff.submission import Submitter
from handoff.vendors import parse_submit_request
from handoff.vendors.textking import TRIGGER_STATES, make_token, verify_token
from local.sqs_poller import SqsPoller
from tests.conftest import (
    TEXTKING_PREVIOUS_SIGNING_KEY,
    TEXTKING_SIGNING_KEY,
    LambdaContext,
    archived,
    load_event,
    queue_depth,
    reset_function_caches,
    table_items,
)
from tests.fakes.textking import TextkingFake

pytestmark = pytest.mark.usefixtures("aws")

REF = "doc-2026-11-001"
CALLBACK_URL = "https://handoff.example.com/v1/callbacks/textking"


def request(**changes: Any) -> dict[str, Any]:
    return copy.deepcopy(load_event("submit_job/direct_invoke_textking.json")) | changes


def submit(context: LambdaContext, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    event = load_event("submit_job/api_post_textking.json")
    if body is not None:
        event["body"] = json.dumps(body)
    response = submit_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def only(verdict: str) -> dict[str, int]:
    """A callback's answer that counts one observation with `verdict` (every verdict is counted)."""
    return {v: int(v == verdict) for v in ("applied", "duplicate", "unknown", "invalid", "deferred")}


def job() -> dict[str, Any]:
    (item,) = [i for i in table_items() if i["reference_id"] == REF]
    return item


def shape(calls: list[str]) -> list[str]:
    """Calls with ids replaced by placeholders, to compare the order."""
    out = []
    for call in calls:
        parts = call.split("/")
        out.append("/".join("{id}" if len(p) == 36 and p.count("-") == 4 else p for p in parts))
    return out


# --- submission -------------------------------------------------------------------------------------


def test_submission_creates_project_job_document_callbacks_and_orders(
    textking: TextkingFake, context: LambdaContext
) -> None:
    status, body = submit(context, request(order=True))

    assert status == 201
    assert body["status"] == "SUBMITTED"
    assert shape(textking.calls) == [
        "POST /projects",
        "POST /project/{id}/jobs",
        "POST /project/{id}/job/{id}/document/report.txt",
        *["POST /project/{id}/job/{id}/callbacks"] * 5,
        "PUT /project/{id}",
    ]
    fake_job = textking.only_job()
    assert body["vendor_job_id"] == fake_job.id
    assert body["vendor_refs"] == {"project_id": fake_job.project_id, "job_id": fake_job.id, "ordered": "true"}
    assert fake_job.body == {
        "name": "Quarterly report",
        "source_language": "en",
        "target_language": "de",
        "quality": "translation",
        "briefing": "Formal register; keep product names in English.",
    }
    # the upload's Content-Type is the bare media type, as TEXTKING's example and PHP client send it
    assert fake_job.document == ("report.txt", b"Hello world. This is the quarterly report.", "text/plain")
    assert [c["trigger_state"] for c in fake_job.callbacks] == list(TRIGGER_STATES)
    assert {c["url"] for c in fake_job.callbacks} == {CALLBACK_URL}
    for callback in fake_job.callbacks:
        assert verify_token(callback["extra_data"], [TEXTKING_SIGNING_KEY]) == (REF, callback["trigger_state"])
    assert textking.projects[fake_job.project_id]["state"] == "running"


def test_without_ordering_the_project_is_not_started(textking: TextkingFake, context: LambdaContext) -> None:
    status, body = submit(context)  # TEXTKING_ORDERING_ENABLED is unset: false

    assert status == 201
    assert not any(call.startswith("PUT ") for call in textking.calls)
    assert body["vendor_refs"]["ordered"] == "false"
    assert textking.projects[body["vendor_refs"]["project_id"]]["state"] == "prepared"


def test_a_failure_midway_resumes_without_a_second_project(textking: TextkingFake, context: LambdaContext) -> None:
    # given TEXTKING fails while the third callback is being registered
    original = textking._add_callback
    attempts = {"n": 0}

    def flaky(req: Any, project_id: str, job_id: str) -> Any:
        attempts["n"] += 1
        if attempts["n"] == 3:
            from werkzeug import Response

            return Response("unavailable", status=503)
        return original(req, project_id, job_id)

    textking._add_callback = flaky  # type: ignore[method-assign]

    status, body = submit(context, request(order=True))
    assert status == 202
    assert body["status"] == "QUEUED"
    # checkpointed as they were created (and each creation before it was sent)
    assert set(body["vendor_refs"]) == {"project_name", "project_id", "job_requested", "job_id"}

    # when the worker takes up the queued job
    result = submit_app.submitter().resume(REF, final=False, max_wait=1.0)

    # then it continues: one project, one job, five callbacks, one order
    assert result.job.status.value == "SUBMITTED"
    assert len(textking.projects) == 1
    assert len(textking.jobs) == 1
    assert [c["trigger_state"] for c in textking.only_job().callbacks] == list(TRIGGER_STATES)  # none twice
    assert sum(call.startswith("POST /projects") for call in textking.calls) == 1
    assert job()["attempts"] == 2


def test_a_last_attempt_that_fails_before_the_order_gives_the_job_up_and_a_resubmit_continues_it(
    textking: TextkingFake, context: LambdaContext
) -> None:
    # given TEXTKING created the project and job, then failed every later request of the attempt
    original = textking._add_callback

    def down(req: Any, project_id: str, job_id: str) -> Any:
        from werkzeug import Response

        return Response("unavailable", status=503)

    textking._add_callback = down  # type: ignore[method-assign]
    status, _ = submit(context, request(order=True))
    assert status == 202

    # when that was the last attempt (before giving up, TEXTKING is asked whether it holds the order)
    result = submit_app.submitter().resume(REF, final=True, max_wait=1.0)

    # then the job is FAILED retries_exhausted: its project was never started, so no order exists
    assert result.job.status.value == "FAILED"
    assert job()["last_error"]["code"] == "retries_exhausted"
    assert textking.only_job().callbacks == []
    assert all(p["state"] == "prepared" for p in textking.projects.values())

    # and an operator's resubmit continues the same project and job once TEXTKING is back
    textking._add_callback = original  # type: ignore[method-assign]
    submit_app.submitter().resubmit(REF)
    resumed = submit_app.submitter().resume(REF, final=False, max_wait=1.0)
    assert resumed.job.status.value == "SUBMITTED"
    assert len(textking.projects) == 1
    assert len(textking.jobs) == 1
    assert [p["state"] for p in textking.projects.values()] == ["running"]


def test_a_project_that_is_no_longer_prepared_is_rejected(textking: TextkingFake, context: LambdaContext) -> None:
    # given a caller-supplied project that TEXTKING has already started
    project = {"id": "0d9b3a44-1a2b-4c3d-8e9f-001122334455", "name": "old", "state": "running"}
    textking.projects[project["id"]] = project

    status, body = submit(context, request(project_id=project["id"]))

    assert status == 424
    assert body["error"]["details"][0]["vendor_code"] == "project_not_prepared"
    assert body["job"]["status"] == "FAILED"
    assert textking.jobs == {}


def test_a_document_given_by_s3_uri_is_read_by_the_function(textking: TextkingFake, context: LambdaContext) -> None:
    boto3.client("s3").put_object(Bucket="handoff-documents", Key="inbox/manual.docx", Body=b"PK\x03\x04 docx bytes")
    document = {
        "filename": "manual.docx",
        "content_type": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "s3_uri": "s3://handoff-documents/inbox/manual.docx",
    }

    status, _ = submit(context, request(document=document))

    assert status == 201
    assert textking.only_job().document == ("manual.docx", b"PK\x03\x04 docx bytes", document["content_type"])


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"quality": "premium-gold"}, "quality", "TextkingQualities"),
        (
            {"document": {"filename": "a.txt", "s3_uri": "s3://handoff-results/inbox/a.txt"}},
            "document.s3_uri",
            "DocumentSourceBucket",
        ),
        (
            {"document": {"filename": "a.txt", "s3_uri": "s3://handoff-documents/inbox/missing.txt"}},
            "document.s3_uri",
            "does not exist",
        ),
    ],
)
def test_what_textking_would_refuse_is_422_before_any_vendor_call(
    change: dict[str, Any], field: str, says: str, textking: TextkingFake, context: LambdaContext
) -> None:
    # given a request TEXTKING (or reading its document) would refuse after creating things
    # when it is submitted
    status, body = submit(context, request(**change))

    # then it is refused at once, nothing is created at TEXTKING and no job is written
    assert status == 422
    assert body["error"]["code"] == "invalid_request"
    assert [d["field"] for d in body["error"]["details"]] == [field]
    assert says in body["error"]["details"][0]["message"]
    assert textking.projects == {}
    assert textking.jobs == {}
    assert table_items() == []


def test_a_document_that_vanished_before_the_attempt_fails_it_without_creating_a_project(
    textking: TextkingFake, context: LambdaContext
) -> None:
    # given a queued job whose document is deleted before the worker reads it
    s3 = boto3.client("s3")
    s3.put_object(Bucket="handoff-documents", Key="inbox/gone.txt", Body=b"hello")
    document = {"filename": "gone.txt", "s3_uri": "s3://handoff-documents/inbox/gone.txt"}
    submitter = Submitter.for_stack(boto3.client("dynamodb"), boto3.client("sqs"))
    parsed = parse_submit_request(request(document=document))
    s3.delete_object(Bucket="handoff-documents", Key="inbox/gone.txt")

    # when the job is attempted (the check before the write saw the document; the read does not)
    submitter._check = lambda request: None  # type: ignore[method-assign]
    result = submitter.submit(parsed)

    # then it is FAILED at once (not retried for minutes), and TEXTKING holds nothing
    assert result.job.status.value == "FAILED"
    assert result.job.last_error is not None
    assert result.job.last_error.code == "document_unavailable"
    assert textking.projects == {}


def test_an_empty_document_is_422_at_the_edge_and_failed_before_any_project_when_emptied_later(
    textking: TextkingFake, context: LambdaContext
) -> None:
    # given an empty object in the document bucket
    s3 = boto3.client("s3")
    s3.put_object(Bucket="handoff-documents", Key="inbox/empty.txt", Body=b"")
    document = {"filename": "empty.txt", "s3_uri": "s3://handoff-documents/inbox/empty.txt"}

    # when it is submitted: 422 naming the document, nothing written, TEXTKING never asked
    status, body = submit(context, request(document=document))
    assert (status, body["error"]["code"]) == (422, "invalid_request")
    assert [d["field"] for d in body["error"]["details"]] == ["document.s3_uri"]
    assert table_items() == []
    assert textking.calls == []

    # and when a document is emptied between the check and the attempt, the job FAILS before any project
    s3.put_object(Bucket="handoff-documents", Key="inbox/later.txt", Body=b"hello")
    later = {"filename": "later.txt", "s3_uri": "s3://handoff-documents/inbox/later.txt"}
    submitter = Submitter.for_stack(boto3.client("dynamodb"), boto3.client("sqs"))
    parsed = parse_submit_request(request(document=later))
    s3.put_object(Bucket="handoff-documents", Key="inbox/later.txt", Body=b"")
    submitter._check = lambda request: None  # type: ignore[method-assign]
    result = submitter.submit(parsed)
    assert result.job.status.value == "FAILED"
    assert result.job.last_error is not None
    assert result.job.last_error.code == "document_unavailable"
    assert textking.projects == {}


def test_wrong_bearer_token_is_an_auth_rejection(textking: TextkingFake, context: LambdaContext) -> None:
    textking.token = "rotated-elsewhere"

    status, body = submit(context)

    assert status == 424
    assert body["job"]["last_error"]["code"] == "http_401"


# --- callbacks ---------------------------------------------------------------------------------------------


@pytest.fixture
def running(textking: TextkingFake, context: LambdaContext) -> TextkingFake:
    """Given: the sample TEXTKING job submitted and ordered (TEXTKING state translation-pending)."""
    status, _ = submit(context, request(order=True))
    assert status == 201
    return textking


def callback(
    context: LambdaContext,
    fake: TextkingFake,
    trigger: str,
    *,
    key: str = TEXTKING_SIGNING_KEY,
    job_id: str | None = None,
    base64_body: bool = True,
    separator: str = "&",
    around: str = "",
) -> tuple[int, dict[str, Any]]:
    fake_job = fake.only_job()
    fields = {"project_id": fake_job.project_id, "job_id": job_id or fake_job.id}
    fields["extra_data"] = make_token(key, REF, trigger)
    form = around + separator.join(urlencode({k: v}) for k, v in fields.items()) + around
    event = load_event("textking_callback/api_form_base64.json")
    event["body"] = base64.b64encode(form.encode()).decode() if base64_body else form
    event["isBase64Encoded"] = base64_body
    response = callback_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def test_the_job_real_state_is_applied_not_the_trigger(running: TextkingFake, context: LambdaContext) -> None:
    # the callback claims "completed", but TEXTKING says the translation is still pending
    status, body = callback(context, running, "completed")

    assert (status, body) == (200, only("applied"))
    assert job()["status"] == "IN_PROGRESS"
    assert shape(running.calls[-1:]) == ["GET /project/{id}/job/{id}"]


@pytest.mark.parametrize("base64_body", [True, False], ids=["base64", "plain"])
def test_delivery_fetches_the_translation_into_s3(
    running: TextkingFake, context: LambdaContext, base64_body: bool
) -> None:
    running.set_state(running.only_job().id, "translation-delivered")

    status, body = callback(context, running, "translation-delivered", base64_body=base64_body)

    assert (status, body) == (200, only("applied"))
    stored = job()
    assert stored["status"] == "DELIVERED"
    key = stored["result_ref"].removeprefix("s3://handoff-results/")
    assert key == f"deliveries/textking/{REF}/report_de.txt"
    assert archived(key)[key] == b"Hallo Welt"
    assert len(archived("raw/textking/")) == 1


def test_revision_completion_cancel_and_duplicates_follow_the_status_machine(
    running: TextkingFake, context: LambdaContext
) -> None:
    fake_id = running.only_job().id
    steps = [
        ("translation-pending", "translation-pending", 200, "applied", "IN_PROGRESS"),
        ("translation-pending", "translation-pending", 200, "duplicate", "IN_PROGRESS"),
        ("translation-delivered", "translation-delivered", 200, "applied", "DELIVERED"),
        ("revision-requested", "revision-requested", 200, "applied", "IN_PROGRESS"),
        ("translation-pending", "revision-requested", 200, "duplicate", "IN_PROGRESS"),  # late hint
        ("translation-delivered", "translation-delivered", 200, "applied", "DELIVERED"),
        ("completed", "completed", 200, "applied", "COMPLETED"),
        ("canceled", "completed", 200, "duplicate", "COMPLETED"),  # terminal: nothing more
    ]
    for real_state, trigger, status, verdict, ours in steps:
        running.set_state(fake_id, real_state)
        answer_status, answer = callback(context, running, trigger)
        assert (answer_status, answer, job()["status"]) == (status, only(verdict), ours), (real_state, trigger)
    statuses = [h["status"] for h in job()["history"]]
    assert statuses == ["QUEUED", "SUBMITTED", "IN_PROGRESS", "DELIVERED", "IN_PROGRESS", "DELIVERED", "COMPLETED"]


@pytest.mark.parametrize(
    ("separator", "around"), [("&", "&"), ("&&", ""), ("&", "&&&")], ids=["leading-trailing", "doubled", "many"]
)
def test_empty_sequences_in_the_form_are_skipped_as_the_standard_says(
    running: TextkingFake, context: LambdaContext, separator: str, around: str
) -> None:
    # given the job delivered at TEXTKING, and a callback form with empty sequences ("&&", a trailing "&")
    running.set_state(running.only_job().id, "translation-delivered")

    # when TEXTKING posts it
    status, body = callback(context, running, "translation-delivered", separator=separator, around=around)

    # then it is a valid form: applied, not dropped as malformed
    assert (status, body) == (200, only("applied"))
    assert job()["status"] == "DELIVERED"


def test_canceled_maps_to_canceled(running: TextkingFake, context: LambdaContext) -> None:
    running.set_state(running.only_job().id, "canceled")
    assert callback(context, running, "canceled") == (200, only("applied"))
    assert job()["status"] == "CANCELED"


def test_the_previous_signing_key_is_accepted(running: TextkingFake, context: LambdaContext) -> None:
    assert callback(context, running, "translation-pending", key=TEXTKING_PREVIOUS_SIGNING_KEY)[0] == 200


@pytest.mark.parametrize(
    ("key", "job_id"),
    [("an-older-retired-key", None), (TEXTKING_SIGNING_KEY, "11111111-2222-3333-4444-555555555555")],
    ids=["unknown-key", "token-replayed-for-another-job"],
)
def test_bad_tokens_are_401_and_write_nothing(
    running: TextkingFake, context: LambdaContext, key: str, job_id: str | None
) -> None:
    before = job()

    status, body = callback(context, running, "translation-pending", key=key, job_id=job_id)

    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert job() == before
    assert archived() == {}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("project_id=a&job_id=b", "application/x-www-form-urlencoded", 400, "malformed_form"),
        ("extra_data=x&extra_data=y&project_id=a&job_id=b", "application/x-www-form-urlencoded", 400, "malformed_form"),
        ("project_id=a&job_id=b&extra_data=x&foo=1&foo=2", "application/x-www-form-urlencoded", 400, "malformed_form"),
        ("project_id=a&job_id=b&extra_data=not-a-token", "application/x-www-form-urlencoded", 401, "unauthorized"),
        ('{"project_id": "a"}', "application/json", 415, "unsupported_media_type"),
        ("a=" + "x" * 20_000, "application/x-www-form-urlencoded", 413, "payload_too_large"),
        ("", "application/x-www-form-urlencoded", 400, "missing_body"),
    ],
    ids=["missing-extra-data", "repeated-field", "repeated-other-field", "unsigned", "json", "oversized", "empty"],
)
def test_bad_forms_are_4xx_and_write_nothing(
    running: TextkingFake, context: LambdaContext, body: str, content_type: str, status: int, code: str
) -> None:
    before = job()
    event = load_event("textking_callback/api_form_plain.json")
    event.update(
        body=body,
        isBase64Encoded=False,
        headers={"Content-Type": content_type},
        multiValueHeaders={"Content-Type": [content_type]},
    )

    response = callback_app.lambda_handler(event, context)

    assert (response["statusCode"], json.loads(response["body"])["error"]["code"]) == (status, code)
    assert job() == before
    assert archived() == {}


def test_vendor_down_is_200_deferred_and_applied_later_from_the_archive(
    running: TextkingFake, context: LambdaContext
) -> None:
    # given the translation is delivered, but TEXTKING answers the job lookup with 502 once
    running.set_state(running.only_job().id, "translation-delivered")
    running.fail_next[r"GET /project/[^/]+/job/[^/]+"] = 502

    # when the callback arrives
    status, body = callback(context, running, "translation-delivered")

    # then 200 (TEXTKING documents no redelivery): the body archived and kept for another try
    assert (status, body) == (200, only("deferred"))
    assert len(archived("raw/textking/")) == 1
    assert job()["status"] == "SUBMITTED"
    assert queue_depth("handoff-callback-retries") == 1

    # when CallbackRetry applies the archived body, TEXTKING answering again
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="handoff-callback-retries")["QueueUrl"]
    assert SqsPoller(sqs, url, retry_app.lambda_handler, wait_seconds=0).poll_once() == 1

    # then the job is DELIVERED with the translation in S3, and the message is gone
    assert job()["status"] == "DELIVERED"
    assert job()["result_ref"] == f"s3://handoff-results/deliveries/textking/{REF}/report_de.txt"
    assert queue_depth("handoff-callback-retries") == 0


# api_form_custom_domain.json: the same callback through a custom domain's base-path mapping
# (path /handoff/callbacks/textking, resource /callbacks/textking), as PublicCallbackBaseUrl sets up.
@pytest.mark.parametrize("sample", ["api_form_base64.json", "api_form_custom_domain.json"])
def test_the_sample_event_is_a_valid_callback_for_its_job(
    sample: str, textking: TextkingFake, context: LambdaContext
) -> None:
    # given the job that the sample's ids and token describe
    textking.projects["bc141454-5949-401b-9c05-7591ee2f5624"] = {
        "id": "bc141454-5949-401b-9c05-7591ee2f5624",
        "state": "prepared",
        "name": "p",
    }
    status, _ = submit(context, request(project_id="bc141454-5949-401b-9c05-7591ee2f5624"))
    assert status == 201
    fake_job = textking.only_job()
    textking.jobs = {"be2bdb76-afe4-4291-bb33-5f3e4019a05e": fake_job}
    fake_job.id = "be2bdb76-afe4-4291-bb33-5f3e4019a05e"
    fake_job.state = "translation-delivered"
    submit_app.submitter().store.client.update_item(
        TableName="handoff-jobs",
        Key={"reference_id": {"S": REF}},
        UpdateExpression="SET vendor_job_id = :j, vendor_refs.job_id = :j",
        ExpressionAttributeValues={":j": {"S": fake_job.id}},
    )

    response = callback_app.lambda_handler(load_event(f"textking_callback/{sample}"), context)

    assert response["statusCode"] == 200
    assert job()["status"] == "DELIVERED"


# --- acceptance is verified, never assumed ---------------------------------------------------------


def test_a_request_that_cannot_be_built_fails_at_once_instead_of_being_retried(
    textking: TextkingFake, context: LambdaContext
) -> None:
    # given an access token pasted with a trailing line break (requests refuses the header)
    boto3.client("secretsmanager").put_secret_value(
        SecretId="handoff/textking",
        SecretString=json.dumps({"access_token": "tk-access-token-0123\n", "signing_key": TEXTKING_SIGNING_KEY}),
    )
    reset_function_caches()

    status, body = submit(context, request())

    # then the job is FAILED after one attempt: no retry could ever build that request
    assert status == 424
    assert body["job"]["status"] == "FAILED"
    assert body["error"]["details"][0]["vendor_code"] == "request_not_built"
    assert job()["attempts"] == 1
    assert queue_depth("handoff-submissions") == 0
    assert textking.calls == []  # nothing reached TEXTKING


@pytest.mark.parametrize("missing", ["document", "callbacks"])
def test_the_last_look_accepts_only_a_complete_job(
    textking: TextkingFake, context: LambdaContext, missing: str
) -> None:
    # given an unordered submission whose attempt created the project and job, then failed before
    # the document was uploaded, or before the callbacks were registered
    target = "_upload" if missing == "document" else "_add_callback"

    def down(*args: Any) -> Any:
        from werkzeug import Response

        return Response("unavailable", status=503)

    setattr(textking, target, down)
    status, _ = submit(context, request(order=False))
    assert status == 202
    assert len(textking.jobs) == 1  # TEXTKING holds a job...

    # when the last attempt fails the same way, and the last look asks TEXTKING what it holds
    result = submit_app.submitter().resume(REF, final=True, max_wait=1.0)

    # then the incomplete job is not taken for an accepted one: FAILED, loudly, never SUBMITTED
    assert result.job.status.value == "FAILED"
    assert job()["last_error"]["code"] == "retries_exhausted"
    assert job()["vendor_job_id"] is None


@pytest.mark.parametrize(
    "project_id", ["../projects", "a/b", "p 1", "bc141454-5949-401b-9c05-7591ee2f5624\n", "x" * 36]
)
def test_a_project_id_that_is_no_textking_id_is_refused_before_any_vendor_call(
    textking: TextkingFake, context: LambdaContext, project_id: str
) -> None:
    # a project id becomes a URL path segment at TEXTKING, which takes UUIDs only
    status, body = submit(context, request(project_id=project_id))

    assert (status, body["error"]["code"]) == (422, "invalid_request")
    assert body["error"]["details"][0]["field"] == "project_id"
    assert textking.calls == []
    assert table_items() == []


# --- a resumed submission reads TEXTKING first (issue 21) ------------------------------------------

LOST_ANSWERS = {
    "project": r"POST /projects",
    "job": r"POST /project/[^/]+/jobs",
    "upload": r"POST /project/[^/]+/job/[^/]+/document/.+",
    **{f"callback-{state}": rf"POST /project/[^/]+/job/[^/]+/callbacks#{state}" for state in TRIGGER_STATES},
    "start": r"PUT /project/[^/]+",
}


def lose_answer(fake: TextkingFake, call: str) -> None:
    """TEXTKING does `call` once, and its answer is lost (504). A callback registration is told
    apart by its trigger_state (`...#<state>`)."""
    pattern, _, state = call.partition("#")
    if not state:
        fake.lose_answer[pattern] = 1
        return
    original = fake._add_callback

    def lossy(req: Any, project_id: str, job_id: str) -> Any:
        answer = original(req, project_id, job_id)
        if req.get_json().get("trigger_state") == state and not lost:
            lost.append(state)
            from werkzeug import Response

            return Response("the answer was lost on its way", status=504)
        return answer

    lost: list[str] = []
    fake._add_callback = lossy  # type: ignore[method-assign]


@pytest.mark.parametrize("call", list(LOST_ANSWERS.values()), ids=list(LOST_ANSWERS))
def test_a_lost_answer_at_any_call_resumes_to_exactly_one_order_and_no_orphan(
    call: str, textking: TextkingFake, context: LambdaContext
) -> None:
    # given TEXTKING does one call of the submission but its answer never arrives
    lose_answer(textking, call)
    status, body = submit(context, request(order=True))
    assert (status, body["status"]) == (202, "QUEUED")

    # when the worker resumes the job
    result = submit_app.submitter().resume(REF, final=False, max_wait=1.0)

    # then it is SUBMITTED: one project, one job with its document and one callback per trigger
    # state, one order (one PUT state=running), and nothing created twice or left behind
    assert result.job.status.value == "SUBMITTED"
    assert [p["state"] for p in textking.projects.values()] == ["running"]
    fake_job = textking.only_job()
    assert fake_job.document is not None
    assert sorted(c["trigger_state"] for c in fake_job.callbacks) == sorted(TRIGGER_STATES)
    assert sum(c.startswith("PUT /project/") for c in textking.calls) == 1
    assert textking.deleted == []
    assert job()["vendor_job_id"] == fake_job.id


def test_a_resume_after_a_lost_start_only_reads_and_never_touches_the_placed_order(
    textking: TextkingFake, context: LambdaContext
) -> None:
    # given the order was placed (PUT state=running reached TEXTKING) but its answer was lost
    textking.lose_answer[r"PUT /project/[^/]+"] = 1
    assert submit(context, request(order=True))[0] == 202
    placed_at = len(textking.calls)

    # when the job is resumed
    result = submit_app.submitter().resume(REF, final=False, max_wait=1.0)

    # then it is SUBMITTED, ordered, and the resume only read: no upload to the running project,
    # no callback registered again, no second PUT
    assert result.job.status.value == "SUBMITTED"
    assert job()["vendor_refs"]["ordered"] == "true"
    assert all(call.startswith("GET ") for call in textking.calls[placed_at:]), textking.calls[placed_at:]


def test_a_last_attempt_after_a_lost_start_is_submitted_never_failed(
    textking: TextkingFake, context: LambdaContext
) -> None:
    # given the start's answer is lost, and the last attempt fails too (TEXTKING down for it)
    textking.lose_answer[r"PUT /project/[^/]+"] = 1
    assert submit(context, request(order=True))[0] == 202
    textking.fail_next[r"GET /project/[^/]+"] = 503

    # when that last attempt gives up, TEXTKING is asked what it holds
    result = submit_app.submitter().resume(REF, final=True, max_wait=1.0)

    # then the placed order is recognised: SUBMITTED, not FAILED
    assert result.job.status.value == "SUBMITTED"
    assert job()["vendor_refs"]["ordered"] == "true"


# --- refused at the edge (issue 21) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"document": {"filename": "scan.pdf", "text": "x"}}, "document.filename", "pattern"),
        ({"document": {"filename": "notes", "text": "x"}}, "document.filename", "pattern"),
        (
            {"document": {"filename": "a.txt", "content_type": "application/pdf", "text": "x"}},
            "document",
            "not a type of .txt",
        ),
        ({"topic": "General"}, "topic", "pattern"),
        ({"source_language": "pt-BR"}, "source_language", "pattern"),
        ({"target_language": "xx"}, "target_language", "ISO 639-1"),
        ({"target_language": "deu"}, "target_language", "pattern"),
        # an HTTP header value at TEXTKING (the upload's Content-Type): a line break could never be sent
        (
            {"document": {"filename": "a.txt", "content_type": "text/plain\n", "text": "x"}},
            "document.content_type",
            "pattern",
        ),
        # the translation's name in TEXTKING's unquoted Content-Disposition: '"' or ';' would end it
        ({"document": {"filename": 'rep"ort.txt', "text": "x"}}, "document.filename", "pattern"),
        ({"document": {"filename": "a;b.txt", "text": "x"}}, "document.filename", "pattern"),
        ({"name": " \t "}, "name", "pattern"),
        ({"document": {"filename": " .txt", "text": "x"}}, "document.filename", "a name before"),
        ({"document": {"filename": "r.docx", "text": "x"}}, "document", "not a text format"),
        ({"document": {"filename": "r\u00e9sum\u00e9.txt", "text": "x"}}, "document.filename", "pattern"),
        ({"target_language": "en"}, "target_language", "must differ"),
    ],
    ids=[
        "pdf",
        "no-extension",
        "type-mismatch",
        "topic-not-an-id",
        "region-subtag",
        "not-a-code",
        "three-letters",
        "header-with-a-line-break",
        "quote-in-filename",
        "semicolon-in-filename",
        "blank-name",
        "no-name-before-the-extension",
        "binary-format-as-text",
        "non-ascii-filename",
        "same-languages",
    ],
)
def test_what_textking_takes_not_is_422_before_any_vendor_call(
    change: dict[str, Any], field: str, says: str, textking: TextkingFake, context: LambdaContext
) -> None:
    status, body = submit(context, request(**change))

    assert (status, body["error"]["code"]) == (422, "invalid_request")
    assert [d["field"] for d in body["error"]["details"]] == [field]
    assert says in body["error"]["details"][0]["message"]
    assert textking.calls == []
    assert table_items() == []


@pytest.mark.parametrize(
    ("filename", "content_type", "sent"),
    [
        ("manual.docx", None, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("page.HTM", None, "text/html"),
        ("data.xml", "text/xml; charset=utf-8", "text/xml"),
    ],
)
def test_the_upload_content_type_is_the_formats_bare_media_type(
    filename: str, content_type: str | None, sent: str, textking: TextkingFake, context: LambdaContext
) -> None:
    # a binary format goes by s3_uri (inline text is for text formats only)
    if filename.endswith(".docx"):
        boto3.client("s3").put_object(Bucket="handoff-documents", Key=f"inbox/{filename}", Body=b"Hello")
        source = {"s3_uri": f"s3://handoff-documents/inbox/{filename}"}
    else:
        source = {"text": "Hello"}
    document = {"filename": filename, **source} | ({"content_type": content_type} if content_type else {})

    status, _ = submit(context, request(document=document))

    assert status == 201
    assert textking.only_job().document == (filename, b"Hello", sent)


@pytest.mark.parametrize(
    ("change", "environment"),
    [
        ({"topic": "11111111-2222-4333-8444-555555555555"}, {}),  # a UUID, but no TEXTKING topic
        ({"quality": "basic"}, {"TEXTKING_QUALITIES": "basic,translation"}),  # the stack takes it, TEXTKING not
        ({"target_language": "eo"}, {}),  # an ISO 639-1 code TEXTKING does not offer
    ],
    ids=["topic", "quality", "language"],
)
def test_a_misconfiguration_textking_refuses_fails_loudly_at_submit(
    change: dict[str, Any],
    environment: dict[str, str],
    textking: TextkingFake,
    context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    reset_function_caches()

    status, body = submit(context, request(**change))

    # then the caller hears at once (424, the job FAILED with TEXTKING's 400), never a retry loop
    assert status == 424
    assert body["job"]["status"] == "FAILED"
    assert body["error"]["details"][0]["vendor_code"] == "http_400"
    assert queue_depth("handoff-submissions") == 0
    # and no orphan: the project created for it is deleted, and the job says so
    assert textking.projects == {}
    assert [d.split()[0] for d in textking.deleted] == ["project"]
    assert "was deleted" in job()["last_error"]["message"]


def test_a_refused_job_in_a_callers_project_deletes_only_its_job(
    textking: TextkingFake, context: LambdaContext
) -> None:
    # given the caller's prepared project, and TEXTKING refusing the upload (406) after the job exists
    project = {"id": "0d9b3a44-1a2b-4c3d-8e9f-001122334455", "name": "theirs", "state": "prepared"}
    textking.projects[project["id"]] = project
    textking.fail_next[r"POST /project/[^/]+/job/[^/]+/document/.+"] = 406

    status, _ = submit(context, request(project_id=project["id"]))

    # then the job is FAILED, its TEXTKING job deleted, the caller's project left as it was
    assert status == 424
    assert textking.jobs == {}
    assert list(textking.projects) == [project["id"]]
    assert [d.split()[0] for d in textking.deleted] == ["job"]


# --- 403 is a state conflict only where TEXTKING documents it (issue 21) -----------------------------


def test_a_403_to_a_create_of_a_project_is_an_auth_failure_not_a_state_conflict(
    textking: TextkingFake, context: LambdaContext
) -> None:
    # given a token TEXTKING refuses to create projects with (a permission it lacks)
    textking.fail_next[r"POST /projects"] = 403

    status, body = submit(context, request())

    assert status == 424
    assert body["error"]["details"][0]["vendor_code"] == "forbidden"
    assert body["job"]["last_error"]["code"] == "forbidden"


def test_a_403_to_a_change_under_a_prepared_project_is_an_auth_failure(
    textking: TextkingFake, context: LambdaContext
) -> None:
    project = {"id": "0d9b3a44-1a2b-4c3d-8e9f-001122334455", "name": "theirs", "state": "prepared"}
    textking.projects[project["id"]] = project
    textking.fail_next[r"POST /project/[^/]+/jobs"] = 403

    status, body = submit(context, request(project_id=project["id"]))

    assert status == 424
    assert body["error"]["details"][0]["vendor_code"] == "forbidden"


def test_a_form_with_many_empty_sequences_is_read_as_the_standard_reads_it(
    running: TextkingFake, context: LambdaContext
) -> None:
    # given the job delivered at TEXTKING, and its callback form with 40 empty sequences around it
    running.set_state(running.only_job().id, "translation-delivered")

    status, body = callback(context, running, "translation-delivered", separator="&&", around="&" * 20)

    # then it is read as the form it is, never refused for a field count it does not have
    assert (status, body) == (200, only("applied"))
