"""The shared rate limiter and the backoff schedule, on their own."""

from __future__ import annotations

import itertools
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from handoff.backoff import Backoff
from handoff.pacing import HEADROOM, SharedRateLimiter
from local.sandboxes.server import peak_rate

TABLE = "handoff-rate-limits"


class FrozenClock:
    def __init__(self, at: float = 1_000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


@pytest.mark.usefixtures("aws")
def test_slots_taken_at_one_instant_are_spaced_one_interval_apart() -> None:
    # given a limit of 20/s and a clock that does not move
    clock = FrozenClock()
    limiter = SharedRateLimiter(TABLE, boto3.client("dynamodb"), {"playment": 20}, clock=clock)
    interval = (1 + HEADROOM) / 20

    # when five submissions ask for a slot at the same moment
    waits = [limiter.reserve("playment", max_wait=10) for _ in range(5)]

    # then the first goes at once and each next one a full interval later
    assert waits == pytest.approx([0, interval, 2 * interval, 3 * interval, 4 * interval], abs=1e-5)


@pytest.mark.usefixtures("aws")
def test_no_slot_beyond_the_callers_patience_and_a_vendor_without_a_limit_is_not_paced() -> None:
    clock = FrozenClock()
    limiter = SharedRateLimiter(TABLE, boto3.client("dynamodb"), {"playment": 2}, clock=clock)

    assert limiter.reserve("playment", max_wait=0.5) == 0
    assert limiter.reserve("playment", max_wait=0.5) is None  # the next slot is 0.55 s away
    assert limiter.reserve("textking", max_wait=0) == 0  # no limit configured for textking


@pytest.mark.usefixtures("aws")
def test_an_idle_schedule_restarts_at_the_present() -> None:
    clock = FrozenClock()
    limiter = SharedRateLimiter(TABLE, boto3.client("dynamodb"), {"playment": 10}, clock=clock)
    limiter.reserve("playment", max_wait=1)
    limiter.reserve("playment", max_wait=1)

    clock.at += 60  # a quiet minute

    assert limiter.reserve("playment", max_wait=1) == 0


@pytest.mark.usefixtures("aws")
def test_concurrent_reservations_never_put_more_than_the_limit_in_any_second() -> None:
    # given 8 threads (8 functions) sharing one limiter table at 20/s, as fast as they can ask
    limiter_for_thread = threading.local()
    clock = FrozenClock()
    lock = threading.Lock()

    def reserve_one(_: int) -> float:
        if not hasattr(limiter_for_thread, "limiter"):
            limiter_for_thread.limiter = SharedRateLimiter(TABLE, boto3.client("dynamodb"), {"playment": 20}, clock)
        wait = limiter_for_thread.limiter.reserve("playment", max_wait=60)
        assert wait is not None
        with lock:
            return clock.at + wait

    with ThreadPoolExecutor(max_workers=8) as pool:
        slots = list(pool.map(reserve_one, range(200)))

    # then every slot is distinct, spaced at least one interval, and no second holds more than 20
    ordered = sorted(slots)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert min(gaps) >= (1 + HEADROOM) / 20 - 1e-5
    assert peak_rate(slots) <= 20
    # and the whole pace stays close to the limit (no slot wasted)
    assert ordered[-1] - ordered[0] == pytest.approx(199 * (1 + HEADROOM) / 20, rel=1e-3)


@pytest.mark.parametrize(("failed", "ceiling"), [(1, 2), (2, 4), (3, 8), (8, 256), (9, 300), (40, 300)])
def test_backoff_ceiling_doubles_up_to_the_cap(failed: int, ceiling: int) -> None:
    assert Backoff(2, 300).ceiling(failed) == ceiling


def test_backoff_is_full_jitter_within_the_ceiling() -> None:
    backoff = Backoff(2, 300, rng=random.Random(7))  # noqa: S311 (jitter, not cryptography)
    draws = [backoff.delay(4) for _ in range(2000)]
    assert min(draws) == 0
    assert max(draws) == 16
    assert 6 < sum(draws) / len(draws) < 10  # uniform over 0..16: mean 8


def test_backoff_refuses_a_schedule_sqs_cannot_honour() -> None:
    with pytest.raises(ValueError, match="cap"):
        Backoff(2, 1000)


def test_a_submission_that_would_start_after_its_rate_slot_is_stopped_before_it_is_sent() -> None:
    import time

    from handoff.vendors.base import Checkpoint, MissedSlot

    # given a submission whose slot ended a moment ago (its sender stalled)
    late = Checkpoint({}, lambda refs: None, start_by=time.time() - 0.01)
    # when its first vendor request is about to start, then it is stopped (the submitter takes a new slot)
    with pytest.raises(MissedSlot):
        late.check_start()
    # and the submission's later requests are not paced again
    late.check_start()

    on_time = Checkpoint({}, lambda refs: None, start_by=time.time() + 5)
    on_time.check_start()  # nothing raised: inside its slot


def test_a_request_that_stalls_after_the_slot_check_is_not_sent_late() -> None:
    import time

    import requests

    from handoff.vendors.base import Checkpoint, MissedSlot, Timeouts, send

    sent: list[str] = []

    class Recording(requests.adapters.BaseAdapter):
        def send(self, request: requests.PreparedRequest, *args: object, **kwargs: object) -> requests.Response:
            sent.append(request.url or "")
            response = requests.Response()
            response.status_code = 200
            return response

        def close(self) -> None:
            pass

    session = requests.Session()
    session.mount("https://", Recording())
    timeouts = Timeouts(connect=1, read=1)

    # given a submission that passed its slot check in time
    stalled = Checkpoint({}, lambda refs: None, start_by=time.time() + 0.5)
    stalled.check_start()
    # when its sender stalls past the slot before the request goes out
    time.sleep(0.6)
    # then the request is stopped at the moment of sending, and nothing reaches the vendor
    with pytest.raises(MissedSlot):
        send(session, "POST", "https://vendor.example/jobs", timeouts, json={"a": 1})
    assert sent == []
    # and the submission's later requests go out unpaced
    send(session, "GET", "https://vendor.example/jobs/1", timeouts)
    assert sent == ["https://vendor.example/jobs/1"]

    # and a submission that sends inside its slot goes out
    on_time = Checkpoint({}, lambda refs: None, start_by=time.time() + 5)
    on_time.check_start()
    send(session, "POST", "https://vendor.example/jobs", timeouts, json={"a": 1})
    assert sent[-1] == "https://vendor.example/jobs"


@pytest.mark.usefixtures("aws")
def test_a_slot_the_reservations_own_write_took_us_past_comes_back_in_the_past() -> None:
    # given a schedule started at t=100 (20/s: the next slot is 100.055)
    readings = iter([100.0, 100.0, 100.5])
    limiter = SharedRateLimiter(TABLE, boto3.client("dynamodb"), {"playment": 20}, clock=lambda: next(readings))
    assert limiter.reserve("playment", max_wait=10) == 0

    # when the next reservation's write lands half a second after it looked at the clock
    wait = limiter.reserve("playment", max_wait=10)

    # then its slot is reported 0.445 s in the past, not "now": sent now, it would crowd the next ones
    assert wait == pytest.approx(100.055 - 100.5, abs=1e-5)
