"""SubmitJob through its API event and direct invoke, against moto and a real HTTP Playment fake."""

from __future__ import annotations

import copy
import json
import threading
import time
from typing import Any
from unittest.mock import ANY

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from functions.submit_job import app as submit_app
from tests.conftest import PLAYMENT_API_KEY, LambdaContext, load_event, queued_messages, table_items

pytestmark = pytest.mark.usefixtures("aws")

CREATE_PATH = "/v0/projects/proj-1/jobs"


def accept(job_id: str = "pl-job-1") -> dict[str, Any]:
    return {"data": {"job_id": job_id, "reference_id": "order-1042-img-7", "tag": "bounding-boxes"}, "success": True}


def api_submit(body: Any, context: LambdaContext, *, raw: str | None = None) -> tuple[int, dict[str, Any]]:
    event = load_event("submit_job/api_post_playment_image.json")
    event["body"] = raw if raw is not None else json.dumps(body)
    response = submit_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def sample_request() -> dict[str, Any]:
    return copy.deepcopy(load_event("submit_job/direct_invoke_playment.json"))


# --- happy paths ---------------------------------------------------------------------------------


def test_api_submit_accepted_by_playment_is_201_submitted(playment: HTTPServer, context: LambdaContext) -> None:
    # given Playment accepts the job
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(accept())

    # when another service POSTs the sample request
    status, body = api_submit(sample_request(), context)

    # then the answer is the SUBMITTED job with Playment's job id
    assert status == 201
    assert body["status"] == "SUBMITTED"
    assert body["vendor_job_id"] == "pl-job-1"
    assert body["attempts"] == 1
    assert [h["status"] for h in body["history"]] == ["QUEUED", "SUBMITTED"]
    # and Playment received exactly the documented request, with the API key
    ((request, _),) = playment.log
    assert request.headers["x-api-key"] == PLAYMENT_API_KEY
    assert request.get_json() == {
        "reference_id": "order-1042-img-7",
        "data": {"image_url": "https://images.example.com/orders/1042/7.jpg", "metadata": {"camera": "front"}},
        "tag": "bounding-boxes",
        "priority_weight": 5,
    }
    # and the table holds the job under its reference_id
    (item,) = table_items()
    assert item["reference_id"] == "order-1042-img-7"
    assert item["status"] == "SUBMITTED"
    assert item["vendor_job_id"] == "pl-job-1"
    assert item["vendor_refs"] == {"project_id": "proj-1"}


def test_direct_invoke_uses_the_same_path_and_returns_the_job(playment: HTTPServer, context: LambdaContext) -> None:
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(accept("pl-job-2"))

    job = submit_app.lambda_handler(sample_request(), context)

    assert job["status"] == "SUBMITTED"
    assert job["vendor_job_id"] == "pl-job-2"
    assert table_items()[0]["vendor_job_id"] == "pl-job-2"


def test_video_sample_is_passed_through_with_default_tag(playment: HTTPServer, context: LambdaContext) -> None:
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(accept())
    request = json.loads(load_event("submit_job/api_post_playment_video.json")["body"])
    del request["tag"]

    status, _ = api_submit(request, context)

    assert status == 201
    sent = playment.log[0][0].get_json()
    assert sent["tag"] == "default-tag"
    assert sent["data"] == request["data"]


