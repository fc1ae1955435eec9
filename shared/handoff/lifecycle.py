"""The job status machine, as data. No AWS, no HTTP.

    QUEUED -> SUBMITTED -> IN_PROGRESS <-> DELIVERED -> COMPLETED      FAILED, CANCELED terminal

A status never moves backwards, with one exception: DELIVERED -> IN_PROGRESS when the customer
asks for a revision. QUEUED accepts vendor progress too, because a vendor callback can overtake
the SUBMITTED write of the submission that created the vendor job. Every transition is applied as
one conditional write whose condition lists `Transition.allowed_from`; a duplicate or stale
update fails that condition and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handoff.models import JobError, JobStatus

TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})

# How far along a job is. Terminal statuses share the top rank: none follows another.
RANK: dict[JobStatus, int] = {
    JobStatus.QUEUED: 0,
    JobStatus.SUBMITTED: 1,
    JobStatus.IN_PROGRESS: 2,
    JobStatus.DELIVERED: 3,
    JobStatus.COMPLETED: 4,
    JobStatus.FAILED: 4,
    JobStatus.CANCELED: 4,
}


@dataclass(frozen=True)
class Transition:
    target: JobStatus
    allowed_from: frozenset[JobStatus]

    def applies_to(self, current: JobStatus) -> bool:
        return current in self.allowed_from


def transition_to(target: JobStatus, *, revision: bool = False) -> Transition:
    """The transition into `target` from every earlier, non-terminal status.

    `revision=True` (only meaningful for IN_PROGRESS) also allows DELIVERED -> IN_PROGRESS.
    """
    allowed = {s for s in JobStatus if s not in TERMINAL and RANK[s] < RANK[target]}
    if revision and target is JobStatus.IN_PROGRESS:
        allowed.add(JobStatus.DELIVERED)
    return Transition(target, frozenset(allowed))


# An operator may resubmit a job that FAILED before any vendor accepted it (the store adds the
# "no vendor job" half of that condition).
RESUBMIT = Transition(JobStatus.QUEUED, frozenset({JobStatus.FAILED}))

# Submission gives up (vendor rejected it, or retries ran out) only while no vendor has the job:
# once a callback moved it on, the vendor's word stands.
GIVE_UP = Transition(JobStatus.FAILED, frozenset({JobStatus.QUEUED}))


@dataclass(frozen=True)
class VendorUpdate:
    """What a vendor's status means for us: the target status and whether it is a revision."""

    status: JobStatus
    revision: bool = False

    @property
    def transition(self) -> Transition:
        return transition_to(self.status, revision=self.revision)


@dataclass(frozen=True)
class Document:
    """A file the vendor delivered (a translation), to be kept in S3 and pointed at by the job."""

    filename: str
    content: bytes
    content_type: str


@dataclass(frozen=True)
class Observation:
    """A vendor's word on one job (from a callback or a lookup), ready to be applied."""

    reference_id: str
    vendor_job_id: str | None
    update: VendorUpdate
    result: Any = None
    result_ref: str | None = None
    error: JobError | None = None
    detail: str | None = None
    document: Document | None = None


def is_terminal(status: JobStatus) -> bool:
    return status in TERMINAL
