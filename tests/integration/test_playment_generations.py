"""The local stack on each generation of Playment's docs (`python -m local.stack --option
playment.generation=...`): the sandbox speaks only that generation, strictly, and the stack's
parameters follow it, so a Playment job goes through end to end only if they agree."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from local.process import StackProcess
from tests.conftest import PLAYMENT_GENERATIONS
from tests.integration.conftest import Stack


@pytest.fixture(scope="module", params=PLAYMENT_GENERATIONS)
def generation_stack(request: pytest.FixtureRequest) -> Iterator[tuple[str, Stack]]:
    """readme (the default) is the session's stack; the others start one of their own (no faults)."""
    generation = request.param
    if generation == "readme":
        yield generation, request.getfixturevalue("stack")
        return
    process = StackProcess("--option", f"playment.generation={generation}", "--no-event-capture")
    yield generation, Stack(process.urls, process.output)
    process.stop()


def test_a_playment_job_goes_through_on_each_generation(generation_stack: tuple[str, Stack]) -> None:
    generation, stack = generation_stack
    reference_id = f"gen-{generation}-1"

    # given a stack whose functions are configured for the generation its sandbox speaks
    assert stack.urls["playment_generation"] == generation
    for function in ("SubmitJobFunction", "SubmissionWorkerFunction", "PlaymentCallbackFunction"):
        assert stack.urls["function_environments"][function]["PLAYMENT_API_GENERATION"] == generation

    # when a Playment job is submitted
    answer = stack.call(
        "POST",
        "/jobs",
        {
            "vendor": "playment",
            "reference_id": reference_id,
            "data": {"image_url": "https://images.example.com/generations/1.jpg"},
            "tag": "boxes",
        },
    )
    assert answer.status_code in {201, 202}, answer.text  # 202: one of the session stack's faults

    # then Playment took it on the generation's own path, with its routing field: the job has
    # Playment's id (on the session stack's faults, after a retry or a FAILED from Playment itself),
    # and was never refused for a path, a field or a project
    job = wait_until_taken(stack, reference_id)
    held = {j["reference_id"]: j for j in stack.sandbox_jobs("playment")}
    assert job["vendor_job_id"] == held[reference_id]["id"]
    assert job["status"] in {"SUBMITTED", "IN_PROGRESS", "COMPLETED"} or job["last_error"]["code"] == "FS_0003"


def wait_until_taken(stack: Stack, reference_id: str, timeout: float = 60) -> dict[str, Any]:
    """The job once it has left QUEUED (a retry after a fault may take a few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = stack.call("GET", f"/jobs/{reference_id}")
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        if job["status"] != "QUEUED" or time.monotonic() > deadline:
            return job
        time.sleep(0.5)
