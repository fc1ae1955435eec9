"""Every answer final and truthful at the edges: vendor values DynamoDB cannot hold as maps,
parsing limits, work bounded per request, content types, strict types and paths, a refused
reference_id that can be used again, and bulk requests that decide the same way every time."""

from __future__ import annotations

import base64
import copy
import json
import time
from typing import Any

import boto3
import pytest
from pytest_httpserver import HTTPServer

from functions.get_job import app as get_job_app
from functions.playment_callback import app as callback_app
from functions.submit_job import app as submit_app
from handoff import api, vendor_json
from handoff.store import DynamoJobStore
from tests.conftest import ROOT, LambdaContext, archived, load_event, load_template, table_items

pytestmark = pytest.mark.usefixtures("aws")

CREATE_PATH = "/v0/projects/proj-1/jobs"
REF = "order-1042-img-7"
JOB_ID = "pl-job-1"


def accept(job_id: str = JOB_ID, reference_id: str = REF) -> dict[str, Any]:
    return {"data": {"job_id": job_id, "reference_id": reference_id}, "success": True}


def sample_request(**changes: Any) -> dict[str, Any]:
    return copy.deepcopy(load_event("submit_job/direct_invoke_playment.json")) | changes


def api_submit(
    context: LambdaContext,
    body: Any = None,
    *,
    raw: str | bytes | None = None,
    content_type: str | None = "application/json",
) -> tuple[int, dict[str, Any]]:
    event = load_event("submit_job/api_post_playment_image.json")
    if isinstance(raw, bytes):  # as API Gateway hands every body over (BinaryMediaTypes */*)
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    else:
        event["body"] = raw if raw is not None else json.dumps(body)
    event["headers"] = {k: v for k, v in event["headers"].items() if k.lower() != "content-type"}
    event["multiValueHeaders"] = {k: v for k, v in event["multiValueHeaders"].items() if k.lower() != "content-type"}
    if content_type is not None:
        event["headers"]["Content-Type"] = content_type
        event["multiValueHeaders"]["Content-Type"] = [content_type]
    response = submit_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def get_job(
    context: LambdaContext, raw_id: str, path: str | None = None, *, strict: bool = False
) -> tuple[int, dict[str, Any]]:
    """GET /jobs/{raw_id}; strict: the answer must be JSON as RFC 8259 has it, of Unicode text
    (no NaN, no lone surrogate), as a strict client reads it."""
    event = load_event("get_job/api_get.json")
    event["path"] = path or f"/jobs/{raw_id}"
    event["pathParameters"] = {"reference_id": raw_id}
    response = get_job_app.lambda_handler(event, context)
    if strict:
        return response["statusCode"], api.parse_json(response["body"])
    return response["statusCode"], json.loads(response["body"])


def callback(context: LambdaContext, body: str | bytes, content_type: str = "application/json") -> tuple[int, Any]:
    event = load_event("playment_callback/api_completed.json")
    raw = body.encode() if isinstance(body, str) else body
    event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    event["headers"]["Content-Type"] = content_type
    event["multiValueHeaders"]["Content-Type"] = [content_type]
    response = callback_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def submitted(playment: HTTPServer, context: LambdaContext, reference_id: str = REF, job_id: str = JOB_ID) -> None:
    playment.expect_oneshot_request(CREATE_PATH, method="POST").respond_with_json(accept(job_id, reference_id))
    status, _ = api_submit(context, sample_request(reference_id=reference_id))
    assert status == 201


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert isinstance(body["error"]["details"], list)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# --- 1. vendor-owned data is opaque: no value of theirs breaks an item ----------------------------

ODD_RESULTS = {
    "nan": '{"score": NaN}',
    "infinity": '{"score": Infinity, "low": -Infinity}',
    "beyond a double": '{"score": 1e400}',
    "beyond DynamoDB's 38 digits": '{"count": 123456789012345678901234567890123456789012345}',
    "an empty attribute name": '{"": "empty key", "boxes": [{"": 1}]}',
    "deeper than DynamoDB's 32 levels": json.dumps(nested(40)),
    "deeper than pydantic serialises (300 levels)": "[" * 300 + "]" * 300,
    "more digits than a double holds": '{"v": 1234567890123456789012345678901234567890.123456789}',
    "below a double": '{"v": 1e-400, "w": -2.5E-330}',
    "more digits than Python reads": '{"v": ' + "9" * 4301 + "}",
    "a lone surrogate": '{"s": "\\ud800x", "\\udc00": 1}',
}


