"""Cancel and order (handoff.cancel_order) on the in-memory store, with vendors whose cancel and
order capabilities record what they were asked and answer as a test says; the submission worker
and SubmitJob's own attempt against a cancel; the `Job Ordered` event from the stream record the
order writes. Over HTTP and direct invoke (SubmitJob on moto) at the end; on the local stack with
the vendor sandboxes in tests/integration/test_cancel_order_local.py."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from handoff.backoff import Backoff
from handoff.cancel_order import JobControl, JobRefused
from handoff.events import EventPublisher
from handoff.models import HistoryEntry, Job, JobStatus, Quote
from handoff.submission import Submitter
from handoff.vendors import parse_submit_request, vendor
from handoff.vendors.base import Acceptance, CancelCapability, Checkpoint, OrderCapability, Rejected, Transient, Vendor
from tests.conftest import LambdaContext
from tests.fakes.queues import FakeRateLimiter, FakeRetryQueue
from tests.fakes.store import FakeJobStore

AT = "2026-01-01T00:00:00.000Z"


class VendorDesk:
    """A vendor's cancel and order, answering as the test says (None: done), recording each ask."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.answer: Exception | None = None

    def cancel(self, job: Job) -> None:
        self.asked.append(("cancel", job.reference_id))
        if self.answer:
            raise self.answer

    def place(self, job: Job) -> dict[str, str]:
        self.asked.append(("order", job.reference_id))
        if self.answer:
            raise self.answer
        return {"ordered": "true"}


def registry(desk: VendorDesk) -> Callable[[str], Vendor]:
    """The registered vendors, scale and textking with the desk's capabilities; playment as it is (none)."""
    scale = dataclasses.replace(vendor("scale"), cancel=CancelCapability(cancel=desk.cancel))
    textking = dataclasses.replace(
        vendor("textking"), cancel=CancelCapability(cancel=desk.cancel), order=OrderCapability(place=desk.place)
    )
    by_name = {"scale": scale, "textking": textking, "playment": vendor("playment")}
    return by_name.__getitem__


def job(reference_id: str, vendor_name: str, status: JobStatus, **fields: Any) -> Job:
    return Job(
        reference_id=reference_id,
        vendor=vendor_name,
        status=status,
        request=fields.pop("request", {"vendor": vendor_name, "reference_id": reference_id}),
        request_hash="h",
        created_at=AT,
        updated_at=AT,
        history=[HistoryEntry(at=AT, status=status, source="test")],
        **fields,
    )


@pytest.fixture
def desk() -> VendorDesk:
    return VendorDesk()


@pytest.fixture
def store() -> FakeJobStore:
    return FakeJobStore()


@pytest.fixture
def control(store: FakeJobStore, desk: VendorDesk) -> JobControl:
    return JobControl(store, registry(desk))


def refusal(call: Callable[[], Any]) -> tuple[int, str, list[dict[str, Any]]]:
    with pytest.raises(JobRefused) as caught:
        call()
    return caught.value.status, caught.value.code, caught.value.details


# --- cancel ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor_name", ["playment", "scale", "textking"])
def test_a_queued_job_of_any_vendor_is_canceled_without_the_vendor(
    vendor_name: str, store: FakeJobStore, desk: VendorDesk, control: JobControl
) -> None:
    # given a QUEUED job no attempt holds, waiting for its next attempt
    store.put_job(job("q-1", vendor_name, JobStatus.QUEUED, next_attempt_at=AT))

    # when it is canceled
    canceled = control.cancel("q-1")

    # then it is CANCELED in one write, with a history entry, and the vendor was not asked
    assert canceled.status is JobStatus.CANCELED
    assert canceled.next_attempt_at is None
    assert canceled.history[-1].model_dump(exclude={"at"}) == {
        "status": JobStatus.CANCELED,
        "source": "operator",
        "detail": "canceled before submission",
    }
    assert store.jobs()[0]["status"] == "CANCELED"
    assert desk.asked == []
    # and canceling it again answers the same job, writing nothing
    writes = store.requests.count("UpdateItem")
    assert control.cancel("q-1") == canceled
    assert store.requests.count("UpdateItem") == writes


