"""Crash safety on the local stack: a function whose process ends right after its state write, before
it answers (a Lambda timeout, an out-of-memory kill), loses nothing.

The function runs in a process of its own with the stack's environment (stopped_function.py) and
is killed there; the stack's stream poller, worker and reconciler carry on as they would in AWS.
Every job must still end right, be created at the vendor exactly once, and have every change on
the bus exactly once: the events equal the job's history.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from handoff.submission import INLINE_LEASE_SECONDS
from local.process import StackProcess
from local.subscriber import EventSubscriber
from tests.conftest import load_event
from tests.integration.conftest import Stack
from tests.integration.stopped_function import ROOT, STOPPED


class Watched(Stack):
    def __init__(self, process: StackProcess, subscriber: EventSubscriber) -> None:
        super().__init__(process.urls, process.output)
        self.subscriber = subscriber


@pytest.fixture(scope="module")
def watched() -> Iterator[Watched]:
    """A stack whose Playment sandbox never calls back (the test sends the callbacks) and whose
    reconciler looks at any job silent for 2 s, with a subscriber taking every event off the bus."""
    process = StackProcess("--no-vendor-callbacks", "--reconcile-after", "2", "--log-level", "WARNING")
    subscriber = EventSubscriber(process.urls["aws_endpoint"], process.urls["events_queue"]).start()
    yield Watched(process, subscriber)
    subscriber.stop()
    process.stop()


def run_stopped(
    stack: Stack, module: str, event: dict[str, Any], method: str, status: str, seconds_left: float | None = None
) -> int:
    """Run the function on `event` in a process that ends right after it writes the job in `status`;
    `seconds_left`: what its invocation's context says it has left."""
    # the function's own environment, as the stack gives it (a dict in the ready JSON)
    functions: Any = stack.urls["function_environments"]
    # functions.submit_job.app -> SubmitJobFunction
    logical = "".join(part.title() for part in module.split(".")[1].split("_")) + "Function"
    environment = {"PATH": os.environ.get("PATH", ""), **functions[logical]}  # what Lambda would give it
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.stopped_function", module, method, status]
        + ([] if seconds_left is None else [str(seconds_left)]),
        input=json.dumps(event),
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode


def submit_event(reference_id: str) -> dict[str, Any]:
    event = load_event("submit_job/api_post_playment_image.json")
    body = json.loads(event["body"])
    event["body"] = json.dumps({**body, "reference_id": reference_id})
    return event


def callback_event(key: str, annotation: dict[str, Any]) -> dict[str, Any]:
    event = load_event("playment_callback/api_completed.json")  # a fresh copy from the file
    event["body"] = json.dumps({"annotations": [annotation]})
    event["headers"]["x-playment-key"] = key
    event["multiValueHeaders"]["x-playment-key"] = [key]
    return event


def stored(stack: Stack, reference_id: str) -> dict[str, Any]:
    item = stack.aws("dynamodb").get_item(
        TableName=stack.urls["jobs_table"], Key={"reference_id": {"S": reference_id}}, ConsistentRead=True
    )["Item"]
    return {
        "status": item["status"]["S"],
        "vendor_job_id": item.get("vendor_job_id", {}).get("S"),
        "history": [h["M"]["status"]["S"] for h in item["history"]["L"]],
    }


def created_at_sandbox(stack: Stack, reference_id: str) -> list[str]:
    return [job["id"] for job in stack.sandbox_jobs("playment") if job["reference_id"] == reference_id]


