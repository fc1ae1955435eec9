"""Submitting a job: record it, try the vendor, record the verdict; retry what did not settle.

Inline (SubmitJob, one job):
1. conditional put of the QUEUED job      -> same reference_id + same request: replay the job
                                              same reference_id + other request: ConflictError
2. one vendor attempt, at the vendor's pace (a shared rate slot, waited for briefly)
3. accepted   -> SUBMITTED with the vendor's job id              (one conditional UpdateItem)
   rejected   -> FAILED with the vendor's code and message       (one conditional UpdateItem)
   transient  -> stays QUEUED with attempts, last_error and next_attempt_at, and a delayed
                 SubmissionQueue message carries it to the worker
   already submitted (e.g. a repeated reference refused) -> the vendor's job is looked up and recorded SUBMITTED

Bulk (SubmitJob, up to 500 jobs): every job recorded QUEUED, then enqueued in batches of ten.

Worker (SubmissionWorker, one message): claim the QUEUED job, attempt, and answer with what SQS
should do with the message: done, retry after a backoff delay, or give up (the job is FAILED
retries_exhausted and the message goes on to the dead-letter queue).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from handoff.backoff import Backoff
from handoff.batches import Batches, BatchRefused
from handoff.lifecycle import GIVE_UP, RESUBMIT, transition_to
from handoff.models import CLEANUP_REF, HistoryEntry, Job, JobError, JobStatus, SubmissionMessage, request_hash
from handoff.observability import count, for_job, logger
from handoff.pacing import LATENESS_ALLOWANCE
from handoff.ports import JobStore, RateLimiter, RetryQueue
from handoff.queue import Disposition, MessageOutcome
from handoff.store import CreateOutcome, DynamoJobStore, utc_now
from handoff.vendors import VENDORS, SubmitRequest, parse_submit_request
from handoff.vendors.base import (
    AlreadySubmitted,
    Checkpoint,
    MissedSlot,
    Rejected,
    Transient,
    VendorClient,
    disarm,
)

RETRIES_EXHAUSTED = "retries_exhausted"
# After a busy rate limiter (no slot within the caller's patience), look again this soon.
BUSY_RETRY_SECONDS = 1


def _in_pace_order(
    indices: list[int], vendor_of: Callable[[int], str], rate_of: Callable[[str], float | None]
) -> list[int]:
    """`indices` ordered by when each could go out at its vendor's pace: the n-th job of a vendor
    paced at r requests/s at n / r seconds (an unlimited vendor's at once), ties in the order given;
    each vendor's jobs keep their order. A vendor at 20/s beside one at 2/s: ten jobs of the
    first, then one of the second, and so on."""
    seen: dict[str, int] = {}
    due: dict[int, float] = {}
    for index in indices:
        vendor = vendor_of(index)
        rate = rate_of(vendor)
        due[index] = seen.get(vendor, 0) / rate if rate else 0.0
        seen[vendor] = seen.get(vendor, 0) + 1
    return sorted(indices, key=lambda index: due[index])


class _Enqueuer:
    """Sends the SubmissionQueue messages of a bulk as its jobs are recorded, ten to a
    SendMessageBatch (its limit), from whichever thread recorded the tenth; `flush` sends the rest
    and returns every reference_id that could not be sent (the reconciler enqueues those jobs once
    they are quiet: they are recorded QUEUED)."""

    CHUNK = 10

    def __init__(self, queue: RetryQueue) -> None:
        self.queue = queue
        self._pending: list[str] = []
        self._unsent: list[str] = []
        self._lock = threading.Lock()

    def add(self, reference_id: str) -> None:
        with self._lock:
            self._pending.append(reference_id)
            if len(self._pending) < self.CHUNK:
                return
            chunk, self._pending = self._pending, []
        self._send(chunk)

    def flush(self) -> list[str]:
        with self._lock:
            chunk, self._pending = self._pending, []
        if chunk:
            self._send(chunk)
        with self._lock:
            return list(self._unsent)

    def _send(self, chunk: list[str]) -> None:
        try:
            unsent = self.queue.send_many(chunk)
        except Exception:  # the jobs are recorded; the reconciler enqueues QUEUED jobs nobody holds
            logger.exception("could not enqueue part of a bulk submission", extra={"jobs": len(chunk)})
            unsent = chunk
        if unsent:
            with self._lock:
                self._unsent += unsent


class Outcome(StrEnum):
    SUBMITTED = "submitted"  # the vendor accepted it now
    QUEUED = "queued"  # not yet accepted; the retry path owns it
    REJECTED = "rejected"  # the vendor refused it: FAILED
    EXHAUSTED = "exhausted"  # every attempt failed transiently: FAILED retries_exhausted
    REPLAYED = "replayed"  # the reference_id already held this same request


@dataclass(frozen=True)
class SubmitResult:
    outcome: Outcome
    job: Job
    retry_in: int | None = None  # QUEUED: seconds until the next attempt
    attempted: bool = True  # False: no vendor request was made (no rate slot was free in time)


class ConflictError(Exception):
    def __init__(self, existing: Job) -> None:
        super().__init__(f"reference_id {existing.reference_id} is already used by a different request")
        self.existing = existing


class InvalidForVendor(Exception):
    """The request is well-formed but the vendor (or its document) would refuse it: 422, nothing written."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(details)} invalid field(s) for the vendor")
        self.details = details