def test_a_queued_job_an_attempt_holds_is_not_canceled_until_the_attempt_ends(
    store: FakeJobStore, control: JobControl
) -> None:
    # given a QUEUED job a submission attempt has claimed
    store.put_job(job("q-2", "scale", JobStatus.QUEUED))
    assert store.claim("q-2", 60).claimed
    before = store.item("q-2")

    # when it is canceled: 409 submission_in_progress, nothing written
    status, code, _ = refusal(lambda: control.cancel("q-2"))
    assert (status, code) == (409, "submission_in_progress")
    assert store.item("q-2") == before
    # and once the attempt ended without a verdict, the cancel goes through
    store.release("q-2")
    assert control.cancel("q-2").status is JobStatus.CANCELED


class CancelingVendor:
    """A vendor client whose job creation is overtaken by a cancel of the same job (the race
    SubmitJob's lease closes): it records what the cancel answered, then accepts the job."""

    name = "scale"

    def __init__(self, control: JobControl) -> None:
        self.control = control
        self.cancel_answer: tuple[int, str] | None = None

    def prepare(self) -> None:
        pass

    def check(self, request: Any) -> list[dict[str, Any]]:
        return []

    def submit(self, request: Any, checkpoint: Checkpoint) -> Acceptance:
        checkpoint.check_start()
        try:
            self.control.cancel(request.reference_id)
        except JobRefused as exc:
            self.cancel_answer = (exc.status, exc.code)
        return Acceptance(vendor_job_id="task-1")

    def find(self, request: Any, job: Job) -> Acceptance | None:
        return None

    def observe(self, job: Job) -> Any:
        return None


def scale_request(reference_id: str) -> Any:
    return parse_submit_request(
        {
            "vendor": "scale",
            "reference_id": reference_id,
            "task_type": "imageannotation",
            "instruction": "Box the cars.",
            "attachment": "https://images.example.com/1.jpg",
            "attachment_type": "image",
            "params": {"geometries": {"box": {"objects_to_annotate": ["car"]}}},
        }
    )


def submitter(store: FakeJobStore, client: Any) -> Submitter:
    backoff = Backoff(1, 2, rng=random.Random(7))  # noqa: S311 (jitter, not cryptography)
    return Submitter(store, lambda _: client, FakeRetryQueue(), FakeRateLimiter(), backoff)


def test_a_cancel_during_submit_jobs_own_attempt_is_refused_and_the_vendor_job_is_recorded(
    store: FakeJobStore, control: JobControl
) -> None:
    # given SubmitJob attempting a new job at once, and a cancel arriving while the vendor creates it
    client = CancelingVendor(control)

    # when the attempt completes
    result = submitter(store, client).submit(scale_request("race-1"))

    # then the cancel was told to come again, and the job is SUBMITTED with the vendor's task:
    # never CANCELED with a task live at the vendor
    assert client.cancel_answer == (409, "submission_in_progress")
    assert result.job.status is JobStatus.SUBMITTED
    assert result.job.vendor_job_id == "task-1"
    assert "lease_until" not in (store.item("race-1") or {})


class RefusingClient:
    """A vendor client that must not be called."""

    name = "scale"

    def prepare(self) -> None:
        pass

    def check(self, request: Any) -> list[dict[str, Any]]:
        return []

    def submit(self, request: Any, checkpoint: Checkpoint) -> Acceptance:
        raise AssertionError("the vendor was contacted for a canceled job")

    def find(self, request: Any, job: Job) -> Acceptance | None:
        raise AssertionError("the vendor was contacted for a canceled job")

    def observe(self, job: Job) -> Any:
        raise AssertionError("the vendor was contacted for a canceled job")


def test_the_worker_drops_a_canceled_jobs_message_without_the_vendor(store: FakeJobStore, control: JobControl) -> None:
    # given a bulk-submitted job (QUEUED, its message on the queue) canceled before the worker got to it
    store.put_job(job("bulk-1", "scale", JobStatus.QUEUED, request=scale_request("bulk-1").model_dump(mode="json")))
    control.cancel("bulk-1")

    # when the worker receives its message
    outcome = submitter(store, RefusingClient()).handle_message(
        json.dumps({"reference_id": "bulk-1"}), receives=1, max_receives=5, remaining=300
    )

    # then the message is done, the vendor never asked, the job still CANCELED
    assert outcome.disposition.value == "done"
    assert store.jobs()[0]["status"] == "CANCELED"


