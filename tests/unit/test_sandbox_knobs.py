"""A running sandbox's fault knobs (POST /_sandbox/knobs), as a test or the demo in another process
sets them: every knob README lists takes effect, anything else is refused whole."""

from __future__ import annotations

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
    [{"bogus_knob": 0.5}, {"error_rate": "0.5"}, {"error_rate": True}, {"error_rate": -1}, [1], "x"],
    ids=["unknown", "text", "boolean", "negative", "array", "string"],
)
def test_a_knob_it_does_not_have_or_a_value_that_is_no_number_is_refused_and_nothing_set(
    served: tuple[Any, str], knobs: Any
) -> None:
    sandbox, url = served
    before = sandbox.error_rate

    answer = requests.post(
        f"{url}/_sandbox/knobs", json={"failed_rate": 1.0} | knobs if isinstance(knobs, dict) else knobs, timeout=5
    )

    assert answer.status_code == 400
    assert answer.json()["error"]
    assert (sandbox.error_rate, sandbox.failed_rate) == (before, 0.0)
