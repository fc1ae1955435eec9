"""Applying what a vendor says about one job: the same code for every vendor's callbacks and for
the reconciler's lookups, and the intake that makes sure no received callback is lost.

Each observation becomes at most ONE conditional UpdateItem (JobStore.transition). A duplicate or
stale observation fails the condition and writes nothing; an unknown reference_id writes nothing;
an observation whose vendor job id contradicts the stored one is refused.

A callback is kept by Handoff, not by the vendor's redelivery (one documented vendor retries only three times,
30 s apart, and never after a 4xx: REFERENCE.md §1.4): CallbackIntake archives the raw body,
applies it, and when part of it cannot be applied now (the table or the vendor unreachable, a
result URL that cannot be fetched yet) puts the archive key on the CallbackRetryQueue, from which
the CallbackRetry function applies the archived body again with backoff; what is still not
applied after every attempt is in the queue's dead-letter queue (an alarm; `make replay`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from handoff import vendor_json
from handoff.archive import Archive
from handoff.backoff import MAX_DELAY_SECONDS, Backoff
from handoff.lifecycle import Observation
from handoff.models import CallbackRetryMessage, JobError
from handoff.observability import count, logger
from handoff.ports import CallbackRetries, JobStore, ResultsArchive
from handoff.queue import Disposition, MessageOutcome
from handoff.settings import CallbackRetrySettings, core_settings, results_bucket
from handoff.store import STORED_BUDGETS, DynamoJobStore, bounded_error, fits

# Results within their budget in the item (store.STORED_BUDGETS, as DynamoDB counts them) live in
# the job item; larger ones in S3 with a pointer, as do results that strict JSON cannot carry (NaN,
# infinities: kept as the vendor said). So do a vendor's error details (a vendor may list every failed
# attachment) beyond theirs: the item keeps the code, the message and a pointer.
INLINE_RESULT_LIMIT = STORED_BUDGETS["result"]
INLINE_ERROR_LIMIT = STORED_BUDGETS["last_error"]


class Verdict(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # already there, or stale: nothing written
    UNKNOWN = "unknown"  # no such reference_id: nothing written (the raw body stays archived)
    INVALID = "invalid"  # unreadable, or contradicts the stored vendor job: nothing written
    DEFERRED = "deferred"  # could not be applied now: Handoff applies it again from the archive


# One metric per verdict, the same for every vendor (dimension: vendor).
METRIC_BY_VERDICT = {
    Verdict.APPLIED: "CallbackApplied",
    Verdict.DUPLICATE: "CallbackDuplicate",
    Verdict.UNKNOWN: "CallbackUnknown",
    Verdict.INVALID: "CallbackInvalid",
    Verdict.DEFERRED: "CallbackDeferred",
}


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, verdict: Verdict) -> None:
        self.counts[verdict.value] += 1

    def as_dict(self) -> dict[str, int]:
        return {v.value: self.counts.get(v.value, 0) for v in Verdict}

    @property
    def deferred(self) -> int:
        return self.counts.get(Verdict.DEFERRED.value, 0)

    def count_metrics(self, vendor: str) -> None:
        for verdict, metric in METRIC_BY_VERDICT.items():
            if self.counts.get(verdict.value):
                count(metric, vendor, self.counts[verdict.value])


class CallbackRetryQueue:
    """The CallbackRetryQueue: archive keys of callbacks to apply again ({"vendor", "archive_key"})."""

    def __init__(self, url: str, client: Any) -> None:
        self.url = url
        self.client = client

    def send(self, vendor: str, archive_key: str, delay: int = 0) -> None:
        self.client.send_message(
            QueueUrl=self.url,
            MessageBody=CallbackRetryMessage(vendor=vendor, archive_key=archive_key).model_dump_json(),
            DelaySeconds=max(0, min(delay, MAX_DELAY_SECONDS)),
        )

    def retry_later(self, receipt_handle: str, delay: int) -> None:
        """Make a received message visible again after `delay` seconds (0: at once)."""
        self.client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, delay)
        )


class NotKept(Exception):
    """The callback could not be archived (or, partly applied, not queued for another try): the
    vendor should send it again (5xx)."""


@dataclass(frozen=True)
class Receipt:
    archive_key: str
    tally: Tally


class CallbackIntake:
    """Archive -> apply -> keep what could not be applied. One vendor's callbacks.

    `apply_body(body, applier, parsed)` is the vendor's reading of a raw callback body (vendors/<name>): it
    applies every observation in it through a CallbackApplier and returns the Tally, counting
    DEFERRED what could not be applied now. It is called with the same bytes for a live callback
    and for a re-application from the archive, so both take the same path (`parsed`: the body as
    the API's gate already parsed it, or None).
    """

    def __init__(
        self,
        vendor: str,
        content_type: str,
        applier: CallbackApplier,
        retries: CallbackRetries,
        apply_body: Callable[[bytes, CallbackApplier, Any], Tally],
    ) -> None:
        self.vendor = vendor
        self.content_type = content_type
        self.applier = applier
        self.retries = retries
        self.apply_body = apply_body

    @property
    def archive(self) -> ResultsArchive:
        return self.applier.archive

    def receive(self, body: bytes, parsed: Any = None) -> Receipt:
        """A live callback (authenticated by the caller). Raises NotKept when the body could not be
        archived, or could be neither applied whole nor queued for another try."""
        try:
            key = self.archive.put_callback(self.vendor, body, self.content_type)
        except Exception as exc:
            logger.exception("callback could not be archived")
            raise NotKept("the callback could not be archived") from exc
        tally = self._apply(body, key, parsed)
        if tally.deferred:
            try:
                self.retries.send(self.vendor, key)
            except Exception as exc:
                logger.exception("deferred callback could not be queued", extra={"archive_key": key})
                raise NotKept("the callback could not be kept for another try") from exc
            logger.warning("callback deferred", extra={"archive_key": key, "deferred": tally.deferred})
        tally.count_metrics(self.vendor)
        return Receipt(key, tally)

    def reapply(self, archive_key: str) -> Tally:
        """Apply an archived callback again (what was applied before is a duplicate). Raises
        ArchiveMissing when the archived body is gone; other S3 failures propagate."""
        body = self.archive.get_callback(archive_key)
        tally = self._apply(body, archive_key, None)
        tally.count_metrics(self.vendor)
        return tally

    def _apply(self, body: bytes, key: str, parsed: Any) -> Tally:
        try:
            return self.apply_body(body, self.applier, parsed)
        except Exception:  # whatever went wrong, the body is archived: apply it again later
            logger.exception("callback could not be applied", extra={"archive_key": key})
            tally = Tally()
            tally.add(Verdict.DEFERRED)
            return tally


class CallbackApplier:
    def __init__(self, store: JobStore, archive: ResultsArchive, vendor: str) -> None:
        self.store = store
        self.archive = archive
        self.vendor = vendor

    @classmethod
    def for_vendor(cls, vendor: str, dynamodb: Any, s3: Any) -> CallbackApplier:
        """The applier a callback function uses: the stack's table and ResultsBucket."""
        return cls(DynamoJobStore(core_settings().jobs_table_name, dynamodb), Archive(results_bucket(), s3), vendor)

    def apply(self, observation: Observation, *, source: str) -> Verdict:
        set_fields: dict[str, Any] = {}
        if observation.result is not None:
            if fits("result", observation.result):
                set_fields["result"] = observation.result
            else:
                set_fields["result_ref"] = self.archive.put_result(
                    self.vendor, observation.reference_id, _lenient_json(observation.result)
                )
        if observation.result_ref is not None:
            set_fields["result_ref"] = observation.result_ref
        if observation.document is not None:
            document = observation.document
            set_fields["result_ref"] = self.archive.put_delivery(
                self.vendor, observation.reference_id, document.filename, document.content, document.content_type
            )
        if observation.error is not None:
            set_fields["last_error"] = self._bounded_error(observation.reference_id, observation.error)
        outcome = self.store.transition(
            observation.reference_id,
            observation.update.transition,
            source=source,
            detail=observation.detail,
            set_fields=set_fields,
            vendor_job_id=observation.vendor_job_id,
            vendor=self.vendor,
        )
        if outcome.applied:
            return Verdict.APPLIED
        if outcome.job is None or outcome.job.vendor != self.vendor:
            return Verdict.UNKNOWN
        stored = outcome.job.vendor_job_id
        if observation.vendor_job_id and stored and stored != observation.vendor_job_id:
            return Verdict.INVALID
        return Verdict.DUPLICATE

    def _bounded_error(self, reference_id: str, error: JobError) -> dict[str, Any]:
        """The error as the item keeps it: whole when it fits its budget, else code and message
        (cut to fit) and a pointer to the whole error in S3."""
        # the fields as they are (model_dump's mode="json" writes NaN as null; and its recursion
        # guard refuses details nested a few hundred deep)
        whole = {"code": error.code, "message": error.message, "retryable": error.retryable, "details": error.details}
        if fits("last_error", whole):
            return whole
        ref = self.archive.put_result(self.vendor, reference_id, _lenient_json(whole))
        return bounded_error(whole, ref)


def reapply_message(
    body: str, receives: int, intake_for_vendor: Callable[[str], CallbackIntake], settings: CallbackRetrySettings
) -> MessageOutcome:
    """One CallbackRetryQueue message, received for the `receives`-th time: apply the archived
    body again and say what becomes of the message."""
    try:
        message = CallbackRetryMessage.model_validate_json(body)
    except ValidationError:
        logger.error("poison message: not a callback retry message")
        count("PoisonMessage", "unknown")
        return MessageOutcome(Disposition.POISON)
    log = {"archive_key": message.archive_key, "receives": receives}
    try:
        tally = intake_for_vendor(message.vendor).reapply(message.archive_key)
    except LookupError:  # ArchiveMissing, UnknownVendor
        logger.error("poison message: no such vendor or archived body", extra=log)
        count("PoisonMessage", message.vendor)
        return MessageOutcome(Disposition.POISON)
    except Exception:  # S3 or the settings: the message stays, as a deferred callback would
        logger.exception("archived callback could not be read", extra=log)
        tally = Tally()
        tally.add(Verdict.DEFERRED)
    if not tally.deferred:
        logger.info("deferred callback applied", extra={**log, **tally.as_dict()})
        return MessageOutcome(Disposition.DONE)
    if receives >= settings.max_receives:
        logger.error(
            "callback still not applied after every attempt; on to the dead-letter queue (make replay)",
            extra={**log, **tally.as_dict()},
        )
        count("CallbackAbandoned", message.vendor)
        return MessageOutcome(Disposition.GIVE_UP)
    delay = Backoff(settings.retry_base_seconds, settings.retry_cap_seconds).delay(receives)
    logger.warning("callback still deferred; applied again later", extra={**log, "delay": delay})
    return MessageOutcome(Disposition.RETRY, delay)


def _lenient_json(value: Any) -> bytes:
    # What the vendor sent: NaN, infinities and numbers beyond a double as their text (vendor_json).
    return vendor_json.dumps(value)
