"""The status machine of DESIGN.md as pure code."""

from __future__ import annotations

import pytest

from handoff.lifecycle import RESUBMIT, TERMINAL, transition_to
from handoff.models import JobStatus as S

FORWARD = [
    (S.QUEUED, S.SUBMITTED),
    (S.QUEUED, S.IN_PROGRESS),  # a callback that beats the SUBMITTED write
    (S.QUEUED, S.COMPLETED),
    (S.SUBMITTED, S.IN_PROGRESS),
    (S.SUBMITTED, S.FAILED),
    (S.IN_PROGRESS, S.DELIVERED),
    (S.IN_PROGRESS, S.COMPLETED),
    (S.DELIVERED, S.COMPLETED),
    (S.DELIVERED, S.CANCELED),
]


@pytest.mark.parametrize(("current", "target"), FORWARD)
def test_forward_moves_are_allowed(current: S, target: S) -> None:
    assert transition_to(target).applies_to(current)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.SUBMITTED, S.SUBMITTED),  # duplicate
        (S.IN_PROGRESS, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.SUBMITTED),  # backwards
        (S.COMPLETED, S.IN_PROGRESS),  # stale PENDING after COMPLETED
        (S.DELIVERED, S.IN_PROGRESS),  # only a revision may do this
        (S.FAILED, S.COMPLETED),
        (S.CANCELED, S.IN_PROGRESS),
        (S.COMPLETED, S.FAILED),
    ],
)
def test_duplicates_backward_moves_and_moves_out_of_terminal_states_are_refused(current: S, target: S) -> None:
    assert not transition_to(target).applies_to(current)


def test_a_revision_takes_a_delivered_job_back_in_progress() -> None:
    revision = transition_to(S.IN_PROGRESS, revision=True)
    assert revision.applies_to(S.DELIVERED)
    assert not revision.applies_to(S.COMPLETED)
    assert not revision.applies_to(S.IN_PROGRESS)


def test_terminal_statuses_are_final_except_resubmitting_a_failed_job() -> None:
    assert all(not transition_to(t).applies_to(s) for s in TERMINAL for t in S)
    assert RESUBMIT.applies_to(S.FAILED)
    assert not RESUBMIT.applies_to(S.COMPLETED)
