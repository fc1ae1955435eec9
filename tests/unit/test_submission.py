"""Submission's rules on the in-memory ports (tests/fakes): the Submitter with FakeJobStore, a
queue and a limiter that record what was asked of them, and Playment's sandbox over HTTP.

What SubmitJob and SubmissionWorker make of these outcomes over API Gateway and SQS (status
codes, visibility timeouts, the dead-letter queue) is tested end to end in test_submit_job.py and
test_submission_worker.py on moto.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from handoff.backoff import Backoff
from handoff.models import JobStatus
from handoff.queue import Disposition
from handoff.submission import (
    BUSY_RETRY_SECONDS,
    INLINE_LEASE_SECONDS,
    RETRIES_EXHAUSTED,
    Action,
    ConflictError,
    NotRetryable,
    Outcome,
    Submitter,
    _in_pace_order,
)
from handoff.vendors import parse_submit_request
from local.sandboxes.playment import PlaymentSandbox
from tests.conftest import PLAYMENT_GENERATIONS, load_event
from tests.fakes.queues import FakeRateLimiter, FakeRetryQueue
from tests.fakes.store import FakeJobStore
from tests.fakes.vendors import clients, playment_client

REF = "order-1042-img-7"


def request(reference_id: str = REF, **changes: Any) -> Any:
    body = copy.deepcopy(load_event("submit_job/direct_invoke_playment.json"))
    body["reference_id"] = reference_id
    return parse_submit_request(body | changes)


@dataclass
class World:
    store: FakeJobStore
    queue: FakeRetryQueue
    limiter: FakeRateLimiter
    submitter: Submitter

    def job(self, reference_id: str = REF) -> dict[str, Any]:
        return next(j for j in self.store.jobs() if j["reference_id"] == reference_id)

    def resume(self, reference_id: str = REF, *, final: bool = False) -> Any:
        return self.submitter.resume(reference_id, final=final, max_wait=1.0)


def world_with(api_key: str | None = None) -> World:
    store, queue, limiter = FakeJobStore(), FakeRetryQueue(), FakeRateLimiter()
    client = playment_client() if api_key is None else playment_client(api_key)
    backoff = Backoff(1, 2, rng=random.Random(7))  # noqa: S311 (jitter, not cryptography)
    return World(store, queue, limiter, Submitter(store, clients(playment=client), queue, limiter, backoff))


@pytest.fixture
def world(sandbox: PlaymentSandbox) -> World:
    return world_with()


# --- SubmitJob: one job ------------------------------------------------------------------------------


@pytest.mark.parametrize("playment_generation", PLAYMENT_GENERATIONS)
def test_an_accepted_job_is_submitted_with_two_writes_one_rate_slot_and_no_read(
    sandbox: PlaymentSandbox, world: World
) -> None:
    result = world.submitter.submit(request())

    assert result.outcome is Outcome.SUBMITTED
    (vendor_job,) = sandbox.jobs.values()
    stored = world.job()
    assert result.job.model_dump(mode="json") == stored
    assert (stored["status"], stored["vendor_job_id"], stored["attempts"], stored["version"]) == (
        "SUBMITTED",
        vendor_job.id,
        1,
        2,
    )
    assert stored["vendor_refs"] == {"project_id": "proj-1"}
    assert [h["status"] for h in stored["history"]] == ["QUEUED", "SUBMITTED"]
    assert world.store.requests == ["PutItem", "UpdateItem"]
    assert [vendor for vendor, _ in world.limiter.asked] == ["playment"]
    assert 0.9 < world.limiter.asked[0][1] <= 1.0  # waited for within SubmitJob's patience (inline_max_wait)
    assert world.queue.sent == []


def test_the_same_request_again_is_replayed_and_another_one_conflicts_writing_nothing(world: World) -> None:
    first = world.submitter.submit(request())
    world.store.requests.clear()
    before = world.store.item(REF)

    replayed = world.submitter.submit(request())
    with pytest.raises(ConflictError) as conflict:
        world.submitter.submit(request(priority_weight=9))

    assert (replayed.outcome, replayed.job) == (Outcome.REPLAYED, first.job)
    assert conflict.value.existing == first.job
    assert world.store.requests == ["PutItem", "PutItem"]  # refused puts: nothing written, nothing read
    assert world.store.item(REF) == before


def test_a_vendor_rejection_fails_the_job_with_the_vendors_code(sandbox: PlaymentSandbox) -> None:
    world = world_with(api_key="not-the-key")

    result = world.submitter.submit(request())

    assert result.outcome is Outcome.REJECTED
    stored = world.job()
    assert stored["status"] == "FAILED"
    assert stored["last_error"]["code"] == "unauthorized_request"  # Playment's 401, not JSON
    assert stored["last_error"]["retryable"] is False
    assert stored["attempts"] == 1
    assert world.queue.sent == []
    assert sandbox.jobs == {}


def test_an_unsettled_attempt_stays_queued_with_its_error_and_is_enqueued_after_its_backoff(
    sandbox: PlaymentSandbox, world: World
) -> None:
    sandbox.fail_next.append(503)

    result = world.submitter.submit(request())

    assert result.outcome is Outcome.QUEUED
    stored = world.job()
    assert (stored["status"], stored["attempts"]) == ("QUEUED", 1)
    assert stored["last_error"]["code"] == "FS_0000"
    assert stored["next_attempt_at"] > stored["created_at"]
    assert result.retry_in is not None
    assert 0 <= result.retry_in <= 1
    assert world.queue.sent == [(REF, result.retry_in)]


@pytest.mark.parametrize(
    ("lives_for", "claimed_for"),
    [(2.5, 4), (0.0, 1), (28.7, 30), (900.0, INLINE_LEASE_SECONDS), (None, INLINE_LEASE_SECONDS)],
)
def test_submitjobs_claim_on_the_job_it_writes_lasts_as_long_as_its_invocation_can(
    sandbox: PlaymentSandbox, world: World, lives_for: float | None, claimed_for: int
) -> None:
    # given SubmitJob's invocation has `lives_for` seconds left (None: unknown), and the store
    # shows the job as it was written, before the vendor is called
    written: list[dict[str, Any]] = []
    create = world.store.create

    def create_and_look(job: Any, **kwargs: Any) -> Any:
        outcome = create(job, **kwargs)
        written.append(world.store.item(job.reference_id) or {})
        return outcome

    world.store.create = create_and_look  # type: ignore[method-assign]

    # when it submits a job
    before = time.time()
    world.submitter.submit(request(), lives_for=lives_for)

    # then the job was written claimed until that invocation's end and a second, never past
    # SubmitJob's Timeout and a second: a process killed meanwhile leaves it to the worker then
    lease_until = float(written[0]["lease_until"]["N"])
    assert before + claimed_for - 0.01 <= lease_until <= time.time() + claimed_for + 0.01


# --- SubmissionWorker: one message -------------------------------------------------------------------


@pytest.mark.parametrize("playment_generation", PLAYMENT_GENERATIONS)
def test_fs_0001_after_a_lost_response_is_recorded_submitted_with_the_vendors_job(
    sandbox: PlaymentSandbox, world: World
) -> None:
    # given Playment created the job but its answer never arrived (the client timed out)
    sandbox.lose_next = 1
    answer = world.submitter.submit(request())
    assert answer.outcome is Outcome.QUEUED
    assert world.job()["last_error"]["code"] == "timeout"

    # when the worker tries again and Playment answers FS_0001
    resumed = world.resume()

    # then the job is SUBMITTED with the id of the job Playment already had: one job, never FAILED
    assert resumed.action is Action.DONE
    (vendor_job,) = sandbox.jobs.values()
    stored = world.job()
    assert (stored["status"], stored["vendor_job_id"], stored["attempts"]) == ("SUBMITTED", vendor_job.id, 2)
    assert [h["status"] for h in stored["history"]] == ["QUEUED", "SUBMITTED"]
    assert [r.status for r in sandbox.creations()] == [200, 400]


def test_a_lost_answer_on_the_last_attempt_is_recorded_submitted_not_failed(
    sandbox: PlaymentSandbox, world: World
) -> None:
    # given a job whose attempts so far failed, and Playment creates it on the last attempt but its
    # answer never arrives
    sandbox.fail_next.append(503)
    world.submitter.submit(request())
    sandbox.lose_next = 1

    # when the worker makes the last attempt
    resumed = world.resume(final=True)

    # then the job is SUBMITTED with the job Playment holds (looked up before giving up)
    assert resumed.action is Action.DONE
    (vendor_job,) = sandbox.jobs.values()
    stored = world.job()
    assert (stored["status"], stored["vendor_job_id"]) == ("SUBMITTED", vendor_job.id)
    assert [h["status"] for h in stored["history"]] == ["QUEUED", "SUBMITTED"]
    assert [r.status for r in sandbox.creations()] == [503, 200]


def test_a_last_attempt_that_fails_gives_the_job_up_saying_why(sandbox: PlaymentSandbox, world: World) -> None:
    sandbox.fail_next.extend([503, 503])
    world.submitter.submit(request())

    resumed = world.resume(final=True)

    assert resumed.action is Action.GIVE_UP
    stored = world.job()
    assert (stored["status"], stored["attempts"]) == ("FAILED", 2)
    assert stored["last_error"]["code"] == RETRIES_EXHAUSTED
    assert stored["last_error"]["details"][0]["code"] == "FS_0000"
    assert [h["status"] for h in stored["history"]] == ["QUEUED", "FAILED"]
    assert sandbox.jobs == {}


def test_a_job_another_attempt_holds_or_already_past_queued_is_left_alone(
    sandbox: PlaymentSandbox, world: World
) -> None:
    world.submitter.submit_many([request("held"), request("done")])
    assert world.store.claim("held", lease_seconds=180).claimed  # another worker is on it
    world.resume("done")
    sandbox.received.clear()

    held, done = world.resume("held"), world.resume("done")

    assert (held.action, held.job.status) == (Action.DONE, JobStatus.QUEUED)
    assert (done.action, done.job.status) == (Action.DONE, JobStatus.SUBMITTED)
    assert sandbox.received == []  # no second vendor request for either


def test_no_rate_slot_in_time_releases_the_claim_and_retries_soon_without_a_vendor_request(
    sandbox: PlaymentSandbox, world: World
) -> None:
    # given a queued job and a rate limiter with no slot free within the worker's patience
    world.submitter.submit_many([request()])
    world.limiter.waits.append(None)

    # when the worker takes its message
    resumed = world.resume()

    # then the message comes back soon, nothing was sent, and the job is free for that next try
    assert (resumed.action, resumed.delay) == (Action.RETRY, BUSY_RETRY_SECONDS)
    assert sandbox.received == []
    assert "lease_until" not in (world.store.item(REF) or {})
    assert world.job()["attempts"] == 0
    assert world.resume().action is Action.DONE
    assert world.job()["status"] == "SUBMITTED"


def test_a_redriven_message_gives_an_exhausted_job_another_round(sandbox: PlaymentSandbox, world: World) -> None:
    sandbox.fail_next.extend([503, 503])
    world.submitter.submit(request())
    assert world.resume(final=True).action is Action.GIVE_UP

    resumed = world.resume()

    assert resumed.action is Action.DONE
    stored = world.job()
    assert stored["status"] == "SUBMITTED"
    assert [(h["status"], h["source"]) for h in stored["history"]] == [
        ("QUEUED", "submit"),
        ("FAILED", "submit"),
        ("QUEUED", "redrive"),
        ("SUBMITTED", "submit"),
    ]
    assert len(sandbox.jobs) == 1


@pytest.mark.parametrize(
    ("body", "remaining", "disposition", "delay"),
    [
        ("this is not json", 60.0, Disposition.POISON, 0),
        ('{"reference_id": "no-such-job"}', 60.0, Disposition.POISON, 0),
        (f'{{"reference_id": "{REF}"}}', 10.0, Disposition.RETRY, 0),  # too little time left to attempt
    ],
)
def test_messages_the_worker_cannot_act_on(
    sandbox: PlaymentSandbox, world: World, body: str, remaining: float, disposition: Disposition, delay: int
) -> None:
    world.submitter.submit_many([request()])
    before = world.store.jobs()

    outcome = world.submitter.handle_message(body, receives=1, max_receives=3, remaining=remaining)

    assert (outcome.disposition, outcome.delay) == (disposition, delay)
    assert sandbox.received == []
    assert world.store.jobs() == before  # nothing written, no job made up


# --- bulk and the operator's resubmission --------------------------------------------------------


def test_bulk_records_every_job_queued_and_enqueues_each_new_one_once(world: World) -> None:
    results = world.submitter.submit_many([request("a"), request("b"), request("a"), request("b", priority_weight=9)])

    outcomes = [r.outcome if not isinstance(r, Exception) else type(r).__name__ for r in results]
    assert outcomes == [Outcome.QUEUED, Outcome.QUEUED, Outcome.REPLAYED, "ConflictError"]
    assert sorted(j["reference_id"] for j in world.store.jobs()) == ["a", "b"]
    assert {j["status"] for j in world.store.jobs()} == {"QUEUED"}
    assert sorted(world.queue.messages()) == ["a", "b"]


def test_a_bulks_first_jobs_are_enqueued_while_the_rest_are_still_being_recorded(world: World) -> None:
    # given a store that writes the bulk's last job only once something has been enqueued (or 5 s on)
    enqueued = threading.Event()
    send_many, create = world.queue.send_many, world.store.create

    def sending(reference_ids: Any) -> list[str]:
        unsent = send_many(reference_ids)
        enqueued.set()
        return unsent

    def creating(job: Any, **kwargs: Any) -> Any:
        if job.reference_id == "bulk-39":
            seen["last_waited_for_a_message"] = enqueued.wait(timeout=5)
        return create(job, **kwargs)

    seen: dict[str, bool] = {}
    world.queue.send_many = sending  # type: ignore[method-assign]
    world.store.create = creating  # type: ignore[method-assign]

    # when 40 jobs arrive in one bulk
    results = world.submitter.submit_many([request(f"bulk-{n:02d}") for n in range(40)])

    # then the first messages went out before the last job was written, and every job has one
    assert seen == {"last_waited_for_a_message": True}
    assert [r.outcome for r in results if not isinstance(r, Exception)] == [Outcome.QUEUED] * 40
    assert sorted(world.queue.messages()) == [f"bulk-{n:02d}" for n in range(40)]


def test_a_bulk_enqueues_what_it_can_when_the_queue_fails_part_way(world: World) -> None:
    # given a queue that refuses every other SendMessageBatch
    calls: list[int] = []
    send_many = world.queue.send_many

    def flaky(reference_ids: Any) -> list[str]:
        ids = list(reference_ids)
        calls.append(len(ids))
        if len(calls) % 2 == 0:
            raise ConnectionError("the queue is unavailable")
        return send_many(ids)

    world.queue.send_many = flaky  # type: ignore[method-assign]

    # when 30 jobs arrive in one bulk
    results = world.submitter.submit_many([request(f"bulk-{n:02d}") for n in range(30)])

    # then every job is recorded QUEUED and answered so, each message went in a batch of ten at most,
    # and the jobs whose batch failed have no message (the reconciler enqueues them once quiet)
    assert [r.outcome for r in results if not isinstance(r, Exception)] == [Outcome.QUEUED] * 30
    assert {j["status"] for j in world.store.jobs()} == {"QUEUED"}
    assert all(n <= 10 for n in calls)
    assert sum(calls) == 30
    assert len(world.queue.messages()) == sum(n for i, n in enumerate(calls) if i % 2 == 0)


def test_bulk_jobs_are_kept_queued_when_the_queue_is_down(world: World) -> None:
    world.queue.unavailable = True

    results = world.submitter.submit_many([request("a"), request("b")])

    assert [r.outcome for r in results if not isinstance(r, Exception)] == [Outcome.QUEUED, Outcome.QUEUED]
    assert {j["status"] for j in world.store.jobs()} == {"QUEUED"}  # the reconciler enqueues them later


def test_a_job_refused_before_the_vendor_took_it_can_be_resubmitted_and_no_other(
    sandbox: PlaymentSandbox, world: World
) -> None:
    sandbox.fail_next.extend([503, 503])
    world.submitter.submit(request())
    world.resume(final=True)
    world.submitter.submit(request("accepted"))
    world.queue.sent.clear()

    resubmitted = world.submitter.resubmit(REF)
    with pytest.raises(NotRetryable) as accepted:
        world.submitter.resubmit("accepted")
    with pytest.raises(NotRetryable) as unknown:
        world.submitter.resubmit("no-such-job")

    assert resubmitted.status is JobStatus.QUEUED
    assert resubmitted.history[-1].source == "operator"
    assert world.queue.sent == [(REF, 0)]
    assert accepted.value.job is not None
    assert accepted.value.job.status is JobStatus.SUBMITTED
    assert unknown.value.job is None


def test_a_last_receive_that_misses_rate_slot_after_rate_slot_gives_the_job_up_saying_why(
    sandbox: PlaymentSandbox, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a queued job whose client stalls past every rate slot it is given (a slow read before
    # its first request), on the last receive the queue allows
    from handoff.vendors.base import MissedSlot

    world.submitter.submit_many([request()])
    client = world.submitter.clients("playment")

    def stalls(*args: Any, **kwargs: Any) -> Any:
        raise MissedSlot("missed_rate_slot", "started too long after its rate slot")

    monkeypatch.setattr(client, "submit", stalls)

    # when the worker takes it on a middle receive, then on the last
    middle = world.resume()
    last = world.resume(final=True)

    # then the middle one waits (nothing sent, no attempt counted), and the last gives the job up
    # with the reason on it: never a message dead-lettered behind a job that still says QUEUED
    assert middle.action is Action.RETRY
    assert last.action is Action.GIVE_UP
    stored = world.job()
    assert stored["status"] == "FAILED"
    assert stored["last_error"]["code"] == RETRIES_EXHAUSTED
    assert "missed_rate_slot" in stored["last_error"]["message"]
    assert sandbox.received == []


def test_a_bulk_of_several_vendors_is_written_and_enqueued_in_the_order_their_limits_let_them_out() -> None:
    # given a bulk's entries: two TEXTKING documents (2/s), then six Playment jobs (here at 4/s),
    # then three Scale tasks (an unlimited vendor)
    vendors = ["textking"] * 2 + ["playment"] * 6 + ["scale"] * 3
    rates = {"textking": 2.0, "playment": 4.0}

    # when the bulk orders them for writing (8 writers at a time, each job enqueued once written)
    order = _in_pace_order(list(range(len(vendors))), vendors.__getitem__, rates.get)

    # then each goes when its vendor's pace would let it out (t0 at 0 s, t1 at 0.5 s; p2..p7 every
    # 0.25 s; the unlimited vendor's at once), each vendor's jobs in the order sent
    assert [vendors[i][0] + str(i) for i in order] == [
        "t0",
        "p2",
        "s8",
        "s9",
        "s10",
        "p3",
        "t1",
        "p4",
        "p5",
        "p6",
        "p7",
    ]