@pytest.mark.parametrize("result", list(ODD_RESULTS.values()), ids=list(ODD_RESULTS))
def test_a_callback_result_dynamodb_could_not_hold_as_a_map_completes_the_job(
    result: str, playment: HTTPServer, context: LambdaContext
) -> None:
    # given a submitted job
    submitted(playment, context)

    # when Playment calls back COMPLETED with a result holding such a value
    head = json.dumps({"reference_id": REF, "job_id": JOB_ID, "status": "COMPLETED"})[:-1]
    body = '{"annotations": [' + head + ', "result": ' + result + "}]}"
    status, counts = callback(context, body)

    # then it is applied at once (never a 503 that no resend can fix), and the job reads back as
    # strict JSON of Unicode text
    assert (status, counts["applied"]) == (200, 1)
    status, job = get_job(context, REF, strict=True)
    assert status == 200
    assert job["status"] == "COMPLETED"
    assert job["result"] is not None or job["result_ref"] is not None
    if job["result_ref"]:  # what strict JSON cannot carry exactly is kept in S3, as the vendor wrote it
        key = job["result_ref"].removeprefix("s3://handoff-results/")
        assert vendor_json.loads(archived(key)[key]) == vendor_json.loads(result)
    else:
        assert job["result"] == json.loads(result)


def test_a_failed_callback_with_thousands_of_failures_keeps_them_in_s3(
    playment: HTTPServer, context: LambdaContext
) -> None:
    # given a submitted job
    submitted(playment, context)
    failures = [{"url": f"https://images.example.com/{i}.jpg", "reason": "404 Not Found"} for i in range(5000)]

    # when Playment calls back FAILED listing every failed attachment
    annotation = {
        "reference_id": REF,
        "job_id": JOB_ID,
        "status": "FAILED",
        "error": {"code": "FS_0003", "message": "attachments unreachable", "meta_data": {"failures": failures}},
    }
    status, _ = callback(context, json.dumps({"annotations": [annotation]}))

    # then the job is FAILED with the code and message inline and the failures behind a pointer
    assert status == 200
    _, job = get_job(context, REF)
    assert job["status"] == "FAILED"
    assert job["last_error"]["code"] == "FS_0003"
    (pointer,) = job["last_error"]["details"]
    assert pointer["count"] == 5000
    key = pointer["details_ref"].removeprefix("s3://handoff-results/")
    assert len(json.loads(archived(key)[key])["details"]) == 5000


@pytest.mark.parametrize(
    "error",
    [
        {"code": "FS_0003", "message": "\u00e9\U0001f600" * 150_000},  # a message over every budget
        {"code": "E" * 300_000, "message": "m"},
        "a bare string of an error " * 20_000,
    ],
    ids=["long-non-ascii-message", "long-code", "bare-string"],
)
def test_a_failed_callback_with_an_oversized_error_keeps_it_whole_behind_a_pointer(
    playment: HTTPServer, context: LambdaContext, error: Any
) -> None:
    submitted(playment, context)
    annotation = {"reference_id": REF, "job_id": JOB_ID, "status": "FAILED", "error": error}

    status, _ = callback(context, json.dumps({"annotations": [annotation]}))

    # then the job is FAILED, its code and message cut to fit (marked), and the whole error in S3
    assert status == 200
    _, job = get_job(context, REF)
    assert job["status"] == "FAILED"
    last = job["last_error"]
    assert len(json.dumps(last)) < 8 * 1024
    (pointer,) = last["details"]
    key = pointer["details_ref"].removeprefix("s3://handoff-results/")
    kept = json.loads(archived(key)[key])
    assert kept["details"][-1]["vendor_error"] == (error if isinstance(error, dict) else {"message": error})


@pytest.mark.parametrize(
    "metadata",
    [
        {"count": 123456789012345678901234567890123456789012345},
        {"": "empty key"},
        nested(40),
    ],
    ids=["40 digits", "empty key", "40 levels"],
)
def test_pass_through_metadata_dynamodb_could_not_hold_as_a_map_is_accepted(
    metadata: Any, playment: HTTPServer, context: LambdaContext
) -> None:
    # given Playment accepts jobs
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(accept())

    # when a caller passes such metadata through
    status, body = api_submit(context, sample_request(data={"image_url": "https://x.example/1.jpg", "m": metadata}))

    # then the job is submitted, stored and reads back exactly as sent
    assert status == 201, body
    _, job = get_job(context, REF)
    assert job["request"]["data"]["m"] == metadata


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_request_with_a_number_json_cannot_carry_is_400_and_writes_nothing(
    number: str, playment: HTTPServer, context: LambdaContext
) -> None:
    raw = json.dumps(sample_request()).replace('"priority_weight": 5', f'"x": {number}, "priority_weight": 5')
    raw = raw.replace('"camera": "front"', f'"camera": {number}')

    status, body = api_submit(context, raw=raw)

    assert_error(status, body, 400, "malformed_json")
    assert table_items() == []


