"""PlaymentCallback: authenticated, archived, each annotation applied once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from functions.playment_callback import app as callback_app
from functions.submit_job import app as submit_app
from tests.conftest import PLAYMENT_PREVIOUS_CALLBACK_KEY, ROOT, LambdaContext, archived, load_event, table_items

pytestmark = pytest.mark.usefixtures("aws")

REF = "order-1042-img-7"
JOB_ID = "3f3e8675-ca69-46d7-aa34-96f90fcbb732"


@pytest.fixture
def submitted(aws: None, playment: HTTPServer, context: LambdaContext) -> dict[str, Any]:
    """Given: the sample job, accepted by Playment."""
    playment.expect_request("/v0/projects/proj-1/jobs", method="POST").respond_with_json(
        {"data": {"job_id": JOB_ID}, "success": True}
    )
    job = submit_app.lambda_handler(load_event("submit_job/direct_invoke_playment.json"), context)
    assert job["status"] == "SUBMITTED"
    return job  # type: ignore[no-any-return]


def send(
    context: LambdaContext, annotations: Any = None, *, event: str = "api_completed.json", **overrides: Any
) -> tuple[int, dict[str, Any]]:
    request = load_event(f"playment_callback/{event}")
    if annotations is not None:
        request["body"] = json.dumps({"annotations": annotations})
    for key, value in overrides.items():
        request[key] = value
    response = callback_app.lambda_handler(request, context)
    return response["statusCode"], json.loads(response["body"])


def annotation(status: str, reference_id: str = REF, **extra: Any) -> dict[str, Any]:
    return {"reference_id": reference_id, "job_id": JOB_ID, "status": status, "tag": "bounding-boxes", **extra}


def job() -> dict[str, Any]:
    (item,) = [i for i in table_items() if i["reference_id"] == REF]
    return item


def with_headers(headers: dict[str, str]) -> dict[str, Any]:
    return {"headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()}}


# --- the mapping table (DESIGN.md) ---------------------------------------------------------------


@pytest.mark.usefixtures("submitted")
def test_completed_sample_completes_the_job_with_the_result_inline(context: LambdaContext) -> None:
    status, body = send(context)

    assert status == 200
    assert body == {"applied": 1, "duplicate": 0, "unknown": 0, "invalid": 0, "deferred": 0}
    assert job()["status"] == "COMPLETED"
    assert job()["result"] == {"category": "cat"}
    assert job()["result_ref"] is None


@pytest.mark.usefixtures("submitted")
def test_pending_moves_the_job_in_progress(context: LambdaContext) -> None:
    status, body = send(context, [annotation("pending")])

    assert (status, body["applied"]) == (200, 1)
    assert job()["status"] == "IN_PROGRESS"


@pytest.mark.usefixtures("submitted")
def test_failed_sample_with_flu_id_keeps_the_vendor_error(context: LambdaContext) -> None:
    status, body = send(context, event="api_failed_flu_id.json")

    assert (status, body["applied"]) == (200, 1)
    assert job()["status"] == "FAILED"
    assert job()["last_error"] == {
        "code": "FS_0003",
        "message": "Invalid data passed",
        "retryable": False,
        "details": [{"field": "image_url", "type": "INVALID_IMAGE_LINK"}],
    }


# --- exactly once ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("submitted")
def test_duplicate_and_stale_callbacks_write_nothing(context: LambdaContext) -> None:
    send(context, [annotation("PENDING")])
    send(context, [annotation("COMPLETED", result={"n": 1})])
    before = job()

    status, body = send(context, [annotation("COMPLETED", result={"n": 2}), annotation("PENDING")])

    assert status == 200
    assert body == {"applied": 0, "duplicate": 2, "unknown": 0, "invalid": 0, "deferred": 0}
    assert job() == before
    assert [h["status"] for h in job()["history"]] == ["QUEUED", "SUBMITTED", "IN_PROGRESS", "COMPLETED"]


def test_a_callback_that_beats_the_submitted_write_still_lands(playment: HTTPServer, context: LambdaContext) -> None:
    # given Playment created the job but its answer was lost (the job stays QUEUED with us)
    playment.expect_request("/v0/projects/proj-1/jobs", method="POST").respond_with_data("", status=504)
    submit_app.lambda_handler(load_event("submit_job/direct_invoke_playment.json"), context)
    assert job()["status"] == "QUEUED"

    # when its PENDING callback arrives
    status, body = send(context, [annotation("PENDING")])

    # then it lands and records Playment's job id
    assert (status, body["applied"]) == (200, 1)
    assert job()["status"] == "IN_PROGRESS"
    assert job()["vendor_job_id"] == JOB_ID


@pytest.mark.usefixtures("submitted")
def test_each_annotation_is_applied_on_its_own(context: LambdaContext) -> None:
    status, body = send(
        context,
        [
            annotation("PENDING"),
            annotation("COMPLETED", reference_id="nobody-knows-me"),
            {"reference_id": REF, "status": "COMPLETED"},  # neither job_id nor flu_id
            annotation("ARCHIVED"),  # not a status Playment documents
            "not an object",
        ],
    )

    assert status == 200
    assert body == {"applied": 1, "duplicate": 0, "unknown": 1, "invalid": 3, "deferred": 0}
    assert job()["status"] == "IN_PROGRESS"
    (raw,) = archived("raw/playment/").values()
    assert b"nobody-knows-me" in raw  # the unknown reference stays in the archive


@pytest.mark.usefixtures("submitted")
def test_a_job_id_that_contradicts_the_stored_one_is_invalid(context: LambdaContext) -> None:
    status, body = send(context, [annotation("COMPLETED") | {"job_id": "some-other-job"}])

    assert (status, body["invalid"]) == (200, 1)
    assert job()["status"] == "SUBMITTED"


# --- results ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("submitted")
def test_a_large_result_lands_in_s3_and_the_job_points_at_it(context: LambdaContext) -> None:
    result = {
        "annotations": {
            "landmarks": [
                {"_id": f"lm-{i}", "label": "eye", "points": {"p1": {"x": 0.17, "y": 0.58}}} for i in range(2000)
            ]
        }
    }

    status, _ = send(context, [annotation("COMPLETED", result=result)])

    assert status == 200
    stored = job()
    assert stored["status"] == "COMPLETED"
    assert stored["result"] is None
    bucket_key = stored["result_ref"].removeprefix("s3://handoff-results/")
    assert bucket_key.startswith(f"results/playment/{REF}/")
    assert json.loads(archived(bucket_key)[bucket_key]) == result


# --- authentication and bad input ----------------------------------------------------------------------


@pytest.mark.usefixtures("submitted")
@pytest.mark.parametrize(
    "key", [None, "", "wrong-key", "sample-playment-callback-key "], ids=["missing", "empty", "wrong", "trailing-space"]
)
def test_missing_or_wrong_key_is_401_and_writes_nothing(context: LambdaContext, key: str | None) -> None:
    headers = {"Content-Type": "application/json"} | ({"x-playment-key": key} if key is not None else {})
    before = job()

    status, body = send(context, **with_headers(headers))

    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert job() == before
    assert archived() == {}


@pytest.mark.usefixtures("submitted")
def test_the_previous_key_is_accepted_during_rotation(context: LambdaContext) -> None:
    status, body = send(
        context, **with_headers({"Content-Type": "application/json", "X-Playment-Key": PLAYMENT_PREVIOUS_CALLBACK_KEY})
    )

    assert (status, body["applied"]) == (200, 1)


# The COMPLETED example of Playment's callback page, verbatim: its "result" object is never closed.
SEED_COMPLETED_EXAMPLE = (ROOT / "tests" / "fixtures" / "playment_seed_completed_example.txt").read_text()


@pytest.mark.usefixtures("submitted")
@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (SEED_COMPLETED_EXAMPLE, "application/json", 400, "malformed_json"),  # the vendor's own doc example, verbatim
        ('{"success": True}', "application/json", 400, "malformed_json"),  # Python literal, as in Playment's batch docs
        ('{"annotations": []}', "application/json", 400, "invalid_callback"),
        ('{"result": {}}', "application/json", 400, "invalid_callback"),
        ("[1, 2]", "application/json", 400, "invalid_callback"),
        ('{"annotations": [{}]}', "text/plain", 415, "unsupported_media_type"),
        (
            '{"annotations": [' + ('{"x": "' + "y" * 1024 + '"},') * 6000 + "{}]}",
            "application/json",
            413,
            "payload_too_large",
        ),
    ],
    ids=["seed-unclosed-result", "python-literal", "empty-list", "no-annotations", "array", "text-plain", "oversized"],
)
def test_malformed_bodies_are_4xx_and_write_nothing(
    context: LambdaContext, body: str, content_type: str, status: int, code: str
) -> None:
    before = job()
    headers = {"Content-Type": content_type, "x-playment-key": "sample-playment-callback-key"}

    answer_status, answer = send(context, body=body, **with_headers(headers))

    assert (answer_status, answer["error"]["code"]) == (status, code)
    assert set(answer["error"]) == {"code", "message", "details"}
    assert job() == before
    assert archived() == {}


# --- cost ------------------------------------------------------------------------------------------------


@contextmanager
def aws_calls(*clients: Any) -> Iterator[list[str]]:
    """The AWS operations the clients make inside the block (botocore before-call hooks)."""
    calls: list[str] = []

    def record(event_name: str, **_: Any) -> None:
        calls.append(event_name.split(".", 1)[1])

    for client in clients:
        client.meta.events.register("before-call", record)
    try:
        yield calls
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", record)


@pytest.mark.usefixtures("submitted")
def test_a_callback_costs_one_archive_put_and_one_conditional_write(context: LambdaContext) -> None:
    send(context, [annotation("PENDING")])  # warm: the secret is cached from here on
    with aws_calls(callback_app.dynamodb, callback_app.s3) as changed:
        send(context)  # COMPLETED: a real change
    with aws_calls(callback_app.dynamodb, callback_app.s3) as duplicate:
        send(context)  # the same again: a duplicate

    assert sorted(changed) == ["dynamodb.UpdateItem", "s3.PutObject"]
    assert sorted(duplicate) == ["dynamodb.UpdateItem", "s3.PutObject"]  # the UpdateItem fails its condition
    assert job()["version"] == 4  # created 1, SUBMITTED 2, IN_PROGRESS 3, COMPLETED 4: the duplicate wrote nothing
