"""Job events: one `Job Status Changed` event on the bus per status change, and one `Job Ordered`
event when a job's vendor order is placed after submission (vendor_refs.ordered "false" -> "true",
POST /jobs/{reference_id}/order), from the table stream.

Deriving events from the stream (NEW_AND_OLD_IMAGES) rather than publishing beside each write
means a function that stops between its state write and its answer loses nothing: the write is
in the stream, and the event follows from it. A stream record whose status did not change (an
attempt counted, ids recorded, the reconciler's look) gives no event.

PutEvents takes ten entries a call and may refuse some of them (FailedEntryCount); refused
entries are sent again, and those still refused make the batch stop there: the stream is
retried from the first record not published, so nothing is lost (events downstream are
at-least-once; `version` tells a repeat).

Batches (handoff.batches): after a batch of records is published, each job that reached a final
status and belongs to a batch has its batch looked at; a complete batch gets its one `Batch
Completed` event. A look that fails (the table, the bus) makes that record and the ones after it
come again (their job events too: at-least-once), and the batch is looked at again.

A record that cannot be read as a job (an unknown status, an item edited by hand) never blocks
the stream: it is logged with its reference_id, counted (StreamRecordUnreadable) and handed to
`quarantine` (the events dead-letter queue), and the rest of the batch is published. Only when
the quarantine itself fails is it reported for retry, so it is never dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from handoff.lifecycle import is_terminal
from handoff.models import (
    BATCH_COMPLETED,
    EVENT_SOURCE,
    JOB_ORDERED,
    ORDERED_REF,
    STATUS_CHANGED,
    BatchCompleted,
    JobOrdered,
    JobStatus,
    JobStatusChanged,
    Quote,
)
from handoff.observability import count, logger
from handoff.store import item_to_job

PUT_EVENTS_LIMIT = 10
SEND_ROUNDS = 3  # attempts for entries PutEvents refused, within one invocation

_deserializer = TypeDeserializer()


def status_change(record: Mapping[str, Any]) -> JobStatusChanged | None:
    """The event a stream record stands for (None: the status did not change, or the item went away).
    Raises ValueError (store.UnreadableItem) for a record whose new image is not a job as Handoff
    writes them (an item written by hand: a field missing or of another shape)."""
    if record.get("eventName") not in {"INSERT", "MODIFY"}:
        return None
    images = record.get("dynamodb", {})
    old = _plain(images.get("OldImage"))
    # The new image read as GET /jobs/{id} reads a job (store.item_to_job): an item Handoff did
    # not write (a field missing or of another shape) is no job's change, whatever it names, and
    # is set aside; what GET can read, the bus hears of.
    job = item_to_job(dict(images.get("NewImage") or {}))
    if job.status.value == old.get("status"):
        return None
    # The old image is only the previous status: one no job has (an item a person has just
    # repaired) is no status at all, never a reason to lose the repaired job's event.
    previous = old.get("status")
    return JobStatusChanged(
        reference_id=job.reference_id,
        vendor=job.vendor,
        status=job.status,
        previous_status=JobStatus(previous)
        if isinstance(previous, str) and previous in JobStatus.__members__
        else None,
        vendor_job_id=job.vendor_job_id,
        result_ref=job.result_ref,
        batch_ref=job.batch_ref,
        at=job.updated_at,
        version=job.version,
    )


def job_ordered(record: Mapping[str, Any]) -> JobOrdered | None:
    """The `Job Ordered` event a stream record stands for: vendor_refs.ordered went from "false" to
    "true" (an order placed after submission; a job ordered as it is submitted has no "false"
    before, and its SUBMITTED event says it). None otherwise."""
    if record.get("eventName") != "MODIFY":
        return None
    images = record.get("dynamodb", {})
    new, old = _plain(images.get("NewImage")), _plain(images.get("OldImage"))
    if _ordered(old) != "false" or _ordered(new) != "true" or not new.get("reference_id") or not new.get("status"):
        return None
    quote = new.get("quote")
    return JobOrdered(
        reference_id=str(new["reference_id"]),
        vendor=str(new.get("vendor", "")),
        status=JobStatus(new["status"]),
        vendor_job_id=new.get("vendor_job_id"),
        quote=Quote.model_validate(quote) if isinstance(quote, dict) else None,
        batch_ref=new.get("batch_ref"),
        at=str(new.get("updated_at", "")),
        version=int(new.get("version", 0)),
    )


def _ordered(image: Mapping[str, Any]) -> Any:
    refs = image.get("vendor_refs")
    return refs.get(ORDERED_REF) if isinstance(refs, Mapping) else None


def _report_removal(record: Mapping[str, Any]) -> None:
    """A job left the table: by its TTL (expires_at: nothing to publish), or deleted by someone,
    which is logged as a warning and counted, so a job never disappears unnoticed."""
    identity = record.get("userIdentity") or {}
    by_ttl = identity.get("type") == "Service" and identity.get("principalId") == "dynamodb.amazonaws.com"
    log = {"reference_id": _reference_id(record), "by": "ttl" if by_ttl else "hand"}
    if by_ttl:
        logger.info("job expired (TTL)", extra=log)
        return
    logger.warning("job deleted from the table", extra=log)
    count("JobDeleted", str(_plain(record.get("dynamodb", {}).get("OldImage")).get("vendor") or "unknown"))


_WANTED = (
    "reference_id",
    "vendor",
    "status",
    "vendor_job_id",
    "result_ref",
    "batch_ref",
    "updated_at",
    "version",
    "vendor_refs",
    "quote",
)


def _plain(image: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: _numbers(_deserializer.deserialize(image[k])) for k in _WANTED if image and k in image}


def _numbers(value: Any) -> Any:
    """DynamoDB numbers (Decimal) as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    return value