# --- 2. parsing limits -----------------------------------------------------------------------------


def test_a_body_nested_thousands_deep_is_400_everywhere_and_nothing_is_written(
    playment: HTTPServer, context: LambdaContext
) -> None:
    submitted(playment, context)
    deep = "[" * 5000 + "]" * 5000
    before = archived()

    assert_error(*api_submit(context, raw=deep), 400, "malformed_json")
    assert_error(*api_submit(context, raw=json.dumps({"jobs": [nested(100)]})), 400, "malformed_json")
    status, body = callback(context, '{"annotations": ' + deep + "}")
    assert_error(status, body, 400, "malformed_json")

    assert archived() == before
    assert [j["reference_id"] for j in table_items()] == [REF]


def test_an_empty_body_is_400_missing_body_on_every_route_and_nothing_is_archived(
    playment: HTTPServer, context: LambdaContext
) -> None:
    # given a submitted job (the other vendors' callback routes: their own test modules)
    submitted(playment, context)
    before = archived()

    # when a submission and an authenticated callback arrive without a body, then both are 400 missing_body
    assert_error(*api_submit(context, raw=""), 400, "missing_body")
    assert_error(*api_submit(context, raw=b""), 400, "missing_body")
    assert_error(*callback(context, ""), 400, "missing_body")

    # and nothing is archived
    assert archived() == before


def test_a_body_that_is_not_utf8_is_400_and_never_archived(playment: HTTPServer, context: LambdaContext) -> None:
    # given a submitted job
    submitted(playment, context)
    before = archived()
    annotation = {"reference_id": REF, "job_id": JOB_ID, "status": "PENDING", "note": "caf\xe9"}
    latin1_bytes = json.dumps({"annotations": [annotation]}, ensure_ascii=False).encode("latin-1")

    # when a callback and a submission arrive in bytes that are not UTF-8
    status, body = callback(context, latin1_bytes)
    assert_error(status, body, 400, "invalid_encoding")
    request = sample_request(data={"image_url": "https://x.example/1.jpg", "note": "caf\xe9"})
    status, body = api_submit(context, raw=json.dumps(request, ensure_ascii=False).encode("latin-1"))
    assert_error(status, body, 400, "invalid_encoding")

    # then nothing is archived altered, and the job is untouched
    assert archived() == before
    assert get_job(context, REF)[1]["status"] == "SUBMITTED"


def test_a_utf8_body_is_archived_byte_for_byte(playment: HTTPServer, context: LambdaContext) -> None:
    submitted(playment, context)
    annotation = {"reference_id": REF, "job_id": JOB_ID, "status": "PENDING", "note": "caf\u00e9 \ufffd"}
    raw = json.dumps({"annotations": [annotation]}, ensure_ascii=False)

    status, _ = callback(context, raw.encode())

    assert status == 200
    (stored,) = archived("raw/").values()
    assert stored == raw.encode()


# --- 3. work bounded per request --------------------------------------------------------------------


def test_a_callback_at_the_documented_maximum_is_applied_whole(playment: HTTPServer, context: LambdaContext) -> None:
    # given one submitted job
    submitted(playment, context)
    limit = callback_app.MAX_ANNOTATIONS
    # when a callback carries the maximum number of annotations (one real, the rest unknown jobs)
    annotations = [{"reference_id": REF, "job_id": JOB_ID, "status": "COMPLETED", "result": {"ok": 1}}] + [
        {"reference_id": f"other-{i}", "job_id": f"j-{i}", "status": "PENDING"} for i in range(limit - 1)
    ]
    status, counts = callback(context, json.dumps({"annotations": annotations}))

    # then the answer covers every annotation
    assert status == 200
    assert counts == {"applied": 1, "duplicate": 0, "unknown": limit - 1, "invalid": 0, "deferred": 0}
    assert get_job(context, REF)[1]["status"] == "COMPLETED"