def test_routing_field_and_paths_follow_configuration(
    playment: HTTPServer, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a deployment on Playment's v1 API (work_flow_id, another path and auth header)
    from handoff import settings, vendors

    monkeypatch.setenv("PLAYMENT_ROUTING_FIELD", "work_flow_id")
    monkeypatch.setenv("PLAYMENT_CREATE_JOB_PATH", "/v1/projects/{project_id}/jobs")
    monkeypatch.setenv("PLAYMENT_API_KEY_HEADER", "x-client-key")
    settings.clear_caches()
    vendors.reset()
    playment.expect_request("/v1/projects/proj-1/jobs", method="POST").respond_with_json(accept())

    status, _ = api_submit(sample_request(), context)

    assert status == 201
    request = playment.log[0][0]
    assert request.get_json()["work_flow_id"] == "bounding-boxes"
    assert "tag" not in request.get_json()
    assert request.headers["x-client-key"] == PLAYMENT_API_KEY


# --- idempotency, conflict, races ----------------------------------------------------------------


def test_same_request_again_is_200_with_the_existing_job(playment: HTTPServer, context: LambdaContext) -> None:
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(accept())
    first_status, first = api_submit(sample_request(), context)

    # when the caller retries the very same request (keys in another order)
    again = dict(reversed(list(sample_request().items())))
    status, body = api_submit(again, context)

    assert (first_status, status) == (201, 200)
    assert body == first
    assert len(playment.log) == 1


def test_other_request_under_a_used_reference_id_is_409(playment: HTTPServer, context: LambdaContext) -> None:
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(accept())
    api_submit(sample_request(), context)
    before = table_items()

    other = sample_request() | {"priority_weight": 9}
    status, body = api_submit(other, context)

    assert status == 409
    assert body["error"]["code"] == "conflict"
    assert body["error"]["details"][0]["field"] == "reference_id"
    assert table_items() == before
    assert len(playment.log) == 1


def test_two_concurrent_submits_make_one_vendor_job(playment: HTTPServer, context: LambdaContext) -> None:
    # given a vendor slow enough that both submits are in flight together
    def slow_accept(_: Request) -> Response:
        time.sleep(0.3)
        return Response(json.dumps(accept()), content_type="application/json")

    playment.expect_request(CREATE_PATH, method="POST").respond_with_handler(slow_accept)
    results: list[tuple[int, dict[str, Any]]] = []
    start = threading.Barrier(2)

    def submit() -> None:
        start.wait()
        results.append(api_submit(sample_request(), context))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # then exactly one vendor request and one job; one caller created it, the other got it back
    assert len(playment.log) == 1
    assert len(table_items()) == 1
    assert sorted(status for status, _ in results) == [200, 201]
    assert {body["reference_id"] for _, body in results} == {"order-1042-img-7"}


# --- vendor outcomes -----------------------------------------------------------------------------


def test_vendor_rejection_is_424_with_the_job_failed(playment: HTTPServer, context: LambdaContext) -> None:
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(
        {"error": {"code": "FS_0003", "message": "Invalid data passed"}, "success": False}, status=400
    )

    status, body = api_submit(sample_request(), context)

    assert status == 424
    assert body["error"]["code"] == "vendor_rejected"
    assert "Invalid data passed" in body["error"]["message"]
    assert body["error"]["details"] == [{"vendor_code": "FS_0003", "retryable": False}]
    assert body["job"]["status"] == "FAILED"
    (item,) = table_items()
    assert item["status"] == "FAILED"
    assert item["last_error"] == {
        "code": "FS_0003",
        "message": "Invalid data passed",
        "retryable": False,
        "details": [],
    }


def test_unauthorized_with_a_non_json_body_is_rejected_as_auth_failure(
    playment: HTTPServer, context: LambdaContext
) -> None:
    playment.expect_request(CREATE_PATH, method="POST").respond_with_data("Unauthorized", status=401)

    status, body = api_submit(sample_request(), context)

    assert status == 424
    assert body["job"]["last_error"]["code"] == "unauthorized_request"  # the SDK's name for a 401
    assert "api_key" in body["job"]["last_error"]["message"]  # says what to fix
    assert body["job"]["last_error"]["retryable"] is False
    assert table_items()[0]["status"] == "FAILED"


@pytest.mark.parametrize(
    ("respond", "code"),
    [
        (lambda s: s.respond_with_data("<html>Bad Gateway</html>", status=502), "http_502"),
        (
            lambda s: s.respond_with_json({"error": {"code": "api_error", "message": "try later"}}, status=500),
            "api_error",
        ),
        (lambda s: s.respond_with_data("slow down", status=429), "http_429"),
        (lambda s: s.respond_with_json({"success": True, "data": {}}), "ambiguous_response"),
    ],
    ids=["502-html", "500-api_error", "429", "2xx-without-job-id"],
)
def test_unsettled_submission_is_202_queued_with_last_error(
    playment: HTTPServer, context: LambdaContext, respond: Any, code: str
) -> None:
    respond(playment.expect_request(CREATE_PATH, method="POST"))

    status, body = api_submit(sample_request(), context)

    assert status == 202
    assert body["status"] == "QUEUED"
    assert body["attempts"] == 1
    assert body["last_error"]["code"] == code
    assert table_items()[0]["status"] == "QUEUED"
    # and the retry path holds it: one message on SubmissionQueue names the job
    assert queued_messages() == [{"reference_id": "order-1042-img-7"}]


def duplicate_answer() -> dict[str, Any]:
    return {"error": {"code": "FS_0001", "message": "duplicate reference_id"}, "success": False}


def test_fs_0001_is_reconciled_from_the_batch_listing_into_submitted(
    playment: HTTPServer, context: LambdaContext
) -> None:
    # given Playment already holds the reference_id (an earlier answer was lost), on page 2 of the default batch
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(duplicate_answer(), status=400)
    playment.expect_request("/v0/projects/proj-1/details").respond_with_json(
        {"success": True, "data": {"batches": [{"id": "b-other"}, {"id": "b-default", "is_default": True}]}}
    )
    listing = "/v0/projects/proj-1/batch/b-default"
    playment.expect_request(listing, query_string="page_token=2").respond_with_json(
        {"success": True, "data": {"jobs": [{"id": "pl-found", "reference_id": "order-1042-img-7"}]}}
    )
    playment.expect_request(listing).respond_with_json(
        {"success": True, "data": {"jobs": [{"id": "pl-x", "reference_id": "other"}], "next_page_token": "2"}}
    )

    # when the job is submitted
    status, body = api_submit(sample_request(), context)

    # then it is SUBMITTED with the vendor's existing job: no second job, not FAILED, nothing queued
    assert status == 201
    assert body["status"] == "SUBMITTED"
    assert body["vendor_job_id"] == "pl-found"
    assert body["vendor_refs"] == {"project_id": "proj-1", "batch_id": "b-default"}
    assert [r.path for r, _ in playment.log].count(CREATE_PATH) == 1
    assert queued_messages() == []


def test_fs_0001_with_the_job_not_listed_yet_stays_queued(playment: HTTPServer, context: LambdaContext) -> None:
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(duplicate_answer(), status=400)
    playment.expect_request("/v0/projects/proj-1/details").respond_with_json(
        {"success": True, "data": {"batches": [{"id": "b-default", "is_default": True}]}}
    )
    playment.expect_request("/v0/projects/proj-1/batch/b-default").respond_with_json(
        {"success": True, "data": {"jobs": [{"id": "pl-x", "reference_id": "other"}]}}
    )

    status, body = api_submit(sample_request(), context)

    assert status == 202
    assert body["status"] == "QUEUED"
    assert body["last_error"]["code"] == "already_submitted_not_found"
    assert queued_messages() == [{"reference_id": "order-1042-img-7"}]


def test_vendor_timeout_is_202_queued(
    playment: HTTPServer, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handoff import settings, vendors

    monkeypatch.setenv("VENDOR_READ_TIMEOUT_SECONDS", "0.2")
    settings.clear_caches()
    vendors.reset()

    released = threading.Event()

    def hang(_: Request) -> Response:  # answers only after the client has given up waiting
        released.wait(timeout=10)
        return Response(json.dumps(accept()), content_type="application/json")

    playment.expect_request(CREATE_PATH, method="POST").respond_with_handler(hang)

    status, body = api_submit(sample_request(), context)
    released.set()

    assert status == 202
    error = body["last_error"]
    assert (error["code"], error["retryable"]) == ("timeout", True)
    assert error["message"].startswith("POST http://")
    assert error["message"].endswith("/v0/projects/proj-1/jobs timed out: ReadTimeout")
    # the late answer is logged before this test ends, not in a later test's log
    deadline = time.monotonic() + 5
    while not playment.log and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(playment.log) == 1


def test_vendor_unreachable_is_202_queued(aws: None, context: LambdaContext) -> None:
    # PLAYMENT_BASE_URL points at the discard port on 127.0.0.1, where nothing listens
    status, body = api_submit(sample_request(), context)

    assert status == 202
    assert body["last_error"]["code"] == "connection_error"


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["{not json", '{"vendor": "playment",', "", "null"],
    ids=["garbage", "truncated", "empty", "null"],
)
def test_malformed_body_is_400_and_writes_nothing(playment: HTTPServer, context: LambdaContext, raw: str) -> None:
    status, body = api_submit(None, context, raw=raw)

    assert status == 400
    assert body["error"]["code"] in {"malformed_json", "missing_body"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert table_items() == []
    assert playment.log == []


def _without(key: str) -> dict[str, Any]:
    request = sample_request()
    del request[key]
    return request


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        (_without("data"), "data"),
        (_without("reference_id"), "reference_id"),
        (sample_request() | {"reference_id": "has spaces"}, "reference_id"),
        (sample_request() | {"priority_weight": 10}, "priority_weight"),
        (sample_request() | {"priority_weight": 0}, "priority_weight"),
        (sample_request() | {"data": {"image_url": "ftp://x.example.com/a.jpg"}}, "data.image_url"),
        (sample_request() | {"data": {"image_url": []}}, "data.image_url"),
        (sample_request() | {"data": {"metadata": {}}}, "data"),
        (
            sample_request() | {"data": {"image_url": "https://a.example.com/1.jpg", "video_data": {"frames": []}}},
            "data.video_data.frames",
        ),
        (
            sample_request()
            | {"data": {"video_data": {"frames": [{"frame_id": "f1", "src": "https://a.example.com/1.jpg"}] * 2}}},
            "data.video_data",
        ),
        (sample_request() | {"vendor": "acme"}, "vendor"),
        (sample_request() | {"unexpected": 1}, "unexpected"),
    ],
    ids=[
        "no-data",
        "no-reference-id",
        "bad-reference-id",
        "priority-10",
        "priority-0",
        "ftp-url",
        "empty-url-list",
        "no-shape",
        "two-shapes",
        "duplicate-frame-ids",
        "unknown-vendor",
        "unknown-field",
    ],
)
def test_invalid_request_is_422_with_field_errors_and_writes_nothing(
    playment: HTTPServer, context: LambdaContext, request_body: dict[str, Any], field: str
) -> None:
    status, body = api_submit(request_body, context)

    assert status == 422
    assert body["error"]["code"] == "invalid_request"
    fields = [d["field"] for d in body["error"]["details"]]
    assert any(f == field or (f or "").startswith(field) for f in fields), fields
    assert all(set(d) == {"field", "message", "type"} for d in body["error"]["details"])
    assert table_items() == []
    assert playment.log == []


