"""A running sandbox's fault knobs (POST /_sandbox/knobs), as a test or the demo in another process
sets them: every knob README lists takes effect, anything else is refused whole."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local.sandboxes.playment import PlaymentSandbox
from local.sandboxes.scale import ScaleSandbox
from local.sandboxes.server import BackgroundServer


def playment() -> Any:
    return PlaymentSandbox(api_key="k", project_id="p")


def scale() -> Any:
    return ScaleSandbox(api_key="test_k")


@pytest.fixture(params=[playment, scale], ids=["playment", "scale"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    sandbox = request.param()
    with BackgroundServer(sandbox) as server:
        yield sandbox, server.url
    sandbox.stop()


def test_every_documented_knob_takes_effect(served: tuple[Any, str]) -> None:
    sandbox, url = served
    knobs = {"error_rate": 0.3, "failed_rate": 1.0, "work_seconds": 0.5, "drop_rate": 0.1, "duplicate_rate": 1.0}

    answer = requests.post(f"{url}/_sandbox/knobs", json=knobs, timeout=5)

    assert answer.status_code == 200
    assert (sandbox.error_rate, sandbox.failed_rate, sandbox.work_seconds) == (0.3, 1.0, 0.5)
    assert (sandbox.callbacks.drop_rate, sandbox.callbacks.duplicate_rate) == (0.1, 1.0)


@pytest.mark.parametrize(
    "knobs",
    [
        {"bogus_knob": 0.5},
        {"error_rate": "0.5"},
        {"error_rate": True},
        {"error_rate": -1},
        [1],
        "x",
        {"latency": float("nan")},
        {"latency": float("inf")},
        {"latency": 1e300},
        {"error_rate": 1.5},
        {"rate_limit": 0},
    ],
    ids=[
        "unknown",
        "text",
        "boolean",
        "negative",
        "array",
        "string",
        "nan",
        "infinity",
        "huge",
        "probability-over-1",
        "no-rate",
    ],
)
def test_a_knob_it_does_not_have_or_a_value_that_is_no_number_is_refused_and_nothing_set(
    served: tuple[Any, str], knobs: Any
) -> None:
    sandbox, url = served
    before = sandbox.error_rate

    body = {"failed_rate": 1.0} | knobs if isinstance(knobs, dict) else knobs
    latency = sandbox.latency
    # (json.dumps writes NaN and Infinity as Python's json reads them, which requests' json= refuses to)
    answer = requests.post(
        f"{url}/_sandbox/knobs", data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=5
    )

    assert answer.status_code == 400
    assert sandbox.latency == latency
    assert answer.json()["error"]
    assert (sandbox.error_rate, sandbox.failed_rate) == (before, 0.0)


def test_a_silenced_playment_sandbox_still_works_its_jobs_and_calls_nobody() -> None:
    # given a sandbox connected to a callback URL (where nobody listens), then silenced, as
    # `make local NO_CALLBACKS=1` does
    sandbox = PlaymentSandbox(api_key="k", project_id="p")
    sandbox.work_seconds, sandbox.pending_rate, sandbox.failed_rate = 0.2, 0.0, 0.0
    sandbox.callback_url, sandbox.send_callbacks = "http://127.0.0.1:9/nobody", False
    with BackgroundServer(sandbox) as server:
        created = requests.post(
            f"{server.url}/v0/projects/p/jobs",
            json={"reference_id": "r-1", "data": {"image_url": "https://x.example/1.jpg"}, "tag": "t"},
            headers={"x-api-key": "k"},
            timeout=5,
        )
        assert created.status_code == 200, created.text
        job_id = created.json()["data"]["job_id"]

        # when its work time has passed
        deadline = time.monotonic() + 10
        while (status := sandbox.jobs[job_id].status) != "completed" and time.monotonic() < deadline:
            time.sleep(0.1)

    # then the job moved on (what a GET or the reconciler sees), and no callback was sent
    sandbox.stop()
    assert status == "completed"
    assert sandbox.callbacks.sent == []
    assert sandbox.callbacks._queue == []  # nothing waiting to be sent either


def test_knobs_sent_without_a_json_content_type_are_still_read(served: tuple[Any, str]) -> None:
    # given the knobs as `curl -d '{"latency": 0.3}'` sends them (a form's Content-Type)
    sandbox, url = served

    answer = requests.post(f"{url}/_sandbox/knobs", data='{"latency": 0.25}', timeout=5)

    assert answer.status_code == 200, answer.text
    assert sandbox.latency == 0.25


def test_a_request_is_counted_when_it_reached_the_host_not_when_a_busy_sandbox_read_it() -> None:
    # given a Playment sandbox served by a thread of this process
    import socket
    import sys

    sandbox = PlaymentSandbox(api_key="k", project_id="p")
    request = b"GET /v1/nothing-here HTTP/1.1\r\nHost: sandbox\r\nx-api-key: k\r\n\r\n"
    switch = sys.getswitchinterval()
    with BackgroundServer(sandbox) as server, socket.create_connection(("127.0.0.1", server.port)) as connection:
        # when a request arrives while this process is too busy to read it for 0.4 s (this thread
        # keeps the GIL: as the local stack's API and pollers can, sharing the sandbox's process)
        sys.setswitchinterval(1.0)
        try:
            sent = time.monotonic()
            connection.sendall(request)
            while time.monotonic() < sent + 0.4:
                pass
        finally:
            sys.setswitchinterval(switch)
        deadline = time.monotonic() + 5
        while not sandbox.received and time.monotonic() < deadline:
            time.sleep(0.02)
    sandbox.stop()

    # then the sandbox counts it when it reached the host (as a vendor's edge would), not when its
    # thread got to it
    assert sandbox.received[0].at - sent < 0.2, sandbox.received[0].at - sent
