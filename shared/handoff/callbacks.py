"""Applying what a vendor says about one job: the same code for every vendor's callbacks and for
the reconciler's lookups.

Each observation becomes at most ONE conditional UpdateItem (JobStore.transition). A duplicate or
stale observation fails the condition and writes nothing; an unknown reference_id writes nothing;
an observation whose vendor job id contradicts the stored one is refused.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from handoff.archive import Archive
from handoff.lifecycle import Observation
from handoff.models import canonical_json
from handoff.settings import core_settings, results_bucket
from handoff.store import JobStore

# Results up to this size live in the job item; larger ones in S3 with a pointer.
INLINE_RESULT_LIMIT = 64 * 1024


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
            encoded = canonical_json(observation.result).encode()
            if len(encoded) <= INLINE_RESULT_LIMIT:
                set_fields["result"] = observation.result
            else:
                set_fields["result_ref"] = self.archive.put_result(self.vendor, observation.reference_id, encoded)
        if observation.result_ref is not None:
            set_fields["result_ref"] = observation.result_ref
        if observation.document is not None:
            document = observation.document
            set_fields["result_ref"] = self.archive.put_delivery(
                self.vendor, observation.reference_id, document.filename, document.content, document.content_type
            )
        if observation.error is not None:
            set_fields["last_error"] = observation.error.model_dump(mode="json")
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
