"""make replay and make redrive on the local stack, as an operator runs them (`python -m ops.replay
--stack local`, found through the stack's state file), and the one-line errors every operator
tool gives instead of a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from handoff.models import HistoryEntry, Job, JobError, JobStatus
from handoff.store import DynamoJobStore, utc_now
from local.seed import submitted_jobs
from tests.conftest import ROOT
from tests.integration.conftest import Stack


def state_file(stack: Stack, tmp_path: Path) -> Path:
    """The state file `make local` writes, for this stack (which runs with --ready-json: none)."""
    path = tmp_path / "local-stack.json"
    path.write_text(json.dumps(stack.urls))
    return path


def run(tool: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"ops.{tool}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def archived_key(stack: Stack, text: str) -> str:
    s3 = stack.aws("s3")
    bucket = stack.urls["results_bucket"]
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="raw/playment/"):
        for item in page.get("Contents", []):
            if text in s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode():
                return str(item["Key"])
    raise AssertionError(f"no archived callback mentions {text}")


def test_replay_on_the_local_stack_applies_a_callback_that_came_before_its_job(stack: Stack, tmp_path: Path) -> None:
    # given a Playment callback for a job the stack does not know yet: archived, counted unknown
    prefix = f"replay-{uuid.uuid4().hex[:8]}"
    reference_id = f"{prefix}-0000"  # the name local.seed gives the job below
    key = json.loads(
        stack.aws("secretsmanager").get_secret_value(SecretId=stack.urls["playment_secret"])["SecretString"]
    )["callback_key"]
    body = {"annotations": [{"reference_id": reference_id, "job_id": "vj-0000", "status": "COMPLETED", "result": {}}]}
    answer = requests.post(stack.urls["playment_callback_url"], json=body, headers={"x-playment-key": key}, timeout=30)
    assert answer.json()["unknown"] == 1
    archive_key = archived_key(stack, reference_id)
    # and the job, submitted since
    submitted_jobs(stack.urls["jobs_table"], stack.aws("dynamodb"), "playment", prefix, 1, {"data": {"image_url": "x"}})

    # when the operator replays the archived callback on the local stack
    done = run("replay", "--stack", "local", "--key", archive_key, "--local-state", str(state_file(stack, tmp_path)))

    # then the callback function applies it, as it would a live one
    assert done.returncode == 0, done.stderr
    status, _, said = done.stdout.strip().partition(" ")
    assert (status, json.loads(said)["applied"]) == ("200", 1)
    job = stack.call("GET", f"/jobs/{reference_id}").json()
    assert job["status"] == "COMPLETED"


def test_redrive_on_the_local_stack_moves_the_dead_letters_back_by_hand(stack: Stack, tmp_path: Path) -> None:
    # given a job that used up its attempts before any vendor took it, its message dead-lettered
    reference_id = f"redrive-{uuid.uuid4().hex[:8]}"
    now = utc_now()
    DynamoJobStore(stack.urls["jobs_table"], stack.aws("dynamodb")).create(
        Job(
            reference_id=reference_id,
            vendor="playment",
            status=JobStatus.FAILED,
            request={"vendor": "playment", "reference_id": reference_id, "data": {"image_url": "https://x/1.jpg"}},
            request_hash="seeded",
            attempts=6,
            last_error=JobError(code="retries_exhausted", message="HTTP 503", retryable=True),
            created_at=now,
            updated_at=now,
            history=[HistoryEntry(at=now, status=JobStatus.FAILED, source="submit")],
        )
    )
    outputs = stack.urls["outputs"]
    stack.aws("sqs").send_message(
        QueueUrl=outputs["SubmissionDLQUrl"], MessageBody=json.dumps({"reference_id": reference_id})
    )

    # when the operator redrives on the local stack (moto has no StartMessageMoveTask)
    done = run("redrive", "--stack", "local", "--local-state", str(state_file(stack, tmp_path)))

    # then the tool says it moves the messages itself, and does
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("StartMessageMoveTask is not available on stack local"), lines
    assert lines[-1].startswith("COMPLETED: "), lines
    assert int(lines[-1].split()[1]) >= 1, lines
    # and the worker gives the job another round
    deadline = time.monotonic() + 60
    while not any(h["source"] == "redrive" for h in stack.call("GET", f"/jobs/{reference_id}").json()["history"]):
        assert time.monotonic() < deadline, "the redriven message never reached the worker"
        time.sleep(0.5)


def no_aws_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of an operator with no AWS configuration at all (and no network to IMDS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **env,
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        **extra,
    }


TOOLS: list[tuple[str, list[str]]] = [
    ("replay", ["--key", "raw/playment/2026/11/23/x.json"]),
    ("redrive", []),
    ("preflight", []),
]


@pytest.mark.parametrize(("tool", "args"), TOOLS, ids=[t for t, _ in TOOLS])
def test_every_operator_error_is_one_line_saying_what_to_do(
    stack: Stack, tmp_path: Path, tool: str, args: list[str]
) -> None:
    nowhere = str(tmp_path / "no-state.json")
    cases: list[tuple[list[str], dict[str, str], str]] = [
        # no local stack running
        (["--stack", "local"], no_aws_env(tmp_path), "no local stack is running"),
        # no AWS credentials for a deployed stack
        (["--stack", "handoff"], no_aws_env(tmp_path), "no AWS credentials"),
        # a stack that does not exist (CloudFormation's answer from the local AWS)
        (
            ["--stack", "no-such-stack"],
            no_aws_env(
                tmp_path,
                AWS_ENDPOINT_URL=stack.urls["aws_endpoint"],
                AWS_ACCESS_KEY_ID="local",
                AWS_SECRET_ACCESS_KEY="local",
            ),
            "cannot read stack 'no-such-stack'",
        ),
    ]
    for stack_args, env, said in cases:
        done = run(tool, *args, *stack_args, "--local-state", nowhere, env=env)
        assert done.returncode == 2, (stack_args, done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1, (stack_args, done.stderr)
        assert lines[0].startswith(f"{tool}: {said}"), lines
        assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("raw/playment/2026/01/01/no-such-callback.json", "replay: no archived callback 'raw/playment/2026/01/01/"),
        ("results/playment/x.json", "replay: 'results/playment/x.json' is not an archived callback"),
    ],
)
def test_replay_of_a_bad_key_is_one_line(stack: Stack, tmp_path: Path, key: str, said: str) -> None:
    done = run("replay", "--key", key, "--local-state", str(state_file(stack, tmp_path)))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(said), done.stderr


def outputs_like_a_deployment(stack: Stack) -> dict[str, Any]:
    """The local stack's outputs carry every key operator tools read from a deployment's."""
    return {k: stack.urls["outputs"].get(k) for k in ("ResultsBucketName", "SubmissionDLQArn", "SubmitJobFunctionArn")}


def test_the_local_stacks_outputs_name_its_resources(stack: Stack) -> None:
    outputs = outputs_like_a_deployment(stack)
    assert outputs["ResultsBucketName"] == stack.urls["results_bucket"]
    assert str(outputs["SubmissionDLQArn"]).startswith("arn:aws:sqs:us-east-1:")
    assert str(outputs["SubmitJobFunctionArn"]).endswith(":function:SubmitJobFunction:live")


def test_the_readmes_local_sigv4_snippet_works_as_printed(stack: Stack, tmp_path: Path) -> None:
    # given the snippet of README "Local stack" and the state file `make local` writes beside it
    readme = (ROOT / "README.md").read_text()
    snippet = readme.split("<!-- local-sigv4-snippet -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / ".local-stack.json").write_text(json.dumps(stack.urls))

    # when it runs as printed, from where the state file is, with no AWS configuration
    done = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=tmp_path,
        env=no_aws_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )

    # then it submitted the job
    assert done.returncode == 0, done.stderr
    assert "'reference_id': 'by-hand-img-1'" in done.stdout
    assert stack.call("GET", "/jobs/by-hand-img-1").status_code == 200
