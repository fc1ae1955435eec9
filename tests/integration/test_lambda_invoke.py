"""The local stack's Lambda Invoke API (what `sam local start-lambda` serves): every function by
its logical id or ARN, with its own environment, through boto3 and through the request the AWS CLI
sends (`aws lambda invoke`), answering as Lambda does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.conftest import ROOT
from tests.integration.conftest import Stack


def lambda_client(stack: Stack) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=stack.urls["lambda_endpoint"],
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}),
    )


def submit_request(reference_id: str) -> dict[str, Any]:
    request: dict[str, Any] = json.loads((ROOT / "events/submit_job/direct_invoke_playment.json").read_text())
    return {**request, "reference_id": reference_id}


def test_submit_job_by_direct_invoke_with_boto3(stack: Stack) -> None:
    # given a submission as the design's direct-invoke callers send it
    reference_id = f"invoke-{uuid.uuid4().hex[:8]}"

    # when it is invoked by the function's logical id, as with sam local start-lambda
    response = lambda_client(stack).invoke(
        FunctionName="SubmitJobFunction", Payload=json.dumps(submit_request(reference_id)).encode()
    )

    # then Lambda's answer carries the job, and the job is in the table, as over the API
    answer = json.loads(response["Payload"].read())
    assert (response["StatusCode"], response.get("FunctionError")) == (200, None)
    assert answer["reference_id"] == reference_id
    # (the sandbox's callback may overtake SubmitJob's own verdict write: the job as it then stands,
    # FAILED too when the sandbox, with --faults, fails the job)
    assert answer["status"] in {"QUEUED", "SUBMITTED", "IN_PROGRESS", "DELIVERED", "COMPLETED", "FAILED"}
    assert stack.call("GET", f"/jobs/{reference_id}").json()["reference_id"] == reference_id


def test_every_function_is_invocable_by_its_arn_with_its_own_environment(stack: Stack) -> None:
    client = lambda_client(stack)
    outputs = stack.urls["outputs"]
    # GetJob by the ARN the stack's outputs give (as an operator tool reads them), with an API event
    event = json.loads((ROOT / "events/get_job/api_get.json").read_text())
    event["pathParameters"] = {"reference_id": "no-such-job-here"}
    response = client.invoke(FunctionName=outputs["GetJobFunctionArn"], Payload=json.dumps(event).encode())
    answer = json.loads(response["Payload"].read())
    assert (answer["statusCode"], json.loads(answer["body"])["error"]["code"]) == (404, "job_not_found")

    # the Reconciler, which no route serves, with its schedule's event
    scheduled = (ROOT / "events/reconciler/scheduled.json").read_bytes()
    response = client.invoke(FunctionName="ReconcilerFunction", Payload=scheduled)
    assert response.get("FunctionError") is None
    assert "errors" in json.loads(response["Payload"].read())


def test_a_function_error_is_lambdas_unhandled_error(stack: Stack) -> None:
    # when the worker is handed an event that is no SQS batch
    response = lambda_client(stack).invoke(FunctionName="SubmissionWorkerFunction", Payload=b'{"Records": 5}')

    # then the answer is 200 with Lambda's error header and body
    error = json.loads(response["Payload"].read())
    assert (response["StatusCode"], response["FunctionError"]) == (200, "Unhandled")
    assert set(error) >= {"errorMessage", "errorType", "stackTrace"}
    assert error["errorType"] != ""


def test_the_alias_every_trigger_invokes_is_invocable_by_name_and_by_qualifier(stack: Stack) -> None:
    # given the template publishes every function under the alias "live" (SnapStart needs it)
    client = lambda_client(stack)
    scheduled = (ROOT / "events/reconciler/scheduled.json").read_bytes()

    # when the Reconciler is invoked through its alias, in the name and as the Qualifier parameter
    by_name = client.invoke(FunctionName="ReconcilerFunction:live", Payload=scheduled)
    by_qualifier = client.invoke(FunctionName="ReconcilerFunction", Qualifier="live", Payload=scheduled)

    # then both run the function
    for response in (by_name, by_qualifier):
        assert (response["StatusCode"], response.get("FunctionError")) == (200, None)
        assert "errors" in json.loads(response["Payload"].read())


def test_refusals_are_lambdas(stack: Stack) -> None:
    client = lambda_client(stack)
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="Function not found"):
        client.invoke(FunctionName="NoSuchFunction", Payload=b"{}")
    arn = "arn:aws:lambda:us-east-1:123456789012:function"
    with pytest.raises(client.exceptions.ResourceNotFoundException, match=f"{arn}:SubmitJobFunction:7$"):
        client.invoke(FunctionName="SubmitJobFunction:7", Payload=b"{}")  # no version is published here
    with pytest.raises(client.exceptions.ResourceNotFoundException, match=f"{arn}:GetJobFunction:nope$"):
        client.invoke(FunctionName="GetJobFunction", Qualifier="nope", Payload=b"{}")
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="does not match"):
        client.invoke(FunctionName="GetJobFunction:live", Qualifier="$LATEST", Payload=b"{}")
    with pytest.raises(client.exceptions.ResourceNotFoundException):  # another account's function
        client.invoke(FunctionName="arn:aws:lambda:us-east-1:999999999999:function:GetJobFunction", Payload=b"{}")
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="GetJobFunction", Payload=b"{not json")
    assert client.invoke(FunctionName="GetJobFunction", InvocationType="DryRun")["StatusCode"] == 204


def test_an_event_invocation_is_accepted_and_runs_after_the_answer(stack: Stack) -> None:
    reference_id = f"invoke-event-{uuid.uuid4().hex[:8]}"
    response = lambda_client(stack).invoke(
        FunctionName="SubmitJobFunction",
        InvocationType="Event",
        Payload=json.dumps(submit_request(reference_id)).encode(),
    )
    assert (response["StatusCode"], response["Payload"].read()) == (202, b"")
    deadline = time.monotonic() + 60
    while stack.call("GET", f"/jobs/{reference_id}").status_code == 404:
        assert time.monotonic() < deadline, "the Event invocation never ran"
        time.sleep(0.5)


def test_the_aws_cli_request_shape(stack: Stack) -> None:
    # given the request `aws lambda invoke --endpoint-url <lambda_endpoint> --function-name
    # SubmitJobFunction --payload file://... out.json` sends, as captured from aws-cli 1.45.11 (v2
    # sends the same: no Content-Type, the payload as bytes, X-Amz-Invocation-Type only when given,
    # signed with whatever credentials the CLI has)
    reference_id = f"invoke-cli-{uuid.uuid4().hex[:8]}"
    url = f"{stack.urls['lambda_endpoint']}/2015-03-31/functions/SubmitJobFunction/invocations"
    body = json.dumps(submit_request(reference_id)).encode()
    headers = {
        "Accept-Encoding": "identity",
        "User-Agent": "aws-cli/1.45.11 md/Botocore#1.43.11 ua/2.1 os/linux cfg/retry-mode#legacy botocore/1.43.11",
        "amz-sdk-invocation-id": str(uuid.uuid4()),
        "amz-sdk-request": "attempt=1",
    }
    request = AWSRequest("POST", url, data=body, headers=headers)
    SigV4Auth(Credentials("local", "local"), "lambda", "us-east-1").add_auth(request)

    # when it is sent
    answer = requests.post(url, data=body, headers=dict(request.headers), timeout=60)

    # then the CLI would write the job to out.json and print StatusCode 200 and the executed version
    assert answer.status_code == 200
    assert answer.headers["X-Amz-Executed-Version"] == "$LATEST"
    assert "X-Amz-Function-Error" not in answer.headers
    assert answer.json()["reference_id"] == reference_id
    # and an unknown function is the CLI's ResourceNotFoundException
    missing = requests.post(url.replace("SubmitJobFunction", "Nope"), data=b"{}", timeout=30)
    assert (missing.status_code, missing.headers["x-amzn-ErrorType"]) == (404, "ResourceNotFoundException")


@pytest.mark.skipif(shutil.which("aws") is None, reason="no AWS CLI on PATH (the request shape is tested above)")
def test_aws_lambda_invoke_with_the_cli_itself(stack: Stack, tmp_path: Path) -> None:
    # given the README's command, with the stack's credentials in the environment
    reference_id = f"invoke-awscli-{uuid.uuid4().hex[:8]}"
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(submit_request(reference_id)))
    version = subprocess.run(["aws", "--version"], capture_output=True, text=True, timeout=60)
    binary_format = (
        [] if "aws-cli/1." in version.stdout + version.stderr else ["--cli-binary-format", "raw-in-base64-out"]
    )
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }

    # when it runs
    done = subprocess.run(
        [
            "aws", "lambda", "invoke", "--endpoint-url", stack.urls["lambda_endpoint"],
            "--function-name", "SubmitJobFunction", *binary_format,
            "--payload", f"file://{payload}", str(tmp_path / "answer.json"),
        ],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    # then it prints StatusCode 200 and writes the job
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["StatusCode"] == 200
    assert json.loads((tmp_path / "answer.json").read_text())["reference_id"] == reference_id


def test_a_null_payload_is_an_event_like_any_other_never_a_dead_container(stack: Stack) -> None:
    client = lambda_client(stack)

    # when an API-only function and SubmitJob are invoked with the JSON payload null
    get_job = client.invoke(FunctionName="GetJobFunction", Payload=b"null")
    submit = client.invoke(FunctionName="SubmitJobFunction", Payload=b"null")

    # then each answers as its code does: no function error, no container lost
    assert "FunctionError" not in get_job
    assert json.loads(json.loads(get_job["Payload"].read())["body"])["error"]["code"] == "not_an_api_request"
    assert "FunctionError" not in submit
    assert json.loads(submit["Payload"].read())["error"]["code"] == "invalid_request"