def test_a_callback_at_the_documented_maximum_finishes_well_inside_the_timeout_when_writes_are_slow(
    playment: HTTPServer, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given one submitted job, and a table that takes 50 ms for every conditional write (one after
    # another, the documented maximum would need 25 s: past PlaymentCallback's timeout)
    submitted(playment, context)
    timeout = load_template()["Resources"]["PlaymentCallbackFunction"]["Properties"]["Timeout"]
    limit = callback_app.MAX_ANNOTATIONS
    assert limit * 0.05 > timeout
    transition = DynamoJobStore.transition

    def slow_transition(self: DynamoJobStore, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)
        return transition(self, *args, **kwargs)

    monkeypatch.setattr(DynamoJobStore, "transition", slow_transition)
    annotations = [{"reference_id": REF, "job_id": JOB_ID, "status": "COMPLETED", "result": {"ok": 1}}] + [
        {"reference_id": f"other-{i}", "job_id": f"j-{i}", "status": "PENDING"} for i in range(limit - 1)
    ]

    # when a callback carries the documented maximum
    started = time.monotonic()
    status, counts = callback(context, json.dumps({"annotations": annotations}))
    took = time.monotonic() - started

    # then it is answered 200 covering every annotation, in well under a third of the timeout
    assert status == 200
    assert counts == {"applied": 1, "duplicate": 0, "unknown": limit - 1, "invalid": 0, "deferred": 0}
    assert took < timeout / 3, f"{limit} annotations took {took:.1f} s of a {timeout} s timeout"
    assert get_job(context, REF)[1]["status"] == "COMPLETED"


def test_a_callback_over_the_maximum_is_413_and_writes_nothing(playment: HTTPServer, context: LambdaContext) -> None:
    submitted(playment, context)
    before = archived()
    annotations = [{"reference_id": REF, "job_id": JOB_ID, "status": "PENDING"}] * (callback_app.MAX_ANNOTATIONS + 1)

    status, body = callback(context, json.dumps({"annotations": annotations}))

    assert_error(status, body, 413, "too_many_annotations")
    assert archived() == before
    assert get_job(context, REF)[1]["status"] == "SUBMITTED"


# --- 4. content types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "multipart/form-data; boundary=x", "application/xml", "application/json; charset=latin-1"],
)
def test_post_jobs_in_another_media_type_is_415(content_type: str, context: LambdaContext) -> None:
    status, body = api_submit(context, sample_request(), content_type=content_type)

    assert_error(status, body, 415, "unsupported_media_type")
    assert table_items() == []


def test_post_jobs_without_content_type_is_taken_as_json(playment: HTTPServer, context: LambdaContext) -> None:
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(accept())

    status, _ = api_submit(context, sample_request(), content_type=None)

    assert status == 201


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_a_playment_callback_in_another_media_type_is_415(content_type: str, context: LambdaContext) -> None:
    status, body = callback(context, '{"annotations": []}', content_type)

    assert_error(status, body, 415, "unsupported_media_type")
    assert archived() == {}


@pytest.mark.parametrize("charset", ["ISO-8859-1", "utf-16", "x-unknown"])
def test_a_playment_callback_naming_any_charset_is_read_as_the_utf8_it_is(
    charset: str, playment: HTTPServer, context: LambdaContext
) -> None:
    # given a submitted job; JSON has no charset (RFC 8259 §11) and Playment never resends a 415
    submitted(playment, context)
    head = json.dumps({"reference_id": REF, "job_id": JOB_ID, "status": "COMPLETED"})[:-1]

    status, counts = callback(context, '{"annotations": [' + head + "}]}", f"application/json; charset={charset}")

    assert (status, counts["applied"]) == (200, 1)


def test_a_status_is_matched_in_ascii_never_by_unicode_case_mapping(
    playment: HTTPServer, context: LambdaContext
) -> None:
    submitted(playment, context)
    head = json.dumps({"reference_id": REF, "job_id": JOB_ID})[:-1]

    status, counts = callback(context, '{"annotations": [' + head + ', "status": "FA\\u0131LED"}]}')

    assert (status, counts["invalid"]) == (200, 1)  # "FA(dotless i)LED" is no status of Playment's
    assert get_job(context, REF)[1]["status"] == "SUBMITTED"


def test_a_playment_callback_without_content_type_is_taken_as_json(
    playment: HTTPServer, context: LambdaContext
) -> None:
    # given a submitted job, and a callback that leaves Content-Type out (API Gateway takes that
    # as JSON; Playment would never resend after a 415)
    submitted(playment, context, job_id="3f3e8675-ca69-46d7-aa34-96f90fcbb732")  # the sample's job
    event = load_event("playment_callback/api_completed.json")
    del event["headers"]["Content-Type"]
    del event["multiValueHeaders"]["Content-Type"]

    response = callback_app.lambda_handler(event, context)

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["applied"] == 1


# --- 6. a refused request does not burn its reference_id ----------------------------------------------


def test_a_corrected_request_replaces_a_job_the_vendor_refused(playment: HTTPServer, context: LambdaContext) -> None:
    # given Playment refused the first request (a bad attachment), so the job is FAILED unaccepted
    playment.expect_oneshot_request(CREATE_PATH, method="POST").respond_with_json(
        {"error": {"code": "FS_0003", "message": "Invalid data passed"}, "success": False}, status=400
    )
    status, _ = api_submit(context, sample_request())
    assert status == 424

    # when the caller sends the same request again, it is the FAILED job (nothing new)
    status, body = api_submit(context, sample_request())
    assert (status, body["status"]) == (200, "FAILED")

    # and when it sends a corrected request under the same reference_id
    playment.expect_oneshot_request(CREATE_PATH, method="POST").respond_with_json(accept())
    corrected = sample_request(data={"image_url": "https://images.example.com/orders/1042/7-fixed.jpg"})
    status, body = api_submit(context, corrected)

    # then the corrected job takes its place and is submitted, with the whole history kept
    assert status == 201
    (job,) = table_items()
    assert job["status"] == "SUBMITTED"
    assert job["request"]["data"]["image_url"].endswith("7-fixed.jpg")
    assert [h["status"] for h in job["history"]] == ["QUEUED", "FAILED", "QUEUED", "SUBMITTED"]


def test_a_job_the_vendor_accepted_is_never_replaced(playment: HTTPServer, context: LambdaContext) -> None:
    submitted(playment, context)

    status, body = api_submit(context, sample_request(priority_weight=7))

    assert_error(status, body, 409, "conflict")


# --- 7. bulk determinism --------------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(5))
def test_the_first_of_two_bulk_entries_with_one_reference_id_always_wins(round_: int, context: LambdaContext) -> None:
    first = sample_request(reference_id=f"dup-{round_}")
    same = copy.deepcopy(first)
    other = sample_request(reference_id=f"dup-{round_}", priority_weight=2)

    status, body = api_submit(context, {"jobs": [first, same, other]})

    assert status == 202
    assert [row["outcome"] for row in body["jobs"]] == ["queued", "replayed", "conflict"]
    (job,) = table_items()
    assert job["request"]["priority_weight"] == 5


# --- 8. strict types and paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("priority_weight", True), ("priority_weight", "5"), ("priority_weight", 5.5)],
)
def test_a_json_boolean_or_string_is_not_a_number(field: str, value: Any, context: LambdaContext) -> None:
    status, body = api_submit(context, sample_request(**{field: value}))

    assert_error(status, body, 422, "invalid_request")
    assert body["error"]["details"][0]["field"] == field
    assert table_items() == []


