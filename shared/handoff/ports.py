"""What the use cases (submission, callbacks, reconcile) need from the world outside, as protocols.

Each port has its AWS implementation here and an in-memory fake in tests/fakes/, so the domain
logic is tested without AWS; a contract test runs the same cases against both where the fake
could drift (tests/unit/test_store_contract.py for the JobStore).

    port             on AWS                                 in tests (tests/fakes/)
    JobStore         store.DynamoJobStore (JobsTable)       store.FakeJobStore
    BatchStore       store.DynamoBatchStore (BatchesTable)  store.FakeBatchStore
    RetryQueue       queue.SubmissionQueue                  queues.FakeRetryQueue
    RateLimiter      pacing.SharedRateLimiter               pacing.Unlimited, queues.FakeRateLimiter
    ResultsArchive   archive.Archive (ResultsBucket)        archive.FakeArchive
    CallbackRetries  callbacks.CallbackRetryQueue           queues.FakeCallbackRetries

A vendor's API is the fifth: handoff.vendors.base.VendorClient, tested against each vendor's
sandbox over HTTP (local/sandboxes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from handoff.lifecycle import Transition
from handoff.models import Batch, Job, JobError, JobStatus
from handoff.store import BatchWrite, ClaimOutcome, CreateOutcome, IndexPage, StaleJob, TransitionOutcome


class JobStore(Protocol):
    """Every read and write of a job. Each write is one conditional write: applied whole, or
    refused with the job as it stands (nothing written)."""

    def create(self, job: Job, *, lease_seconds: int | None = None) -> CreateOutcome:
        """Write a new job, unless its reference_id is taken (then: the job that holds it);
        `lease_seconds`: written claimed, as `claim` would (the caller attempts it at once)."""
        ...

    def replace(self, job: Job, existing: Job, *, lease_seconds: int | None = None) -> CreateOutcome:
        """Put `job` in place of `existing` if that is still as read (FAILED, same version, no vendor job)."""
        ...

    def get(self, reference_id: str) -> Job | None: ...

    def transition(
        self,
        reference_id: str,
        transition: Transition,
        *,
        source: str,
        detail: str | None = None,
        set_fields: dict[str, Any] | None = None,
        set_if_absent: dict[str, Any] | None = None,
        remove_fields: tuple[str, ...] = (),
        count_attempt: bool = False,
        require_no_vendor_job: bool = False,
        require_unleased: bool = False,
        vendor: str | None = None,
        vendor_job_id: str | None = None,
    ) -> TransitionOutcome:
        """Move the job to `transition.target` if its status is one of `transition.allowed_from`
        (and the vendor and vendor job id agree), with a history entry (the latest HISTORY_LIMIT kept)."""
        ...

    def claim(self, reference_id: str, lease_seconds: int) -> ClaimOutcome:
        """Take a QUEUED job for one attempt, unless another attempt's lease holds it."""
        ...

    def release(self, reference_id: str) -> None:
        """End a claim without a verdict."""
        ...

    def record_failed_attempt(
        self, reference_id: str, error: JobError, next_attempt_at: str | None = None
    ) -> Job | None:
        """Count an attempt that reached no verdict; the job stays QUEUED and its claim ends."""
        ...

    def record_vendor_ids(self, reference_id: str, vendor_job_id: str, vendor_refs: dict[str, str]) -> Job | None:
        """Record the vendor's ids without a status change (a vendor job id already there is kept)."""
        ...

    def record_vendor_refs(self, reference_id: str, refs: dict[str, str]) -> None:
        """Checkpoint a multi-step submission's vendor ids."""
        ...

    def record_order(self, reference_id: str, refs: dict[str, str]) -> TransitionOutcome:
        """Record the vendor's order placed later (vendor_refs, ordered_at), unless already recorded."""
        ...

    def stale(
        self,
        status: JobStatus,
        updated_before: str,
        limit: int,
        *,
        vendor: str | None = None,
        other_than: tuple[str, ...] = (),
    ) -> list[StaleJob]:
        """Up to `limit` jobs in `status` last written before `updated_before`, oldest first."""
        ...

    def awaiting_cleanup(self, limit: int) -> list[StaleJob]:
        """Up to `limit` FAILED jobs naming something left at their vendor (CLEANUP_REF), oldest first."""
        ...

    def mark_checked(self, reference_id: str, status: JobStatus) -> bool:
        """The reconciler looked and found nothing new: updated_at and checked_at move, if the
        status is still `status` (False: it is not)."""
        ...

    def batch_jobs(self, batch_ref: str) -> dict[str, JobStatus]:
        """Every job of a batch and its status, from an index (eventually consistent)."""
        ...

    def list_index(
        self,
        key: str,
        value: str,
        *,
        upto: str | None,
        after: str | None,
        where: dict[str, str],
        limit: int,
        start: dict[str, Any] | None = None,
    ) -> IndexPage:
        """One Query of the listing index partitioned on `key` ("status", "vendor", "batch_ref"),
        newest first (handoff.listing merges them into GET /jobs's pages)."""
        ...


class BatchStore(Protocol):
    """Every read and write of a batch record; each write one conditional write."""

    def create(self, batch: Batch) -> BatchWrite: ...

    def get(self, batch_ref: str) -> Batch | None: ...

    def record_vendor_batch(self, batch_ref: str, vendor_batch_id: str) -> BatchWrite: ...

    def forget(self, batch_ref: str) -> None: ...

    def discard(self, batch_ref: str) -> None: ...

    def close(self, batch_ref: str, expected_jobs: int) -> BatchWrite: ...

    def claim_completion(
        self, batch_ref: str, counts: dict[str, int], claimant: str, lease_until: float
    ) -> BatchWrite: ...

    def take_publication(self, batch_ref: str, claimant: str, now: float, lease_until: float) -> BatchWrite: ...

    def mark_published(self, batch_ref: str) -> BatchWrite: ...


class RetryQueue(Protocol):
    """Where jobs still to be submitted wait (a message is a pointer: the reference_id)."""

    def send(self, reference_id: str, delay: int = 0) -> None: ...

    def send_many(self, reference_ids: Iterable[str]) -> list[str]:
        """Enqueue every id; returns the ids that could not be sent."""
        ...

    def retry_later(self, receipt_handle: str, delay: int) -> None: ...


class RateLimiter(Protocol):
    def rate(self, vendor: str) -> float | None:
        """The requests per second `vendor` is paced at (None: not limited)."""
        ...

    def reserve(self, vendor: str, max_wait: float) -> float | None:
        """Seconds to wait before sending to `vendor` (negative: the slot taken is already that far
        in the past, e.g. the reservation's own write was slow), or None when no slot is free
        within `max_wait`."""
        ...


class ResultsArchive(Protocol):
    """Raw callback bodies, large results and delivered files, kept by key."""

    def put_callback(self, vendor: str, body: bytes, content_type: str) -> str:
        """Archive a raw callback body; returns its key."""
        ...

    def get_callback(self, key: str) -> bytes:
        """An archived callback body; raises handoff.archive.ArchiveMissing when it is not there."""
        ...

    def put_result(self, vendor: str, reference_id: str, body: bytes) -> str:
        """Keep a result (keyed by content); returns its s3:// URI."""
        ...

    def put_delivery(self, vendor: str, reference_id: str, filename: str, body: bytes, content_type: str) -> str:
        """Keep a delivered file; returns its s3:// URI."""
        ...


class CallbackRetries(Protocol):
    """Where the archive keys of callbacks to apply again wait."""

    def send(self, vendor: str, archive_key: str, delay: int = 0) -> None: ...
