"""What the functions tell operators: logs with the job's reference_id and never a secret or a
vendor payload, and metrics by vendor."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from functions.playment_callback import app as callback_app
from functions.submit_job import app as submit_app
from functions.textking_callback import app as textking_app
from handoff.observability import logger
from handoff.vendors.textking import sign
from tests.conftest import (
    PLAYMENT_API_KEY,
    PLAYMENT_CALLBACK_KEY,
    TEXTKING_ACCESS_TOKEN,
    TEXTKING_SIGNING_KEY,
    VENDOR_METRICS,
    LambdaContext,
    load_event,
)
from tests.fakes.textking import TextkingFake

pytestmark = pytest.mark.usefixtures("aws")

REF = "order-1042-img-7"
JOB_ID = "3f3e8675-ca69-46d7-aa34-96f90fcbb732"
MARKER = "PAYLOAD-MARKER-7f3a"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every log line, down to DEBUG, formatted as the functions format them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    level = logger.log_level
    logger.setLevel("DEBUG")
    logger._logger.addHandler(handler)
    yield stream
    logger._logger.removeHandler(handler)
    logger.setLevel(level)


def output(capfd: pytest.CaptureFixture[str]) -> str:
    sys.stdout.flush()  # metrics are printed to a buffered stdout
    return capfd.readouterr().out


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


def playment_callback(context: LambdaContext, annotations: list[dict[str, Any]], key: str) -> int:
    request = load_event("playment_callback/api_completed.json")
    request["body"] = json.dumps({"annotations": annotations})
    request["headers"]["x-playment-key"] = key
    request["multiValueHeaders"]["x-playment-key"] = [key]
    return int(callback_app.lambda_handler(request, context)["statusCode"])


def test_logs_carry_the_reference_id_and_never_a_key_or_a_payload(
    playment: HTTPServer, context: LambdaContext, logs: io.StringIO
) -> None:
    # given a job submitted with the API key, then a callback with the callback key and a ~200 KB result
    playment.expect_request("/v0/projects/proj-1/jobs", method="POST").respond_with_json(
        {"data": {"job_id": JOB_ID}, "success": True}
    )
    submit_app.lambda_handler(load_event("submit_job/direct_invoke_playment.json"), context)
    result = {"annotations": [{"label": MARKER, "points": list(range(40))} for _ in range(1500)]}
    completed = {"reference_id": REF, "job_id": JOB_ID, "status": "COMPLETED", "tag": "t", "result": result}

    assert playment_callback(context, [completed], PLAYMENT_CALLBACK_KEY) == 200

    # then the logs say what happened, for this job
    out = logs.getvalue()
    lines = json_lines(out)
    applied = [line for line in lines if line.get("message") == "annotation applied"]
    assert applied
    assert applied[0]["reference_id"] == REF
    assert applied[0]["correlation_id"] == REF
    # and hold neither key nor any part of the vendor's payload
    assert PLAYMENT_API_KEY not in out
    assert PLAYMENT_CALLBACK_KEY not in out
    assert MARKER not in out


def test_a_textking_token_never_reaches_the_logs(
    textking: TextkingFake, context: LambdaContext, logs: io.StringIO
) -> None:
    body = load_event("submit_job/direct_invoke_textking.json")
    body["order"] = True
    submit_app.lambda_handler(body, context)
    job = textking.only_job()
    request = load_event("textking_callback/api_form_plain.json")
    signature = sign(TEXTKING_SIGNING_KEY, body["reference_id"], "translation-pending")
    request["body"] = (
        f"project_id={job.project_id}&job_id={job.id}&extra_data={body['reference_id']}~translation-pending~{signature}"
    )

    assert textking_app.lambda_handler(request, context)["statusCode"] == 200

    out = logs.getvalue()
    assert any(line.get("reference_id") == body["reference_id"] for line in json_lines(out))
    assert signature not in out
    assert TEXTKING_ACCESS_TOKEN not in out
    assert TEXTKING_SIGNING_KEY not in out


def test_metrics_are_counted_by_vendor(
    playment: HTTPServer, context: LambdaContext, capfd: pytest.CaptureFixture[str]
) -> None:
    create = "/v0/projects/proj-1/jobs"
    # a retried submission, a rejected one, an accepted one
    playment.expect_ordered_request(create, method="POST").respond_with_data("busy", status=503)
    playment.expect_ordered_request(create, method="POST").respond_with_json(
        {"error": {"code": "FS_0003", "message": "bad"}, "success": False}, status=400
    )
    playment.expect_ordered_request(create, method="POST").respond_with_json(
        {"data": {"job_id": JOB_ID}, "success": True}
    )
    sample = load_event("submit_job/direct_invoke_playment.json")
    submit_app.lambda_handler({**sample, "reference_id": "m-retried"}, context)
    submit_app.lambda_handler({**sample, "reference_id": "m-rejected"}, context)
    submit_app.lambda_handler(sample, context)
    completed = {"reference_id": REF, "job_id": JOB_ID, "status": "COMPLETED", "tag": "t"}
    playment_callback(context, [completed], PLAYMENT_CALLBACK_KEY)  # applied
    playment_callback(context, [completed], PLAYMENT_CALLBACK_KEY)  # duplicate
    playment_callback(context, [{**completed, "reference_id": "nobody"}], PLAYMENT_CALLBACK_KEY)  # unknown
    playment_callback(context, [completed], "wrong-key")  # rejected

    emitted = {
        (metric["Name"], line.get("vendor"))
        for line in json_lines(output(capfd))
        if "_aws" in line
        for directive in line["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }
    expected = VENDOR_METRICS
    assert {(name, "playment") for name in expected} <= emitted