@pytest.mark.parametrize(
    "vendor", [None, "acme", "", 5, "PLAYMENT"], ids=["missing", "unknown", "empty", "number", "other-case"]
)
def test_a_missing_or_unknown_vendor_is_answered_in_the_same_words(
    playment: HTTPServer, context: LambdaContext, vendor: Any
) -> None:
    # given a request whose vendor is missing or names no registered vendor
    request_body = _without("vendor") if vendor is None else sample_request() | {"vendor": vendor}

    # when it is submitted
    status, body = api_submit(request_body, context)

    # then one detail names the field and lists the vendors there are, whatever was sent
    assert status == 422
    from handoff.vendors import VENDOR_NAMES

    known = ", ".join(f"'{name}'" for name in sorted(VENDOR_NAMES))
    assert body["error"]["details"] == [{"field": "vendor", "message": f"must be one of: {known}", "type": ANY}]
    assert table_items() == []


def test_direct_invoke_with_invalid_payload_returns_the_error_body(
    playment: HTTPServer, context: LambdaContext
) -> None:
    result = submit_app.lambda_handler({"vendor": "playment"}, context)

    assert result["error"]["code"] == "invalid_request"
    assert table_items() == []


def test_oversized_request_is_413_and_writes_nothing(playment: HTTPServer, context: LambdaContext) -> None:
    request = sample_request() | {
        "data": {"image_url": "https://a.example.com/1.jpg", "metadata": {"blob": "x" * 300_000}}
    }

    status, body = api_submit(request, context)

    assert status == 413
    assert body["error"]["code"] == "request_too_large"
    assert table_items() == []


