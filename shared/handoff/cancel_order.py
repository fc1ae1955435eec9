"""Cancel a job, and place the order of a job the vendor holds unordered. No AWS, no HTTP: the
JobStore (handoff.ports) and each vendor's optional capabilities (handoff.vendors.base:
CancelCapability, OrderCapability); the core names no vendor.

cancel(reference_id) -> the job, CANCELED
    QUEUED                      one conditional write QUEUED -> CANCELED, only while no submission
                                attempt holds the job (its lease): the vendor is not contacted, and
                                the worker drops the job's message (its claim needs QUEUED).
                                A lease held: JobRefused 409 `submission_in_progress` (try again).
    SUBMITTED, IN_PROGRESS,     the vendor's CancelCapability first, then the write
    DELIVERED                   (X -> CANCELED). None: 409 `not_cancellable`. The vendor refuses
                                (e.g. its work has begun, or the order is placed: each vendor's
                                capability says, from its REFERENCE.md section): 409
                                `not_cancellable`. Credentials
                                refused: 502 `vendor_auth_failed`. Unreachable: 503
                                `vendor_unavailable`. Nothing is written unless the vendor canceled.
    CANCELED                    the job as it is (idempotent)
    COMPLETED, FAILED           409 `not_cancellable`
    no such job                 404 `job_not_found`

order(reference_id) -> the job, vendor_refs.ordered "true" (handoff.models.ORDERED_REF)
    a vendor without OrderCapability        422 `order_not_supported`
    already ordered                         the job as it is (idempotent)
    SUBMITTED, ordered "false"              the vendor's order (its OrderCapability), then one
                                            conditional write
                                            (store.record_order): its `Job Ordered` event
    any other status; the vendor refuses    409 `not_orderable`
    credentials refused / unreachable       502 `vendor_auth_failed` / 503 `vendor_unavailable`
    no such job                             404 `job_not_found`
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handoff.lifecycle import TERMINAL, Transition
from handoff.models import ORDERED_REF, Job, JobStatus
from handoff.observability import count, logger
from handoff.ports import JobStore
from handoff.vendors.base import Rejected, Transient, Vendor

CANCEL_QUEUED = Transition(JobStatus.CANCELED, frozenset({JobStatus.QUEUED}))
# A job the vendor holds, not final: canceled once the vendor has canceled it.
CANCEL_AT_VENDOR = Transition(
    JobStatus.CANCELED, frozenset({JobStatus.SUBMITTED, JobStatus.IN_PROGRESS, JobStatus.DELIVERED})
)


class JobRefused(Exception):
    """The action cannot be done: `status` and the error body's code, message and details."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


def _not_found() -> JobRefused:
    return JobRefused(404, "job_not_found", "no job with that reference_id")