@pytest.mark.parametrize("status", [JobStatus.SUBMITTED, JobStatus.IN_PROGRESS, JobStatus.DELIVERED])
def test_a_submitted_job_is_canceled_at_the_vendor_then_recorded(
    status: JobStatus, store: FakeJobStore, desk: VendorDesk, control: JobControl
) -> None:
    store.put_job(job("s-1", "scale", status, vendor_job_id="task-1"))

    canceled = control.cancel("s-1")

    assert desk.asked == [("cancel", "s-1")]
    assert canceled.status is JobStatus.CANCELED
    assert (canceled.history[-1].source, canceled.history[-1].detail) == ("operator", "canceled at scale")
    assert store.jobs()[0]["status"] == "CANCELED"


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (Rejected("not_cancellable", "Work on task task-1 has begun", http_status=400), 409, "not_cancellable"),
        (Rejected("http_401", "bad key", http_status=401, auth_failure=True), 502, "vendor_auth_failed"),
        (Transient("connection_error", "could not connect"), 503, "vendor_unavailable"),
    ],
)
def test_a_vendor_that_does_not_cancel_leaves_the_job_as_it_was(
    answer: Exception, status: int, code: str, store: FakeJobStore, desk: VendorDesk, control: JobControl
) -> None:
    store.put_job(job("s-2", "scale", JobStatus.SUBMITTED, vendor_job_id="task-2"))
    before = store.item("s-2")
    desk.answer = answer

    got_status, got_code, details = refusal(lambda: control.cancel("s-2"))

    assert (got_status, got_code) == (status, code)
    assert details[0]["vendor_code"] == answer.code  # type: ignore[attr-defined]
    assert store.item("s-2") == before


def test_a_submitted_job_of_a_vendor_without_cancel_is_not_cancellable(
    store: FakeJobStore, desk: VendorDesk, control: JobControl
) -> None:
    store.put_job(job("p-1", "playment", JobStatus.SUBMITTED, vendor_job_id="pj-1"))
    before = store.item("p-1")

    status, code, details = refusal(lambda: control.cancel("p-1"))

    assert (status, code) == (409, "not_cancellable")
    assert details == [{"status": "SUBMITTED", "vendor": "playment"}]
    assert store.item("p-1") == before


@pytest.mark.parametrize("final", [JobStatus.COMPLETED, JobStatus.FAILED])
def test_a_final_job_is_not_cancellable_and_an_unknown_one_not_found(
    final: JobStatus, store: FakeJobStore, desk: VendorDesk, control: JobControl
) -> None:
    store.put_job(job("f-1", "scale", final))
    assert refusal(lambda: control.cancel("f-1"))[:2] == (409, "not_cancellable")
    assert refusal(lambda: control.cancel("nope"))[:2] == (404, "job_not_found")
    assert desk.asked == []


# --- order -----------------------------------------------------------------------------------------

QUOTE = Quote(words=3, net_price=0.27, currency="EUR")


def unordered(reference_id: str = "t-1", **fields: Any) -> Job:
    fields.setdefault("vendor_refs", {"project_id": "p-1", "job_id": "j-1", "ordered": "false"})
    return job(reference_id, "textking", fields.pop("status", JobStatus.SUBMITTED), quote=QUOTE, **fields)


def test_an_unordered_job_is_ordered_at_the_vendor_then_recorded_once(
    store: FakeJobStore, desk: VendorDesk, control: JobControl
) -> None:
    store.put_job(unordered())

    ordered = control.order("t-1")

    assert desk.asked == [("order", "t-1")]
    assert ordered.vendor_refs == {"project_id": "p-1", "job_id": "j-1", "ordered": "true"}
    assert ordered.ordered_at is not None
    assert ordered.status is JobStatus.SUBMITTED
    assert ordered.quote == QUOTE  # kept: what was ordered
    # and ordering it again answers the same job, without the vendor or a write
    writes = store.requests.count("UpdateItem")
    assert control.order("t-1") == ordered
    assert desk.asked == [("order", "t-1")]
    assert store.requests.count("UpdateItem") == writes


@pytest.mark.parametrize(
    ("given", "status", "code"),
    [
        (unordered(status=JobStatus.QUEUED, vendor_refs={}), 409, "not_orderable"),
        (unordered(status=JobStatus.CANCELED), 409, "not_orderable"),
        (job("t-1", "scale", JobStatus.SUBMITTED), 422, "order_not_supported"),
        (job("t-1", "playment", JobStatus.SUBMITTED), 422, "order_not_supported"),
    ],
)
def test_what_cannot_be_ordered_is_refused_without_the_vendor(
    given: Job, status: int, code: str, store: FakeJobStore, desk: VendorDesk, control: JobControl
) -> None:
    store.put_job(given)
    before = store.item("t-1")

    assert refusal(lambda: control.order("t-1"))[:2] == (status, code)
    assert desk.asked == []
    assert store.item("t-1") == before
    assert refusal(lambda: control.order("nope"))[:2] == (404, "job_not_found")


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (Rejected("not_orderable", "project p-1 is canceled", http_status=403), 409, "not_orderable"),
        (Transient("http_503", "unavailable", http_status=503), 503, "vendor_unavailable"),
    ],
)
def test_a_vendor_that_does_not_order_leaves_the_job_as_it_was(
    answer: Exception, status: int, code: str, store: FakeJobStore, desk: VendorDesk, control: JobControl
) -> None:
    store.put_job(unordered())
    before = store.item("t-1")
    desk.answer = answer

    assert refusal(lambda: control.order("t-1"))[:2] == (status, code)
    assert store.item("t-1") == before


