"""Each vendor's preflight checks against its sandbox over HTTP (moto in-process holds the
secrets), and what `make preflight` prints and exits with (ops/preflight.py)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from pytest_httpserver import HTTPServer

from handoff import preflight
from handoff.vendors.checks import FAILED, OK, SKIPPED, Check
from local.sandboxes.playment import PlaymentSandbox
from local.sandboxes.scale import ScaleSandbox
from local.sandboxes.server import BackgroundServer
from local.sandboxes.textking import TextkingSandbox
from ops import preflight as tool
from tests.conftest import ROOT, TEXTKING_ACCESS_TOKEN, TEXTKING_SIGNING_KEY, reset_function_caches

pytestmark = pytest.mark.usefixtures("aws")
SCALE_API_KEY = "live_0123456789abcdef"
UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "missing or wrong key", "details": []}}


# make's own "make: *** [...] Error N" line (make[1] when make test runs it nested)
MAKES_OWN = re.compile(r"make(\[\d+\])?: \*\*\*")


@pytest.fixture
def vendors(
    aws: None, sandbox: PlaymentSandbox, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer
) -> Iterator[None]:
    """Every vendor's sandbox on 127.0.0.1, the stack's variables pointing at them, and the stack's
    callback routes stood in for by a server that answers them as Handoff does: 401 unauthenticated."""
    textking = TextkingSandbox(token=TEXTKING_ACCESS_TOKEN)
    scale = ScaleSandbox(api_key=SCALE_API_KEY)
    boto3.client("secretsmanager").create_secret(
        Name="handoff/scale", SecretString=json.dumps({"api_key": SCALE_API_KEY, "callback_auth_key": "c"})
    )
    for name in ("playment", "textking", "scale"):
        httpserver.expect_request(f"/v1/callbacks/{name}", method="POST").respond_with_json(UNAUTHORIZED, status=401)
    with BackgroundServer(textking) as tk, BackgroundServer(scale) as sc:
        monkeypatch.setenv("TEXTKING_BASE_URL", f"{tk.url}/v1")
        monkeypatch.setenv("TEXTKING_CALLBACK_URL", httpserver.url_for("/v1/callbacks/textking"))
        monkeypatch.setenv("SCALE_SECRET_NAME", "handoff/scale")
        monkeypatch.setenv("SCALE_BASE_URL", f"{sc.url}/v1")
        monkeypatch.setenv("SCALE_PROJECT", "default-project")
        monkeypatch.setenv("SCALE_CALLBACK_URL", httpserver.url_for("/v1/callbacks/scale"))
        monkeypatch.setenv("VENDOR_READ_TIMEOUT_SECONDS", "2")
        reset_function_caches()
        yield
    textking.stop()
    scale.stop()
    reset_function_caches()


def checks(httpserver: HTTPServer) -> dict[tuple[str, str], Check]:
    found = preflight.run({"playment": httpserver.url_for("/v1/callbacks/playment")})
    return {(c.vendor, c.name): c for c in found}


def put_secret(name: str, value: dict[str, str]) -> None:
    boto3.client("secretsmanager").put_secret_value(SecretId=name, SecretString=json.dumps(value))


# --- each vendor against its sandbox ------------------------------------------------------------


@pytest.mark.usefixtures("vendors")
def test_a_good_configuration_is_ok_for_every_vendor(sandbox: PlaymentSandbox, httpserver: HTTPServer) -> None:
    seen = checks(httpserver)

    assert seen["textking", "secret"].verdict == OK
    assert seen["textking", "access token"].verdict == OK
    assert seen["textking", "callback url"].verdict == OK
    assert seen["scale", "api key"].verdict == OK
    assert seen["scale", "project"].verdict == SKIPPED  # no side-effect-free read of a project
    assert seen["scale", "callback url"].verdict == OK
    for name in ("api key", "project", "PlaymentBatchJobsPath", "PlaymentGetJobPath", "PlaymentAttachmentsPath"):
        assert seen["playment", name].verdict == OK, seen["playment", name]
    assert seen["playment", "callback url"].verdict == OK
    assert seen["playment", "PlaymentCreateBatchPath"].verdict == SKIPPED
    assert seen["playment", "routing field"].verdict == OK
    assert not sandbox.jobs  # the probe job was refused: nothing created


@pytest.mark.usefixtures("vendors")
def test_wrong_keys_are_failed_naming_where_the_key_goes(httpserver: HTTPServer) -> None:
    put_secret(os.environ["PLAYMENT_SECRET_NAME"], {"api_key": "wrong", "callback_key": "k"})
    put_secret(os.environ["TEXTKING_SECRET_NAME"], {"access_token": "wrong", "signing_key": TEXTKING_SIGNING_KEY})
    put_secret("handoff/scale", {"api_key": "wrong", "callback_auth_key": "c"})

    seen = checks(httpserver)

    assert seen["playment", "api key"].verdict == FAILED
    assert "PlaymentSecret's api_key" in seen["playment", "api key"].detail
    assert seen["playment", "project"].verdict == SKIPPED
    assert seen["textking", "access token"].verdict == FAILED
    assert "TextkingSecret's access_token" in seen["textking", "access token"].detail
    assert seen["scale", "api key"].verdict == FAILED
    assert "ScaleSecret's api_key" in seen["scale", "api key"].detail


@pytest.mark.usefixtures("vendors")
def test_a_textking_secret_without_a_token_says_so(httpserver: HTTPServer) -> None:
    put_secret(os.environ["TEXTKING_SECRET_NAME"], {"signing_key": TEXTKING_SIGNING_KEY})

    seen = checks(httpserver)

    assert seen["textking", "secret"].verdict == FAILED
    assert "no access_token" in seen["textking", "secret"].detail
    assert seen["textking", "access token"].verdict == SKIPPED


@pytest.mark.usefixtures("vendors")
def test_a_wrong_playment_path_is_failed_naming_its_parameter(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAYMENT_GET_JOB_PATH", "/v0/project/{project_id}/job/{job_id}")  # not Playment's
    reset_function_caches()

    seen = checks(httpserver)

    assert seen["playment", "PlaymentGetJobPath"].verdict == FAILED
    assert "set PlaymentGetJobPath" in seen["playment", "PlaymentGetJobPath"].detail
    assert seen["playment", "PlaymentBatchJobsPath"].verdict == OK


@pytest.mark.usefixtures("vendors")
def test_a_wrong_playment_project_is_failed(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYMENT_PROJECT_ID", "no-such-project")
    reset_function_caches()

    seen = checks(httpserver)

    assert seen["playment", "project"].verdict == FAILED
    assert "set PlaymentProjectId" in seen["playment", "project"].detail


@pytest.mark.usefixtures("vendors")
def test_a_wrong_playment_routing_field_is_failed(
    sandbox: PlaymentSandbox, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAYMENT_ROUTING_FIELD", "work_flow_id")  # the v1 field, against the v0 paths
    reset_function_caches()

    seen = checks(httpserver)

    assert seen["playment", "routing field"].verdict == FAILED
    assert "set PlaymentRoutingField" in seen["playment", "routing field"].detail
    assert not sandbox.jobs


@pytest.mark.usefixtures("vendors")
def test_a_callback_url_that_is_not_handoffs_route_is_failed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/elsewhere", method="POST").respond_with_json({"message": "Forbidden"}, status=403)

    found = preflight.run({"playment": httpserver.url_for("/elsewhere")})

    playment = next(c for c in found if (c.vendor, c.name) == ("playment", "callback url"))
    assert playment.verdict == FAILED
    assert "HTTP 403" in playment.detail


@pytest.mark.usefixtures("vendors")
def test_without_the_stacks_callback_url_playments_is_skipped() -> None:
    found = preflight.run(None)

    playment = next(c for c in found if (c.vendor, c.name) == ("playment", "callback url"))
    assert playment.verdict == SKIPPED


def test_a_vendor_whose_sandbox_is_down_fails_without_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    # given Playment and TEXTKING at an address nobody serves (the conftest's default); no pause between tries
    monkeypatch.setattr("handoff.vendors.checks.time.sleep", lambda seconds: None)
    monkeypatch.setenv("TEXTKING_CALLBACK_URL", "http://127.0.0.1:9/v1/callbacks/textking")
    reset_function_caches()

    found = preflight.run(None)

    key = next(c for c in found if (c.vendor, c.name) == ("playment", "api key"))
    assert key.verdict == FAILED
    assert "could not check" in key.detail


# --- ops/preflight.py: what the operator sees --------------------------------------------------


def answer(*checks: Check) -> dict[str, Any]:
    return {"ok": all(c.verdict != FAILED for c in checks), "checks": [c.as_dict() for c in checks]}


def test_the_report_is_one_line_per_check_and_exits_1_on_a_failure() -> None:
    out = io.StringIO()
    code = tool.report(
        tool.checks_of(
            answer(Check("alpha", "api key", OK, "accepted"), Check("beta", "token", FAILED, "refused: put it there"))
        ),
        out,
    )
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["alpha", "api", "key", "ok", "accepted"]
    assert lines[1].split()[:3] == ["beta", "token", "FAILED"]
    assert "1 of 2 checks FAILED (beta token)" in lines[2]
    assert code == 1


def test_a_report_with_nothing_failed_exits_0() -> None:
    out = io.StringIO()
    assert tool.report([Check("alpha", "api key", OK, "ok"), Check("alpha", "x", SKIPPED, "why")], out) == 0
    assert out.getvalue().splitlines()[-1] == "preflight: ok, 1 checks passed, 1 skipped (each says why)"


def deployed(stubs: dict[str, Stubber]) -> Any:
    class Session:
        region_name = "us-east-1"

        def client(self, service: str) -> Any:
            return stubs[service].client

    return Session()


def test_a_stack_that_does_not_exist_is_one_line_saying_what_to_do() -> None:
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    stub = Stubber(cloudformation)
    stub.add_client_error("describe_stacks", "ValidationError", "Stack with id nope does not exist")
    with stub, pytest.raises(tool.PreflightError) as refused:
        tool.run_deployed(deployed({"cloudformation": stub}), "nope")
    assert "STACK=" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_deployed_submit_job_is_invoked_with_the_stacks_callback_urls() -> None:
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    lambda_ = boto3.client("lambda", region_name="us-east-1")
    cfn, lam = Stubber(cloudformation), Stubber(lambda_)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:handoff-SubmitJob"
    outputs = {"SubmitJobFunctionArn": arn, "PlaymentCallbackUrl": "https://api.example.com/v1/callbacks/playment"}
    cfn.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "handoff",
                    "CreationTime": "2026-11-30T00:00:00Z",
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
                }
            ]
        },
        {"StackName": "handoff"},
    )
    payload = json.dumps(answer(Check("alpha", "api key", OK, "accepted"))).encode()
    expected_event = {
        "action": "preflight",
        "callback_urls": {"playment": "https://api.example.com/v1/callbacks/playment"},
    }
    lam.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": io.BytesIO(payload)},  # type: ignore[dict-item]
        {"FunctionName": arn, "Payload": json.dumps(expected_event).encode()},
    )
    with cfn, lam:
        got = tool.run_deployed(deployed({"cloudformation": cfn, "lambda": lam}), "handoff")
    assert tool.checks_of(got) == [Check("alpha", "api key", OK, "accepted")]


def test_a_function_that_fails_before_checking_is_one_line() -> None:
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    lambda_ = boto3.client("lambda", region_name="us-east-1")
    cfn, lam = Stubber(cloudformation), Stubber(lambda_)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:handoff-SubmitJob"
    cfn.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "handoff",
                    "CreationTime": "2026-11-30T00:00:00Z",
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": "SubmitJobFunctionArn", "OutputValue": arn}],
                }
            ]
        },
    )
    said = {"errorType": "ConfigurationError", "errorMessage": "PLAYMENT_PROJECT_ID: field required"}
    lam.add_response(
        "invoke",
        {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(said).encode())},  # type: ignore[dict-item]
    )
    with cfn, lam, pytest.raises(tool.PreflightError) as failed:
        tool.run_deployed(deployed({"cloudformation": cfn, "lambda": lam}), "handoff")
    assert "ConfigurationError: PLAYMENT_PROJECT_ID" in str(failed.value)
    assert "\n" not in str(failed.value)


def test_an_old_function_without_the_action_says_to_deploy() -> None:
    with pytest.raises(tool.PreflightError, match="make deploy"):
        tool.checks_of({"error": {"code": "invalid_request"}})


def test_the_cli_without_a_running_local_stack_is_one_line_and_exit_2(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tool.main(["--stack", "local", "--local-state", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "make local" in err


def test_a_state_file_of_a_stopped_stack_is_not_a_running_stack(tmp_path: Any) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"api": "http://127.0.0.1:1/v1", "pid": 2**22 + 12345}))
    assert tool.local_state(state) is None
    state.write_text(json.dumps({"api": "http://127.0.0.1:1/v1", "pid": os.getpid()}))
    assert tool.local_state(state) is not None


def make(target: str, *variables: str) -> subprocess.CompletedProcess[str]:
    """`make <target> VAR=...` as an operator runs it, with this venv, no AWS credentials."""
    venv = Path(sys.executable).parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_CONFIG_FILE="/nonexistent")
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
    return subprocess.run(
        ["make", "--no-print-directory", "-o", f"{venv}/.installed", target, f"VENV={venv}", *variables],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_preflight_hands_the_stack_name_to_the_tool_as_one_word() -> None:
    done = make("preflight", "STACK=bad name!'x")

    assert done.returncode == 2  # make's code for a failing recipe (README: the tool's own is in its last line)
    assert "usage:" not in done.stderr
    assert "preflight of stack bad name!'x" in done.stdout
    said = [ln for ln in done.stderr.splitlines() if not MAKES_OWN.match(ln)]
    assert len(said) == 1
    assert said[0].startswith("preflight: no AWS credentials")
    assert "Error 2" in done.stderr


def test_make_replay_hands_the_key_to_the_tool_as_one_word() -> None:
    done = make("replay", "STACK=bad name!", "KEY=raw/a b'c")

    assert done.returncode == 2
    said = [ln for ln in done.stderr.splitlines() if not MAKES_OWN.match(ln)]
    assert len(said) == 1, done.stderr
    assert said[0].startswith("replay: ")


@pytest.mark.usefixtures("vendors")
def test_a_secret_without_the_key_says_so_not_that_the_vendor_refused_it(httpserver: HTTPServer) -> None:
    put_secret(os.environ["PLAYMENT_SECRET_NAME"], {"callback_key": "k"})
    put_secret("handoff/scale", {"callback_auth_key": "c"})

    seen = checks(httpserver)

    for vendor in ("playment", "scale"):
        assert seen[vendor, "api key"].verdict == FAILED
        assert "has no api_key" in seen[vendor, "api key"].detail
        assert "refused" not in seen[vendor, "api key"].detail


@pytest.mark.usefixtures("vendors")
def test_a_wrong_key_is_one_sentence(httpserver: HTTPServer) -> None:
    put_secret(os.environ["PLAYMENT_SECRET_NAME"], {"api_key": "wrong", "callback_key": "k"})

    detail = checks(httpserver)["playment", "api key"].detail

    assert detail.count("refused the API key") == 1
    assert detail.count("check") == 0


@pytest.mark.usefixtures("vendors")
def test_a_path_playment_does_not_serve_says_to_fix_the_generation(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAYMENT_API_GENERATION", "docs")  # the sandbox speaks readme
    reset_function_caches()

    seen = checks(httpserver)

    project = seen["playment", "project"].detail
    assert seen["playment", "project"].verdict == FAILED
    assert "does not know project" not in project
    assert "set PlaymentApiGeneration" in project
