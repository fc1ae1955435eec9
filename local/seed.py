"""Jobs written straight into a local stack's table, as SubmitJob leaves them once the vendor has
accepted them: the "given" of tests and benchmarks about what happens after submission."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from handoff.models import HistoryEntry, Job, JobStatus
from handoff.store import DynamoJobStore, utc_now


def submitted_jobs(
    table: str,
    dynamodb: Any,
    vendor: str,
    prefix: str,
    count: int,
    request: Mapping[str, Any],
    vendor_job_id: Callable[[int], str] = lambda n: f"vj-{n:04d}",
) -> dict[str, str]:
    """`count` SUBMITTED jobs of `vendor` named <prefix>-0000..., each with `request`'s fields
    (plus vendor and reference_id) and the vendor's id `vendor_job_id(n)`:
    reference_id -> vendor job id. RuntimeError if one already exists."""
    store = DynamoJobStore(table, dynamodb)
    jobs = {f"{prefix}-{n:04d}": vendor_job_id(n) for n in range(count)}

    def create(reference_id: str) -> None:
        now = utc_now()
        outcome = store.create(
            Job(
                reference_id=reference_id,
                vendor=vendor,
                status=JobStatus.SUBMITTED,
                request={**request, "vendor": vendor, "reference_id": reference_id},
                request_hash="seeded",
                vendor_job_id=jobs[reference_id],
                attempts=1,
                created_at=now,
                updated_at=now,
                history=[HistoryEntry(at=now, status=JobStatus.SUBMITTED, source="submit")],
            )
        )
        if not outcome.created:
            raise RuntimeError(f"{reference_id} already exists")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, jobs))
    return jobs