def wait_for_status(stack: Stack, reference_id: str, status: str, seconds: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while (job := stored(stack, reference_id))["status"] != status:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def events_equal_history(stack: Watched, reference_id: str, seconds: float = 30) -> list[str]:
    """Wait until the bus has announced every change in the job's history; then check none came twice."""
    # The job may move on meanwhile (the reconciler looks it up): compare with the history as it is
    # then, and only once bus and history have agreed for 1.5 s (a doubled event has had time to arrive).
    deadline = time.monotonic() + seconds
    agreed_since: float | None = None
    while True:
        history = stored(stack, reference_id)["history"]
        announced = stack.subscriber.statuses_by_job().get(reference_id, [])
        now = time.monotonic()
        agreed_since = (agreed_since or now) if announced == history else None
        if (agreed_since is not None and now - agreed_since >= 1.5) or now > deadline:
            break
        time.sleep(0.5)
    versions = Counter(
        e["detail"]["version"] for e in stack.subscriber.events if e["detail"]["reference_id"] == reference_id
    )
    assert all(n == 1 for n in versions.values()), versions
    assert announced == history
    return history


def test_submit_stopped_after_writing_the_job_is_taken_up_without_the_caller(watched: Watched) -> None:
    # given SubmitJob's process, with 3 s of its invocation left, ends right after it has written the
    # QUEUED job, before the vendor call (what a timeout does to it)
    exit_status = run_stopped(
        watched, "functions.submit_job.app", submit_event("crash-queued"), "create", "QUEUED", seconds_left=3
    )
    written = time.monotonic()
    assert exit_status == STOPPED
    assert stored(watched, "crash-queued")["status"] == "QUEUED"

    # when the caller, who got no answer, sends the same request again
    again = watched.call("POST", "/jobs", json.loads(submit_event("crash-queued")["body"]))

    # then it is told the job exists, and the reconciler hands the silent job to the worker once
    # the dead invocation's claim has run out (its 3 s and a second), not SubmitJob's whole 30 s
    assert again.status_code == 200, again.text
    assert again.json()["reference_id"] == "crash-queued"
    job = wait_for_status(watched, "crash-queued", "SUBMITTED")
    assert time.monotonic() - written < INLINE_LEASE_SECONDS - 5
    assert created_at_sandbox(watched, "crash-queued") == [job["vendor_job_id"]]
    assert events_equal_history(watched, "crash-queued")[:2] == ["QUEUED", "SUBMITTED"]


def test_submit_stopped_after_the_vendor_accepted_creates_the_job_once(watched: Watched) -> None:
    # given SubmitJob's process ends right after it has recorded Playment's acceptance
    exit_status = run_stopped(
        watched, "functions.submit_job.app", submit_event("crash-submitted"), "transition", "SUBMITTED"
    )
    assert exit_status == STOPPED
    job = stored(watched, "crash-submitted")
    assert job["status"] == "SUBMITTED"

    # when the caller sends the same request again
    again = watched.call("POST", "/jobs", json.loads(submit_event("crash-submitted")["body"]))

    # then it is told the job exists, with the vendor's id; Playment holds the job once
    assert again.status_code == 200, again.text
    assert again.json()["vendor_job_id"] == job["vendor_job_id"]
    assert created_at_sandbox(watched, "crash-submitted") == [job["vendor_job_id"]]
    assert events_equal_history(watched, "crash-submitted")[:2] == ["QUEUED", "SUBMITTED"]


def test_callback_stopped_after_its_write_still_reaches_the_bus_once(watched: Watched) -> None:
    # given a submitted Playment job
    request = json.loads(submit_event("crash-callback")["body"])
    assert watched.call("POST", "/jobs", request).status_code == 201
    job = wait_for_status(watched, "crash-callback", "SUBMITTED")
    secret = json.loads(
        watched.aws("secretsmanager").get_secret_value(SecretId=watched.urls["playment_secret"])["SecretString"]
    )
    annotation = {
        "reference_id": "crash-callback",
        "job_id": job["vendor_job_id"],
        "status": "COMPLETED",
        "result": {"annotations": {"rectangles": [{"label": "car"}]}},
    }

    # when PlaymentCallback's process ends right after it has written COMPLETED, before answering
    exit_status = run_stopped(
        watched,
        "functions.playment_callback.app",
        callback_event(secret["callback_key"], annotation),
        "transition",
        "COMPLETED",
    )
    assert exit_status == STOPPED

    # then the job is COMPLETED and the change reaches the bus through the stream, once
    assert stored(watched, "crash-callback")["status"] == "COMPLETED"
    assert events_equal_history(watched, "crash-callback")[-1] == "COMPLETED"

    # and when Playment, which got no answer, sends the callback again, it is a 200 duplicate
    again = requests.post(
        f"{watched.urls['api']}/callbacks/playment",
        json={"annotations": [annotation]},
        headers={"x-playment-key": secret["callback_key"]},
        timeout=30,
    )
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] == 1
    assert events_equal_history(watched, "crash-callback").count("COMPLETED") == 1