@pytest.mark.parametrize("suffix", ["\n", "%0A", "\x00", "%7F", "\r"])
def test_an_id_with_a_control_character_never_matches_a_job(
    suffix: str, playment: HTTPServer, context: LambdaContext
) -> None:
    submitted(playment, context)

    status, body = get_job(context, REF + suffix)

    assert status == 422, body
    assert body["error"]["details"][0]["field"] == "reference_id"


def test_a_path_with_a_control_character_is_not_routed(context: LambdaContext) -> None:
    event = load_event("submit_job/api_post_playment_image.json")
    event["path"] = "/jobs\n"

    response = submit_app.lambda_handler(event, context)

    assert response["statusCode"] == 404
    assert table_items() == []


def test_http_image_urls_are_refused_as_the_readme_says(context: LambdaContext) -> None:
    status, body = api_submit(context, sample_request(data={"image_url": "http://images.example.com/1.jpg"}))

    assert_error(status, body, 422, "invalid_request")


def test_the_jobs_table_holds_vendor_data_as_json_text(playment: HTTPServer, context: LambdaContext) -> None:
    # given a submitted job that Playment then completes with a result
    submitted(playment, context)
    body = {"annotations": [{"reference_id": REF, "job_id": JOB_ID, "status": "COMPLETED", "result": {"a": [1]}}]}
    assert callback(context, json.dumps(body))[0] == 200

    # then the item holds the request and the result as strings of JSON, never as maps
    item = boto3.client("dynamodb").get_item(TableName="handoff-jobs", Key={"reference_id": {"S": REF}})["Item"]
    assert set(item["request"]) == {"S"}
    assert set(item["result"]) == {"S"}
    assert json.loads(item["result"]["S"]) == {"a": [1]}


# --- found by an outside tester: the same classes, more cases ------------------------------------------


