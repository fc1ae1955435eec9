"""`make local SAM_LOCAL=1` for sam local (local/samples.py), without Docker: the env-vars file names
every function of the template with exactly the variables the template declares for it and the
local stack's values, reachable at the container address; and every events/ sample, run by its
function with the env file's variables (as `sam local invoke -e events/... --env-vars` runs it),
gives a meaningful answer: no 5xx, no function error, no 401 from a callback.

The container address here is 127.0.0.2 (loopback, so no Docker is needed, yet not the 127.0.0.1
the stack's servers listen on): reaching moto and the sandboxes there proves they are served at
the container address, as they are at docker0's with `make local SAM_LOCAL=1`."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from local.aws import REGION, endpoint_client, translate
from local.process import StackProcess
from local.runtime import FunctionRuntime, InvocationError
from local.samples import sample_events
from local.sandboxes.base import local_vendors
from tests.conftest import ROOT

HOST = "127.0.0.2"
# What sam local gives a function besides the declared variables (its defaults without a profile).
SAM_LOCAL_ENVIRONMENT = {
    "AWS_SAM_LOCAL": "true",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "defaultkey",
    "AWS_SECRET_ACCESS_KEY": "defaultsecret",
}
# Answers of a direct invocation that say the stack, not the request, is wrong.
BROKEN = {"internal_error", "vendor_unavailable", "vendor_auth_failed", "not_kept"}


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    path = tmp_path_factory.mktemp("sam") / "env.json"
    # as `make local SAM_LOCAL=1` starts it (the reconciler leaves the samples' jobs alone an hour)
    process = StackProcess(
        "--for-containers", HOST, "--env-vars-file", str(path), "--no-event-capture", "--reconcile-after", "3600"
    )
    try:
        yield path, process.urls
    finally:
        process.stop()


def template_functions() -> dict[str, dict[str, Any]]:
    """Each function's logical id -> its translated properties (Globals merged)."""
    template = translate(ROOT / "template.yaml")
    return {
        logical: resource["Properties"]
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def variables(env_file: tuple[Path, dict[str, Any]]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = json.loads(env_file[0].read_text())
    return found


def test_the_env_file_names_every_function_with_exactly_its_declared_variables(
    env_file: tuple[Path, dict[str, Any]],
) -> None:
    env = variables(env_file)
    functions = template_functions()
    assert set(env) == set(functions)
    for logical, properties in functions.items():
        declared = set(properties.get("Environment", {}).get("Variables", {}))
        assert set(env[logical]) == declared, logical
        assert "AWS_ENDPOINT_URL" in declared, logical


def test_the_env_files_values_are_the_local_stacks_and_reach_it_at_the_container_address(
    env_file: tuple[Path, dict[str, Any]],
) -> None:
    env = variables(env_file)
    _, urls = env_file
    every = {name: value for own in env.values() for name, value in own.items()}
    endpoint = every["AWS_ENDPOINT_URL"]
    assert endpoint == urls["aws_endpoint"].replace("127.0.0.1", HOST)
    # no URL a container would follow points at 127.0.0.1 (the container's own loopback)
    assert not [name for name, value in every.items() if "127.0.0.1" in value]
    aws = {
        service: endpoint_client(endpoint, service) for service in ("dynamodb", "sqs", "s3", "ssm", "secretsmanager")
    }
    for name in ("JOBS_TABLE_NAME", "BATCHES_TABLE_NAME", "RATE_LIMIT_TABLE_NAME"):
        assert aws["dynamodb"].describe_table(TableName=every[name])["Table"]["TableStatus"] == "ACTIVE"
    assert every["JOBS_TABLE_NAME"] == urls["jobs_table"]
    for name in ("SUBMISSION_QUEUE_URL", "CALLBACK_RETRY_QUEUE_URL"):
        assert aws["sqs"].get_queue_attributes(QueueUrl=every[name], AttributeNames=["QueueArn"])["Attributes"]
    aws["s3"].head_bucket(Bucket=every["RESULTS_BUCKET_NAME"])
    assert every["RESULTS_BUCKET_NAME"] == urls["results_bucket"]
    for name, value in every.items():
        if name.endswith("_CALLBACK_URL_PARAMETER"):
            vendor = name.removesuffix("_CALLBACK_URL_PARAMETER").lower()
            assert aws["ssm"].get_parameter(Name=value)["Parameter"]["Value"] == urls[f"{vendor}_callback_url"]
    # each vendor's secret holds the keys its events/ samples carry; its API answers at the address
    for vendor, kind in local_vendors().items():
        secret = json.loads(
            aws["secretsmanager"].get_secret_value(SecretId=every[f"{vendor.upper()}_SECRET_NAME"])["SecretString"]
        )
        assert kind.sample_keys, vendor
        assert kind.sample_keys.items() <= secret.items(), vendor
        base = urlsplit(every[f"{vendor.upper()}_BASE_URL"])
        assert base.hostname == HOST
        assert requests.get(f"{base.scheme}://{base.netloc}/_sandbox/jobs", timeout=10).status_code == 200
    # the stack's servers still listen on 127.0.0.1 only (forwarded at HOST, nowhere else)
    port = int(urlsplit(urls["aws_endpoint"]).port or 0)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.3", port), timeout=2):
        pass


def test_every_sample_event_gets_a_meaningful_answer(
    env_file: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = variables(env_file)
    # A container has the env file's variables and sam local's, not this test process's (tests/conftest.py)
    for name in list(os.environ):
        if (
            name.startswith(("AWS_", "POWERTOOLS_", "PLAYMENT_", "TEXTKING_", "SCALE_"))
            or name in env["SubmitJobFunction"]
        ):
            monkeypatch.delenv(name)
    sam = _sam_functions()
    runtimes = {
        logical: FunctionRuntime(
            logical,
            f"functions.{folder}.app",
            "lambda_handler",
            {**env[logical], **SAM_LOCAL_ENVIRONMENT},
            timeout=60,
            concurrency=1,
            logs_to_stderr=True,
        )
        for folder, logical in sam.items()
    }
    # The callbacks first, on the jobs as the stack holds them: each is applied.
    first = [
        "get_job/api_get.json",
        "playment_callback/api_completed.json",
        "scale_callback/api_completed.json",
        "textking_callback/api_form_base64.json",
    ]
    samples = [ROOT / "events" / name for name in first]
    samples += [path for path in sample_events() if path not in samples]
    answers: dict[str, Any] = {}
    try:
        for path in samples:
            name = f"{path.parent.name}/{path.name}"
            event = json.loads(path.read_text())
            try:
                answers[name] = runtimes[sam[path.parent.name]].invoke(event)
            except InvocationError as exc:
                pytest.fail(f"{name}: the function failed: {exc}")
    finally:
        for runtime in runtimes.values():
            runtime.stop()
    problems = []
    for name, answer in answers.items():
        if isinstance(answer, dict) and "statusCode" in answer:
            status = answer["statusCode"]
            if status >= 500 or (status == 401 and "callback" in name):
                problems.append(f"{name}: {status} {answer.get('body', '')[:200]}")
        elif isinstance(answer, dict) and answer.get("error", {}).get("code") in BROKEN:
            problems.append(f"{name}: {answer['error']}")
        elif isinstance(answer, dict) and answer.get("batchItemFailures"):
            problems.append(f"{name}: {answer}")
    assert not problems, "\n".join(problems)

    def body(name: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(answers[name]["body"])
        return found

    assert answers["get_job/api_get.json"]["statusCode"] == 200
    assert body("get_job/api_get.json")["status"] == "SUBMITTED"
    assert answers["get_job/api_get_encoded_id.json"]["statusCode"] == 200
    for callback in first[1:]:
        assert answers[callback]["statusCode"] == 200, answers[callback]
        assert body(callback).get("applied") == 1, (callback, body(callback))
    assert answers["submit_job/api_get_batch.json"]["statusCode"] == 200


def _sam_functions() -> dict[str, str]:
    """events/ folder -> the logical id of the function whose code is functions/<folder>/."""
    from local.cfn_yaml import yaml_parse

    resources = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]
    return {
        Path(resource["Properties"]["CodeUri"]).name: logical
        for logical, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
