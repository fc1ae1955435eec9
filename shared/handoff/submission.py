"""Submitting a job: record it, try the vendor once, record the verdict.

1. conditional put of the QUEUED job      -> same reference_id + same request: replay the job
                                              same reference_id + other request: ConflictError
2. one vendor attempt, inline, short timeout
3. accepted   -> SUBMITTED with the vendor's job id              (one conditional UpdateItem)
   rejected   -> FAILED with the vendor's code and message       (one conditional UpdateItem)
   transient  -> stays QUEUED with attempts and last_error, and is handed to the RetryScheduler
   already submitted -> handed to the RetryScheduler as well: the retry path reconciles it
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from handoff.lifecycle import transition_to
from handoff.models import HistoryEntry, Job, JobError, JobStatus, SubmitRequest, request_hash
from handoff.observability import logger
from handoff.store import JobStore, utc_now
from handoff.vendors.base import AlreadySubmitted, Checkpoint, Rejected, Transient, VendorError


class Outcome(StrEnum):
    SUBMITTED = "submitted"  # the vendor accepted it now
    QUEUED = "queued"  # not yet accepted; the retry path owns it
    REJECTED = "rejected"  # the vendor refused it: FAILED
    REPLAYED = "replayed"  # the reference_id already held this same request


@dataclass(frozen=True)
class SubmitResult:
    outcome: Outcome
    job: Job


class ConflictError(Exception):
    def __init__(self, existing: Job) -> None:
        super().__init__(f"reference_id {existing.reference_id} is already used by a different request")
        self.existing = existing


class RetryScheduler(Protocol):
    """Where jobs go that the inline attempt could not settle (the retry path plugs in here)."""

    def schedule(self, job: Job, error: VendorError) -> None: ...


class UnscheduledRetry:
    """No retry path wired: the job stays QUEUED with last_error and an operator can see it."""

    def schedule(self, job: Job, error: VendorError) -> None:
        logger.warning(
            "no retry path configured; job stays QUEUED",
            extra={"reference_id": job.reference_id, "error_code": error.code},
        )


class Submitter:
    def __init__(self, store: JobStore, clients: Any, retry: RetryScheduler) -> None:
        self.store = store
        self.clients = clients  # vendor name -> VendorClient, e.g. handoff.vendors.client_for
        self.retry = retry

    def submit(self, request: SubmitRequest) -> SubmitResult:
        now = utc_now()
        job = Job(
            reference_id=request.reference_id,
            vendor=request.vendor,
            status=JobStatus.QUEUED,
            request=request.model_dump(mode="json"),
            request_hash=request_hash(request),
            created_at=now,
            updated_at=now,
            history=[HistoryEntry(at=now, status=JobStatus.QUEUED, source="submit")],
        )
        created = self.store.create(job)
        if not created.created:
            if created.job.request_hash != job.request_hash:
                raise ConflictError(created.job)
            return SubmitResult(Outcome.REPLAYED, created.job)
        return self.attempt(created.job, request)

    def attempt(self, job: Job, request: SubmitRequest) -> SubmitResult:
        """One vendor attempt for a QUEUED job, and the write that records its verdict."""
        log = {"reference_id": job.reference_id, "vendor": job.vendor}
        checkpoint = Checkpoint(job.vendor_refs, lambda refs: self.store.record_vendor_refs(job.reference_id, refs))
        try:
            accepted = self.clients(job.vendor).submit(request, checkpoint)
        except (Transient, AlreadySubmitted) as exc:
            logger.info("vendor did not settle the submission", extra={**log, "error_code": exc.code})
            current = self.store.record_failed_attempt(job.reference_id, exc.as_job_error()) or job
            self.retry.schedule(current, exc)
            return SubmitResult(Outcome.QUEUED, current)
        except Rejected as exc:
            logger.info("vendor rejected the submission", extra={**log, "error_code": exc.code})
            outcome = self.store.transition(
                job.reference_id,
                transition_to(JobStatus.FAILED),
                source="submit",
                detail=f"vendor rejected: {exc.code}",
                set_fields={"last_error": exc.as_job_error().model_dump(mode="json")},
                count_attempt=True,
            )
            return SubmitResult(Outcome.REJECTED, outcome.job or job)
        outcome = self.store.transition(
            job.reference_id,
            transition_to(JobStatus.SUBMITTED),
            source="submit",
            set_fields={"vendor_refs": accepted.vendor_refs},
            set_if_absent={"vendor_job_id": accepted.vendor_job_id},
            remove_fields=("last_error",),
            count_attempt=True,
        )
        current = outcome.job or job
        if not outcome.applied:
            # A callback overtook this write and already moved the job on: keep its status, but
            # make sure the vendor's ids are recorded.
            logger.info("job moved past SUBMITTED before the submit recorded it", extra=log)
            current = (
                self.store.record_vendor_ids(job.reference_id, accepted.vendor_job_id, accepted.vendor_refs) or current
            )
        logger.info("vendor accepted the job", extra={**log, "vendor_job_id": accepted.vendor_job_id})
        return SubmitResult(Outcome.SUBMITTED, current)


def conflict_details(existing: Job) -> list[dict[str, Any]]:
    return [
        {"field": "reference_id", "message": "already used by a different request", "status": existing.status.value}
    ]


def job_error_details(error: JobError | None) -> list[dict[str, Any]]:
    return (
        []
        if error is None
        else [
            {
                "vendor_code": error.code,
                "retryable": error.retryable,
                **({"failures": error.details} if error.details else {}),
            }
        ]
    )