class NotRetryable(Exception):
    """An operator asked to resubmit a job that is not FAILED-before-the-vendor-accepted-it."""

    def __init__(self, job: Job | None) -> None:
        super().__init__("no such job" if job is None else f"job {job.reference_id} is {job.status.value}")
        self.job = job


class UnknownJob(Exception):
    """A queue message names a job the table does not hold."""


# An attempt needs this much of the worker's invocation left (a vendor may take ~10 requests).
MIN_SECONDS_FOR_ATTEMPT = 30.0
# The longest a message waits for a rate slot; the rest of its batch is behind it.
MAX_RATE_WAIT_SECONDS = 20.0


class Action(StrEnum):
    DONE = "done"  # delete the message
    RETRY = "retry"  # make it visible again after `delay`
    GIVE_UP = "give_up"  # let it go to the dead-letter queue now


@dataclass(frozen=True)
class Resumption:
    action: Action
    job: Job
    delay: int = 0


# SubmitJob's own claim on the job it has just written: until its invocation's deadline and a second
# (`Submitter.submit`'s `lives_for`: what the Lambda context says is left), at most its function's
# Timeout (29 s, API Gateway's limit; template.yaml, checked by a template test) and a second. Lambda
# ends an invocation at its deadline (so does the local stack, local/runtime.py), so past the claim
# the process that took it is gone whatever happened to it, and the worker may attempt the job.
INLINE_LEASE_SECONDS = 30


def inline_lease(lives_for: float | None) -> int:
    """Seconds SubmitJob's claim on a job it writes holds: `lives_for` (seconds its invocation has
    left, None when unknown) rounded up, and a second; never more than INLINE_LEASE_SECONDS."""
    if lives_for is None or not math.isfinite(lives_for):
        return INLINE_LEASE_SECONDS
    return min(INLINE_LEASE_SECONDS, math.ceil(max(0.0, lives_for)) + 1)