class JobControl:
    def __init__(self, store: JobStore, vendors: Callable[[str], Vendor]) -> None:
        self.store = store
        self.vendors = vendors  # vendor name -> its registered Vendor (handoff.vendors.vendor)

    @classmethod
    def for_stack(cls, dynamodb: Any) -> JobControl:
        from handoff.settings import core_settings
        from handoff.store import DynamoJobStore
        from handoff.vendors import vendor

        return cls(DynamoJobStore(core_settings().jobs_table_name, dynamodb), vendor)

    # -- cancel -------------------------------------------------------------------------------------

    def cancel(self, reference_id: str) -> Job:
        """The job CANCELED (see the module's table). Raises JobRefused."""
        job = self.store.get(reference_id)
        if job is None:
            raise _not_found()
        if job.status is JobStatus.QUEUED:
            outcome = self.store.transition(
                reference_id,
                CANCEL_QUEUED,
                source="operator",
                detail="canceled before submission",
                remove_fields=("next_attempt_at",),
                require_unleased=True,
            )
            if outcome.applied and outcome.job is not None:
                logger.info("queued job canceled; the vendor was not contacted", extra={"reference_id": reference_id})
                count("JobsCanceled", job.vendor)
                return outcome.job
            if outcome.job is None:
                raise _not_found()
            if outcome.job.status is JobStatus.QUEUED:
                raise JobRefused(
                    409,
                    "submission_in_progress",
                    "a submission attempt holds the job now (it may be creating the vendor's job); "
                    "send the cancel again in a few seconds",
                    [{"status": JobStatus.QUEUED.value, "retryable": True}],
                )
            job = outcome.job  # submitted (or finished) meanwhile: on as such
        if job.status is JobStatus.CANCELED:
            return job
        if job.status in TERMINAL:
            raise JobRefused(409, "not_cancellable", f"the job is {job.status.value}", [{"status": job.status.value}])
        return self._cancel_at_vendor(job)

    def _cancel_at_vendor(self, job: Job) -> Job:
        capability = self.vendors(job.vendor).cancel
        if capability is None:
            raise JobRefused(
                409,
                "not_cancellable",
                f"{job.vendor} offers no cancel of a job it accepted",
                [{"status": job.status.value, "vendor": job.vendor}],
            )
        self._ask_vendor(lambda: capability.cancel(job), job, "not_cancellable")
        outcome = self.store.transition(
            job.reference_id, CANCEL_AT_VENDOR, source="operator", detail=f"canceled at {job.vendor}"
        )
        if outcome.job is None:
            raise _not_found()
        if not outcome.applied and outcome.job.status is not JobStatus.CANCELED:
            # The vendor canceled it, yet the job went final meanwhile (the vendor's word came first).
            status = outcome.job.status.value
            raise JobRefused(409, "not_cancellable", f"the job is {status}", [{"status": status}])
        logger.info("job canceled at the vendor", extra={"reference_id": job.reference_id, "vendor": job.vendor})
        if outcome.applied:
            count("JobsCanceled", job.vendor)
        return outcome.job

    # -- order --------------------------------------------------------------------------------------

    def order(self, reference_id: str) -> Job:
        """The job with its vendor order placed (see the module's table). Raises JobRefused."""
        job = self.store.get(reference_id)
        if job is None:
            raise _not_found()
        capability = self.vendors(job.vendor).order
        if capability is None:
            raise JobRefused(
                422,
                "order_not_supported",
                f"{job.vendor} has no order to place after submission",
                [{"vendor": job.vendor}],
            )
        if job.vendor_refs.get(ORDERED_REF) == "true":
            return job
        if job.status is not JobStatus.SUBMITTED or job.vendor_refs.get(ORDERED_REF) != "false":
            raise JobRefused(
                409,
                "not_orderable",
                "only a job the vendor holds unordered (SUBMITTED, not ordered) can be ordered",
                [{"status": job.status.value, "ordered": job.vendor_refs.get(ORDERED_REF)}],
            )
        refs = self._ask_vendor(lambda: capability.place(job), job, "not_orderable")
        outcome = self.store.record_order(reference_id, {**refs, ORDERED_REF: "true"})
        if outcome.job is None:
            raise _not_found()
        logger.info("vendor order placed", extra={"reference_id": reference_id, "vendor": job.vendor})
        if outcome.applied:
            count("JobsOrdered", job.vendor)
        return outcome.job

    # -- the vendor ---------------------------------------------------------------------------------

    def _ask_vendor(self, call: Callable[[], Any], job: Job, refusal: str) -> Any:
        """The vendor's answer, or JobRefused: 409 `refusal` (it refuses), 502 (our credentials),
        503 (not reachable now: nothing changed, the same request again is safe)."""
        log = {"reference_id": job.reference_id, "vendor": job.vendor}
        try:
            return call()
        except Transient as exc:
            logger.warning("the vendor could not be reached", extra={**log, "error_code": exc.code})
            raise JobRefused(
                503,
                "vendor_unavailable",
                f"{job.vendor} could not be reached ({exc.code}); nothing changed, the same request again is safe",
                [{"vendor_code": exc.code, "retryable": True}],
            ) from exc
        except Rejected as exc:
            if exc.auth_failure:
                logger.error("the vendor refused our credentials", extra={**log, "error_code": exc.code})
                raise JobRefused(
                    502,
                    "vendor_auth_failed",
                    f"{job.vendor} refused Handoff's credentials ({exc.code}); nothing changed",
                    [{"vendor_code": exc.code, "retryable": False}],
                ) from exc
            logger.info("the vendor refused", extra={**log, "error_code": exc.code})
            raise JobRefused(
                409,
                refusal,
                f"{job.vendor} refused: {exc.message}",
                [{"status": job.status.value, "vendor_code": exc.code, "vendor_message": exc.message}],
            ) from exc