# --- events ----------------------------------------------------------------------------------------


class Bus:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.entries += Entries
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i, _ in enumerate(Entries)]}


def record(old: dict[str, Any] | None, new: dict[str, Any], sequence: str) -> dict[str, Any]:
    images = {"NewImage": new, **({"OldImage": old} if old else {})}
    return {"eventName": "MODIFY" if old else "INSERT", "dynamodb": {**images, "SequenceNumber": sequence}}


def test_an_order_is_one_job_ordered_event_and_a_cancel_one_status_change(
    store: FakeJobStore, desk: VendorDesk, control: JobControl
) -> None:
    # given an unordered job that is ordered, and another that is canceled
    store.put_job(unordered())
    store.put_job(job("s-1", "scale", JobStatus.SUBMITTED, vendor_job_id="task-1"))
    before_order, before_cancel = store.item("t-1"), store.item("s-1")
    control.order("t-1")
    control.cancel("s-1")

    # when the stream records of those writes are published
    bus = Bus()
    retry = EventPublisher(bus, "handoff-bus").publish(
        [
            record(before_order, store.item("t-1") or {}, "1"),
            record(before_cancel, store.item("s-1") or {}, "2"),
        ]
    )

    # then the order is one `Job Ordered` event with its quote, the cancel one `Job Status Changed`
    assert retry == []
    assert [e["DetailType"] for e in bus.entries] == ["Job Ordered", "Job Status Changed"]
    ordered = json.loads(bus.entries[0]["Detail"])
    assert ordered == {
        "reference_id": "t-1",
        "vendor": "textking",
        "status": "SUBMITTED",
        "vendor_job_id": None,
        "quote": {"words": 3, "net_price": 0.27, "currency": "EUR"},
        "batch_ref": None,
        "at": ordered["at"],
        "version": 2,
    }
    changed = json.loads(bus.entries[1]["Detail"])
    assert (changed["status"], changed["previous_status"]) == ("CANCELED", "SUBMITTED")


def test_a_job_ordered_as_it_is_submitted_has_no_job_ordered_event(store: FakeJobStore) -> None:
    # given a job's SUBMITTED write that records ordered "true" (no "false" before it)
    queued = job("t-2", "textking", JobStatus.QUEUED)
    store.put_job(queued)
    old = store.item("t-2")
    store.put_job(queued.model_copy(update={"status": JobStatus.SUBMITTED, "vendor_refs": {"ordered": "true"}}))

    bus = Bus()
    EventPublisher(bus, "handoff-bus").publish([record(old, store.item("t-2") or {}, "1")])

    assert [e["DetailType"] for e in bus.entries] == ["Job Status Changed"]


# --- over HTTP and direct invoke (SubmitJob on moto) ------------------------------------------------


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("action", ["cancel", "order"])
def test_each_action_answers_bad_and_unknown_ids_alike_by_invoke_and_http(action: str, context: LambdaContext) -> None:
    from functions.submit_job import app as submit_app
    from tests.conftest import load_event

    for reference_id, status, code in (("never-submitted", 404, "job_not_found"), ("bad id!", 422, "invalid_request")):
        direct = submit_app.lambda_handler({"action": action, "reference_id": reference_id}, context)
        event = load_event(f"submit_job/api_post_{action}.json")
        encoded = reference_id.replace(" ", "%20").replace("!", "%21")
        event["path"] = f"/jobs/{encoded}/{action}"
        event["pathParameters"] = {"reference_id": encoded}
        response = submit_app.lambda_handler(event, context)
        over_http = json.loads(response["body"])
        assert response["statusCode"] == status, over_http
        assert over_http == direct
        assert set(over_http["error"]) == {"code", "message", "details"}
        assert over_http["error"]["code"] == code
