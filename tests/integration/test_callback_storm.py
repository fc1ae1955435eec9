"""A storm of callbacks on the local stack: 2,000 Playment callbacks, 30% of them duplicates,
shuffled, from 8 concurrent senders over HTTP, while a subscriber takes every event off the bus.

Every job must end in the state its vendor gave it, every real change must reach the bus exactly
once, every callback must be answered (no 5xx) and archived, and no reference_id may go missing.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from local import seed
from local.process import StackProcess
from local.subscriber import EventSubscriber
from tests.integration.conftest import Stack

JOBS = 700  # each gets PENDING and then COMPLETED (or FAILED): 1,400 distinct callbacks
CALLBACKS = 2_000  # the distinct ones plus 600 duplicates (30%)
SENDERS = 8


@pytest.fixture(scope="module")
def quiet_stack() -> Iterator[Stack]:
    """A stack of its own whose Playment sandbox never calls back and whose reconciler leaves the
    jobs alone for an hour: every callback the jobs get is one this test sends."""
    process = StackProcess("--no-vendor-callbacks", "--reconcile-after", "3600", "--log-level", "WARNING")
    yield Stack(process.urls, process.output)
    process.stop()


def test_2000_callbacks_with_30_percent_duplicates_from_8_senders_leave_every_job_right(
    quiet_stack: Stack,
) -> None:
    stack = quiet_stack
    subscriber = EventSubscriber(stack.urls["aws_endpoint"], stack.urls["events_queue"]).start()
    # given 700 SUBMITTED Playment jobs, one in ten of which Playment will fail
    jobs = seed.submitted_jobs(
        stack.urls["jobs_table"],
        stack.aws("dynamodb"),
        "playment",
        "storm",
        JOBS,
        {"data": {"image_url": "https://x.example/a.jpg"}},
    )
    shuffler = random.Random(2026)  # noqa: S311 (test data, not cryptography)
    final = {ref: "FAILED" if shuffler.random() < 0.1 else "COMPLETED" for ref in jobs}
    distinct = [(ref, "PENDING") for ref in jobs] + list(final.items())
    callbacks = distinct + shuffler.choices(distinct, k=CALLBACKS - len(distinct))
    shuffler.shuffle(callbacks)
    secret = json.loads(
        stack.aws("secretsmanager").get_secret_value(SecretId=stack.urls["playment_secret"])["SecretString"]
    )
    headers = {"Content-Type": "application/json", "x-playment-key": secret["callback_key"]}
    sessions = threading.local()

    def send(callback: tuple[str, str]) -> tuple[int, dict[str, Any]]:
        reference_id, status = callback
        annotation: dict[str, Any] = {"reference_id": reference_id, "job_id": jobs[reference_id], "status": status}
        if status == "COMPLETED":
            annotation["result"] = {"annotations": {"rectangles": [{"label": "car"}]}}
        if status == "FAILED":
            annotation["error"] = {"code": "FS_0003", "message": "unusable image"}
        if not hasattr(sessions, "session"):
            sessions.session = requests.Session()
        answer = sessions.session.post(
            f"{stack.urls['api']}/callbacks/playment", json={"annotations": [annotation]}, headers=headers, timeout=60
        )
        return answer.status_code, answer.json()

    # when the 2,000 callbacks arrive, shuffled, from 8 senders at once
    with ThreadPoolExecutor(SENDERS) as pool:
        answers = list(pool.map(send, callbacks))

    # then every callback was answered 200, none with a 5xx
    assert Counter(status for status, _ in answers) == {200: CALLBACKS}
    tally = Counter()
    for _, body in answers:
        tally.update({verdict: body[verdict] for verdict in ("applied", "duplicate", "unknown", "invalid")})
    assert tally["unknown"] == tally["invalid"] == 0
    assert tally["applied"] + tally["duplicate"] == CALLBACKS

    # and every job ends in the state Playment gave it last, and says so
    table = stack.aws("dynamodb")
    stored: dict[str, dict[str, Any]] = {}
    for page in table.get_paginator("scan").paginate(TableName=stack.urls["jobs_table"]):
        for item in page["Items"]:
            stored[item["reference_id"]["S"]] = item
    assert sorted(stored) == sorted(jobs)  # every reference_id accounted for, none added
    assert {ref: item["status"]["S"] for ref, item in stored.items()} == final
    # and each status change happened once: duplicates and late PENDINGs wrote nothing
    histories = {ref: [h["M"]["status"]["S"] for h in item["history"]["L"]] for ref, item in stored.items()}
    for ref, statuses in histories.items():
        assert statuses in (["SUBMITTED", final[ref]], ["SUBMITTED", "IN_PROGRESS", final[ref]]), (ref, statuses)
    assert tally["applied"] == sum(len(statuses) - 1 for statuses in histories.values())

    # and every change reached the bus exactly once, in order (the seeded SUBMITTED included)
    want = sum(len(statuses) for statuses in histories.values())
    deadline = time.monotonic() + 120
    while len(subscriber.events) < want and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)  # anything beyond `want` (a doubled event) has had time to arrive
    subscriber.stop()
    copies = Counter((e["detail"]["reference_id"], e["detail"]["version"]) for e in subscriber.events)
    doubled = [e for e in subscriber.events if copies[(e["detail"]["reference_id"], e["detail"]["version"])] > 1]
    assert doubled == [], json.dumps([{"id": e["id"], **e["detail"]} for e in doubled]) + "".join(
        line for line in stack.output if "HTTP/1.1" not in line
    )
    assert len(subscriber.events) == want
    assert subscriber.statuses_by_job() == histories

    # and every callback body is archived, duplicates included
    s3 = stack.aws("s3")
    archived = sum(
        page.get("KeyCount", 0)
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=stack.urls["results_bucket"], Prefix="raw/playment/"
        )
    )
    assert archived == CALLBACKS
