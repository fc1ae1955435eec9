"""GetJob: the job with its history, or the error body."""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer

from functions.get_job import app as get_app
from functions.submit_job import app as submit_app
from tests.conftest import LambdaContext, load_event

pytestmark = pytest.mark.usefixtures("aws")


def get(reference_id: str, context: LambdaContext) -> tuple[int, dict]:
    event = load_event("get_job/api_get.json")
    event["path"] = f"/jobs/{reference_id}"
    event["pathParameters"] = {"reference_id": reference_id}
    response = get_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def test_submitted_job_is_200_with_its_history(playment: HTTPServer, context: LambdaContext) -> None:
    # given a job that Playment accepted
    playment.expect_request("/v0/projects/proj-1/jobs", method="POST").respond_with_json(
        {"data": {"job_id": "pl-9"}, "success": True}
    )
    submit_app.lambda_handler(load_event("submit_job/direct_invoke_playment.json"), context)

    # when an operator looks it up with the sample event
    response = get_app.lambda_handler(load_event("get_job/api_get.json"), context)

    # then
    assert response["statusCode"] == 200
    job = json.loads(response["body"])
    assert job["reference_id"] == "order-1042-img-7"
    assert job["status"] == "SUBMITTED"
    assert job["vendor_job_id"] == "pl-9"
    assert job["request"]["data"]["image_url"] == "https://images.example.com/orders/1042/7.jpg"
    assert [(h["status"], h["source"]) for h in job["history"]] == [("QUEUED", "submit"), ("SUBMITTED", "submit")]


def test_unknown_job_is_404_with_the_error_body(context: LambdaContext) -> None:
    status, body = get("never-submitted", context)

    assert status == 404
    assert body == {"error": {"code": "job_not_found", "message": "no job with that reference_id", "details": []}}


def test_malformed_reference_id_is_422(context: LambdaContext) -> None:
    status, body = get("bad id!", context)

    assert status == 422
    assert body["error"]["code"] == "invalid_request"
