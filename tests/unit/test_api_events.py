"""Events as API Gateway really delivers them: behind a custom domain with a base-path mapping
(`path` carries the base path, `resource` is the route), and with `path` and `pathParameters`
still percent-encoded. Every function routes on the route and decodes each parameter once, and a
direct invocation answers as the same request over HTTP would."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import quote

import pytest
from pytest_httpserver import HTTPServer

from functions.get_job import app as get_app
from functions.playment_callback import app as callback_app
from functions.submit_job import app as submit_app
from local.sandboxes.playment import PlaymentSandbox, _error
from tests.conftest import LambdaContext, load_event, table_items

pytestmark = pytest.mark.usefixtures("aws")

COLON_ID = "order:1042:img-7"  # what events/*/*encoded_id.json and direct_invoke_retry_colon_id.json name
JOB_ID = "3f3e8675-ca69-46d7-aa34-96f90fcbb732"


def playment_request(reference_id: str) -> dict[str, Any]:
    return copy.deepcopy(load_event("submit_job/direct_invoke_playment.json")) | {"reference_id": reference_id}


def accepted(playment: HTTPServer, context: LambdaContext, reference_id: str) -> None:
    playment.expect_request("/v0/projects/proj-1/jobs", method="POST").respond_with_json(
        {"data": {"job_id": JOB_ID}, "success": True}
    )
    job = submit_app.lambda_handler(playment_request(reference_id), context)
    assert job["status"] == "SUBMITTED", job


def rejected(sandbox: PlaymentSandbox, context: LambdaContext, reference_id: str) -> None:
    """A job Playment refused before accepting it: FAILED, and an operator may resubmit it."""
    original = sandbox._create_job

    def reject_once(*args: Any) -> Any:
        sandbox._create_job = original  # type: ignore[method-assign]
        return _error(400, "FS_0005", "tag missing")

    sandbox._create_job = reject_once  # type: ignore[method-assign]
    answer = submit_app.lambda_handler(playment_request(reference_id), context)
    assert answer["error"]["code"] == "vendor_rejected"


def get_job(context: LambdaContext, encoded_id: str) -> tuple[int, dict[str, Any]]:
    """GET /jobs/{reference_id} as API Gateway delivers it: the id as the caller's URL had it."""
    event = load_event("get_job/api_get_encoded_id.json")
    event["path"] = f"/jobs/{encoded_id}"
    event["pathParameters"] = {"reference_id": encoded_id}
    event["requestContext"]["path"] = f"/v1/jobs/{encoded_id}"
    response = get_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def http_retry(context: LambdaContext, reference_id: str) -> tuple[int, dict[str, Any]]:
    """POST /jobs/{reference_id}/retry from a client that percent-encodes the id (as it must)."""
    encoded = quote(reference_id, safe="")
    event = load_event("submit_job/api_post_retry_encoded_id.json")
    event["path"] = f"/jobs/{encoded}/retry"
    event["pathParameters"] = {"reference_id": encoded}
    response = submit_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


# --- a custom domain with a base-path mapping ---------------------------------------------------------


def test_a_playment_callback_through_a_base_path_mapping_completes_its_job(
    playment: HTTPServer, context: LambdaContext
) -> None:
    # given the sample job, accepted by Playment
    accepted(playment, context, "order-1042-img-7")

    # when Playment calls back through the custom domain (path /handoff/callbacks/playment)
    event = load_event("playment_callback/api_completed_custom_domain.json")
    assert (event["path"], event["resource"]) == ("/handoff/callbacks/playment", "/callbacks/playment")
    response = callback_app.lambda_handler(event, context)

    # then the callback is applied, not lost as a 404
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["applied"] == 1
    (job,) = table_items()
    assert (job["status"], job["result"]) == ("COMPLETED", {"category": "cat"})


def test_a_job_read_through_a_base_path_mapping(playment: HTTPServer, context: LambdaContext) -> None:
    accepted(playment, context, "order-1042-img-7")
    event = load_event("get_job/api_get.json")
    event["path"] = "/handoff/jobs/order-1042-img-7"
    event["requestContext"]["path"] = "/handoff/jobs/order-1042-img-7"

    response = get_app.lambda_handler(event, context)

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["reference_id"] == "order-1042-img-7"


# --- percent-encoded path parameters ------------------------------------------------------------------


def test_the_encoded_id_sample_reads_the_job_whose_id_has_colons(playment: HTTPServer, context: LambdaContext) -> None:
    # given a job whose reference_id has ':' (the model allows it)
    accepted(playment, context, COLON_ID)

    # when it is read with the sample: path and pathParameters as API Gateway delivers them
    event = load_event("get_job/api_get_encoded_id.json")
    assert event["pathParameters"] == {"reference_id": "order%3A1042%3Aimg-7"}
    response = get_app.lambda_handler(event, context)

    # then it is that job (not 422: the id is decoded before it is validated)
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["reference_id"] == COLON_ID


