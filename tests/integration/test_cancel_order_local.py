"""Cancel and order on the local stack, over real HTTP (SigV4) against the vendor sandboxes, which
refuse what the vendors refuse (Scale: a task whose work has begun; TEXTKING: a project no longer
prepared, 403). What a user sees: the answer, the job as GET shows it, what the sandbox holds, and
the events on the bus. A stack of its own without faults: these tests set sandbox knobs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from local.process import StackProcess
from tests.integration.conftest import Stack


@pytest.fixture(scope="module")
def quiet_stack() -> Iterator[Stack]:
    process = StackProcess("--log-level", "WARNING")
    yield Stack(process.urls, process.output)
    process.stop()


def knobs(stack: Stack, vendor: str, **values: float) -> None:
    base = stack.urls[f"{vendor}_sandbox"].removesuffix("/v1")
    answer = requests.post(f"{base}/_sandbox/knobs", json=values, timeout=10)
    assert answer.status_code == 200, answer.text


def scale_rows(stack: Stack) -> list[dict[str, Any]]:
    base = stack.urls["scale_sandbox"].removesuffix("/v1")
    rows: list[dict[str, Any]] = requests.get(f"{base}/_sandbox/jobs", timeout=10).json()
    return rows


def scale_job(reference_id: str) -> dict[str, Any]:
    return {
        "vendor": "scale",
        "reference_id": reference_id,
        "task_type": "imageannotation",
        "instruction": "Draw a box around each car.",
        "attachment": "https://images.example.com/cancel/1.jpg",
        "attachment_type": "image",
        "params": {"geometries": {"box": {"objects_to_annotate": ["car"]}}},
    }


def textking_job(reference_id: str) -> dict[str, Any]:
    return {
        "vendor": "textking",
        "reference_id": reference_id,
        "name": f"Document {reference_id}",
        "source_language": "en",
        "target_language": "de",
        "document": {"filename": "doc.txt", "text": "Three words here."},
        "order": False,
    }


def eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


class Events:
    """The bus's events (the stack copies them into events_queue), read as they come, kept per job."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.seen: list[dict[str, Any]] = []

    def of(
        self, reference_id: str, detail_type: str, status: str | None = None, timeout: float = 20
    ) -> list[dict[str, Any]]:
        """The job's events of `detail_type` (of `status` only, if given), once one came and a
        second after it (a repeat would come within it)."""
        sqs = self.stack.aws("sqs")

        def found() -> list[dict[str, Any]]:
            batch = sqs.receive_message(QueueUrl=self.stack.urls["events_queue"], MaxNumberOfMessages=10)
            for message in batch.get("Messages", []):
                self.seen.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.stack.urls["events_queue"], ReceiptHandle=message["ReceiptHandle"])
            return [
                e["detail"]
                for e in self.seen
                if e["detail-type"] == detail_type
                and e["detail"]["reference_id"] == reference_id
                and (status is None or e["detail"]["status"] == status)
            ]

        if eventually(found, timeout):
            time.sleep(1)
        return found()


@pytest.fixture(scope="module")
def events(quiet_stack: Stack) -> Events:
    return Events(quiet_stack)


def cancel(stack: Stack, reference_id: str) -> requests.Response:
    """POST /jobs/{id}/cancel; a 409 submission_in_progress (an attempt holds the job) is sent again."""
    for _ in range(40):
        answer = stack.call("POST", f"/jobs/{reference_id}/cancel")
        if answer.status_code != 409 or answer.json()["error"]["code"] != "submission_in_progress":
            return answer
        time.sleep(0.5)
    return answer


def test_a_queued_job_is_canceled_without_the_vendor_and_never_reaches_it(quiet_stack: Stack, events: Events) -> None:
    # given a Scale job left QUEUED: Scale answers every creation 503 for now
    knobs(quiet_stack, "scale", error_rate=1)
    queued = quiet_stack.call("POST", "/jobs", scale_job("cx-queued-1"))
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] == "QUEUED"

    # when it is canceled
    answer = cancel(quiet_stack, "cx-queued-1")
    knobs(quiet_stack, "scale", error_rate=0)

    # then it is CANCELED, said by its history and one event
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "CANCELED"
    assert answer.json()["history"][-1]["source"] == "operator"
    changed = events.of("cx-queued-1", "Job Status Changed", "CANCELED")
    assert [e["previous_status"] for e in changed] == ["QUEUED"]
    # and the worker's later attempt drops it: Scale never holds a task for it, the job stays CANCELED
    time.sleep(4)
    assert not [row for row in scale_rows(quiet_stack) if row["reference_id"] == "cx-queued-1"]
    assert quiet_stack.call("GET", "/jobs/cx-queued-1").json()["status"] == "CANCELED"
    # and canceling again answers the same job
    again = quiet_stack.call("POST", "/jobs/cx-queued-1/cancel")
    assert (again.status_code, again.json()["version"]) == (200, answer.json()["version"])


