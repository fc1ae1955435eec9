"""Applying what a vendor says about one job: the same code for every vendor's callbacks and for
the reconciler's lookups.

Each observation becomes at most ONE conditional UpdateItem (JobStore.transition). A duplicate or
stale observation fails the condition and writes nothing; an unknown reference_id writes nothing;
an observation whose vendor job id contradicts the stored one is refused.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from handoff.archive import Archive
from handoff.lifecycle import Observation
from handoff.models import JobError
from handoff.settings import core_settings, results_bucket
from handoff.store import JobStore, json_text

# Results up to this size (as stored: JSON text) live in the job item; larger ones in S3 with a
# pointer, as do results that strict JSON cannot carry (NaN, infinities: kept as the vendor said).
INLINE_RESULT_LIMIT = 64 * 1024
# A vendor's error details (Playment lists every failed attachment) beyond this stored size are
# kept in S3; the item keeps the code, the message and a pointer.
INLINE_ERROR_LIMIT = 8 * 1024


class Verdict(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # already there, or stale: nothing written
    UNKNOWN = "unknown"  # no such reference_id: nothing written (the raw body stays archived)
    INVALID = "invalid"  # unreadable, or contradicts the stored vendor job: nothing written


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, verdict: Verdict) -> None:
        self.counts[verdict.value] += 1

    def as_dict(self) -> dict[str, int]:
        return {v.value: self.counts.get(v.value, 0) for v in Verdict}


class CallbackApplier:
    def __init__(self, store: JobStore, archive: Archive, vendor: str) -> None:
        self.store = store
        self.archive = archive
        self.vendor = vendor

    @classmethod
    def for_vendor(cls, vendor: str, dynamodb: Any, s3: Any) -> CallbackApplier:
        """The applier a callback function uses: the stack's table and ResultsBucket."""
        return cls(JobStore(core_settings().jobs_table_name, dynamodb), Archive(results_bucket(), s3), vendor)

    def apply(self, observation: Observation, *, source: str) -> Verdict:
        set_fields: dict[str, Any] = {}
        if observation.result is not None:
            inline = _strict_json(observation.result)
            if inline is not None and len(inline.encode()) <= INLINE_RESULT_LIMIT:
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
        """The error as the item keeps it: whole when small, else code, message and a pointer."""
        whole = error.model_dump(mode="json")
        text = _strict_json(whole)
        if text is not None and len(text.encode()) <= INLINE_ERROR_LIMIT:
            return whole
        ref = self.archive.put_result(self.vendor, reference_id, _lenient_json(whole))
        return {
            "code": error.code[:128],
            "message": error.message[:2000],
            "retryable": error.retryable,
            "details": [{"details_ref": ref, "count": len(error.details)}],
        }


def _strict_json(value: Any) -> str | None:
    try:
        return json_text(value)
    except (ValueError, TypeError):
        return None


def _lenient_json(value: Any) -> bytes:
    # What the vendor sent, NaN and infinities included (as Python's json, and most vendors, write them).
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
