"""JobStore: conditional writes, one request per transition, nothing written when refused."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest

from handoff.lifecycle import transition_to
from handoff.models import HistoryEntry, Job, JobStatus
from handoff.store import HISTORY_LIMIT, JobStore, utc_now

pytestmark = pytest.mark.usefixtures("aws")


def new_job(reference_id: str = "ref-1") -> Job:
    now = utc_now()
    return Job(
        reference_id=reference_id,
        vendor="playment",
        status=JobStatus.QUEUED,
        request={"vendor": "playment", "reference_id": reference_id, "data": {"score": 0.5}},
        request_hash="h1",
        created_at=now,
        updated_at=now,
        history=[HistoryEntry(at=now, status=JobStatus.QUEUED, source="test")],
    )


@pytest.fixture
def store() -> JobStore:
    return JobStore(os.environ["JOBS_TABLE_NAME"], boto3.client("dynamodb"))


def count_calls(store: JobStore) -> list[str]:
    calls: list[str] = []

    def record(event_name: str, **_: Any) -> None:
        calls.append(event_name.rsplit(".", 1)[-1])

    store.client.meta.events.register("before-call.dynamodb", record)
    return calls


def test_create_is_conditional_and_returns_the_existing_job(store: JobStore) -> None:
    assert store.create(new_job()).created
    again = store.create(new_job().model_copy(update={"request_hash": "other"}))
    assert not again.created
    assert again.job.request_hash == "h1"
    assert again.job.request["data"] == {"score": 0.5}  # floats survive the round trip


def test_transition_is_one_update_and_a_duplicate_writes_nothing(store: JobStore) -> None:
    store.create(new_job())
    calls = count_calls(store)

    first = store.transition("ref-1", transition_to(JobStatus.IN_PROGRESS), source="callback")
    duplicate = store.transition("ref-1", transition_to(JobStatus.IN_PROGRESS), source="callback")

    assert calls == ["UpdateItem", "UpdateItem"]
    assert first.applied
    assert first.job is not None
    assert first.job.status is JobStatus.IN_PROGRESS
    assert first.job.version == 2
    assert not duplicate.applied
    assert duplicate.job == store.get("ref-1")  # the refused write reports the job as it stands
    assert [h.status for h in duplicate.job.history] == [JobStatus.QUEUED, JobStatus.IN_PROGRESS]


def test_transition_of_an_unknown_job_creates_nothing(store: JobStore) -> None:
    outcome = store.transition("ghost", transition_to(JobStatus.COMPLETED), source="callback")
    assert (outcome.applied, outcome.job) == (False, None)
    assert store.get("ghost") is None


def test_vendor_job_id_is_set_only_if_absent(store: JobStore) -> None:
    store.create(new_job())
    store.transition(
        "ref-1", transition_to(JobStatus.IN_PROGRESS), source="callback", set_if_absent={"vendor_job_id": "v-1"}
    )
    done = store.transition(
        "ref-1", transition_to(JobStatus.COMPLETED), source="callback", set_if_absent={"vendor_job_id": "v-2"}
    )
    assert done.job is not None
    assert done.job.vendor_job_id == "v-1"


def test_history_is_bounded(store: JobStore) -> None:
    store.create(new_job())
    revision = transition_to(JobStatus.IN_PROGRESS, revision=True)
    delivered = transition_to(JobStatus.DELIVERED)
    job = None
    for _ in range(HISTORY_LIMIT):  # DELIVERED <-> IN_PROGRESS revisions, 2 entries per loop
        store.transition("ref-1", delivered, source="callback")
        job = store.transition("ref-1", revision, source="callback").job
    assert job is not None
    assert len(job.history) == HISTORY_LIMIT
    assert job.history[-1].status is JobStatus.IN_PROGRESS
    assert job.version == 2 * HISTORY_LIMIT + 1


def test_vendor_sourced_fields_are_bounded_by_their_stored_size(store: JobStore) -> None:
    from handoff.itemsize import item_size
    from handoff.store import HISTORY_DETAIL_LIMIT, STORED_BUDGETS

    # given a job, and a vendor's error with thousands of details and a huge detail line
    store.create(new_job())
    error = {
        "code": "FS_0003",
        "message": "attachments invalid",
        "retryable": False,
        "details": [{"url": f"https://x.example.com/{i}.jpg", "reason": "\U0001f600" * 20} for i in range(5000)],
    }

    # when a transition writes them (the writer did not bound them itself)
    outcome = store.transition(
        "ref-1",
        transition_to(JobStatus.FAILED),
        source="playment-callback",
        detail="x" * 100_000,
        set_fields={"last_error": error},
    )

    # then the write succeeded, within DynamoDB's limit, each field within its budget
    assert outcome.applied
    raw = boto3.client("dynamodb").get_item(
        TableName=os.environ["JOBS_TABLE_NAME"], Key={"reference_id": {"S": "ref-1"}}
    )
    item = raw["Item"]
    assert item_size(item) < 400 * 1024
    assert item_size({"last_error": item["last_error"]}) <= STORED_BUDGETS["last_error"]
    assert outcome.job is not None
    assert outcome.job.last_error is not None
    assert outcome.job.last_error.code == "FS_0003"
    assert outcome.job.last_error.details == [{"omitted": 5000}]
    assert len(outcome.job.history[-1].detail or "") == HISTORY_DETAIL_LIMIT
