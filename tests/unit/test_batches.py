"""Batches' rules on the in-memory ports (tests/fakes): creation and its idempotency, jobs
submitted into a batch, progress counts, and exactly one `Batch Completed` event whatever the
order, the repeats and the crashes.

The vendor's batches are an in-memory BatchCapability here (what the vendor was asked, what it
holds); Playment's own, over HTTP, are in the integration test (tests/integration/test_batches.py).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from handoff.backoff import Backoff
from handoff.batches import Batches, BatchRefused
from handoff.lifecycle import transition_to
from handoff.models import BatchCompleted, CreateBatchRequest, JobStatus
from handoff.submission import Outcome, Submitter
from handoff.vendors import parse_submit_request
from handoff.vendors.base import BatchCapability, Rejected, Transient
from local.sandboxes.playment import PlaymentSandbox
from tests.conftest import load_event
from tests.fakes.queues import FakeRateLimiter, FakeRetryQueue
from tests.fakes.store import FakeBatchStore, FakeJobStore
from tests.fakes.vendors import clients, playment_client

VENDOR = "playment"  # a vendor whose request model takes batch_ref
REF = "order-1042"


@dataclass
class VendorBatches:
    """A vendor's batches in memory: names unique, as Playment's are per project."""

    batches: dict[str, str] = field(default_factory=dict)  # id -> name
    created: list[str] = field(default_factory=list)  # names asked for, in order
    fail_next: list[Exception] = field(default_factory=list)
    lose_next: int = 0  # created at the vendor, then the answer is lost

    def create(self, name: str, description: str) -> str:
        self.created.append(name)
        if self.fail_next:
            raise self.fail_next.pop(0)
        if name in self.batches.values():
            raise Rejected("BATCH_CREATION", "duplicate key value violates unique constraint")
        batch_id = f"vb-{len(self.batches) + 1}"
        self.batches[batch_id] = name
        if self.lose_next:
            self.lose_next -= 1
            raise Transient("timeout", "the answer was lost")
        return batch_id

    def find(self, name: str) -> str | None:
        return next((i for i, n in self.batches.items() if n == name), None)

    def capability(self) -> BatchCapability:
        return BatchCapability(
            create=self.create,
            find=self.find,
            details=lambda batch_id: (
                {"id": batch_id, "name": self.batches[batch_id]} if batch_id in self.batches else None
            ),
            named_in=lambda request: request.batch_id,
            assign=lambda request, ref, batch_id: request.model_copy(update={"batch_ref": ref, "batch_id": batch_id}),
        )


@dataclass
class World:
    jobs: FakeJobStore
    store: FakeBatchStore
    vendor: VendorBatches
    events: list[BatchCompleted]
    batches: Batches
    now: list[float]

    def create(self, **changes: Any) -> tuple[bool, Any]:
        body = {"vendor": VENDOR, "name": "week 47", "description": "front camera", "batch_ref": REF} | changes
        return self.batches.create(CreateBatchRequest.model_validate(body))

    def finish(self, reference_id: str, status: JobStatus, claimant: str | None = None) -> bool:
        """The job reaches `status`, and its stream record is processed."""
        self.jobs.transition(reference_id, transition_to(status), source="callback")
        return self.batches.check_completion(REF, {reference_id: status}, claimant=claimant or f"stream:{reference_id}")


def job_request(reference_id: str, **changes: Any) -> Any:
    body = copy.deepcopy(load_event("submit_job/direct_invoke_playment.json"))
    body["reference_id"] = reference_id
    return parse_submit_request(body | changes)


@pytest.fixture
def world() -> World:
    jobs, store, vendor, events, now = FakeJobStore(), FakeBatchStore(), VendorBatches(), [], [1000.0]
    capabilities = {VENDOR: vendor.capability()}
    batches = Batches(store, jobs, capabilities.get, events.append, clock=lambda: now[0], lease_seconds=60)
    return World(jobs, store, vendor, events, batches, now)


def submitter(world: World) -> Submitter:
    backoff = Backoff(1, 2, rng=random.Random(7))  # noqa: S311 (jitter, not cryptography)
    return Submitter(
        world.jobs,
        clients(playment=playment_client()),
        FakeRetryQueue(),
        FakeRateLimiter(),
        backoff,
        batches=world.batches,
    )


def batch_of(world: World, size: int) -> list[str]:
    """Given a batch of `size` jobs recorded QUEUED and the batch closed with them."""
    world.create()
    refs = [f"img-{n}" for n in range(size)]
    results = submitter(world).submit_many([job_request(r, batch_ref=REF) for r in refs])
    assert all(r.outcome is Outcome.QUEUED for r in results)  # type: ignore[union-attr]
    world.batches.close(REF)
    return refs


# --- create ---------------------------------------------------------------------------------------------


def test_a_batch_is_created_at_the_vendor_once_and_the_same_request_again_answers_it(world: World) -> None:
    created, batch = world.create()
    again, same = world.create()

    assert (created, again) == (True, False)
    assert batch.vendor_batch_id == same.vendor_batch_id == "vb-1"
    assert world.vendor.created == ["week 47"]
    assert world.store.get(REF) == same


def test_another_request_under_the_same_batch_ref_is_a_conflict_and_changes_nothing(world: World) -> None:
    world.create()

    with pytest.raises(BatchRefused) as refused:
        world.create(name="week 48")

    assert (refused.value.status, refused.value.code) == (409, "conflict")
    assert world.vendor.created == ["week 47"]
    assert world.store.get(REF).name == "week 47"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (Rejected("BATCH_CREATION", "name taken"), 424, "vendor_rejected"),
        (Transient("http_503", "try later"), 503, "vendor_unavailable"),
    ],
)
def test_a_batch_the_vendor_does_not_create_leaves_nothing_behind(
    world: World, failure: Exception, status: int, code: str
) -> None:
    world.vendor.fail_next.append(failure)

    with pytest.raises(BatchRefused) as refused:
        world.create(batch_ref=None)

    assert (refused.value.status, refused.value.code) == (status, code)
    assert refused.value.details[0]["vendor_code"] == failure.code  # type: ignore[attr-defined]
    assert world.store.items == {}


def test_a_lost_vendor_answer_is_resumed_by_the_same_request_without_a_second_vendor_batch(world: World) -> None:
    world.vendor.lose_next = 1  # created at the vendor; Handoff hears a timeout
    with pytest.raises(BatchRefused) as refused:
        world.create()
    assert refused.value.status == 503

    created, batch = world.create()  # the caller sends it again: the name is taken, the batch found

    assert created is True
    assert batch.vendor_batch_id == "vb-1"
    assert list(world.vendor.batches) == ["vb-1"]


def test_a_vendor_without_batches_answers_422_batches_not_supported(world: World) -> None:
    with pytest.raises(BatchRefused) as refused:
        world.create(vendor="textking")

    assert (refused.value.status, refused.value.code) == (422, "batches_not_supported")
    assert world.store.items == {}


# --- submit into one, progress --------------------------------------------------------------------------


def test_a_job_named_into_a_batch_records_its_batch_ref_and_the_vendor_gets_the_batch_id(
    sandbox: PlaymentSandbox, world: World
) -> None:
    # given a batch that exists at Playment (the sandbox refuses a batch id it does not hold: GE_0001)
    world.vendor.create = lambda name, description: sandbox.create_batch(name, description).id  # type: ignore[method-assign]
    world.batches = Batches(
        world.store, world.jobs, {VENDOR: world.vendor.capability()}.get, world.events.append, clock=lambda: 0.0
    )
    _, batch = world.create()

    result = submitter(world).submit(job_request("img-1", batch_ref=REF))

    assert result.outcome is Outcome.SUBMITTED
    assert result.job.batch_ref == REF
    assert result.job.request["batch_id"] == batch.vendor_batch_id
    assert sandbox.by_reference["img-1"].batch_id == batch.vendor_batch_id


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"batch_ref": "no-such-batch"}, 422, "batch_not_found"),
        ({"batch_ref": REF, "batch_id": "0b9e7c52-1f4e-4c1e-9d1e-3c2a2b7f5e10"}, 422, "batch_mismatch"),
    ],
)
def test_a_job_naming_a_batch_it_cannot_go_into_is_refused_and_nothing_is_written(
    world: World, changes: dict[str, Any], status: int, code: str
) -> None:
    world.create()

    with pytest.raises(BatchRefused) as refused:
        submitter(world).submit(job_request("img-1", **changes))

    assert (refused.value.status, refused.value.code) == (status, code)
    assert world.jobs.items == {}


def test_a_closed_batch_takes_no_new_job_but_answers_a_repeat(world: World) -> None:
    batch_of(world, 2)

    with pytest.raises(BatchRefused) as refused:
        submitter(world).submit(job_request("img-new", batch_ref=REF))
    repeat = submitter(world).submit(job_request("img-0", batch_ref=REF))

    assert (refused.value.status, refused.value.code) == (409, "batch_closed")
    assert repeat.outcome is Outcome.REPLAYED
    assert "img-new" not in world.jobs.items


def test_progress_counts_the_batchs_jobs_by_status_from_the_index(world: World) -> None:
    refs = batch_of(world, 3)
    world.jobs.transition(refs[0], transition_to(JobStatus.COMPLETED), source="callback")

    progress = world.batches.progress(REF, with_vendor=True)

    assert progress["jobs"] == 3
    assert progress["final"] == 1
    assert progress["counts"]["QUEUED"] == 2
    assert progress["counts"]["COMPLETED"] == 1
    assert progress["state"] == "closed"
    assert progress["expected_jobs"] == 3
    assert progress["vendor_details"] == {"found": True, "batch": {"id": "vb-1", "name": "week 47"}}
    assert "Scan" not in world.jobs.requests


# --- completion -------------------------------------------------------------------------------------------


def test_the_last_final_job_completes_the_batch_with_one_event_and_its_counts(world: World) -> None:
    refs = batch_of(world, 3)

    world.finish(refs[0], JobStatus.COMPLETED)
    world.finish(refs[1], JobStatus.FAILED)
    assert world.events == []
    world.finish(refs[2], JobStatus.COMPLETED)

    assert len(world.events) == 1
    event = world.events[0]
    assert (event.batch_ref, event.vendor, event.vendor_batch_id, event.jobs) == (REF, VENDOR, "vb-1", 3)
    assert event.counts == {"CANCELED": 0, "COMPLETED": 2, "FAILED": 1}
    assert world.store.get(REF).published_at is not None  # type: ignore[union-attr]


def test_duplicate_and_reordered_stream_records_publish_no_second_event(world: World) -> None:
    refs = batch_of(world, 3)
    order = [refs[2], refs[0], refs[1]]
    for ref in order:
        world.finish(ref, JobStatus.COMPLETED)

    for ref in [*order, *reversed(order)]:  # every record delivered again, in any order
        assert world.batches.check_completion(REF, {ref: JobStatus.COMPLETED}, claimant=f"stream:{ref}") is False

    assert len(world.events) == 1


def test_an_open_batch_never_completes_until_it_is_closed_and_closing_it_then_completes_it(world: World) -> None:
    world.create()
    submitter(world).submit_many([job_request(r, batch_ref=REF) for r in ("a", "b")])
    world.finish("a", JobStatus.COMPLETED)
    world.finish("b", JobStatus.COMPLETED)
    assert world.events == []

    batch = world.batches.close(REF)

    assert batch.completed_at is not None
    assert [e.jobs for e in world.events] == [2]


def test_a_job_the_index_has_not_caught_up_with_is_read_from_the_table(world: World) -> None:
    refs = batch_of(world, 2)
    world.finish(refs[0], JobStatus.COMPLETED)
    # the second job is final in the table, but its stream record names only itself
    world.jobs.transition(refs[1], transition_to(JobStatus.COMPLETED), source="callback")

    assert world.batches.check_completion(REF, {}, claimant="stream:late") is True
    assert len(world.events) == 1


def test_a_crash_between_claim_and_publish_is_published_once_when_the_same_record_comes_again(world: World) -> None:
    refs = batch_of(world, 2)
    world.finish(refs[0], JobStatus.COMPLETED)
    world.batches.publish = _crash
    with pytest.raises(ConnectionError):
        world.finish(refs[1], JobStatus.COMPLETED, claimant="stream:42")
    claimed = world.store.get(REF)
    assert claimed is not None
    assert claimed.completed_at is not None
    assert claimed.published_at is None
    world.batches.publish = world.events.append

    # another job's record meanwhile: the live claimant's lease holds, so nothing is published
    assert world.batches.check_completion(REF, {}, claimant="stream:other") is False
    # the crashed claimant's record is retried by the stream
    assert world.batches.check_completion(REF, {refs[1]: JobStatus.COMPLETED}, claimant="stream:42") is True
    assert world.batches.check_completion(REF, {refs[1]: JobStatus.COMPLETED}, claimant="stream:42") is False

    assert len(world.events) == 1


def test_a_claim_whose_claimant_never_came_back_is_published_by_the_next_look_after_its_lease(world: World) -> None:
    refs = batch_of(world, 1)
    world.batches.publish = _crash
    with pytest.raises(ConnectionError):
        world.finish(refs[0], JobStatus.COMPLETED, claimant="stream:lost")
    world.batches.publish = world.events.append

    world.now[0] += 61  # past the lease
    assert world.batches.check_completion(REF, {}, claimant="close:retry") is True

    assert len(world.events) == 1


def _crash(event: BatchCompleted) -> None:
    raise ConnectionError("the function stopped before the bus took the event")


# --- the batch store: the fake against moto's table (the contract) -----------------------------------


@pytest.fixture(params=["fake", "moto"])
def stores(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    """(a BatchStore, a JobStore): in memory, or on moto's tables made from template.yaml."""
    if request.param == "fake":
        return FakeBatchStore(), FakeJobStore()
    import os

    from handoff.store import DynamoBatchStore, DynamoJobStore
    from tests.conftest import aws_client, load_template

    request.getfixturevalue("aws")
    props = load_template()["Resources"]["BatchesTable"]["Properties"]
    client = aws_client("dynamodb")
    client.create_table(
        TableName="handoff-batches",
        BillingMode=props["BillingMode"],
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
    )
    return DynamoBatchStore("handoff-batches", client), DynamoJobStore(os.environ["JOBS_TABLE_NAME"], client)