# --- cost ----------------------------------------------------------------------------------------


def test_successful_submit_costs_two_job_writes_one_rate_slot_and_no_read(
    playment: HTTPServer, context: LambdaContext
) -> None:
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(accept())
    calls: list[tuple[str, str]] = []

    def record(event_name: str, params: dict[str, Any], **_: Any) -> None:
        calls.append((event_name.rsplit(".", 1)[-1], params["TableName"]))

    submit_app.dynamodb.meta.events.register("before-parameter-build.dynamodb", record)
    try:
        status, _ = api_submit(sample_request(), context)
    finally:
        submit_app.dynamodb.meta.events.unregister("before-parameter-build.dynamodb", record)

    assert status == 201
    # the job: a conditional put and the SUBMITTED update; the pace: one slot taken in the rate table
    assert calls == [("PutItem", "handoff-jobs"), ("UpdateItem", "handoff-rate-limits"), ("UpdateItem", "handoff-jobs")]


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("\U0001f600" * 21_000, True),  # 84 KB as UTF-8, 252 KB as stored (escaped): fits
        ("\U0001f600" * 40_000, False),  # 160 KB as UTF-8, under the body limit; 480 KB as stored
    ],
)
def test_a_request_is_bounded_by_its_size_as_dynamodb_stores_it(
    playment: HTTPServer, context: LambdaContext, text: str, accepted: bool
) -> None:
    # given a request whose UTF-8 size is far under the limit, but whose stored size (the item's
    # JSON text, as DynamoDB counts it) may not be
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(accept())
    request = sample_request() | {"data": {"image_url": "https://a.example.com/1.jpg", "metadata": {"note": text}}}

    status, body = api_submit(request, context)

    # then it is either stored whole, or refused with 413 before anything is written: never a 500
    if accepted:
        assert status == 201
        assert table_items()[0]["request"]["data"]["metadata"]["note"] == text
    else:
        assert (status, body["error"]["code"]) == (413, "request_too_large")
        assert table_items() == []
