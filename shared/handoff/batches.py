"""Batches: a named group of jobs at a vendor that has them (handoff.vendors.base.BatchCapability),
tracked by Handoff under the caller's `batch_ref`. No AWS, no HTTP: ports only.

Create (POST /batches): the batch record is written first (conditional put on batch_ref), then
the vendor creates its batch and its id is recorded. The same request again answers the same
batch; a different request under the same batch_ref is a conflict; a vendor that refuses, or
cannot be reached, leaves nothing behind (the record is removed), except that a caller-given
batch_ref whose vendor answer was lost stays pending, and the same request again finds the
vendor's batch by its name (names are unique per project) instead of creating a second one.

Size: a batch is open (no size) until it is sized, by `expected_jobs` at creation or by closing
it (with a size at least the jobs it holds, or as many jobs as it holds then). A sized batch takes
jobs until it holds its size (state "sized"), then takes no new job ("closed"; a repeat of a job it
holds is still answered). Closing again with the same size writes nothing; with another, 409. A
bulk submission that asks for a new batch sizes it with its own jobs, and removes it when it took
none (the vendor's batch stays: BatchCapability has no delete). An open batch never completes;
a completed one runs no job again (no new job, no corrected resubmission, no retry: 409
batch_completed).

Completion: when a sized batch holds `expected_jobs` jobs and every one is final (COMPLETED,
FAILED, CANCELED), exactly one `Batch Completed` event is published. Whoever sees it first (the
EventPublisher, from a job's final status on the table stream, or the close itself) claims it
with ONE conditional write on the batch record (completed_at absent -> set, with the counts);
only the claimant publishes, then marks it published. A claimant that crashed between claim and
publish is recovered: its stream record comes again and, being the same claimant, publishes; anyone
else may take over only once its lease has run out. The job index is eventually consistent, so
the job whose record is being processed counts with the status that record carries, and the few
jobs the index still shows unfinished are read again from the table before concluding.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from handoff.lifecycle import TERMINAL, is_terminal
from handoff.models import Batch, BatchCompleted, CreateBatchRequest, JobStatus, request_hash
from handoff.observability import count, logger
from handoff.ports import BatchStore, JobStore
from handoff.store import utc_now
from handoff.vendors.base import BatchCapability, Transient, VendorError

# How long a claimant holds the publication of a completion (longer than a function runs).
PUBLICATION_LEASE_SECONDS = 120.0
# Jobs the index shows unfinished that are read again from the table before a batch is judged.
RECHECK_LIMIT = 25


class BatchRefused(Exception):
    """A batch request refused: HTTP `status` with Handoff's error body. Nothing was written."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        batch: Batch | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.batch = batch


def state(batch: Batch, held: int | None = None) -> str:
    """open (no size yet); sized (a size, and it holds fewer jobs: it takes more); closed (it holds
    its size: it takes no new job, and completes when every job is final); completed. `held`: the
    jobs it holds (None: not counted, a sized batch is then "sized")."""
    if batch.completed_at:
        return "completed"
    if batch.expected_jobs is None:
        return "open"
    return "closed" if held is not None and held >= batch.expected_jobs else "sized"


def batch_view(batch: Batch, held: int | None = None) -> dict[str, Any]:
    """The batch record as callers see it (its bookkeeping of the publication left out)."""
    shown = batch.model_dump(mode="json", exclude={"claimant", "publishing_until", "request_hash"})
    return {**shown, "state": state(batch, held)}


