"""make replay: an archived callback goes through the callback function again."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from pytest_httpserver import HTTPServer

from functions.playment_callback import app as callback_app
from functions.submit_job import app as submit_app
from ops import replay
from tests.conftest import PLAYMENT_CALLBACK_KEY, LambdaContext, archived, load_event, table_items

pytestmark = pytest.mark.usefixtures("aws")

REF = "order-1042-img-7"
JOB_ID = "3f3e8675-ca69-46d7-aa34-96f90fcbb732"


def test_a_callback_that_came_before_its_job_is_applied_when_replayed(
    playment: HTTPServer, context: LambdaContext
) -> None:
    # given a COMPLETED callback that arrived while the job was unknown here: archived, not applied
    request = load_event("playment_callback/api_completed.json")
    request["body"] = json.dumps(
        {"annotations": [{"reference_id": REF, "job_id": JOB_ID, "status": "COMPLETED", "result": {"ok": 1}}]}
    )
    assert json.loads(callback_app.lambda_handler(request, context)["body"])["unknown"] == 1
    ((key, body),) = archived("raw/playment/").items()
    # and the job submitted since
    playment.expect_request("/v0/projects/proj-1/jobs", method="POST").respond_with_json(
        {"data": {"job_id": JOB_ID}, "success": True}
    )
    submit_app.lambda_handler(load_event("submit_job/direct_invoke_playment.json"), context)

    # when the archived body is replayed through the callback function
    event = replay.build_event(replay.vendor_of(key), body, {"callback_key": PLAYMENT_CALLBACK_KEY})
    answer = callback_app.lambda_handler(event, context)

    # then it is applied, exactly as a live callback would have been
    assert (answer["statusCode"], json.loads(answer["body"])["applied"]) == (200, 1)
    (job,) = table_items()
    assert (job["status"], job["result"]) == ("COMPLETED", {"ok": 1})
    # and replaying it once more is a duplicate
    assert json.loads(callback_app.lambda_handler(event, context)["body"])["duplicate"] == 1


def test_replay_invokes_the_stacks_callback_function_with_the_event() -> None:
    client = boto3.client("lambda", region_name="us-east-1")
    event = replay.build_event("textking", b"project_id=p&job_id=j&extra_data=t")
    with Stubber(client) as stub:
        payload: Any = io.BytesIO(json.dumps({"statusCode": 200, "body": '{"duplicate": 1}'}).encode())
        stub.add_response(
            "invoke",
            {"StatusCode": 200, "Payload": payload},
            {"FunctionName": "arn:aws:lambda:us-east-1:1:function:tk", "Payload": json.dumps(event).encode()},
        )
        answer = replay.invoke(client, "arn:aws:lambda:us-east-1:1:function:tk", event)
    assert answer["statusCode"] == 200
    assert event["isBase64Encoded"] is True
    assert event["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("key", ["results/playment/x.json", "raw/acme/x.json", "raw"])
def test_only_archived_callbacks_can_be_replayed(key: str) -> None:
    with pytest.raises(replay.ReplayError):
        replay.vendor_of(key)