def test_a_lone_surrogate_in_a_request_is_400_and_in_a_vendor_result_is_kept(
    playment: HTTPServer, context: LambdaContext
) -> None:
    raw = json.dumps(sample_request()).replace('"front"', '"\\ud800"')
    assert_error(*api_submit(context, raw=raw), 400, "malformed_json")
    assert table_items() == []

    submitted(playment, context)
    head = json.dumps({"reference_id": REF, "job_id": JOB_ID, "status": "COMPLETED"})[:-1]
    status, counts = callback(context, '{"annotations": [' + head + ', "result": {"s": "\\ud800x"}}]}')
    assert (status, counts["applied"]) == (200, 1)
    job = get_job(context, REF, strict=True)[1]
    assert job["result"] is None  # no Unicode text: strict clients could not read the job
    key = job["result_ref"].removeprefix("s3://handoff-results/")
    assert archived(key)[key] == b'{"s":"\\ud800x"}'  # kept in S3 as sent


def test_a_json_array_is_not_a_request(playment: HTTPServer, context: LambdaContext) -> None:
    status, body = api_submit(context, [sample_request(), sample_request(reference_id="second")])

    assert_error(status, body, 422, "invalid_request")
    assert table_items() == []


@pytest.mark.parametrize("content_type", ["APPLICATION/JSON", "Application/Json; Charset=UTF-8"])
def test_media_types_are_case_insensitive(content_type: str, playment: HTTPServer, context: LambdaContext) -> None:
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(accept())

    status, _ = api_submit(context, sample_request(), content_type=content_type)

    assert status == 201


def test_a_whole_number_written_as_5_0_is_the_integer_5(playment: HTTPServer, context: LambdaContext) -> None:
    playment.expect_request(CREATE_PATH, method="POST").respond_with_json(accept())

    status, body = api_submit(context, sample_request(priority_weight=5.0))

    assert status == 201
    assert body["request"]["priority_weight"] == 5


def test_language_tags_that_differ_only_in_case_are_the_same_language(context: LambdaContext) -> None:
    request = copy.deepcopy(load_event("submit_job/direct_invoke_textking.json"))
    request.update(source_language="pt-BR", target_language="pt-br")

    status, body = api_submit(context, request)

    assert_error(status, body, 422, "invalid_request")


def test_every_failure_playment_lists_is_kept_whatever_its_shape(playment: HTTPServer, context: LambdaContext) -> None:
    submitted(playment, context)
    head = json.dumps({"reference_id": REF, "job_id": JOB_ID, "status": "FAILED"})[:-1]
    error = '{"code": 9, "message": "m\\ud800", "meta_data": {"failures": [NaN, 1e400, {"": 1}]}}'

    status, counts = callback(context, '{"annotations": [' + head + ', "error": ' + error + "}]}")

    assert (status, counts["applied"]) == (200, 1)
    job = get_job(context, REF, strict=True)[1]
    assert job["status"] == "FAILED"
    # strict JSON cannot carry them: code and message inline (a lone surrogate as its escape) and
    # the whole error, every failure as Playment wrote it, in S3 behind a pointer
    assert (job["last_error"]["code"], job["last_error"]["message"]) == ("9", "m\\ud800")
    (pointer,) = job["last_error"]["details"]
    assert pointer["count"] == 3
    key = pointer["details_ref"].removeprefix("s3://handoff-results/")
    kept = vendor_json.loads(archived(key)[key])
    assert kept["message"] == "m\\ud800"
    assert kept["details"] == [
        {"value": vendor_json.RawNumber("NaN")},
        {"value": vendor_json.RawNumber("1e400")},
        {"": 1},
    ]


def test_an_error_answer_never_quotes_the_input(context: LambdaContext) -> None:
    status, body = api_submit(context, sample_request(vendor="SECRETVALUE-abc"))

    assert status == 422
    assert "SECRETVALUE" not in json.dumps(body)


def test_a_bulk_entry_that_is_not_an_object_is_one_invalid_row(context: LambdaContext) -> None:
    status, body = api_submit(context, {"jobs": [sample_request(), 5]})

    assert status == 202
    assert [row["outcome"] for row in body["jobs"]] == ["queued", "invalid"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("{", "application/json"), ('{"annotations": []}', "text/plain"), ("\udcff", "application/json")],
    ids=["not-json", "another-media-type", "not-utf8"],
)
def test_a_callback_without_the_key_is_401_before_its_body_is_looked_at(
    context: LambdaContext, body: str, content_type: str
) -> None:
    # given a caller without Playment's key, whatever it sends
    event = load_event("playment_callback/api_completed.json")
    raw = body.encode("utf-8", "surrogateescape")
    event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    event["headers"] = {"Content-Type": content_type}
    event["multiValueHeaders"] = {"Content-Type": [content_type]}

    response = callback_app.lambda_handler(event, context)

    # then it learns only that it is not authenticated, and nothing is archived
    assert_error(response["statusCode"], json.loads(response["body"]), 401, "unauthorized")
    assert archived() == {}


