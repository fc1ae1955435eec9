"""Jobs written straight into a local stack's table, as SubmitJob leaves them once Playment has
accepted them: the "given" of tests and benchmarks about what happens after submission."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from handoff.models import HistoryEntry, Job, JobStatus
from handoff.store import DynamoJobStore, utc_now


def submitted_playment_jobs(table: str, dynamodb: Any, prefix: str, count: int) -> dict[str, str]:
    """`count` SUBMITTED Playment jobs named <prefix>-0000...: reference_id -> Playment job id."""
    store = DynamoJobStore(table, dynamodb)
    jobs = {f"{prefix}-{n:04d}": f"pj-{prefix}-{n:04d}" for n in range(count)}

    def create(reference_id: str) -> None:
        now = utc_now()
        request = {"vendor": "playment", "reference_id": reference_id, "data": {"image_url": "https://x.example/a.jpg"}}
        outcome = store.create(
            Job(
                reference_id=reference_id,
                vendor="playment",
                status=JobStatus.SUBMITTED,
                request=request,
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