class Batches:
    def __init__(
        self,
        store: BatchStore,
        jobs: JobStore,
        capability: Callable[[str], BatchCapability | None],
        publish: Callable[[BatchCompleted], None] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = PUBLICATION_LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.capability = capability  # vendor name -> its BatchCapability (None: no batches); may raise LookupError
        self.publish = publish  # puts one `Batch Completed` event on the bus
        self.clock = clock
        self.lease_seconds = lease_seconds

    @classmethod
    def for_stack(cls, dynamodb: Any, publish: Callable[[BatchCompleted], None] | None = None) -> Batches:
        """The batches a function uses: the stack's BatchesTable and JobsTable, the registry's vendors."""
        from handoff.settings import core_settings
        from handoff.store import DynamoBatchStore, DynamoJobStore
        from handoff.vendors import vendor

        settings = core_settings()
        return cls(
            DynamoBatchStore(settings.batches_table_name, dynamodb),
            DynamoJobStore(settings.jobs_table_name, dynamodb),
            lambda name: vendor(name).batches,
            publish,
        )

    # -- create ---------------------------------------------------------------------------------------

    def create(self, request: CreateBatchRequest) -> tuple[bool, Batch]:
        """(True, the new batch) or (False, the batch this same request created before).
        Raises BatchRefused: 422 batches_not_supported, 409 conflict, 424 vendor_rejected,
        503 vendor_unavailable."""
        capability = self._capability_of(request.vendor)
        ref = request.batch_ref or f"batch-{uuid.uuid4()}"
        identity = request.model_copy(update={"batch_ref": None, "expected_jobs": None})
        now = utc_now()
        pending = Batch(
            batch_ref=ref,
            vendor=request.vendor,
            name=request.name,
            description=request.description,
            request_hash=request_hash(identity),
            created_at=now,
            updated_at=now,
        )
        written = self.store.create(pending)
        resuming = False
        if not written.applied:
            existing = written.batch or self.store.get(ref)
            if existing is None:  # removed between our put and our read: a failed creation's cleanup
                raise BatchRefused(503, "try_again", "the batch is being created; send the request again")
            if existing.request_hash != pending.request_hash:
                raise BatchRefused(
                    409,
                    "conflict",
                    f"batch_ref {ref} is already used by a different request",
                    [
                        {
                            "field": "batch_ref",
                            "message": "already used by a different request",
                            "state": state(existing),
                        }
                    ],
                )
            if existing.vendor_batch_id:
                return False, self._sized(existing, request.expected_jobs)
            resuming = True  # an earlier attempt wrote the record; its vendor answer never came
        vendor_batch_id = self._create_at_vendor(capability, request, ref, resuming=resuming)
        recorded = self.store.record_vendor_batch(ref, vendor_batch_id)
        batch = recorded.batch or pending
        logger.info(
            "batch created", extra={"batch_ref": ref, "vendor": request.vendor, "vendor_batch_id": vendor_batch_id}
        )
        count("BatchesCreated", request.vendor)
        return True, self._sized(batch, request.expected_jobs)

    def _create_at_vendor(
        self, capability: BatchCapability, request: CreateBatchRequest, ref: str, *, resuming: bool
    ) -> str:
        try:
            return capability.create(request.name, request.description)
        except VendorError as exc:
            found = self._find(capability, request.name) if resuming else None
            if found is not None:
                logger.info("the vendor already held the batch: an earlier answer was lost", extra={"batch_ref": ref})
                return found
            keep = isinstance(exc, Transient) and request.batch_ref is not None
            if not keep:
                self.store.forget(ref)
            details = [{"vendor_code": exc.code, "retryable": exc.retryable}]
            if isinstance(exc, Transient):
                raise BatchRefused(
                    503, "vendor_unavailable", f"the vendor could not create the batch now: {exc.message}", details
                ) from exc
            raise BatchRefused(424, "vendor_rejected", f"the vendor refused the batch: {exc.message}", details) from exc
        except Exception:
            self.store.forget(ref)
            raise

    def _find(self, capability: BatchCapability, name: str) -> str | None:
        try:
            return capability.find(name)
        except Exception:
            logger.warning("could not look the batch up by name", exc_info=True)
            return None

    def _sized(self, batch: Batch, expected_jobs: int | None) -> Batch:
        if expected_jobs is None or batch.expected_jobs == expected_jobs:
            return batch
        return self.close(batch.batch_ref, expected_jobs)

    # -- submit into one ------------------------------------------------------------------------------

    def assign(self, request: Any, known: dict[str, Batch] | None = None) -> Any:
        """The submit request as it goes into its batch: the vendor's batch id set from the
        caller's batch_ref (a request without one is returned as it is). `known` caches batches
        across the requests of one bulk. Raises BatchRefused (422, 409)."""
        ref = getattr(request, "batch_ref", None)
        if ref is None:
            return request
        capability = self._capability_of(request.vendor)
        known = {} if known is None else known
        batch = known.get(ref) or self.store.get(ref)
        field = [{"field": "batch_ref", "message": "", "type": "batch"}]
        if batch is None:
            raise BatchRefused(422, "batch_not_found", f"no batch {ref} (create it with POST /batches)", field)
        known[ref] = batch
        if batch.vendor != request.vendor:
            raise BatchRefused(422, "batch_vendor_mismatch", f"batch {ref} is a batch of {batch.vendor}", field)
        if batch.vendor_batch_id is None:
            raise BatchRefused(409, "batch_not_ready", f"batch {ref} is still being created; try again", field)
        named = capability.named_in(request)
        if named is not None and named != batch.vendor_batch_id:
            raise BatchRefused(
                422, "batch_mismatch", "batch_id and batch_ref name different batches", [{"field": "batch_id"}]
            )
        return capability.assign(request, ref, batch.vendor_batch_id)

    def admits(self, request: Any, known: dict[str, Any]) -> None:
        """Raise BatchRefused when the request would be a new job its batch cannot take: 409
        batch_completed (a completed batch runs no job again: no new job, no corrected
        resubmission), 409 batch_closed (a sized batch that holds its size already). A repeat of
        a job the batch holds (the same request) passes, and is replayed; so does a corrected
        request in the place of a job the (not completed) batch holds. `known` also counts the
        jobs admitted in this call, so one bulk cannot overfill a batch."""
        ref = getattr(request, "batch_ref", None)
        batch = known.get(ref) if ref else None
        if batch is None or (batch.expected_jobs is None and not batch.completed_at):
            return
        existing = self.jobs.get(request.reference_id)
        if existing is not None and existing.request_hash == request_hash(request):
            return
        if batch.completed_at:
            raise BatchRefused(
                409,
                "batch_completed",
                f"batch {ref} is completed: none of its jobs runs again, and it takes no new job",
                [{"field": "batch_ref", "state": "completed"}],
            )
        if existing is not None and existing.batch_ref == ref:
            return  # in the place of a job the batch holds: the count does not change
        admitted_key = f" admitted {ref}"  # a key no batch_ref can be
        held = len(self.jobs.batch_jobs(str(ref))) + int(known.get(admitted_key, 0))
        if held >= batch.expected_jobs:
            raise BatchRefused(
                409,
                "batch_closed",
                f"batch {ref} holds {held} jobs of its {batch.expected_jobs} (expected_jobs): it takes no new job",
                [{"field": "batch_ref", "state": "closed", "jobs": held, "expected_jobs": batch.expected_jobs}],
            )
        known[admitted_key] = int(known.get(admitted_key, 0)) + 1

    def runs_again(self, batch_ref: str) -> None:
        """A job of the batch is to run again (an operator's retry): refused (409 batch_completed)
        once the batch is completed, as a new or corrected job of it is (see admits)."""
        batch = self.store.get(batch_ref)
        if batch is not None and batch.completed_at:
            raise BatchRefused(
                409,
                "batch_completed",
                f"batch {batch_ref} is completed: none of its jobs runs again",
                [{"field": "batch_ref", "state": "completed"}],
            )

    # -- close ------------------------------------------------------------------------------------------

    def close(self, batch_ref: str, expected_jobs: int | None = None, claimant: str | None = None) -> Batch:
        """Fix the batch's size (given, or the jobs it holds now) and see whether it is complete.
        The same size again answers the batch and writes nothing. Raises BatchRefused: 404, 409
        (not created yet; sized before with another size; fewer than it holds; no jobs)."""
        batch = self._existing(batch_ref)
        if batch.vendor_batch_id is None:
            raise BatchRefused(409, "batch_not_ready", f"batch {batch_ref} is still being created; try again")
        held = len(self.jobs.batch_jobs(batch_ref))
        size = expected_jobs if expected_jobs is not None else held
        if batch.expected_jobs is not None:
            if size != batch.expected_jobs:
                given = "" if expected_jobs is not None else f" (no size given: the {held} jobs it holds)"
                raise BatchRefused(
                    409,
                    "conflict",
                    f"batch {batch_ref} is already sized with {batch.expected_jobs} jobs, not {size}{given}",
                    [{"field": "expected_jobs", "message": f"sized with {batch.expected_jobs}", "jobs": held}],
                )
            if not batch.completed_at:
                self.check_completion(batch_ref, claimant=claimant or f"close:{batch_ref}")
                return self.store.get(batch_ref) or batch
            return batch  # the same size again: nothing to write
        if size < 1:
            raise BatchRefused(409, "batch_empty", f"batch {batch_ref} holds no job: give expected_jobs to close it")
        if size < held:
            raise BatchRefused(
                409,
                "conflict",
                f"batch {batch_ref} holds {held} jobs: its size cannot be {size}",
                [{"field": "expected_jobs", "message": f"fewer than the {held} jobs it holds", "jobs": held}],
            )
        written = self.store.close(batch_ref, size)
        if not written.applied:
            found = written.batch or batch
            raise BatchRefused(
                409,
                "conflict",
                f"batch {batch_ref} is already sized with {found.expected_jobs} jobs",
                [{"field": "expected_jobs", "message": f"sized with {found.expected_jobs}"}],
            )
        self.check_completion(batch_ref, claimant=claimant or f"close:{batch_ref}")
        return self.store.get(batch_ref) or written.batch or batch

    def view(self, batch: Batch) -> dict[str, Any]:
        """The batch as the API answers it, its state from the jobs it holds now."""
        return batch_view(batch, len(self.jobs.batch_jobs(batch.batch_ref)))

    def discard(self, batch_ref: str) -> None:
        """Forget a batch a bulk created that took no job (never sized): Handoff keeps nothing.
        The vendor's batch stays, empty, under its name (BatchCapability has no delete)."""
        self.store.discard(batch_ref)
        logger.info("an empty new batch was discarded", extra={"batch_ref": batch_ref})

    # -- progress ---------------------------------------------------------------------------------------

    def progress(self, batch_ref: str, *, with_vendor: bool = False) -> dict[str, Any]:
        """The batch, its jobs counted by status (from the job index), and, when asked, the
        vendor's own word on the batch. Raises BatchRefused (404)."""
        batch = self._existing(batch_ref)
        members = self.jobs.batch_jobs(batch_ref)
        counts = Counter(status.value for status in members.values())
        answer: dict[str, Any] = {
            **batch_view(batch, len(members)),
            "jobs": len(members),
            "final": sum(1 for status in members.values() if is_terminal(status)),
            "counts": {status.value: counts.get(status.value, 0) for status in JobStatus},
        }
        if with_vendor:
            answer["vendor_details"] = self._vendor_details(batch)
        return answer

    def _vendor_details(self, batch: Batch) -> dict[str, Any]:
        capability = self._capability_of(batch.vendor)
        if batch.vendor_batch_id is None:
            return {"found": False}
        try:
            details = capability.details(batch.vendor_batch_id)
        except VendorError as exc:
            return {"error": {"code": exc.code, "message": exc.message, "retryable": exc.retryable}}
        return {"found": details is not None, "batch": details}

    # -- completion ---------------------------------------------------------------------------------------

    def check_completion(self, batch_ref: str, seen: Mapping[str, JobStatus] | None = None, *, claimant: str) -> bool:
        """Publish the batch's `Batch Completed` event if it is complete and nobody has (True when
        this call published it). `seen`: jobs' statuses newer than the index may show (the stream
        record being processed). `claimant` names this caller, the same when it tries again.
        Raises what the store or the bus raise (the caller tries again)."""
        batch = self.store.get(batch_ref)
        if batch is None:
            logger.warning("a job names a batch that does not exist", extra={"batch_ref": batch_ref})
            return False
        if batch.completed_at:
            return self._publish_claimed(batch, claimant)
        if batch.expected_jobs is None:
            return False
        members = self.jobs.batch_jobs(batch_ref)
        members.update({ref: status for ref, status in (seen or {}).items() if is_terminal(status)})
        if len(members) < batch.expected_jobs:
            return False
        unfinished = [ref for ref, status in members.items() if not is_terminal(status)]
        if len(unfinished) > RECHECK_LIMIT:
            return False
        for ref in unfinished:  # the index may be behind the table: read those again, consistently
            job = self.jobs.get(ref)
            if job is not None:
                members[ref] = job.status
        if any(not is_terminal(status) for status in members.values()):
            return False
        counts = Counter(status.value for status in members.values())
        final_counts = {status.value: counts.get(status.value, 0) for status in sorted(TERMINAL)}
        claim = self.store.claim_completion(batch_ref, final_counts, claimant, self.clock() + self.lease_seconds)
        if not claim.applied:
            return self._publish_claimed(claim.batch, claimant) if claim.batch else False
        assert claim.batch is not None
        logger.info("batch complete", extra={"batch_ref": batch_ref, "counts": final_counts})
        return self._publish_and_mark(claim.batch)

    def _publish_claimed(self, batch: Batch, claimant: str) -> bool:
        """A completion claimed before: publish it if it is not, and this caller may (it is the
        claimant trying again, or the claimant's lease has run out)."""
        if batch.published_at is not None or batch.completed_at is None:
            return False
        now = self.clock()
        taken = self.store.take_publication(batch.batch_ref, claimant, now, now + self.lease_seconds)
        if not taken.applied or taken.batch is None:
            return False  # published meanwhile, or its live claimant is publishing it
        logger.info("publishing a claimed batch completion", extra={"batch_ref": batch.batch_ref})
        return self._publish_and_mark(taken.batch)

    def _publish_and_mark(self, batch: Batch) -> bool:
        if self.publish is None:
            raise RuntimeError("no event bus to publish the batch's completion on")
        self.publish(completed_event(batch))
        self.store.mark_published(batch.batch_ref)
        count("BatchesCompleted", batch.vendor)
        return True

    # -- plumbing ------------------------------------------------------------------------------------------

    def _existing(self, batch_ref: str) -> Batch:
        batch = self.store.get(batch_ref)
        if batch is None:
            raise BatchRefused(404, "batch_not_found", "no batch with that batch_ref")
        return batch

    def _capability_of(self, vendor: str) -> BatchCapability:
        try:
            capability = self.capability(vendor)
        except LookupError:
            capability = None
        if capability is None:
            raise BatchRefused(
                422,
                "batches_not_supported",
                f"vendor {vendor} has no batches",
                [{"field": "vendor", "message": "this vendor has no batches", "type": "batches_not_supported"}],
            )
        return capability


def completed_event(batch: Batch) -> BatchCompleted:
    counts = batch.final_counts or {}
    return BatchCompleted(
        batch_ref=batch.batch_ref,
        vendor=batch.vendor,
        vendor_batch_id=batch.vendor_batch_id,
        name=batch.name,
        jobs=sum(counts.values()),
        counts=counts,
        completed_at=batch.completed_at or "",
    )