@pytest.mark.parametrize("bare", ["1e400", "NaN", "1" * 4301, "12345678901234567890.123456789"])
def test_a_bare_error_playment_cannot_write_as_a_double_is_kept_as_written(
    bare: str, playment: HTTPServer, context: LambdaContext
) -> None:
    # given a submitted job, when Playment reports it FAILED with an error that is a bare number
    submitted(playment, context)
    head = json.dumps({"reference_id": REF, "job_id": JOB_ID, "status": "FAILED"})[:-1]

    status, counts = callback(context, '{"annotations": [' + head + ', "error": ' + bare + "}]}")

    # then it is applied, and the job's error says what Playment wrote, digit for digit
    assert (status, counts["applied"]) == (200, 1)
    job = get_job(context, REF, strict=True)[1]
    assert job["status"] == "FAILED"
    last = job["last_error"]
    if last["details"] and "details_ref" in last["details"][0]:
        key = last["details"][0]["details_ref"].removeprefix("s3://handoff-results/")
        assert bare.encode() in archived(key)[key]
    else:
        assert bare in json.dumps(last)


@pytest.mark.parametrize(
    ("failures", "kept"),
    [
        (
            {"field": "product_image_url", "type": "INVALID_IMAGE_LINK"},
            [{"field": "product_image_url", "type": "INVALID_IMAGE_LINK"}],
        ),
        ("INVALID_IMAGE_LINK", [{"value": "INVALID_IMAGE_LINK"}]),
        (7, [{"value": 7}]),
    ],
    ids=["an object", "a bare string", "a bare number"],
)
def test_failures_that_are_not_a_list_are_kept_too(
    failures: Any, kept: list[Any], playment: HTTPServer, context: LambdaContext
) -> None:
    submitted(playment, context)
    annotation = {
        "reference_id": REF,
        "job_id": JOB_ID,
        "status": "FAILED",
        "error": {"code": "FS_0003", "message": "m", "meta_data": {"failures": failures}},
    }

    status, _ = callback(context, json.dumps({"annotations": [annotation]}))

    assert status == 200
    assert get_job(context, REF)[1]["last_error"]["details"] == kept


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project_id", "local-project/../other"),
        ("project_id", "p?x=1"),
        ("project_id", "p#frag"),
        ("project_id", "p q"),
        ("project_id", "p\n"),
        ("project_id", ".."),
        ("project_id", "%2e%2e"),
        ("project_id", "proj\u00e9"),
        ("batch_id", "not-a-uuid"),
        ("batch_id", ""),
    ],
)
def test_a_playment_value_that_becomes_a_url_segment_or_a_uuid_is_checked_before_any_vendor_call(
    field: str, value: str, playment: HTTPServer, context: LambdaContext
) -> None:
    # when a request carries a project_id no URL can hold as it is, or a batch_id that is no UUID
    status, body = api_submit(context, sample_request(**{field: value}))

    # then 422 naming it, nothing written, and Playment never asked
    assert_error(status, body, 422, "invalid_request")
    assert [d["field"] for d in body["error"]["details"]] == [field]
    assert table_items() == []
    assert playment.log == []


@pytest.mark.parametrize(
    "body",
    [
        lambda head: '{"annotations": [' + head + ', "result": ' + json.dumps(nested(70)) + "}]}",
        lambda head: '\ufeff{"annotations": [' + head + ', "result": {"boxes": 1}}]}',
    ],
    ids=["a result nested 70 deep", "a leading byte order mark"],
)
def test_a_vendor_body_is_not_refused_for_what_only_our_own_api_refuses(
    body: Any, playment: HTTPServer, context: LambdaContext
) -> None:
    # given a submitted job; Playment never resends a callback answered 4xx
    submitted(playment, context)
    head = json.dumps({"reference_id": REF, "job_id": JOB_ID, "status": "COMPLETED"})[:-1]

    # when its callback nests its result deeper than POST /jobs takes, or starts with a BOM
    status, counts = callback(context, body(head))

    # then it is applied and archived, not refused
    assert (status, counts["applied"]) == (200, 1)
    assert get_job(context, REF)[1]["status"] == "COMPLETED"
    assert len(archived("raw/playment/")) == 1