def test_a_parameter_is_decoded_exactly_once(playment: HTTPServer, context: LambdaContext) -> None:
    # given the job order:7
    accepted(playment, context, "order:7")

    # when a caller asks for the id whose text is "order%3A7" (sent encoded: order%253A7)
    status, body = get_job(context, "order%253A7")

    # then that is another id, and one the model refuses: never the job order:7
    assert status == 422, body
    assert body["error"]["details"][0]["field"] == "reference_id"
    assert get_job(context, "order%3A7")[0] == 200
    assert get_job(context, "order:7")[0] == 200  # a client that sends ':' as it is


@pytest.mark.parametrize("encoded_id", ["a%2Fb", "%2F", "a%2F..%2Fb"])
def test_an_encoded_slash_is_one_parameter_refused_by_the_model_not_a_route_miss(
    encoded_id: str, context: LambdaContext
) -> None:
    status, body = get_job(context, encoded_id)

    assert status == 422, body
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["details"][0]["field"] == "reference_id"


def test_a_parameter_that_is_no_percent_encoded_utf8_is_422(context: LambdaContext) -> None:
    status, body = get_job(context, "order%C3%28")

    assert status == 422, body
    assert body["error"]["details"] == [
        {"field": "reference_id", "message": "not percent-encoded UTF-8", "type": "string_pattern_mismatch"}
    ]


# --- direct invoke and HTTP: one answer ------------------------------------------------------------------


def test_the_encoded_id_retry_sample_resubmits_the_job(sandbox: PlaymentSandbox, context: LambdaContext) -> None:
    # given a job with ':' in its id that Playment refused before accepting it
    rejected(sandbox, context, COLON_ID)

    # when an operator resubmits it over HTTP (the sample, id percent-encoded)
    response = submit_app.lambda_handler(load_event("submit_job/api_post_retry_encoded_id.json"), context)

    # then it is QUEUED again
    assert response["statusCode"] == 202, response["body"]
    assert json.loads(response["body"])["reference_id"] == COLON_ID
    assert [h["status"] for h in table_items()[0]["history"]] == ["QUEUED", "FAILED", "QUEUED"]


def test_a_direct_invoke_retry_of_an_id_with_colons_resubmits_the_job(
    sandbox: PlaymentSandbox, context: LambdaContext
) -> None:
    rejected(sandbox, context, COLON_ID)

    answer = submit_app.lambda_handler(load_event("submit_job/direct_invoke_retry_colon_id.json"), context)

    assert (answer["reference_id"], answer["status"]) == (COLON_ID, "QUEUED"), answer
    assert [h["status"] for h in table_items()[0]["history"]] == ["QUEUED", "FAILED", "QUEUED"]


@pytest.mark.parametrize(
    ("reference_id", "code"),
    [
        ("no-such:job", "job_not_found"),
        ("a/b", "invalid_request"),
        ("50%", "invalid_request"),
        ("%3A", "invalid_request"),
        ("a b", "invalid_request"),
        ("caf\u00e9", "invalid_request"),
    ],
)
def test_direct_invoke_and_http_answer_a_retry_alike(reference_id: str, code: str, context: LambdaContext) -> None:
    direct = submit_app.lambda_handler({"action": "retry", "reference_id": reference_id}, context)
    status, over_http = http_retry(context, reference_id)

    assert direct["error"]["code"] == code
    assert over_http == direct
    assert status == {"job_not_found": 404, "invalid_request": 422}[code]


@pytest.mark.parametrize("action", ["retry", "cancel", "order", "get_batch", "close_batch"])
@pytest.mark.parametrize("value", [5, None, True, ["a"], {"a": 1}])
def test_a_direct_invoke_id_that_is_not_a_string_is_422_never_another_id(
    action: str, value: Any, context: LambdaContext
) -> None:
    name = "batch_ref" if action.endswith("batch") else "reference_id"

    # when an action names its id with a JSON value that is not a string
    answer = submit_app.lambda_handler({"action": action, name: value}, context)

    # then it is refused as no id at all (not looked up as "5" or "None")
    assert answer["error"]["code"] == "invalid_request"
    assert [d["field"] for d in answer["error"]["details"]] == [name]


@pytest.mark.parametrize("module", ["get_job", "playment_callback", "textking_callback", "scale_callback"])
@pytest.mark.parametrize("event", [None, 5, "x", [], {}, {"reference_id": "order-1042-img-7"}])
def test_a_function_only_api_gateway_invokes_answers_any_other_event_with_400_never_a_crash(
    module: str, event: Any, context: LambdaContext
) -> None:
    import importlib

    handler = importlib.import_module(f"functions.{module}.app").lambda_handler

    answer = handler(event, context)

    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"]["code"] == "not_an_api_request"


@pytest.mark.parametrize("payload", [None, {}, {"action": "retry", "reference_id": "a\ud800"}])
def test_submit_job_answers_any_direct_payload_with_422_never_a_crash(payload: Any, context: LambdaContext) -> None:
    answer = submit_app.lambda_handler(payload, context)

    assert answer["error"]["code"] == "invalid_request"
    assert table_items() == []
