"""The reliability suite for Scale AI, as for Playment (test_vendor_faults.py, test_callback_storm.py):

1. 300 submissions while the Scale sandbox answers 503 to 30% of task creations, lets 10% time
   out (nothing created) and loses the answer of 5% (the task IS created): every job must end up
   submitted exactly once at Scale, each lost answer found again by unique_id after Scale's 409.
2. A storm of 2,000 Scale callbacks on the local stack, 65% of them duplicates (Scale resends a
   callback up to 20 times), shuffled, from 8 senders over HTTP: every job ends as Scale said,
   every change reaches the bus exactly once, every callback is answered 200 and archived.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
import requests

from local import seed
from local.process import StackProcess
from local.sandboxes.scale import ScaleSandbox
from local.sandboxes.server import BackgroundServer
from local.subscriber import EventSubscriber
from tests.conftest import LambdaContext, queued_messages, reset_function_caches, table_items
from tests.integration.conftest import Stack
from tests.integration.faults import drain_under_faults

API_KEY = "live_0123456789abcdef0123456789"
JOBS = 300
RECEIVES = 16  # as test_vendor_faults: 0.4^16 * 300 jobs, one run in ~8,000 with a job FAILED
STORM_JOBS = 700
CALLBACKS = 2_000
SENDERS = 8


@pytest.fixture
def faulty_scale(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScaleSandbox]:
    boto3.client("secretsmanager").create_secret(
        Name="handoff/scale", SecretString=json.dumps({"api_key": API_KEY, "callback_auth_key": "k"})
    )
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="handoff-submissions")["QueueUrl"]
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
    )
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"RedrivePolicy": json.dumps({**policy, "maxReceiveCount": RECEIVES})}
    )
    box = ScaleSandbox(api_key=API_KEY, rate_limit=1000, stall_seconds=1.2, error_rate=0.30, timeout_rate=0.10)
    box.lost_rate, box.work_seconds, box.send_callbacks = 0.05, 3600, False
    with BackgroundServer(box) as server:
        monkeypatch.setenv("SCALE_SECRET_NAME", "handoff/scale")
        monkeypatch.setenv("SCALE_BASE_URL", f"{server.url}/v1")
        monkeypatch.setenv("SCALE_PROJECT", "p")
        monkeypatch.setenv("SCALE_CALLBACK_URL", "https://handoff.example.com/v1/callbacks/scale")
        monkeypatch.setenv("VENDOR_READ_TIMEOUT_SECONDS", "0.5")
        monkeypatch.setenv("SUBMISSION_MAX_RECEIVES", str(RECEIVES))
        monkeypatch.setenv(
            "VENDOR_MAX_REQUESTS_PER_SECOND", os.environ["VENDOR_MAX_REQUESTS_PER_SECOND"] + ",scale=1000"
        )
        reset_function_caches()
        yield box
    box.stop()
    reset_function_caches()


def test_300_scale_submissions_under_5xx_timeouts_and_lost_answers_are_each_submitted_exactly_once(
    faulty_scale: ScaleSandbox, context: LambdaContext
) -> None:
    # given 300 jobs queued in one bulk, when eight workers drain them, then each fault happened many times
    sample = "submit_job/direct_invoke_scale.json"
    creations, faults, crashed = drain_under_faults(context, sample, JOBS, faulty_scale.creations)
    # and Scale holds exactly one task per reference_id: none missing, none doubled
    held = Counter(task.unique_id for task in faulty_scale.tasks.values())
    assert sorted(str(u) for u in held) == [f"fault-{n:03d}" for n in range(JOBS)]
    assert set(held.values()) == {1}
    # and every job is SUBMITTED with the id of the task Scale holds for it
    jobs = {job["reference_id"]: job for job in table_items()}
    assert Counter(job["status"] for job in jobs.values()) == {"SUBMITTED": JOBS}
    for task in faulty_scale.tasks.values():
        assert jobs[str(task.unique_id)]["vendor_job_id"] == task.id
    # and every attempt is accounted for; each lost answer was found again: met by a 409 and looked
    # up, or, when it was a job's last attempt, looked up before giving up (Submitter._last_look)
    assert sum(job["attempts"] for job in jobs.values()) == len(creations)
    lookups = [r for r in faulty_scale.received if (r.method, r.path) == ("GET", "/v1/tasks")]
    assert len(lookups) >= max(faults["lost"], Counter(c.status for c in creations)[409])
    assert queued_messages("handoff-submissions-dlq") == []
    assert crashed == 0


@pytest.fixture(scope="module")
def quiet_stack() -> Iterator[Stack]:
    """A stack of its own whose sandboxes never call back and whose reconciler leaves the jobs
    alone for an hour: every callback the jobs get is one this test sends."""
    process = StackProcess("--no-vendor-callbacks", "--reconcile-after", "3600", "--log-level", "WARNING")
    yield Stack(process.urls, process.output)
    process.stop()


def test_2000_scale_callbacks_mostly_duplicates_from_8_senders_leave_every_job_right(quiet_stack: Stack) -> None:
    stack = quiet_stack
    subscriber = EventSubscriber(stack.urls["aws_endpoint"], stack.urls["events_queue"]).start()
    # given 700 SUBMITTED Scale jobs, one in ten of which Scale will end in `error`
    jobs = seed.submitted_jobs(
        stack.urls["jobs_table"],
        stack.aws("dynamodb"),
        "scale",
        "storm",
        STORM_JOBS,
        {"attachment": "https://x.example/a.jpg"},
        lambda n: f"{n:024x}",
    )
    shuffler = random.Random(2026)  # noqa: S311 (test data, not cryptography)
    final = {ref: "FAILED" if shuffler.random() < 0.1 else "COMPLETED" for ref in jobs}
    callbacks = list(final) + shuffler.choices(list(final), k=CALLBACKS - len(final))  # Scale's resends
    shuffler.shuffle(callbacks)
    secret = json.loads(
        stack.aws("secretsmanager").get_secret_value(SecretId=stack.urls["scale_secret"])["SecretString"]
    )
    headers = {"Content-Type": "application/json", "scale-callback-auth": secret["callback_auth_key"]}
    sessions = threading.local()

    def send(reference_id: str) -> tuple[int, dict[str, Any]]:
        status = "completed" if final[reference_id] == "COMPLETED" else "error"
        task: dict[str, Any] = {
            "task_id": jobs[reference_id],
            "unique_id": reference_id,
            "status": status,
            "type": "imageannotation",
            "metadata": {"handoff_reference_id": reference_id},
        }
        body: dict[str, Any] = {"task": task, "task_id": jobs[reference_id]}
        if status == "completed":
            body["response"] = task["response"] = {"annotations": [{"type": "box", "label": "car"}]}
        else:
            task["error"] = "The attachment could not be downloaded."
        if not hasattr(sessions, "session"):
            sessions.session = requests.Session()
        answer = sessions.session.post(f"{stack.urls['api']}/callbacks/scale", json=body, headers=headers, timeout=60)
        return answer.status_code, answer.json()

    # when the 2,000 callbacks arrive, shuffled, from 8 senders at once
    with ThreadPoolExecutor(SENDERS) as pool:
        answers = list(pool.map(send, callbacks))

    # then every callback was answered 200: one applied per job, every resend a duplicate
    assert Counter(status for status, _ in answers) == {200: CALLBACKS}
    tally: Counter[str] = Counter()
    for _, body in answers:
        tally.update({verdict: body[verdict] for verdict in ("applied", "duplicate", "unknown", "invalid", "deferred")})
    assert (tally["applied"], tally["duplicate"]) == (STORM_JOBS, CALLBACKS - STORM_JOBS), tally
    assert tally["unknown"] == tally["invalid"] == tally["deferred"] == 0

    # and every job ends in the state Scale gave it, with one change each
    stored: dict[str, dict[str, Any]] = {}
    for page in stack.aws("dynamodb").get_paginator("scan").paginate(TableName=stack.urls["jobs_table"]):
        for item in page["Items"]:
            stored[item["reference_id"]["S"]] = item
    assert sorted(stored) == sorted(jobs)
    assert {ref: item["status"]["S"] for ref, item in stored.items()} == final
    histories = {ref: [h["M"]["status"]["S"] for h in item["history"]["L"]] for ref, item in stored.items()}
    assert all(statuses == ["SUBMITTED", final[ref]] for ref, statuses in histories.items())

    # and every change reached the bus exactly once, in order (the seeded SUBMITTED included)
    want = 2 * STORM_JOBS
    deadline = time.monotonic() + 120
    while len(subscriber.events) < want and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # anything beyond `want` (a doubled event) has had time to arrive
    subscriber.stop()
    assert len(subscriber.events) == want
    assert subscriber.statuses_by_job() == histories

    # and every callback body is archived, duplicates included
    archived = sum(
        page.get("KeyCount", 0)
        for page in stack.aws("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=stack.urls["results_bucket"], Prefix="raw/scale/")
    )
    assert archived == CALLBACKS
