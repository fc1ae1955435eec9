"""The operator CLI on the local stack, as an operator runs it: `python -m ops.cli` (and the launcher
`make install` writes) in a process of its own, finding the stack through its state file, signing
its requests as a caller would. A stack of its own: `events tail` takes events off the stack's
events queue, which other files' tests read."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from handoff.models import HistoryEntry, Job, JobError, JobStatus
from handoff.store import DynamoJobStore, utc_now
from local.process import StackProcess
from tests.conftest import ROOT
from tests.integration.conftest import Stack


@pytest.fixture(scope="module")
def cli_stack() -> Iterator[Stack]:
    process = StackProcess("--log-level", "WARNING")
    yield Stack(process.urls, process.output)
    process.stop()


@pytest.fixture(scope="module")
def state(cli_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state file `make local` writes, for this stack (which runs with --ready-json: none)."""
    path = tmp_path_factory.mktemp("cli") / "local-stack.json"
    path.write_text(json.dumps(cli_stack.urls))
    return path


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def handoff(state: Path) -> Run:
    def run(*args: str, command: list[str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*(command or [sys.executable, "-m", "ops.cli"]), *args, "--local-state", str(state)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def playment_job(reference_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "vendor": "playment",
        "reference_id": reference_id,
        "data": {"image_url": f"https://images.example.com/cli/{reference_id}.jpg"},
        **extra,
    }


def seeded(stack: Stack, reference_id: str, status: JobStatus, error: JobError | None = None) -> None:
    """A job as the table would hold it (a FAILED job no vendor took, or a QUEUED job no attempt holds)."""
    now = utc_now()
    DynamoJobStore(stack.urls["jobs_table"], stack.aws("dynamodb")).create(
        Job(
            reference_id=reference_id,
            vendor="playment",
            status=status,
            request=playment_job(reference_id),
            request_hash="seeded",
            attempts=6 if error else 0,
            last_error=error,
            created_at=now,
            updated_at=now,
            history=[HistoryEntry(at=now, status=status, source="submit")],
        )
    )


def eventually(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.5)
    return found


def test_jobs_list_for_scripts_and_for_people(cli_stack: Stack, handoff: Run) -> None:
    # given two Playment jobs and a Scale job, submitted through the API
    prefix = f"cli-{uuid.uuid4().hex[:6]}"
    for reference_id in (f"{prefix}-img-1", f"{prefix}-img-2"):
        assert cli_stack.call("POST", "/jobs", playment_job(reference_id)).status_code in {201, 202}
    scale = {
        "vendor": "scale",
        "reference_id": f"{prefix}-scale-1",
        "task_type": "imageannotation",
        "instruction": "Draw a box around each car.",
        "attachment": "https://images.example.com/cli/1.jpg",
        "attachment_type": "image",
        "params": {"geometries": {"box": {"objects_to_annotate": ["car"]}}},
    }
    assert cli_stack.call("POST", "/jobs", scale).status_code in {201, 202}

    # when a script lists Playment's jobs (the indexes are eventually consistent: asked until listed)
    def playment_listing() -> list[dict[str, Any]] | None:
        done = handoff("jobs", "list", "--vendor", "playment", "--json")
        assert done.returncode == 0, done.stderr
        jobs: list[dict[str, Any]] = json.loads(done.stdout)["jobs"]
        return jobs if {f"{prefix}-img-1", f"{prefix}-img-2"} <= {j["reference_id"] for j in jobs} else None

    jobs = eventually(playment_listing)

    # then it reads the API's document: Playment's jobs only, newest first
    assert {j["vendor"] for j in jobs} == {"playment"}
    assert [j["updated_at"] for j in jobs] == sorted((j["updated_at"] for j in jobs), reverse=True)

    # and a person reads a table of every job, one page at a time (the jobs move on meanwhile)
    def table() -> dict[str, list[str]] | None:
        done = handoff("jobs", "list", "--limit", "100")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].split() == ["REFERENCE_ID", "VENDOR", "STATUS", "UPDATED_AT", "VENDOR_JOB_ID"]
        rows = {line.split()[0]: line.split() for line in lines[1:]}
        return rows if {f"{prefix}-img-1", f"{prefix}-scale-1"} <= set(rows) else None

    rows = eventually(table)
    statuses = {"QUEUED", "SUBMITTED", "IN_PROGRESS", "DELIVERED", "COMPLETED", "FAILED", "CANCELED"}
    assert rows[f"{prefix}-scale-1"][1] == "scale"
    assert rows[f"{prefix}-img-1"][1] == "playment"
    assert rows[f"{prefix}-img-1"][2] in statuses
    assert len(rows[f"{prefix}-img-1"]) == 5

    # and --all with a page of one follows the cursor to every job
    done = handoff("jobs", "list", "--vendor", "playment", "--limit", "1", "--all", "--json")
    assert done.returncode == 0, done.stderr
    assert {f"{prefix}-img-1", f"{prefix}-img-2"} <= {j["reference_id"] for j in json.loads(done.stdout)["jobs"]}


def test_jobs_show_and_the_events_of_a_job(cli_stack: Stack, handoff: Run) -> None:
    # given a Playment job the sandbox completes
    reference_id = f"cli-show-{uuid.uuid4().hex[:6]}"
    assert cli_stack.call("POST", "/jobs", playment_job(reference_id)).status_code in {201, 202}
    eventually(lambda: cli_stack.call("GET", f"/jobs/{reference_id}").json()["status"] in {"COMPLETED", "FAILED"})

    # when a person looks it up
    done = handoff("jobs", "show", reference_id)

    # then they see the job and its history
    assert done.returncode == 0, done.stderr
    head, history = done.stdout.split("\n\n")
    said = dict(line.split(None, 1) for line in head.splitlines())
    assert said["reference_id"] == reference_id
    assert said["vendor"] == "playment"
    assert history.splitlines()[0].split() == ["AT", "STATUS", "SOURCE"]
    assert history.splitlines()[1].split()[1:] == ["QUEUED", "submit"]

    # and its events, from the local events queue, one line per status change in order
    def tail() -> list[str] | None:
        done = handoff("events", "tail", "--reference-id", reference_id)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines() or None

    lines = eventually(tail)
    while lines[-1].split()[-1] not in {"COMPLETED", "FAILED"}:  # the last events may still be on their way
        lines += eventually(tail)
    assert [line.split()[4] for line in lines] == [reference_id] * len(lines)
    assert lines[0].split()[-3:] == ["(new)", "->", "QUEUED"]
    assert lines[1].split()[-3:] == ["QUEUED", "->", "SUBMITTED"]
    # and each was taken off the queue: a second tail has none of them
    again = handoff("events", "tail", "--reference-id", reference_id)
    assert (again.returncode, again.stdout) == (0, "")
    assert again.stderr.startswith(f"no events of {reference_id} on the local events queue")


def test_jobs_retry_of_a_job_that_failed_before_any_vendor_took_it(cli_stack: Stack, handoff: Run) -> None:
    reference_id = f"cli-retry-{uuid.uuid4().hex[:6]}"
    seeded(
        cli_stack,
        reference_id,
        JobStatus.FAILED,
        JobError(code="retries_exhausted", message="HTTP 503", retryable=True),
    )

    done = handoff("jobs", "retry", reference_id, "--json")

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "QUEUED"
    # and the worker submits it to the vendor
    eventually(lambda: cli_stack.call("GET", f"/jobs/{reference_id}").json()["status"] != "QUEUED")
    # and retrying it again is the API's refusal: one line, exit 1
    again = handoff("jobs", "retry", reference_id)
    assert again.returncode == 1
    assert again.stderr.splitlines()[0].startswith("handoff: not_retryable: "), again.stderr


def test_jobs_cancel_of_a_queued_job_and_the_one_line_refusal_of_a_playment_one(cli_stack: Stack, handoff: Run) -> None:
    # given a QUEUED job no attempt holds
    queued = f"cli-cancel-{uuid.uuid4().hex[:6]}"
    seeded(cli_stack, queued, JobStatus.QUEUED)

    # when it is canceled, it is CANCELED without the vendor
    done = handoff("jobs", "cancel", queued)
    assert done.returncode == 0, done.stderr
    said = dict(line.split(None, 1) for line in done.stdout.split("\n\n")[0].splitlines())
    assert said["status"] == "CANCELED"
    assert done.stdout.splitlines()[-1].split()[1:] == ["CANCELED", "operator"]

    # and a submitted Playment job (Playment has no cancel) is the API's 409 as one line, exit 1
    submitted = f"cli-nocancel-{uuid.uuid4().hex[:6]}"
    assert cli_stack.call("POST", "/jobs", playment_job(submitted)).status_code in {201, 202}
    refused = handoff("jobs", "cancel", submitted)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.splitlines()[0].startswith("handoff: not_cancellable: "), refused.stderr
    assert all(line.startswith("  ") for line in refused.stderr.splitlines()[1:])  # its details, under it

    # and an unknown job is one line too
    unknown = handoff("jobs", "show", "cli-no-such-job")
    assert (unknown.returncode, unknown.stderr) == (1, "handoff: job_not_found: no job with that reference_id\n")


def test_batches_show(cli_stack: Stack, handoff: Run) -> None:
    batch_ref = f"cli-batch-{uuid.uuid4().hex[:6]}"
    created = cli_stack.call(
        "POST", "/batches", {"vendor": "playment", "name": batch_ref, "batch_ref": batch_ref, "expected_jobs": 2}
    )
    assert created.status_code == 201, created.text
    for n in (1, 2):
        job = playment_job(f"{batch_ref}-img-{n}", batch_ref=batch_ref)
        assert cli_stack.call("POST", "/jobs", job).status_code in {201, 202}

    def shown() -> dict[str, str] | None:
        done = handoff("batches", "show", batch_ref)
        assert done.returncode == 0, done.stderr
        said = dict(line.split(None, 1) for line in done.stdout.splitlines())
        return said if said["jobs"] == "2 of 2 expected" else None

    said = eventually(shown)
    assert (said["batch_ref"], said["vendor"], said["name"]) == (batch_ref, "playment", batch_ref)
    assert said["state"] in {"closed", "completed"}

    as_json = handoff("batches", "show", batch_ref, "--vendor", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["vendor_details"] is not None

    unknown = handoff("batches", "show", "cli-no-such-batch")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("handoff: batch_not_found: ")


def test_redrive_through_the_cli(handoff: Run) -> None:
    done = handoff("redrive", "--local")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("StartMessageMoveTask is not available on stack local")
    assert done.stdout.splitlines()[-1].startswith("COMPLETED: ")


def a_venv_like(python: str, where: Path) -> Path:
    """A venv that is this one by links (its interpreter and packages), installed as `make install`
    leaves it (.installed newer than requirements.txt): make writes only the launcher into it."""
    prefix = Path(sys.prefix)
    (where / "bin").mkdir(parents=True)
    (where / "bin" / "python").symlink_to(python)
    (where / "lib").symlink_to(prefix / "lib", target_is_directory=True)
    (where / "pyvenv.cfg").write_text((prefix / "pyvenv.cfg").read_text())
    (where / ".installed").touch()
    return where


def test_make_install_writes_the_launcher_and_the_make_targets_run_it(
    cli_stack: Stack, handoff: Run, tmp_path: Path
) -> None:
    # given a venv installed before the launcher existed
    venv = a_venv_like(sys.executable, tmp_path / "venv")

    # when make install runs again
    make = ["make", "-s", "-C", str(ROOT), f"VENV={venv}"]
    installed = subprocess.run([*make, "install"], capture_output=True, text=True, timeout=120)

    # then the launcher is there and runs this checkout's CLI from any directory
    assert installed.returncode == 0, installed.stderr
    reference_id = f"cli-launcher-{uuid.uuid4().hex[:6]}"
    assert cli_stack.call("POST", "/jobs", playment_job(reference_id)).status_code in {201, 202}
    done = handoff("jobs", "show", reference_id, "--json", command=[str(venv / "bin" / "handoff")], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["reference_id"] == reference_id

    # and the make targets run it (a key that is no archive: said before any stack is looked for)
    replayed = subprocess.run([*make, "replay", "KEY=results/x.json"], capture_output=True, text=True, timeout=120)
    assert replayed.returncode == 2
    assert replayed.stderr.splitlines()[0] == (
        "replay: 'results/x.json' is not an archived callback (raw/<playment|scale|textking>/...)"
    )


@pytest.mark.parametrize(
    ("stack_name", "endpoint", "said"),
    [
        ("handoff", False, "handoff: no AWS credentials: configure them (aws configure, AWS_PROFILE), or use --local"),
        ("no-such-stack", True, "handoff: cannot read stack 'no-such-stack' ("),
    ],
)
def test_a_deployed_stack_the_cli_cannot_read_is_one_line_and_exit_2(
    cli_stack: Stack, tmp_path: Path, stack_name: str, endpoint: bool, said: str
) -> None:
    from tests.integration.test_operator_tools import no_aws_env

    extra = (
        {"AWS_ENDPOINT_URL": cli_stack.urls["aws_endpoint"], "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
        if endpoint
        else {}
    )
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "jobs", "list", "--stack", stack_name],
        cwd=ROOT,
        env=no_aws_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(said), done.stderr
    assert "STACK=" not in done.stderr  # said in the CLI's terms