def test_a_submitted_scale_task_is_canceled_at_scale_until_work_begins(quiet_stack: Stack, events: Events) -> None:
    # given a Scale task whose work begins in tens of seconds
    knobs(quiet_stack, "scale", work_seconds=120)
    submitted = quiet_stack.call("POST", "/jobs", scale_job("cx-scale-1"))
    assert submitted.status_code == 201, submitted.text

    # when it is canceled
    answer = quiet_stack.call("POST", "/jobs/cx-scale-1/cancel")

    # then Scale canceled the task and the job is CANCELED, with its one event
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "CANCELED"
    task = next(row for row in scale_rows(quiet_stack) if row["id"] == submitted.json()["vendor_job_id"])
    assert task["status"] == "canceled"
    canceled = events.of("cx-scale-1", "Job Status Changed", "CANCELED")
    assert [e["previous_status"] for e in canceled] == ["SUBMITTED"]

    # given a task Scale has begun work on
    knobs(quiet_stack, "scale", work_seconds=0.6)
    begun = quiet_stack.call("POST", "/jobs", scale_job("cx-scale-2"))
    assert begun.status_code == 201, begun.text
    time.sleep(0.5)  # its work begins after at most 0.3 s; it completes after 0.3 s at the least
    # when it is canceled: Scale refuses (work has begun, or it is done): 409 not_cancellable, nothing changed
    refused = quiet_stack.call("POST", "/jobs/cx-scale-2/cancel")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "not_cancellable"
    assert quiet_stack.call("GET", "/jobs/cx-scale-2").json()["status"] != "CANCELED"
    knobs(quiet_stack, "scale", work_seconds=3)


def test_a_prepared_textking_project_is_canceled_and_a_running_one_is_not(quiet_stack: Stack, events: Events) -> None:
    # given a TEXTKING job submitted without its order: its project is prepared, its quote on the job
    submitted = quiet_stack.call("POST", "/jobs", textking_job("cx-doc-1"))
    assert submitted.status_code == 201, submitted.text
    job = submitted.json()
    assert job["vendor_refs"]["ordered"] == "false"
    assert job["quote"]["words"] == 3
    assert job["quote"]["currency"] == "EUR"
    assert job["quote"]["net_price"] > 0
    assert quiet_stack.call("GET", "/jobs/cx-doc-1").json()["quote"] == job["quote"]

    # when it is canceled
    answer = quiet_stack.call("POST", "/jobs/cx-doc-1/cancel")

    # then TEXTKING's project is canceled (its job too) and the job CANCELED, with one event
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "CANCELED"
    rows = eventually(
        lambda: [
            r
            for r in quiet_stack.sandbox_jobs("textking")
            if r["id"] == job["vendor_job_id"] and r["state"] == "canceled"
        ]
    )
    assert rows, quiet_stack.sandbox_jobs("textking")
    canceled = events.of("cx-doc-1", "Job Status Changed", "CANCELED")
    assert [e["previous_status"] for e in canceled] == ["SUBMITTED"]
    # and it can no longer be ordered
    not_orderable = quiet_stack.call("POST", "/jobs/cx-doc-1/order")
    assert (not_orderable.status_code, not_orderable.json()["error"]["code"]) == (409, "not_orderable")


def test_a_textking_job_is_ordered_later_once_with_its_event(quiet_stack: Stack, events: Events) -> None:
    # given a TEXTKING job submitted without its order
    submitted = quiet_stack.call("POST", "/jobs", textking_job("cx-doc-2"))
    assert submitted.status_code == 201, submitted.text
    job = submitted.json()

    # when it is ordered, twice
    ordered = quiet_stack.call("POST", "/jobs/cx-doc-2/order")
    again = quiet_stack.call("POST", "/jobs/cx-doc-2/order")

    # then TEXTKING's project runs (its job is being translated) and the job records the order once
    assert ordered.status_code == 200, ordered.text
    assert ordered.json()["vendor_refs"]["ordered"] == "true"
    assert ordered.json()["ordered_at"]
    assert again.status_code == 200
    assert again.json()["ordered_at"] == ordered.json()["ordered_at"]
    row = next(r for r in quiet_stack.sandbox_jobs("textking") if r["id"] == job["vendor_job_id"])
    assert row["state"] != "new"
    # and the bus carried one `Job Ordered` event with the quote
    ordered_events = events.of("cx-doc-2", "Job Ordered")
    assert len(ordered_events) == 1
    assert ordered_events[0]["quote"] == job["quote"]
    # and the job goes on as an ordered one
    progressed = eventually(lambda: quiet_stack.call("GET", "/jobs/cx-doc-2").json()["status"] != "SUBMITTED")
    assert progressed
    # and it can no longer be canceled: the project is not prepared (TEXTKING's 403)
    refused = quiet_stack.call("POST", "/jobs/cx-doc-2/cancel")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "not_cancellable"


def test_a_submitted_playment_job_is_not_cancellable_and_other_vendors_have_no_order(quiet_stack: Stack) -> None:
    submitted = quiet_stack.call(
        "POST",
        "/jobs",
        {
            "vendor": "playment",
            "reference_id": "cx-img-1",
            "data": {"image_url": "https://images.example.com/cancel/1.jpg"},
            "tag": "boxes",
        },
    )
    assert submitted.status_code == 201, submitted.text

    refused = quiet_stack.call("POST", "/jobs/cx-img-1/cancel")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "not_cancellable"
    assert quiet_stack.call("GET", "/jobs/cx-img-1").json()["status"] != "CANCELED"
    no_order = quiet_stack.call("POST", "/jobs/cx-img-1/order")
    assert (no_order.status_code, no_order.json()["error"]["code"]) == (422, "order_not_supported")
    unknown = quiet_stack.call("POST", "/jobs/cx-none/cancel")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "job_not_found")
