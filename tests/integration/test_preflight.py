"""make preflight against the local stack: the checks run in SubmitJob's handler with the stack's
environment for it (as `make preflight STACK=local` runs them), over real HTTP to the sandboxes
and to the stack's own callback routes. A wrong configuration is the stack's SubmitJob
environment with one thing changed (a secret holding a wrong key, a wrong project or routing
field), so the shared stack itself is never altered."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import requests

from tests.conftest import ROOT
from tests.integration.conftest import Stack

FUNCTION = "SubmitJobFunction"


def preflight(stack: Stack, tmp_path: Path, **changes: str) -> tuple[int, list[str], str]:
    """Run `python -m ops.preflight --stack local` against the stack, its SubmitJob environment
    changed by `changes`. Returns (exit code, the check lines, stderr)."""
    state: dict[str, Any] = copy.deepcopy(stack.urls)
    state["function_environments"][FUNCTION].update(changes)
    path = tmp_path / f"state-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(state))
    done = subprocess.run(
        [sys.executable, "-m", "ops.preflight", "--stack", "local", "--local-state", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout.splitlines(), done.stderr


def line(lines: list[str], vendor: str, check: str) -> str:
    found = [ln for ln in lines if ln.split()[:1] == [vendor] and f"  {check}  " in ln]
    assert len(found) == 1, f"no one line for {vendor} {check} in:\n" + "\n".join(lines)
    return found[0]


def verdict(text: str) -> str:
    return next(word for word in ("ok", "FAILED", "skipped") if f"  {word}  " in text)


def wrong_secret(stack: Stack, **values: str) -> str:
    """A secret in the stack's AWS holding `values` (the stack's own secrets stay as they are),
    which SubmitJob's role may read, as an operator pointing it at another secret would grant."""
    name = f"preflight-{uuid.uuid4().hex[:8]}"
    arn = stack.aws("secretsmanager").create_secret(Name=name, SecretString=json.dumps(values))["ARN"]
    statement = {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": arn}
    stack.aws("iam").put_role_policy(
        RoleName=f"{FUNCTION}Role",
        PolicyName=name,
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    return name


def test_a_good_configuration_passes_every_check(stack: Stack, tmp_path: Path) -> None:
    # given the local stack as it runs (the demo's faults on: a probe may meet a 503 and is tried again)
    # when the operator runs the preflight
    code, lines, stderr = preflight(stack, tmp_path)

    # then every check is ok or skipped with its reason, and the exit code is 0
    assert lines[0].startswith("preflight of the local stack"), stderr
    for vendor, check in [
        ("playment", "api key"),
        ("playment", "project"),
        ("playment", "PlaymentBatchJobsPath"),
        ("playment", "PlaymentGetJobPath"),
        ("playment", "PlaymentAttachmentsPath"),
        ("playment", "PlaymentCreateJobPath"),
        ("playment", "routing field"),
        ("playment", "callback url"),
        ("textking", "access token"),
        ("textking", "callback url"),
        ("scale", "api key"),
        ("scale", "callback url"),
    ]:
        assert verdict(line(lines, vendor, check)) == "ok", line(lines, vendor, check)
    assert verdict(line(lines, "playment", "PlaymentCreateBatchPath")) == "skipped"
    assert "FAILED" not in "\n".join(lines)
    assert lines[-1].startswith("preflight: ok")
    assert code == 0
    # and the report is the only stdout: the header, one line per check, the verdict (no log lines)
    assert len(lines) == 17, "\n".join(lines)
    assert not [ln for ln in lines if ln.lstrip().startswith("{")]
    assert '"preflight check"' not in stderr  # INFO log lines are left out on the operator path
    # and the probe job was refused: the sandbox holds no job of the preflight's
    jobs = requests.get(f"{stack.urls['playment_sandbox']}/_sandbox/jobs", timeout=10).json()
    assert not [j for j in jobs if j["reference_id"].startswith("handoff-preflight-")]


def test_wrong_keys_and_token_fail_naming_the_vendor_and_the_fix(stack: Stack, tmp_path: Path) -> None:
    # given a SubmitJob whose secrets hold a wrong Playment key, TEXTKING token and Scale key
    changes = {
        "PLAYMENT_SECRET_NAME": wrong_secret(stack, api_key="not-the-key", callback_key="k"),
        "TEXTKING_SECRET_NAME": wrong_secret(stack, access_token="not-the-token", signing_key="s"),
        "SCALE_SECRET_NAME": wrong_secret(stack, api_key="test_not-the-key", callback_auth_key="c"),
    }

    # when the operator runs the preflight
    code, lines, _ = preflight(stack, tmp_path, **changes)

    # then each is one FAILED line naming its vendor and what to put where; the rest waits for the key
    playment = line(lines, "playment", "api key")
    assert verdict(playment) == "FAILED"
    assert "PlaymentSecret's api_key" in playment
    assert verdict(line(lines, "playment", "project")) == "skipped"
    textking = line(lines, "textking", "access token")
    assert verdict(textking) == "FAILED"
    assert "TextkingSecret's access_token" in textking
    scale = line(lines, "scale", "api key")
    assert verdict(scale) == "FAILED"
    assert "ScaleSecret's api_key" in scale
    # the callback routes do not depend on these keys
    assert verdict(line(lines, "textking", "callback url")) == "ok"
    assert "3 of" in lines[-1]
    assert "FAILED" in lines[-1]
    assert code == 1


def test_a_wrong_playment_project_fails_naming_the_parameter(stack: Stack, tmp_path: Path) -> None:
    # given a SubmitJob configured for a project Playment does not know
    code, lines, _ = preflight(stack, tmp_path, PLAYMENT_PROJECT_ID="no-such-project")

    # then the project check FAILED, saying which parameter to set
    project = line(lines, "playment", "project")
    assert verdict(project) == "FAILED"
    assert "no-such-project" in project
    assert "set PlaymentProjectId" in project
    assert code == 1


def test_a_wrong_playment_routing_field_fails_naming_the_parameter(stack: Stack, tmp_path: Path) -> None:
    # given a SubmitJob that routes with work_flow_id (the v1 field) against the v0 paths
    code, lines, _ = preflight(stack, tmp_path, PLAYMENT_ROUTING_FIELD="work_flow_id")

    # then the routing field check FAILED with Playment's FS_0005, naming the parameter and the other field
    routing = line(lines, "playment", "routing field")
    assert verdict(routing) == "FAILED"
    assert "FS_0005" in routing
    assert "set PlaymentRoutingField" in routing
    assert "tag" in routing
    assert code == 1
    # and nothing was created at Playment
    jobs = requests.get(f"{stack.urls['playment_sandbox']}/_sandbox/jobs", timeout=10).json()
    assert not [j for j in jobs if j["reference_id"].startswith("handoff-preflight-")]


def test_no_running_local_stack_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    # given no local stack's state file
    done = subprocess.run(
        [sys.executable, "-m", "ops.preflight", "--stack", "local", "--local-state", str(tmp_path / "none.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    # then one line says to start one, and the exit code is 2
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "make local" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_function_configuration_error_is_one_line_naming_it(stack: Stack, tmp_path: Path) -> None:
    for variable, value in [("PLAYMENT_CREATE_JOB_PATH", "/v0/jobs"), ("PLAYMENT_API_GENERATION", "v2")]:
        code, _lines, stderr = preflight(stack, tmp_path, **{variable: value})

        assert code == 2
        assert "Traceback" not in stderr
        said = stderr.strip().splitlines()
        assert len(said) == 1, stderr
        assert said[0].startswith("preflight: SubmitJobFunction failed before it could check (ConfigurationError: ")
        assert variable in said[0]