def new_batch(ref: str = REF) -> Any:
    from handoff.models import Batch

    return Batch(batch_ref=ref, vendor=VENDOR, name="n", request_hash="h", created_at="t", updated_at="t")


def test_the_batch_stores_conditional_writes_agree(stores: tuple[Any, Any]) -> None:
    store, _ = stores
    assert store.create(new_batch()).applied is True
    again = store.create(new_batch())
    assert again.applied is False
    assert again.batch.batch_ref == REF

    assert store.record_vendor_batch(REF, "vb-1").applied is True
    assert store.record_vendor_batch(REF, "vb-2").applied is False
    store.forget(REF)  # a batch the vendor created is never forgotten
    assert store.get(REF).vendor_batch_id == "vb-1"

    assert store.close(REF, 3).applied is True
    assert store.close(REF, 3).applied is True
    assert store.close(REF, 4).batch.expected_jobs == 3

    claimed = store.claim_completion(REF, {"COMPLETED": 3}, "a", 100.0)
    assert claimed.applied is True
    assert claimed.batch.final_counts == {"COMPLETED": 3}
    assert store.claim_completion(REF, {"COMPLETED": 3}, "b", 100.0).applied is False
    assert store.take_publication(REF, "b", 50.0, 170.0).applied is False  # a's lease holds
    assert store.take_publication(REF, "a", 50.0, 170.0).applied is True  # a itself, again
    assert store.take_publication(REF, "b", 171.0, 300.0).applied is True  # a's lease ran out
    assert store.mark_published(REF).applied is True
    assert store.mark_published(REF).applied is False
    assert store.take_publication(REF, "c", 999.0, 1200.0).applied is False
    assert store.get(REF).published_at is not None

    store.create(new_batch("pending"))
    store.forget("pending")
    assert store.get("pending") is None

    store.discard(REF)  # a sized batch is never discarded
    assert store.get(REF) is not None
    store.create(new_batch("empty"))
    store.record_vendor_batch("empty", "vb-9")
    store.discard("empty")  # a bulk's new batch that took no job
    assert store.get("empty") is None


