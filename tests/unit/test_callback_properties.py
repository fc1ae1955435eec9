"""Property: any order and multiplicity of one job's callbacks ends in the status that the
vendor's last real state implies, with exactly one write per real status change.

On the in-memory store and archive (tests/fakes): the property is about the applier and the
store's conditions, which tests/unit/test_store_contract.py holds equal to DynamoDB's."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from handoff.callbacks import CallbackApplier, Verdict
from handoff.lifecycle import RANK
from handoff.models import HistoryEntry, Job, JobStatus
from handoff.store import utc_now
from handoff.vendors.playment import PlaymentAnnotation, observation
from tests.fakes.archive import FakeArchive
from tests.fakes.store import FakeJobStore

# What Playment's callbacks can say over a job's life, in the order they really happen.
REAL_HISTORIES = [["PENDING", "COMPLETED"], ["PENDING", "FAILED"], ["COMPLETED"], ["PENDING"], ["FAILED"]]
_counter = itertools.count()


@st.composite
def deliveries(draw: Any) -> tuple[list[str], list[str]]:
    history = draw(st.sampled_from(REAL_HISTORIES))
    copies = [s for s in history for _ in range(draw(st.integers(min_value=1, max_value=3)))]
    return history, draw(st.permutations(copies))


@settings(max_examples=150, deadline=None)
@given(case=deliveries(), case_of_status=st.sampled_from(["upper", "lower", "title"]))
def test_any_order_and_multiplicity_ends_in_the_last_real_state(
    case: tuple[list[str], list[str]], case_of_status: str
) -> None:
    history, delivered = case
    store = FakeJobStore()
    applier = CallbackApplier(store, FakeArchive(), "playment")
    ref = f"prop-{next(_counter)}"
    now = utc_now()
    store.create(
        Job(
            reference_id=ref,
            vendor="playment",
            status=JobStatus.SUBMITTED,
            request={},
            request_hash="h",
            vendor_job_id="j-1",
            created_at=now,
            updated_at=now,
            history=[HistoryEntry(at=now, status=JobStatus.SUBMITTED, source="test")],
        )
    )

    store.requests.clear()

    verdicts = []
    for status in delivered:
        sent = {"upper": status.upper(), "lower": status.lower(), "title": status.title()}[case_of_status]
        seen = observation(PlaymentAnnotation(reference_id=ref, job_id="j-1", status=sent))
        assert seen is not None
        verdicts.append(applier.apply(seen, source="callback"))

    final = store.get(ref)
    assert final is not None
    implied = observation(PlaymentAnnotation(reference_id=ref, job_id="j-1", status=history[-1]))
    assert implied is not None
    assert final.status is implied.update.status
    changes = [h.status for h in final.history[1:]]
    assert verdicts.count(Verdict.APPLIED) == len(changes)  # one write per real change ...
    assert final.version == 1 + len(changes)  # ... and no other write
    assert store.requests == ["UpdateItem"] * len(delivered) + ["GetItem"]  # one conditional write per callback
    assert len(set(changes)) == len(changes)  # no status entered twice
    assert [RANK[s] for s in changes] == sorted(RANK[s] for s in changes)  # never backwards