class Submitter:
    def __init__(
        self,
        store: JobStore,
        clients: Callable[[str], VendorClient],
        queue: RetryQueue,
        limiter: RateLimiter,
        backoff: Backoff,
        *,
        inline_max_wait: float = 1.0,
        lease_seconds: int = 180,
        sleep: Callable[[float], None] = time.sleep,
        batches: Batches | None = None,
    ) -> None:
        self.store = store
        self.clients = clients  # vendor name -> VendorClient, e.g. handoff.vendors.client_for
        self.queue = queue
        self.limiter = limiter
        self.backoff = backoff
        self.inline_max_wait = inline_max_wait
        self.lease_seconds = lease_seconds
        self.sleep = sleep
        self.batches = batches  # jobs that name a batch_ref go into that batch

    @classmethod
    def for_stack(cls, dynamodb: Any, sqs: Any) -> Submitter:
        """The submitter a function uses: the stack's table, queue, rate limits and retry schedule."""
        from handoff.pacing import SharedRateLimiter
        from handoff.queue import SubmissionQueue
        from handoff.settings import core_settings, submission_settings
        from handoff.vendors import client_for

        settings = submission_settings()
        core = core_settings()
        return cls(
            DynamoJobStore(core.jobs_table_name, dynamodb),
            client_for,
            SubmissionQueue(settings.queue_url, sqs),
            SharedRateLimiter(settings.rate_limit_table, dynamodb, settings.rate_per_vendor),
            Backoff(settings.retry_base_seconds, max(settings.retry_cap_seconds, settings.retry_base_seconds)),
            inline_max_wait=settings.inline_max_wait_seconds,
            lease_seconds=settings.lease_seconds,
            batches=Batches.for_stack(dynamodb) if core.batches_table_name else None,
        )

    # -- SubmitJob ----------------------------------------------------------------------------------

    def submit(self, request: SubmitRequest, *, lives_for: float | None = None) -> SubmitResult:
        """One job, attempted at once. `lives_for`: seconds the calling invocation has left (the Lambda
        context's remaining time), which bounds its claim on the job (`inline_lease`). Raises
        InvalidForVendor, BatchRefused (nothing written) and ConflictError."""
        request = self.into_batch(request, {})
        self._check(request)
        # Written claimed: until this attempt's verdict, no worker attempts it and no cancel marks
        # it CANCELED while the vendor job may be being created. For no longer than this invocation
        # can live: a SubmitJob that died after the write leaves the job free from its deadline on.
        created = self._record(request, lease_seconds=inline_lease(lives_for))
        if not created.created:
            return _replay(created.job, request)
        result = self.attempt(created.job, request, max_wait=self.inline_max_wait)
        if result.outcome is Outcome.QUEUED:
            if not result.attempted:
                self.store.release(request.reference_id)
            self._enqueue(result.job, result.retry_in or 0)
        return result

    def into_batch(self, request: SubmitRequest, known: dict[str, Any]) -> SubmitRequest:
        """The request as it goes into the batch it names (batch_ref), or as it is. Raises
        BatchRefused (unknown, another vendor's, or closed batch)."""
        if getattr(request, "batch_ref", None) is None:
            return request
        if self.batches is None:
            raise BatchRefused(422, "batches_not_supported", "this stack keeps no batches")
        assigned = self.batches.assign(request, known)
        self.batches.admits(assigned, known)
        return assigned

    def submit_many(
        self, requests: list[SubmitRequest]
    ) -> list[SubmitResult | ConflictError | InvalidForVendor | BatchRefused]:
        """Record every job QUEUED (in parallel), enqueuing the new ones ten at a time as they are
        recorded: the worker starts on the first jobs of a bulk while the rest are being written.

        A reference_id given twice in one call is decided by its first entry, every time: only
        the first is written, and each later one is answered as a repeat of it (replayed when it
        is the same request, ConflictError when not), as if it had come in a later call.
        """
        first: dict[str, int] = {}
        for index, request in enumerate(requests):
            first.setdefault(request.reference_id, index)
        leaders = sorted(set(first.values()))
        known: dict[str, Any] = {}  # the batches named, read once
        assigned: dict[int, SubmitRequest | BatchRefused] = {}
        for index in leaders:
            try:
                assigned[index] = self.into_batch(requests[index], known)
            except BatchRefused as exc:
                assigned[index] = exc

        def check_and_record(index: int) -> CreateOutcome | InvalidForVendor | BatchRefused:
            request = assigned[index]
            if isinstance(request, BatchRefused):
                return request
            try:
                self._check(request)
            except InvalidForVendor as exc:
                return exc
            recorded = self._record(request)
            if recorded.created:  # a leader written now: answered QUEUED below, so its message goes
                enqueue.add(request.reference_id)
            return recorded

        enqueue = _Enqueuer(self.queue)
        # Written (and so enqueued) in the order the vendors' limits will let them out: the worker's
        # batches then each hold what the vendors can take in the same stretch of time, so a bulk
        # of several vendors is paced by each limit side by side, neither one vendor's jobs queued
        # behind another's nor every batch held up by a slow vendor's one record.
        taken = _in_pace_order(leaders, lambda index: requests[index].vendor, self.limiter.rate)
        with ThreadPoolExecutor(max_workers=8) as pool:
            created = dict(zip(taken, pool.map(check_and_record, taken), strict=True))
        unsent = enqueue.flush()
        results: list[SubmitResult | ConflictError | InvalidForVendor | BatchRefused] = []
        for index, request in enumerate(requests):
            leader = first[request.reference_id]
            outcome = created[leader]
            if isinstance(outcome, InvalidForVendor | BatchRefused):
                results.append(outcome)
                continue
            try:
                if index == leader and outcome.created:
                    results.append(SubmitResult(Outcome.QUEUED, outcome.job))
                else:
                    # a later entry goes into the batch it names, as its leader did, before comparing
                    leading = assigned[index] if index == leader else None
                    later = leading if leading is not None and not isinstance(leading, BatchRefused) else None
                    later = later or self.into_batch_quietly(request, known)
                    results.append(_replay(outcome.job, later))
            except ConflictError as exc:
                results.append(exc)
        vendor_of = {r.reference_id: r.vendor for r in requests}
        for ref in unsent:
            count("SubmissionEnqueueFailed", vendor_of[ref])
        return results

    def into_batch_quietly(self, request: SubmitRequest, known: dict[str, Any]) -> SubmitRequest:
        """into_batch for a request compared with a job already written: as it is when refused."""
        if getattr(request, "batch_ref", None) is None or self.batches is None:
            return request
        try:
            return self.batches.assign(request, known)
        except BatchRefused:
            return request

    def _check(self, request: SubmitRequest) -> None:
        """Raise InvalidForVendor for what the vendor would refuse, before anything is written."""
        try:
            problems = self.clients(request.vendor).check(request)
        except Exception:  # an unreadable configuration or a flaky lookup: the attempt reports it
            logger.warning(
                "could not check the request before submitting",
                extra={"reference_id": request.reference_id},
                exc_info=True,
            )
            return
        if problems:
            raise InvalidForVendor(problems)

    def _record(self, request: SubmitRequest, lease_seconds: int | None = None) -> CreateOutcome:
        """Write the new QUEUED job; or, when its reference_id belongs to a job the vendor refused
        before ever accepting it and this is a different (corrected) request, put it in that
        job's place. Anything else holding the reference_id comes back as found. `lease_seconds`:
        written claimed (store.create)."""
        created = self.store.create(_new_job(request), lease_seconds=lease_seconds)
        existing = created.job
        if created.created or not replaceable(existing) or existing.request_hash == request_hash(request):
            return created
        replaced = self.store.replace(
            _new_job(request, detail="replaced: a corrected request"), existing, lease_seconds=lease_seconds
        )
        if replaced.created:
            logger.info(
                "a refused job was replaced by a corrected request", extra={"reference_id": request.reference_id}
            )
        return replaced

    def resubmit(self, reference_id: str) -> Job:
        """Operator: put a job that FAILED before any vendor accepted it back in the queue. A job
        of a completed batch runs no more (BatchRefused 409 batch_completed): its batch's one
        `Batch Completed` event has told its final counts."""
        job = self.store.get(reference_id)
        if job is not None and job.batch_ref and self.batches is not None:
            self.batches.runs_again(job.batch_ref)
        outcome = self.store.transition(
            reference_id, RESUBMIT, source="operator", detail="resubmitted", require_no_vendor_job=True
        )
        if not outcome.applied or outcome.job is None:
            raise NotRetryable(outcome.job)
        self._enqueue(outcome.job, 0)
        return outcome.job

    # -- SubmissionWorker -----------------------------------------------------------------------------

    def handle_message(self, body: str, *, receives: int, max_receives: int, remaining: float) -> MessageOutcome:
        """One SubmissionQueue message, received for the `receives`-th time with `remaining`
        seconds of the invocation left: what becomes of it (see functions/submission_worker).

            DONE      accepted, rejected (FAILED), or already past QUEUED
            RETRY     a transient failure (after its backoff), or too little time left (at once)
            GIVE_UP   a transient failure on the last receive: the job is FAILED retries_exhausted
            POISON    not a submission message, or no such job
        """
        try:
            message = SubmissionMessage.model_validate_json(body)
        except ValidationError:
            logger.error("poison message: not a submission message")
            count("PoisonMessage", "unknown")
            return MessageOutcome(Disposition.POISON, reason="not a submission message")
        for_job(message.reference_id)
        if remaining < MIN_SECONDS_FOR_ATTEMPT:
            return MessageOutcome(Disposition.RETRY, 0, "not enough time left in this invocation")
        try:
            resumption = self.resume(
                message.reference_id,
                final=receives >= max_receives,
                max_wait=min(MAX_RATE_WAIT_SECONDS, remaining - MIN_SECONDS_FOR_ATTEMPT),
            )
        except UnknownJob:
            logger.error("poison message: no such job")
            count("PoisonMessage", "unknown")
            return MessageOutcome(Disposition.POISON, reason="no such job")
        if resumption.action is Action.RETRY:
            return MessageOutcome(Disposition.RETRY, resumption.delay, f"retry in {resumption.delay} s")
        if resumption.action is Action.GIVE_UP:
            return MessageOutcome(Disposition.GIVE_UP, reason="retries exhausted; on to the dead-letter queue")
        logger.info("message done", extra={"status": resumption.job.status.value, "receives": receives})
        return MessageOutcome(Disposition.DONE)

    def resume(self, reference_id: str, *, final: bool, max_wait: float) -> Resumption:
        """One queue message: attempt the job if it is still QUEUED and nobody else holds it."""
        claim = self.store.claim(reference_id, self.lease_seconds)
        if not claim.claimed and claim.job is not None and _exhausted_before_vendor(claim.job):
            # Its message was moved back from the dead-letter queue (make redrive): try it again.
            reopened = self.store.transition(
                reference_id, RESUBMIT, source="redrive", detail="resubmitted", require_no_vendor_job=True
            )
            if reopened.applied:
                claim = self.store.claim(reference_id, self.lease_seconds)
        job = claim.job
        if job is None:
            raise UnknownJob(reference_id)
        if not claim.claimed:
            # Already past QUEUED (a duplicate message, or a callback got there first), or another
            # attempt holds it and its own message carries on.
            return Resumption(Action.DONE, job)
        request = parse_submit_request(job.request)
        result = self.attempt(job, request, max_wait=max_wait, final=final)
        if result.outcome is Outcome.QUEUED:
            if not result.attempted:
                self.store.release(reference_id)
            return Resumption(Action.RETRY, result.job, result.retry_in or 0)
        if result.outcome is Outcome.EXHAUSTED:
            return Resumption(Action.GIVE_UP, result.job)
        return Resumption(Action.DONE, result.job)

    # -- one attempt ---------------------------------------------------------------------------------

    def attempt(self, job: Job, request: SubmitRequest, *, max_wait: float, final: bool = False) -> SubmitResult:
        """One vendor attempt for a QUEUED job, at the vendor's pace, and the write that records its verdict."""
        log = {"reference_id": job.reference_id, "vendor": job.vendor}
        try:
            client = self.clients(job.vendor)
            client.prepare()
        except Exception as exc:  # ours (configuration, a secret): retried and visible, like below
            logger.exception("vendor client could not be prepared", extra=log)
            return self._transient(
                job, Transient("internal_error", f"{type(exc).__name__} while preparing"), final=final
            )
        start_by = self._pace(job.vendor, max_wait)
        if start_by is None:
            # Busy (a bulk ahead at the vendor's rate): no attempt, and not counted against the job;
            # a message the queue dead-letters for it leaves the job QUEUED, which the reconciler
            # enqueues again once quiet.
            logger.info("no rate slot free in time; the job waits in the queue", extra=log)
            return SubmitResult(Outcome.QUEUED, job, retry_in=BUSY_RETRY_SECONDS, attempted=False)
        checkpoint = Checkpoint(
            job.vendor_refs, lambda refs: self.store.record_vendor_refs(job.reference_id, refs), start_by=start_by
        )
        try:
            accepted = self._send(client, job, request, checkpoint, max_wait)
        except MissedSlot as exc:
            # Stalled past slot after slot: no request went out, so this was no attempt, unless it
            # was the last the queue allows: then the job says why it gave up, never stays QUEUED.
            if final:
                return self._transient(job, exc, final=True, refs=checkpoint.refs)
            logger.info("no rate slot could be kept; the job waits in the queue", extra=log)
            return SubmitResult(Outcome.QUEUED, job, retry_in=BUSY_RETRY_SECONDS, attempted=False)
        except Transient as exc:
            found = self._last_look(client, job, request) if final else None
            if found is None:
                return self._transient(job, exc, final=final, refs=checkpoint.refs)
            accepted = found
        except Rejected as exc:
            logger.info("vendor rejected the submission", extra={**log, "error_code": exc.code})
            count("SubmissionFailed", job.vendor)
            outcome = self.store.transition(
                job.reference_id,
                GIVE_UP,
                source="submit",
                detail=f"vendor rejected: {exc.code}",
                set_fields={"last_error": exc.as_job_error().model_dump(mode="json")},
                remove_fields=("lease_until", "next_attempt_at"),
                count_attempt=True,
            )
            return SubmitResult(Outcome.REJECTED, outcome.job or job)
        except Exception as exc:
            # A failure on our side (a missing secret, an AWS error): retried like a transient one
            # and visible on the job, never a silently stuck job. The type only: no secret in it.
            logger.exception("submission attempt failed inside Handoff", extra=log)
            internal = Transient("internal_error", f"{type(exc).__name__} while submitting")
            return self._transient(job, internal, final=final, refs=checkpoint.refs)
        outcome = self.store.transition(
            job.reference_id,
            transition_to(JobStatus.SUBMITTED),
            source="submit",
            set_fields={
                # a leftover an earlier give-up named is this job's own again: nothing to clean up
                "vendor_refs": {**job.vendor_refs, **accepted.vendor_refs}
                | ({CLEANUP_REF: ""} if job.vendor_refs.get(CLEANUP_REF) else {}),
                **({"quote": accepted.quote.model_dump(mode="json")} if accepted.quote else {}),
            },
            set_if_absent={"vendor_job_id": accepted.vendor_job_id},
            remove_fields=("last_error", "lease_until", "next_attempt_at"),
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
        count("JobsSubmitted", job.vendor)
        logger.info("vendor accepted the job", extra={**log, "vendor_job_id": accepted.vendor_job_id})
        return SubmitResult(Outcome.SUBMITTED, current)

    def _pace(self, vendor: str, max_wait: float) -> float | None:
        """Wait for a rate slot of `vendor`. Returns by when the vendor request must start (epoch s),
        or None when no slot comes within `max_wait` seconds.

        The request must start within LATENESS_ALLOWANCE of the slot (Checkpoint.check_start, at
        the last moment before it): sent later, it could crowd the requests after it into one
        second, so a sender that stalled takes a new slot instead.
        """
        give_up_at = time.monotonic() + max_wait
        for _ in range(5):
            wait = self.limiter.reserve(vendor, max(0.0, give_up_at - time.monotonic()))
            if wait is None:
                return None
            slot = time.time() + wait
            if wait > 0:
                self.sleep(wait)
            if time.time() - slot <= LATENESS_ALLOWANCE:
                return slot + LATENESS_ALLOWANCE
            logger.info("woke up too late for the rate slot; taking another", extra={"vendor": vendor})
        return None

    def _send(self, client: Any, job: Job, request: SubmitRequest, checkpoint: Checkpoint, max_wait: float) -> Any:
        for _ in range(5):
            try:
                return self._submit_once(client, job, request, checkpoint)
            except MissedSlot:
                logger.info("stalled past the rate slot before sending; taking another", extra={"vendor": job.vendor})
                checkpoint.start_by = self._pace(job.vendor, max_wait)
                if checkpoint.start_by is None:
                    raise
        raise MissedSlot("missed_rate_slot", "stalled past five rate slots in a row")

    def _submit_once(self, client: Any, job: Job, request: SubmitRequest, checkpoint: Checkpoint) -> Any:
        try:
            return client.submit(request, checkpoint)
        except AlreadySubmitted as exc:
            disarm()
            # An earlier attempt got through but its answer was lost: the vendor holds the job.
            # Find it and record it; never a second vendor job, never FAILED.
            logger.info(
                "vendor already holds the reference; looking its job up", extra={"reference_id": job.reference_id}
            )
            found = client.find(request, job)
            if found is None:
                raise Transient(
                    "already_submitted_not_found",
                    f"{exc.code}: the vendor holds the reference_id but its job was not found (yet)",
                ) from exc
            return found
        finally:
            disarm()  # a paced request that was never sent (the submission failed before it) is forgotten

    def _last_look(self, client: Any, job: Job, request: SubmitRequest) -> Any:
        """Before the last failed attempt makes the job FAILED: does the vendor hold it anyway?

        A timeout or a lost answer leaves it unknown whether the job was created; only the next
        attempt's FS_0001 would have told. With no next attempt, the vendor is asked directly, so
        a job the vendor holds is never reported FAILED (nor resubmitted by an operator).
        """
        try:
            found = client.find(request, job)
        except Exception:  # the lookup failing is no reason to hide the attempt's own error
            logger.warning(
                "could not look the job up before giving up",
                extra={"reference_id": job.reference_id, "vendor": job.vendor},
                exc_info=True,
            )
            return None
        if found is not None:
            logger.info(
                "the last attempt failed, but the vendor holds the job",
                extra={"reference_id": job.reference_id, "vendor_job_id": found.vendor_job_id},
            )
        return found

    def _transient(self, job: Job, exc: Transient, *, final: bool, refs: dict[str, str] | None = None) -> SubmitResult:
        """`refs`: the job's vendor_refs as the attempt left them (its checkpoints)."""
        log = {"reference_id": job.reference_id, "vendor": job.vendor, "error_code": exc.code}
        failed_attempts = job.attempts + 1
        if final:
            refs = job.vendor_refs if refs is None else refs
            left = _left_at_vendor(job.vendor, refs)
            if left:  # what the attempts created at the vendor: the reconciler deletes it
                logger.warning("the job leaves something at its vendor to clean up", extra={**log, "left": left})
            logger.warning("retries exhausted; the job is FAILED", extra={**log, "attempts": failed_attempts})
            count("SubmissionFailed", job.vendor)
            error = JobError(
                code=RETRIES_EXHAUSTED,
                message=f"gave up after {failed_attempts} attempts; the last one: {exc.code}: {exc.message}",
                retryable=True,
                details=[exc.as_job_error().model_dump(mode="json")],
            )
            outcome = self.store.transition(
                job.reference_id,
                GIVE_UP,
                source="submit",
                detail=RETRIES_EXHAUSTED,
                set_fields={"last_error": error.model_dump(mode="json")}
                | ({"vendor_refs": {**refs, CLEANUP_REF: left}} if left else {}),
                remove_fields=("lease_until", "next_attempt_at"),
                count_attempt=True,
            )
            return SubmitResult(Outcome.EXHAUSTED, outcome.job or job)
        delay = self.backoff.delay(failed_attempts)
        logger.info("vendor did not settle the submission; retrying later", extra={**log, "retry_in": delay})
        count("SubmissionRetried", job.vendor)
        next_at = (datetime.now(UTC) + timedelta(seconds=delay)).isoformat(timespec="milliseconds")
        current = self.store.record_failed_attempt(
            job.reference_id, exc.as_job_error(), next_attempt_at=next_at.replace("+00:00", "Z")
        )
        return SubmitResult(Outcome.QUEUED, current or job, retry_in=delay)

    def _enqueue(self, job: Job, delay: int) -> None:
        try:
            self.queue.send(job.reference_id, delay=math.ceil(delay))
        except Exception:  # the job is recorded QUEUED; the reconciler enqueues jobs nobody holds
            logger.exception("could not enqueue the job for retry", extra={"reference_id": job.reference_id})
            count("SubmissionEnqueueFailed", job.vendor)


def _left_at_vendor(vendor_name: str, refs: dict[str, str]) -> str | None:
    """What a job given up after transient failures may have left at its vendor (its
    CleanupCapability's word for it), or None: nothing, or a vendor that leaves nothing behind."""
    registered = VENDORS.get(vendor_name)
    if registered is None or registered.cleanup is None:
        return None
    try:
        return registered.cleanup.left_by(refs)
    except Exception:  # the give-up is recorded all the same
        logger.exception("could not tell what the job left at its vendor", extra={"vendor": vendor_name})
        return None


def _new_job(request: SubmitRequest, detail: str | None = None) -> Job:
    now = utc_now()
    return Job(
        reference_id=request.reference_id,
        vendor=request.vendor,
        batch_ref=getattr(request, "batch_ref", None),
        status=JobStatus.QUEUED,
        request=request.model_dump(mode="json"),
        request_hash=request_hash(request),
        created_at=now,
        updated_at=now,
        history=[HistoryEntry(at=now, status=JobStatus.QUEUED, source="submit", detail=detail)],
    )


def _replay(existing: Job, request: SubmitRequest) -> SubmitResult:
    if existing.request_hash != request_hash(request):
        raise ConflictError(existing)
    return SubmitResult(Outcome.REPLAYED, existing)


def replaceable(job: Job) -> bool:
    """A job the vendor refused (a permanent error, not retries running out) and never accepted:
    a different request under its reference_id replaces it."""
    return (
        job.status is JobStatus.FAILED
        and job.vendor_job_id is None
        and job.last_error is not None
        and not job.last_error.retryable
    )


def _exhausted_before_vendor(job: Job) -> bool:
    return (
        job.status is JobStatus.FAILED
        and job.vendor_job_id is None
        and job.last_error is not None
        and job.last_error.code == RETRIES_EXHAUSTED
    )