def test_a_batchs_jobs_are_read_from_the_index_on_both_stores(stores: tuple[Any, Any]) -> None:
    _, jobs = stores
    for n, ref in enumerate(["a", "b", "c"]):
        job = submitter_job(ref, REF if n < 2 else "other")
        jobs.create(job)
    jobs.transition("a", transition_to(JobStatus.COMPLETED), source="callback")

    assert jobs.batch_jobs(REF) == {"a": JobStatus.COMPLETED, "b": JobStatus.QUEUED}
    assert jobs.batch_jobs("none") == {}


def submitter_job(reference_id: str, batch_ref: str) -> Any:
    from handoff.models import Job

    return Job(
        reference_id=reference_id,
        vendor=VENDOR,
        status=JobStatus.QUEUED,
        request={},
        request_hash="h",
        batch_ref=batch_ref,
        created_at="t",
        updated_at="t",
    )


# --- the EventPublisher: a final job's stream record looks at its batch --------------------------------


class Bus:
    """An EventBridge client that keeps what it was sent; `refuse` makes PutEvents raise."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.refuse = False

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.refuse and any(e["DetailType"] == "Batch Completed" for e in Entries):
            raise ConnectionError("the bus is unreachable")
        self.entries += Entries
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i in range(len(Entries))]}

    def of(self, detail_type: str) -> list[dict[str, Any]]:
        import json

        return [json.loads(e["Detail"]) for e in self.entries if e["DetailType"] == detail_type]


def test_the_sample_stream_record_of_a_batchs_last_job_publishes_its_batch_completed_once(world: World) -> None:
    from handoff.events import EventPublisher

    # given the sample's batch (order-1043), closed with 3 jobs, two of them final
    record = load_event("event_publisher/stream_batch_member_completed.json")["Records"][0]
    world.create(batch_ref="order-1043")
    refs = ["order-1043-img-1", "order-1043-img-2", "order-1043-img-3"]
    for ref in refs:
        world.jobs.create(submitter_job(ref, "order-1043"))
    world.batches.close("order-1043")
    for ref in refs:
        world.jobs.transition(ref, transition_to(JobStatus.COMPLETED), source="callback")
    bus = Bus()
    publisher = EventPublisher(bus, "handoff", batches=world.batches)
    world.batches.publish = publisher.publish_batch_completed
    bus.refuse = True

    # when its record comes, the bus fails, and the stream delivers it again (twice)
    assert publisher.publish([record]) == [record["dynamodb"]["SequenceNumber"]]
    bus.refuse = False
    assert publisher.publish([record]) == []
    assert publisher.publish([record]) == []

    # then the job's event carries its batch_ref, and the batch has exactly one Batch Completed
    assert {e["batch_ref"] for e in bus.of("Job Status Changed")} == {"order-1043"}
    completed = bus.of("Batch Completed")
    assert len(completed) == 1
    assert completed[0]["counts"]["COMPLETED"] == 3


# --- a batch's size: it takes jobs until it holds that many (tester's finding 1) ---------------------


def test_a_batch_sized_at_creation_takes_jobs_until_it_holds_that_many_then_refuses_and_completes(
    world: World,
) -> None:
    # given a batch created with expected_jobs 2
    _, batch = world.create(expected_jobs=2)
    assert world.batches.view(batch)["state"] == "sized"

    # when three jobs are submitted into it
    first = submitter(world).submit(job_request("img-0", batch_ref=REF))
    second = submitter(world).submit(job_request("img-1", batch_ref=REF))
    with pytest.raises(BatchRefused) as refused:
        submitter(world).submit(job_request("img-2", batch_ref=REF))

    # then it takes two, refuses the third with its true count, and completes when both are final
    assert (first.outcome, second.outcome) == (Outcome.QUEUED, Outcome.QUEUED)
    assert (refused.value.status, refused.value.code) == (409, "batch_closed")
    assert "holds 2 jobs of its 2" in refused.value.message
    assert "img-2" not in world.jobs.items
    assert world.batches.progress(REF)["state"] == "closed"
    world.finish("img-0", JobStatus.COMPLETED)
    world.finish("img-1", JobStatus.FAILED)
    assert [(e.jobs, e.counts["FAILED"]) for e in world.events] == [(2, 1)]


def test_closing_above_what_a_batch_holds_takes_the_missing_jobs_and_no_more(world: World) -> None:
    # given an open batch holding 5 jobs, closed with 6
    world.create()
    submitter(world).submit_many([job_request(f"img-{n}", batch_ref=REF) for n in range(5)])
    assert world.batches.view(world.batches.close(REF, 6))["state"] == "sized"

    # when a 6th and a 7th job come
    sixth = submitter(world).submit(job_request("img-5", batch_ref=REF))
    with pytest.raises(BatchRefused) as refused:
        submitter(world).submit(job_request("img-6", batch_ref=REF))

    # then the 6th is taken, the 7th refused with the count it holds
    assert sixth.outcome is Outcome.QUEUED
    assert refused.value.code == "batch_closed"
    assert "holds 6 jobs of its 6" in refused.value.message


def test_one_bulk_cannot_overfill_a_sized_batch(world: World) -> None:
    world.create(expected_jobs=2)

    results = submitter(world).submit_many([job_request(f"img-{n}", batch_ref=REF) for n in range(3)])

    assert [getattr(r, "code", "queued") for r in results] == ["queued", "queued", "batch_closed"]
    assert sorted(world.jobs.batch_jobs(REF)) == ["img-0", "img-1"]


# --- closing: one set of rules (finding 2, and an idempotent repeat writes nothing: finding 6) -------


def test_close_rules_same_size_again_is_200_another_size_409_no_size_the_count_it_holds(world: World) -> None:
    # given a batch holding 5 jobs
    world.create()
    submitter(world).submit_many([job_request(f"img-{n}", batch_ref=REF) for n in range(5)])

    with pytest.raises(BatchRefused) as too_small:
        world.batches.close(REF, 4)
    sized = world.batches.close(REF, 6)
    again = world.batches.close(REF, 6)
    with pytest.raises(BatchRefused) as another:
        world.batches.close(REF, 7)
    with pytest.raises(BatchRefused) as no_size:
        world.batches.close(REF)  # the 5 it holds, not its 6

    assert (too_small.value.status, too_small.value.code) == (409, "conflict")
    assert sized.expected_jobs == again.expected_jobs == 6
    assert again.version == sized.version  # the same size again writes nothing
    assert (another.value.status, another.value.code) == (409, "conflict")
    assert (no_size.value.status, no_size.value.code) == (409, "conflict")
    assert "the 5 jobs it holds" in no_size.value.message


def test_a_repeat_close_with_the_same_size_on_a_completed_batch_writes_nothing(world: World) -> None:
    refs = batch_of(world, 2)
    for ref in refs:
        world.finish(ref, JobStatus.COMPLETED)
    before = world.store.get(REF)
    writes = world.store.requests.count("UpdateItem")

    after = world.batches.close(REF, 2)
    world.batches.close(REF)

    assert (after.version, after.updated_at) == (before.version, before.updated_at)  # type: ignore[union-attr]
    assert world.store.requests.count("UpdateItem") == writes
    assert len(world.events) == 1


# --- a job of a completed batch runs no more (finding 3) -------------------------------------------------


def test_a_failed_job_of_a_completed_batch_is_neither_retried_nor_replaced(world: World) -> None:
    # given a completed batch whose job img-1 FAILED before the vendor accepted it
    refs = batch_of(world, 2)
    world.finish(refs[0], JobStatus.COMPLETED)
    world.finish(refs[1], JobStatus.FAILED)
    assert len(world.events) == 1

    # when an operator retries it, or a corrected request is sent in its place
    with pytest.raises(BatchRefused) as retried:
        submitter(world).resubmit(refs[1])
    with pytest.raises(BatchRefused) as corrected:
        submitter(world).submit(job_request(refs[1], batch_ref=REF, tag="corrected"))

    # then both are refused 409 batch_completed, and the job and the batch stay as they were
    assert (retried.value.status, retried.value.code) == (409, "batch_completed")
    assert (corrected.value.status, corrected.value.code) == (409, "batch_completed")
    assert world.jobs.get(refs[1]).status is JobStatus.FAILED  # type: ignore[union-attr]
    assert world.batches.progress(REF)["state"] == "completed"
    assert len(world.events) == 1


def test_a_failed_job_of_a_batch_not_yet_completed_is_retried(world: World) -> None:
    refs = batch_of(world, 2)
    world.finish(refs[1], JobStatus.FAILED)

    job = submitter(world).resubmit(refs[1])

    assert job.status is JobStatus.QUEUED


# --- strict integers and a blank name at the edge (findings 5, 6) -----------------------------------------


@pytest.mark.parametrize("size", [True, "3", 2.5, None.__class__.__name__])
def test_expected_jobs_must_be_a_json_integer(size: Any) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        CreateBatchRequest.model_validate({"vendor": VENDOR, "name": "n", "expected_jobs": size})


def test_a_blank_batch_name_is_refused_before_the_vendor_is_asked() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must not be blank"):
        CreateBatchRequest.model_validate({"vendor": VENDOR, "name": "   "})


# --- the HTTP routes and direct invoke (SubmitJob) on the in-memory batches ---------------------------


@pytest.fixture
def http(world: World, monkeypatch: pytest.MonkeyPatch) -> Any:
    """(method, resource, body, path parameters, query) -> (status, body), through SubmitJob."""
    import json

    from functions.submit_job import app as submit_app
    from handoff import api
    from tests.conftest import LambdaContext

    monkeypatch.setattr(submit_app, "batches", lambda: world.batches)
    monkeypatch.setattr(submit_app, "submitter", lambda: submitter(world))

    def call(
        method: str, resource: str, body: Any = None, params: dict[str, str] | None = None, **query: str
    ) -> tuple[int, Any]:
        event = api._direct_event(method, resource, params or {}, None, query or None)
        event["body"] = body if isinstance(body, str) or body is None else json.dumps(body)
        response = submit_app.lambda_handler(event, LambdaContext())
        return response["statusCode"], json.loads(response["body"])

    call.direct = lambda event: submit_app.lambda_handler(event, LambdaContext())  # type: ignore[attr-defined]
    return call


CLOSE = "/batches/{batch_ref}/close"


def test_close_with_no_body_sizes_the_batch_with_the_jobs_it_holds(world: World, http: Any) -> None:
    world.create()
    submitter(world).submit_many([job_request(f"img-{n}", batch_ref=REF) for n in range(3)])

    status, body = http("POST", CLOSE, None, {"batch_ref": REF})

    assert status == 200
    assert (body["expected_jobs"], body["state"]) == (3, "closed")


@pytest.mark.parametrize(("body", "status"), [("{}", 409), ({"expected_jobs": 6}, 200), ({"expected_jobs": 5}, 409)])
def test_close_on_a_batch_sized_6_holding_5(world: World, http: Any, body: Any, status: int) -> None:
    world.create()
    submitter(world).submit_many([job_request(f"img-{n}", batch_ref=REF) for n in range(5)])
    world.batches.close(REF, 6)

    answered, answer = http("POST", CLOSE, body, {"batch_ref": REF})

    assert answered == status
    assert world.store.get(REF).expected_jobs == 6  # type: ignore[union-attr]
    if status == 409:
        assert answer["error"]["code"] == "conflict"


@pytest.mark.parametrize("size", [True, "3"])
def test_expected_jobs_that_is_not_a_json_integer_is_422_on_create_and_close(
    world: World, http: Any, size: Any
) -> None:
    world.create()
    created = http("POST", "/batches", {"vendor": VENDOR, "name": "other", "expected_jobs": size})
    closed = http("POST", CLOSE, {"expected_jobs": size}, {"batch_ref": REF})

    for status, body in (created, closed):
        assert status == 422
        assert body["error"]["details"][0]["field"] == "expected_jobs"
        assert "must be a JSON integer" in body["error"]["details"][0]["message"]
    assert world.vendor.created == ["week 47"]
    assert world.store.get(REF).expected_jobs is None  # type: ignore[union-attr]


@pytest.mark.parametrize("vendor", ["nope", "Playment"])
def test_an_unknown_vendor_is_answered_as_post_jobs_answers_it(world: World, http: Any, vendor: str) -> None:
    status, body = http("POST", "/batches", {"vendor": vendor, "name": "n"})

    assert status == 422
    assert body["error"]["code"] == "invalid_request"
    ((detail,),) = [body["error"]["details"]]
    assert detail["field"] == "vendor"
    assert detail["message"].startswith("must be one of: ")
    assert "'playment'" in detail["message"]
    assert world.store.items == {}


def test_a_blank_batch_name_is_422_at_the_edge(world: World, http: Any) -> None:
    status, body = http("POST", "/batches", {"vendor": VENDOR, "name": "   "})

    assert status == 422
    assert body["error"]["details"][0]["field"] == "name"
    assert world.vendor.created == []
    assert world.store.items == {}


@pytest.mark.parametrize("flag", ["yes", "1", "TRUE"])
def test_vendor_details_take_only_a_boolean_by_http_and_by_direct_invoke(world: World, http: Any, flag: str) -> None:
    world.create()

    by_http = http("GET", "/batches/{batch_ref}", None, {"batch_ref": REF}, vendor=flag)
    direct = http.direct({"action": "get_batch", "batch_ref": REF, "vendor": flag})
    asked = http.direct({"action": "get_batch", "batch_ref": REF, "vendor": True})
    shown = http("GET", "/batches/{batch_ref}", None, {"batch_ref": REF}, vendor="true")

    assert by_http[0] == 422
    assert direct["error"]["code"] == "invalid_request"
    assert asked["vendor_details"]["found"] is True
    assert shown[1]["vendor_details"]["found"] is True


def test_a_bulk_that_accepts_no_job_keeps_no_batch(world: World, http: Any) -> None:
    # given a job img-0 recorded before with another request
    world.jobs.create(submitter_job("img-0", "other"))
    job = job_request("img-0").model_dump(mode="json", exclude_none=True)

    # when a bulk asks for a new batch with that job only
    status, body = http("POST", "/jobs", {"batch": {"name": "week 48", "batch_ref": "order-2"}, "jobs": [job]})

    # then it is refused, and Handoff keeps no batch (the vendor's empty batch stays: no delete)
    assert status == 422
    assert "batch" not in body
    assert world.store.get("order-2") is None
    assert world.vendor.created == ["week 48"]