def _sequence(record: Mapping[str, Any]) -> str:
    return str(record.get("dynamodb", {}).get("SequenceNumber", ""))


def _sequence_key(sequence: str) -> int:
    return int(sequence) if sequence.isdigit() else 0


def _reference_id(record: Mapping[str, Any]) -> str | None:
    keys = record.get("dynamodb", {}).get("Keys", {})
    value = keys.get("reference_id", {}) if isinstance(keys, Mapping) else {}
    return str(value.get("S"))[:256] if isinstance(value, Mapping) and "S" in value else None


@dataclass(frozen=True)
class Pending:
    record_id: str  # the stream record's sequence number
    entry: dict[str, Any]
    change: JobStatusChanged | None = None


class EventPublisher:
    def __init__(
        self,
        client: Any,
        bus_name: str,
        sleep: Callable[[float], None] = time.sleep,
        quarantine: Callable[[Mapping[str, Any], str], None] | None = None,
        batches: Any = None,
    ) -> None:
        self.client = client
        self.bus_name = bus_name
        self.sleep = sleep
        self.quarantine = quarantine  # (record, reason) -> kept for people (the events DLQ)
        # a handoff.batches.Batches (publishing through publish_batch_completed), or None
        self.batches = batches

    def publish_batch_completed(self, event: BatchCompleted) -> None:
        """Put one `Batch Completed` event on the bus (raises when the bus refuses it)."""
        entry = {
            "Source": EVENT_SOURCE,
            "DetailType": BATCH_COMPLETED,
            "Detail": json.dumps(event.model_dump(mode="json")),
            "EventBusName": self.bus_name,
            "Resources": [],
        }
        response = self.client.put_events(Entries=[entry])
        if response.get("FailedEntryCount"):
            codes = sorted({str(r.get("ErrorCode")) for r in response.get("Entries", []) if r.get("ErrorCode")})
            raise RuntimeError(f"PutEvents refused the Batch Completed event: {codes}")
        logger.info("batch completed", extra={"batch_ref": event.batch_ref, "counts": event.counts})

    def publish(self, records: Iterable[Mapping[str, Any]]) -> list[str]:
        """Publish one event per status change, in stream order. Returns the sequence numbers
        of the records to retry (empty when everything was published)."""
        pending: list[Pending] = []
        unquarantined: list[str] = []
        for record in records:
            try:
                change = status_change(record)
            except Exception as exc:  # one unreadable record must not hold back the others
                if not self._isolate(record, f"{type(exc).__name__}: {str(exc)[:200]}"):
                    unquarantined.append(_sequence(record))
                continue
            try:
                ordered = job_ordered(record) if change is None else None
            except Exception as exc:
                if not self._isolate(record, f"{type(exc).__name__}: {str(exc)[:200]}"):
                    unquarantined.append(_sequence(record))
                continue
            if change is not None:
                pending.append(Pending(_sequence(record), self._entry(change), change))
            elif ordered is not None:
                pending.append(Pending(_sequence(record), self._entry(ordered, JOB_ORDERED)))
            elif record.get("eventName") == "REMOVE":
                _report_removal(record)
        if unquarantined:
            # Kept in the stream until it can be set aside: from the first of them, all comes again.
            held_from = _sequence_key(min(unquarantined, key=_sequence_key))
            pending = [p for p in pending if _sequence_key(p.record_id) < held_from]
        for start in range(0, len(pending), PUT_EVENTS_LIMIT):
            chunk = pending[start : start + PUT_EVENTS_LIMIT]
            refused = self._send(chunk)
            if refused:
                # Stop at the first record not published: everything after it comes again.
                first = min(pending.index(p) for p in refused)
                logger.error(
                    "events not published; the stream will retry them",
                    extra={"reference_ids": [json.loads(p.entry["Detail"])["reference_id"] for p in refused][:10]},
                )
                return [p.record_id for p in pending[first:]] + unquarantined
        for index, done in enumerate(pending):
            if not self._batch_done(done):
                return [p.record_id for p in pending[index:]] + unquarantined
        return unquarantined

    def _batch_done(self, pending: Pending) -> bool:
        """Look at the batch of a job that reached a final status (False: the look failed)."""
        change = pending.change
        if self.batches is None or change is None or not change.batch_ref or not is_terminal(change.status):
            return True
        try:
            self.batches.check_completion(
                change.batch_ref, {change.reference_id: change.status}, claimant=f"stream:{pending.record_id}"
            )
        except Exception:
            logger.exception(
                "could not look at the job's batch; the stream will retry it",
                extra={"reference_id": change.reference_id, "batch_ref": change.batch_ref},
            )
            return False
        return True

    def _isolate(self, record: Mapping[str, Any], reason: str) -> bool:
        """Set an unreadable record aside; False when it could not be (then it is retried)."""
        log = {"reference_id": _reference_id(record), "sequence_number": _sequence(record), "reason": reason}
        logger.error("stream record is not a readable job; set aside in the events dead-letter queue", extra=log)
        count("StreamRecordUnreadable", "unknown")
        if self.quarantine is None:
            return False
        try:
            self.quarantine(record, reason)
        except Exception:
            logger.exception("could not set the stream record aside; the stream will retry it", extra=log)
            return False
        return True

    def _send(self, chunk: list[Pending]) -> list[Pending]:
        for round_ in range(SEND_ROUNDS):
            response = self.client.put_events(Entries=[p.entry for p in chunk])
            if not response.get("FailedEntryCount"):
                return []
            results = response.get("Entries", [])
            chunk = [p for p, result in zip(chunk, results, strict=False) if result.get("ErrorCode")]
            codes = sorted({str(r.get("ErrorCode")) for r in results if r.get("ErrorCode")})
            logger.warning(
                "PutEvents refused entries; sending them again", extra={"refused": len(chunk), "codes": codes}
            )
            if round_ < SEND_ROUNDS - 1:
                self.sleep(0.1 * 2**round_)
        return chunk

    def _entry(self, change: JobStatusChanged | JobOrdered, detail_type: str = STATUS_CHANGED) -> dict[str, Any]:
        return {
            "Source": EVENT_SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(change.model_dump(mode="json")),
            "EventBusName": self.bus_name,
            "Resources": [],
        }
