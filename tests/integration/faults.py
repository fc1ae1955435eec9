"""The given/when of the fault suites: many jobs queued in one bulk, drained by concurrent workers
against a sandbox that answers with 503s, timeouts and lost answers (its creation faults)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3

from functions.submission_worker import app as worker_app
from functions.submit_job import app as submit_app
from local.sqs_poller import SqsPoller
from tests.conftest import LambdaContext, load_event, queue_depth


def fault_request(sample: str, n: int) -> dict[str, Any]:
    """Direct-invoke sample `sample` (under events/) as job fault-<n>."""
    body: dict[str, Any] = load_event(sample)
    return {**body, "reference_id": f"fault-{n:03d}"}


def drain_under_faults(
    context: LambdaContext, sample: str, jobs: int, creations: Callable[[], list[Any]]
) -> tuple[list[Any], Counter[str | None], int]:
    """Given `jobs` requests like `sample` recorded and queued in one bulk request, when eight
    concurrent workers drain the queue (at most 240 s), then each kind of fault happened many times.
    Returns (the sandbox's creations, the faults among them, the invocations that crashed)."""
    answer = submit_app.lambda_handler({"jobs": [fault_request(sample, n) for n in range(jobs)]}, context)
    assert answer["totals"]["queued"] == jobs

    workers = SqsPoller(
        boto3.client("sqs"),
        submit_app.submitter().queue.url,
        worker_app.lambda_handler,
        concurrency=8,
        batch_size=5,
        wait_seconds=0,
    )
    deadline = time.monotonic() + 240
    with workers:
        while queue_depth() > 0:
            assert time.monotonic() < deadline, f"{queue_depth()} messages still queued"
            time.sleep(0.1)

    seen = creations()
    faults = Counter(c.fault for c in seen)
    assert faults["error"] >= 50, faults
    assert faults["timeout"] >= 10, faults
    assert faults["lost"] >= 5, faults
    return seen, faults, workers.errors