@pytest.mark.parametrize(
    "edit", [{"status": {"S": "BOGUS"}}, {"request_hash": None}, {"result": {"B": b"\x00"}}, {"history": {"S": "x"}}]
)
def test_a_job_item_edited_by_hand_is_answered_500_unreadable_never_safe_to_retry(
    edit: dict[str, Any], playment: HTTPServer, context: LambdaContext
) -> None:
    # given a submitted job whose item someone edited by hand
    submitted(playment, context)
    client = boto3.client("dynamodb")
    item = client.get_item(TableName=load_template_table(), Key={"reference_id": {"S": REF}})["Item"]
    for name, value in edit.items():
        if value is None:
            item.pop(name)
        else:
            item[name] = value
    client.put_item(TableName=load_template_table(), Item=item)

    # when it is looked up
    status, body = get_job(context, REF)

    # then the answer says what is wrong, and that sending it again will not help
    assert_error(status, body, 500, "unreadable_job")
    assert "safe to retry" not in body["error"]["message"]


def load_template_table() -> str:
    import os

    return os.environ["JOBS_TABLE_NAME"]


@pytest.mark.parametrize(
    "raw",
    [
        '{"vendor": "scale", "vendor": "playment", "reference_id": "dup-1", "data": {"image_url": "https://x.example/a.jpg"}}',
        '{"vendor": "playment", "reference_id": "dup-1", "reference_id": "dup-2", "data": {"image_url": "https://x.example/a.jpg"}}',
        '{"jobs": [{"vendor": "playment", "data": {}, "data": {}}]}',
    ],
    ids=["vendor-twice", "reference-id-twice", "nested-twice"],
)
def test_a_request_naming_a_field_twice_is_400_never_read_as_its_last(raw: str, context: LambdaContext) -> None:
    status, body = api_submit(context, raw=raw)

    assert_error(status, body, 400, "malformed_json")
    assert table_items() == []


@pytest.mark.parametrize(
    ("sample", "field", "value"),
    [
        ("direct_invoke_textking.json", "name", "Quarterly\nreport"),
        ("direct_invoke_textking.json", "name", "\u3000 \t"),
        ("direct_invoke_playment.json", "tag", "boxes\u0000"),
        ("direct_invoke_playment.json", "tag", "   "),
        ("direct_invoke_scale.json", "project", " "),
        ("direct_invoke_scale.json", "batch", "b\r"),
    ],
)
def test_a_name_a_vendor_shows_people_is_never_blank_nor_holds_a_control_character(
    sample: str, field: str, value: str, context: LambdaContext
) -> None:
    request = copy.deepcopy(load_event(f"submit_job/{sample}")) | {field: value}

    status, body = api_submit(context, request)

    assert_error(status, body, 422, "invalid_request")
    assert [d["field"] for d in body["error"]["details"]] == [field]
    assert table_items() == []


@pytest.mark.parametrize(
    ("sample", "change", "component", "part"),
    [
        (
            "direct_invoke_playment.json",
            {"data": {"image_url": "https://x.example/a.jpg", "video_data": None}},
            "PlaymentData",
            "data",
        ),
        (
            "direct_invoke_textking.json",
            {"document": {"filename": "a.txt", "text": "hello", "s3_uri": None}},
            "TextkingDocument",
            "document",
        ),
    ],
    ids=["playment-video-data-null", "textking-s3-uri-null"],
)
def test_a_null_the_api_reads_as_absent_the_document_allows_too(
    sample: str, change: dict[str, Any], component: str, part: str, playment: HTTPServer, context: LambdaContext
) -> None:
    from jsonschema import Draft202012Validator

    # given a request that gives an optional field as null
    request = copy.deepcopy(load_event(f"submit_job/{sample}")) | change
    document = json.loads((ROOT / "openapi.json").read_text())
    schema = Draft202012Validator({"$ref": f"#/components/schemas/{component}", "components": document["components"]})

    # then the document allows it, as the API takes it (never one refusing what the other allows)
    assert list(schema.iter_errors(request[part])) == []
    # and with every source null, both refuse it
    none_given = {k: None for k in ("image_url", "video_data", "sensor_data", "text", "s3_uri") if k in request[part]}
    assert list(schema.iter_errors({**request[part], **none_given})) != []
    assert api_submit(context, request | {part: {**request[part], **none_given}})[0] == 422
    status, _ = api_submit(context, request)
    assert status in (201, 202)
