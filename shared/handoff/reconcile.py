"""Reconciler: jobs that have gone quiet are looked up at their vendor and brought up to date.

Callbacks get lost (vendors resend a refused one a few times at most, some not at all), so on a
schedule:

    SUBMITTED, IN_PROGRESS, DELIVERED with no write for the vendor's silence budget
    (`silent_after(vendor)`: RECONCILE_AFTER_SECONDS_BY_VENDOR, else `silent_after_seconds`;
    a DELIVERED job, waiting on the customer, at least RECONCILE_DELIVERED_AFTER_SECONDS)
        -> the vendor's GET job, applied through the same conditional transition as a callback
    QUEUED with no write for `silent_after_seconds` and no attempt due
        -> nobody holds it (its message was lost or dead-lettered unattempted): enqueue it again
    FAILED naming something left at its vendor (vendor_refs[CLEANUP_REF], e.g. a project a
    failed submission created and could not delete)
        -> the vendor's CleanupCapability.delete, every run until it succeeds; then the marker is
           cleared and the cleanup recorded in the job's history (no status change, no event)

Work is bounded (max_jobs_per_run, oldest first, and the function's remaining time) and needs
no cursor: a job that was looked at gets a fresh updated_at (JobStore.mark_checked), so the next
run begins with the jobs this one did not reach.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from handoff.callbacks import CallbackApplier, Verdict
from handoff.lifecycle import Transition
from handoff.models import CLEANUP_REF, JobStatus
from handoff.observability import count, logger
from handoff.ports import JobStore, RetryQueue
from handoff.settings import ReconcilerSettings
from handoff.store import StaleJob
from handoff.vendors.base import CleanupCapability, Transient, VendorClient, VendorError

WATCHED = (JobStatus.QUEUED, JobStatus.SUBMITTED, JobStatus.IN_PROGRESS, JobStatus.DELIVERED)
# A FAILED job stays FAILED when its leftovers are cleaned up: the write adds a history entry only.
CLEANED_UP = Transition(JobStatus.FAILED, frozenset({JobStatus.FAILED}))


class Reconciler:
    def __init__(
        self,
        store: JobStore,
        clients: Callable[[str], VendorClient],
        appliers: Callable[[str], CallbackApplier],
        queue: RetryQueue,
        settings: ReconcilerSettings,
        cleanups: Callable[[str], CleanupCapability | None] = lambda vendor: None,
    ) -> None:
        self.store = store
        self.clients = clients
        self.appliers = appliers
        self.queue = queue
        self.settings = settings
        self.cleanups = cleanups  # vendor name -> its CleanupCapability (None: it leaves nothing behind)

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> dict[str, int]:
        """Look at up to max_jobs_per_run quiet jobs, oldest first. Returns what happened, counted."""
        now = datetime.now(UTC)
        limit = self.settings.max_jobs_per_run
        candidates = sorted(self._quiet(now, limit), key=lambda j: j.updated_at)[:limit]
        tally: Counter[str] = Counter()
        for position, candidate in enumerate(candidates):
            if should_stop():
                tally["deferred"] += len(candidates) - position
                break
            tally[self._reconcile(candidate, _iso(now))] += 1
        leftovers = [] if should_stop() else self.store.awaiting_cleanup(limit)
        for position, candidate in enumerate(leftovers):
            if should_stop():
                tally["deferred"] += len(leftovers) - position
                break
            tally[self._clean_up(candidate)] += 1
        keys = ("advanced", "unchanged", "requeued", "skipped", "errors", "deferred", "cleaned", "cleanup_errors")
        report = {k: tally.get(k, 0) for k in keys}
        logger.info("reconciler run", extra={"candidates": len(candidates), **report})
        return report

    def _quiet(self, now: datetime, limit: int) -> list[StaleJob]:
        """Up to `limit` quiet jobs per (status, budget), each vendor measured by its own budget."""

        def before(seconds: int) -> str:
            return _iso(now - timedelta(seconds=seconds))

        default = self.settings.silent_after_seconds
        budgets = self.settings.silence_budgets()
        found = self.store.stale(JobStatus.QUEUED, before(default), limit)  # our queue: any vendor
        delivered = self.settings.delivered_silent_after_seconds
        for status in WATCHED[1:]:
            # A DELIVERED job waits on the customer: looked up after the longer delivered budget.
            floor = delivered if status is JobStatus.DELIVERED else 0
            found += self.store.stale(status, before(max(default, floor)), limit, other_than=tuple(budgets))
            for vendor, seconds in budgets.items():
                found += self.store.stale(status, before(max(seconds, floor)), limit, vendor=vendor)
        return found

    def _reconcile(self, candidate: StaleJob, now: str) -> str:
        log = {"reference_id": candidate.reference_id, "status": candidate.status.value}
        job = self.store.get(candidate.reference_id)
        if job is None or job.status is not candidate.status or job.updated_at != candidate.updated_at:
            return "skipped"  # written since the index was read: not quiet after all
        if job.status is JobStatus.QUEUED:
            if job.next_attempt_at and job.next_attempt_at > now:
                return "skipped"  # a retry is scheduled
            self.queue.send(job.reference_id)
            self.store.mark_checked(job.reference_id, job.status)
            logger.warning("quiet QUEUED job enqueued again", extra=log)
            return "requeued"
        try:
            seen = self.clients(job.vendor).observe(job)
            verdict = self.appliers(job.vendor).apply(seen, source="reconciler") if seen is not None else None
        except VendorError as exc:
            if isinstance(exc, Transient):
                logger.warning("vendor lookup failed", extra={**log, "error_code": exc.code})
            else:  # the vendor refuses to tell (its job gone, our credentials): a person must look
                logger.error("vendor refused the lookup", extra={**log, "error_code": exc.code})
                count("ReconcileLookupRefused", job.vendor)
            self.store.mark_checked(job.reference_id, job.status)  # the next run starts with other jobs
            return "errors"
        if verdict is Verdict.APPLIED:
            logger.info("quiet job brought up to date", extra={**log, "to": seen.update.status.value if seen else None})
            return "advanced"
        self.store.mark_checked(job.reference_id, job.status)
        return "unchanged"

    def _clean_up(self, candidate: StaleJob) -> str:
        """Delete what a FAILED job left at its vendor (vendor_refs[CLEANUP_REF]) through the
        vendor's CleanupCapability: "cleaned" (the marker cleared, the vendor's refs recorded, a
        history entry), "cleanup_errors" (the marker stays; retried next run), "skipped"."""
        log = {"reference_id": candidate.reference_id, "status": candidate.status.value}
        job = self.store.get(candidate.reference_id)
        if job is None or job.status is not JobStatus.FAILED or not job.vendor_refs.get(CLEANUP_REF):
            return "skipped"  # resubmitted, or cleaned up since the index was read
        capability = self.cleanups(job.vendor)
        if capability is None:
            logger.error("a job names something left at a vendor that cleans nothing up", extra=log)
            self.store.mark_checked(job.reference_id, job.status)
            return "skipped"
        try:
            cleaned = capability.delete(job)
        except VendorError as exc:
            logger.error(
                "what the failed job left at its vendor could not be deleted; retried next run",
                extra={**log, "error_code": exc.code, "left": job.vendor_refs.get(CLEANUP_REF)},
            )
            self.store.mark_checked(job.reference_id, job.status)  # the next run starts with other jobs
            return "cleanup_errors"
        outcome = self.store.transition(
            job.reference_id,
            CLEANED_UP,
            source="reconciler",
            detail=f"cleanup: {cleaned.detail}",
            set_fields={"vendor_refs": {**job.vendor_refs, **cleaned.refs, CLEANUP_REF: ""}},
        )
        if not outcome.applied:
            return "skipped"  # resubmitted meanwhile: its new attempt owns the vendor's things
        logger.info("what the failed job left at its vendor is cleaned up", extra={**log, "detail": cleaned.detail})
        return "cleaned"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
