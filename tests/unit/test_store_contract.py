"""The JobStore contract: the same cases against the DynamoDB store on moto's table and against
the in-memory FakeJobStore that the domain tests use, so the fake cannot drift from the table.

Each case looks at what a caller sees (the outcome, the job as found) and at the item as the
table holds it (DynamoDB JSON: `table.item`), and at the requests the store made.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from handoff import store as store_module
from handoff.itemsize import item_size
from handoff.lifecycle import GIVE_UP, RESUBMIT, transition_to
from handoff.models import HistoryEntry, Job, JobError, JobStatus
from handoff.store import HISTORY_DETAIL_LIMIT, HISTORY_LIMIT, STORED_BUDGETS, DynamoJobStore, job_item
from tests.conftest import aws_client
from tests.fakes.store import FakeJobStore

OLD = "2020-01-01T00:00:00.000Z"


@dataclass
class Table:
    """A JobStore and a look at its table that does not go through it."""

    store: DynamoJobStore
    item: Callable[[str], dict[str, Any] | None]  # the raw item (DynamoDB JSON), None when absent
    set_updated_at: Callable[[str, str], None]  # a test's given: the job was last written then
    requests: list[str]  # the DynamoDB requests the store made, in order


def _dynamodb_table(request: pytest.FixtureRequest) -> Table:
    request.getfixturevalue("aws")
    name = os.environ["JOBS_TABLE_NAME"]
    client = boto3.client("dynamodb")  # its own client, so its requests can be counted
    requests: list[str] = []
    client.meta.events.register(
        "before-call.dynamodb", lambda event_name, **_: requests.append(event_name.rsplit(".", 1)[-1])
    )
    raw = aws_client("dynamodb")

    def item(reference_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = raw.get_item(
            TableName=name, Key={"reference_id": {"S": reference_id}}, ConsistentRead=True
        ).get("Item")
        return found

    def set_updated_at(reference_id: str, at: str) -> None:
        raw.update_item(
            TableName=name,
            Key={"reference_id": {"S": reference_id}},
            UpdateExpression="SET updated_at = :t",
            ExpressionAttributeValues={":t": {"S": at}},
        )

    return Table(DynamoJobStore(name, client), item, set_updated_at, requests)


def _fake_table() -> Table:
    fake = FakeJobStore()

    def set_updated_at(reference_id: str, at: str) -> None:
        fake.set_attribute(reference_id, "updated_at", {"S": at})

    return Table(fake, fake.item, set_updated_at, fake.requests)


@pytest.fixture(params=["dynamodb", "fake"])
def table(request: pytest.FixtureRequest) -> Table:
    return _dynamodb_table(request) if request.param == "dynamodb" else _fake_table()


def new_job(reference_id: str = "ref-1", **fields: Any) -> Job:
    at = fields.pop("at", "2026-01-01T00:00:00.000Z")
    status = fields.pop("status", JobStatus.QUEUED)
    return Job(
        reference_id=reference_id,
        vendor=fields.pop("vendor", "playment"),
        status=status,
        request=fields.pop("request", {"vendor": "playment", "reference_id": reference_id, "data": {"score": 0.5}}),
        request_hash=fields.pop("request_hash", "h1"),
        created_at=at,
        updated_at=at,
        history=[HistoryEntry(at=at, status=status, source="test")],
        **fields,
    )


def given(table: Table, *jobs: Job) -> None:
    for job in jobs:
        assert table.store.create(job).created
    table.requests.clear()


# --- create and replace ----------------------------------------------------------------------------


def test_create_writes_the_job_as_the_item(table: Table) -> None:
    job = new_job()

    outcome = table.store.create(job)

    assert (outcome.created, outcome.job) == (True, job)
    assert table.item("ref-1") == job_item(job)
    assert table.store.get("ref-1") == job  # floats and nested data survive the round trip
    assert table.requests == ["PutItem", "GetItem"]


def test_create_under_a_used_reference_id_writes_nothing_and_returns_the_job_that_holds_it(table: Table) -> None:
    given(table, new_job())
    before = table.item("ref-1")

    again = table.store.create(new_job(request_hash="other", request={"other": True}))

    assert not again.created
    assert again.job == new_job()
    assert table.item("ref-1") == before
    assert table.requests == ["PutItem"]  # the job as found came with the refusal: no read


def test_a_job_refused_before_the_vendor_took_it_is_replaced_with_its_history_carried_on(table: Table) -> None:
    failed = new_job(status=JobStatus.FAILED, at="2026-01-01T00:00:00.000Z", version=3)
    given(table, failed)
    corrected = new_job(request_hash="h2", at="2026-02-01T00:00:00.000Z")

    outcome = table.store.replace(corrected, failed)

    assert outcome.created
    stored = table.store.get("ref-1")
    assert stored is not None
    assert stored == outcome.job
    assert (stored.status, stored.request_hash, stored.version) == (JobStatus.QUEUED, "h2", 4)
    assert stored.created_at == failed.created_at
    assert [h.status for h in stored.history] == [JobStatus.FAILED, JobStatus.QUEUED]


@pytest.mark.parametrize(
    "found",
    [
        pytest.param({"status": JobStatus.QUEUED}, id="not-failed"),
        pytest.param({"status": JobStatus.FAILED, "version": 2}, id="written-since"),
        pytest.param({"status": JobStatus.FAILED, "vendor_job_id": "v-1"}, id="vendor-holds-it"),
    ],
)
def test_replace_refuses_a_job_not_as_read_and_returns_it_as_found(table: Table, found: dict[str, Any]) -> None:
    as_read = new_job(status=JobStatus.FAILED)
    given(table, new_job(**found))
    before = table.item("ref-1")

    outcome = table.store.replace(new_job(request_hash="h2"), as_read)

    assert not outcome.created
    assert outcome.job == new_job(**found)
    assert table.item("ref-1") == before


def test_an_item_over_400_kb_is_refused_by_the_table(table: Table) -> None:
    with pytest.raises(ClientError) as refused:
        table.store.create(new_job(request={"blob": "x" * 420_000}))

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert table.item("ref-1") is None


def test_an_unknown_job_is_none(table: Table) -> None:
    assert table.store.get("ghost") is None


# --- transitions -----------------------------------------------------------------------------------


def test_a_transition_is_one_update_of_status_version_history_and_fields(table: Table) -> None:
    given(table, new_job(last_error=JobError(code="timeout", message="t", retryable=True)))

    outcome = table.store.transition(
        "ref-1",
        transition_to(JobStatus.SUBMITTED),
        source="submit",
        detail="accepted",
        set_fields={"vendor_refs": {"batch": "b-1"}},
        set_if_absent={"vendor_job_id": "v-1"},
        remove_fields=("last_error",),
        count_attempt=True,
    )

    assert table.requests == ["UpdateItem"]
    assert outcome.applied
    job = outcome.job
    assert job is not None
    assert job == table.store.get("ref-1")
    assert (job.status, job.version, job.attempts) == (JobStatus.SUBMITTED, 2, 1)
    assert (job.vendor_job_id, job.vendor_refs, job.last_error) == ("v-1", {"batch": "b-1"}, None)
    assert job.updated_at > OLD
    assert job.updated_at != new_job().updated_at
    last = job.history[-1]
    assert (last.status, last.source, last.detail) == (JobStatus.SUBMITTED, "submit", "accepted")
    assert last.at == job.updated_at


def test_a_refused_transition_writes_nothing_and_reports_the_job_as_found(table: Table) -> None:
    given(table, new_job())
    first = table.store.transition("ref-1", transition_to(JobStatus.IN_PROGRESS), source="callback")
    before = table.item("ref-1")
    table.requests.clear()

    duplicate = table.store.transition("ref-1", transition_to(JobStatus.IN_PROGRESS), source="callback")

    assert first.applied
    assert not duplicate.applied
    assert table.requests == ["UpdateItem"]
    assert duplicate.job == first.job
    assert table.item("ref-1") == before


def test_a_transition_of_an_unknown_job_creates_nothing(table: Table) -> None:
    outcome = table.store.transition("ghost", transition_to(JobStatus.COMPLETED), source="callback")

    assert (outcome.applied, outcome.job) == (False, None)
    assert table.item("ghost") is None


@pytest.mark.parametrize(
    ("found", "kwargs", "applied"),
    [
        pytest.param({}, {"vendor": "playment"}, True, id="same-vendor"),
        pytest.param({}, {"vendor": "textking"}, False, id="other-vendor"),
        pytest.param({}, {"vendor_job_id": "v-1"}, True, id="vendor-job-id-recorded"),
        pytest.param({"vendor_job_id": "v-1"}, {"vendor_job_id": "v-1"}, True, id="vendor-job-id-same"),
        pytest.param({"vendor_job_id": "v-1"}, {"vendor_job_id": "v-2"}, False, id="vendor-job-id-contradicts"),
        pytest.param({"vendor_job_id": "v-1"}, {"require_no_vendor_job": True}, False, id="vendor-holds-it"),
        pytest.param({}, {"require_no_vendor_job": True}, True, id="no-vendor-job"),
    ],
)
def test_a_transition_holds_only_for_its_vendor_and_vendor_job(
    table: Table, found: dict[str, Any], kwargs: dict[str, Any], applied: bool
) -> None:
    given(table, new_job(status=JobStatus.SUBMITTED, **found))
    before = table.item("ref-1")

    outcome = table.store.transition("ref-1", transition_to(JobStatus.COMPLETED), source="callback", **kwargs)

    assert outcome.applied is applied
    assert outcome.job is not None
    if applied:
        assert outcome.job.status is JobStatus.COMPLETED
        assert outcome.job.vendor_job_id == found.get("vendor_job_id", kwargs.get("vendor_job_id"))
    else:
        assert outcome.job == new_job(status=JobStatus.SUBMITTED, **found)
        assert table.item("ref-1") == before


@pytest.mark.parametrize(
    ("current", "transition", "applied"),
    [
        (JobStatus.QUEUED, GIVE_UP, True),
        (JobStatus.SUBMITTED, GIVE_UP, False),
        (JobStatus.FAILED, RESUBMIT, True),
        (JobStatus.COMPLETED, RESUBMIT, False),
        (JobStatus.DELIVERED, transition_to(JobStatus.IN_PROGRESS, revision=True), True),
        (JobStatus.DELIVERED, transition_to(JobStatus.IN_PROGRESS), False),
        (JobStatus.COMPLETED, transition_to(JobStatus.FAILED), False),
    ],
)
def test_a_transition_applies_only_from_its_allowed_statuses(
    table: Table, current: JobStatus, transition: Any, applied: bool
) -> None:
    given(table, new_job(status=current))

    outcome = table.store.transition("ref-1", transition, source="test")

    assert outcome.applied is applied
    assert outcome.job is not None
    assert outcome.job.status is (transition.target if applied else current)


def test_a_transition_from_no_status_is_refused_before_any_request(table: Table) -> None:
    given(table, new_job())

    with pytest.raises(ValueError, match="could never hold"):
        table.store.transition("ref-1", transition_to(JobStatus.QUEUED), source="test")

    assert table.requests == []


def test_vendor_job_id_set_if_absent_keeps_the_first(table: Table) -> None:
    given(table, new_job())
    table.store.transition(
        "ref-1", transition_to(JobStatus.IN_PROGRESS), source="callback", set_if_absent={"vendor_job_id": "v-1"}
    )

    done = table.store.transition(
        "ref-1", transition_to(JobStatus.COMPLETED), source="callback", set_if_absent={"vendor_job_id": "v-2"}
    )

    assert done.job is not None
    assert done.job.vendor_job_id == "v-1"


def test_the_history_keeps_the_latest_entries(table: Table, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a history limit of 3 (the store's HISTORY_LIMIT, made small)
    monkeypatch.setattr(store_module, "HISTORY_LIMIT", 3)
    given(table, new_job())
    revision, delivered = transition_to(JobStatus.IN_PROGRESS, revision=True), transition_to(JobStatus.DELIVERED)

    # when a job goes back and forth (DELIVERED <-> IN_PROGRESS) 3 times: 7 entries in all
    job = None
    for n in range(3):
        table.store.transition("ref-1", delivered, source="callback", detail=f"d{n}")
        job = table.store.transition("ref-1", revision, source="callback", detail=f"r{n}").job

    # then the item holds the latest 3, and the version counts every status change
    assert job is not None
    assert job == table.store.get("ref-1")
    assert [h.detail for h in job.history] == ["r1", "d2", "r2"]
    assert job.version == 7
    assert len((table.item("ref-1") or {})["history"]["L"]) == 3


def test_vendor_sourced_fields_are_bounded_by_their_stored_size(table: Table) -> None:
    # given a job, and a vendor's error with thousands of details and a huge detail line
    given(table, new_job())
    error = {
        "code": "FS_0003",
        "message": "attachments invalid",
        "retryable": False,
        "details": [{"url": f"https://x.example.com/{i}.jpg", "reason": "\U0001f600" * 20} for i in range(5000)],
    }

    # when a transition writes them (the writer did not bound them itself)
    outcome = table.store.transition(
        "ref-1",
        transition_to(JobStatus.FAILED),
        source="playment-callback",
        detail="x" * 100_000,
        set_fields={"last_error": error},
    )

    # then the write succeeded, within DynamoDB's limit, each field within its budget
    assert outcome.applied
    item = table.item("ref-1")
    assert item is not None
    assert item_size(item) < 400 * 1024
    assert item_size({"last_error": item["last_error"]}) <= STORED_BUDGETS["last_error"]
    assert outcome.job is not None
    assert outcome.job.last_error is not None
    assert outcome.job.last_error.code == "FS_0003"
    assert outcome.job.last_error.details == [{"omitted": 5000}]
    assert len(outcome.job.history[-1].detail or "") == HISTORY_DETAIL_LIMIT


# --- claims ----------------------------------------------------------------------------------------


def test_a_queued_job_is_claimed_once_until_its_lease_ends_or_is_released(table: Table) -> None:
    given(table, new_job())

    first = table.store.claim("ref-1", lease_seconds=180)
    second = table.store.claim("ref-1", lease_seconds=180)

    assert first.claimed
    assert first.job == new_job()
    assert "lease_until" in (table.item("ref-1") or {})
    assert not second.claimed
    assert second.job == new_job()  # the job as found: held by the first claim

    table.store.release("ref-1")

    assert "lease_until" not in (table.item("ref-1") or {})
    assert table.store.claim("ref-1", lease_seconds=180).claimed


def test_a_lease_that_ran_out_can_be_claimed_again(table: Table) -> None:
    given(table, new_job())
    assert table.store.claim("ref-1", lease_seconds=-1).claimed  # its lease ended a second ago

    assert table.store.claim("ref-1", lease_seconds=180).claimed


@pytest.mark.parametrize("status", [JobStatus.SUBMITTED, JobStatus.FAILED])
def test_only_a_queued_job_can_be_claimed(table: Table, status: JobStatus) -> None:
    given(table, new_job(status=status))

    outcome = table.store.claim("ref-1", lease_seconds=180)

    assert (outcome.claimed, outcome.job) == (False, new_job(status=status))
    assert "lease_until" not in (table.item("ref-1") or {})


def test_claiming_or_releasing_an_unknown_job_creates_nothing(table: Table) -> None:
    assert table.store.claim("ghost", lease_seconds=180) == store_module.ClaimOutcome(claimed=False, job=None)
    table.store.release("ghost")
    assert table.item("ghost") is None


def test_a_failed_attempt_is_counted_and_ends_the_claim_while_the_job_stays_queued(table: Table) -> None:
    given(table, new_job())
    table.store.claim("ref-1", lease_seconds=180)
    error = JobError(code="timeout", message="no answer", retryable=True)

    job = table.store.record_failed_attempt("ref-1", error, next_attempt_at="2026-01-01T00:01:00.000Z")

    assert job is not None
    assert job == table.store.get("ref-1")
    assert (job.status, job.attempts, job.version) == (JobStatus.QUEUED, 1, 2)
    assert (job.last_error, job.next_attempt_at) == (error, "2026-01-01T00:01:00.000Z")
    assert "lease_until" not in (table.item("ref-1") or {})


def test_a_failed_attempt_of_a_job_past_queued_writes_nothing(table: Table) -> None:
    given(table, new_job(status=JobStatus.SUBMITTED))
    before = table.item("ref-1")

    job = table.store.record_failed_attempt("ref-1", JobError(code="timeout", message="t", retryable=True))

    assert job == new_job(status=JobStatus.SUBMITTED)
    assert table.item("ref-1") == before
    assert table.store.record_failed_attempt("ghost", JobError(code="t", message="t")) is None


# --- vendor ids ------------------------------------------------------------------------------------


def test_vendor_ids_are_recorded_without_a_status_change_and_a_recorded_job_id_is_kept(table: Table) -> None:
    given(table, new_job(status=JobStatus.IN_PROGRESS, vendor_refs={"project": "p-1"}))

    first = table.store.record_vendor_ids("ref-1", "v-1", {"job": "j-1"})
    second = table.store.record_vendor_ids("ref-1", "v-2", {"order": "o-1"})

    assert first is not None
    assert second is not None
    assert second == table.store.get("ref-1")
    assert (second.status, second.version, second.vendor_job_id) == (JobStatus.IN_PROGRESS, 1, "v-1")
    assert second.vendor_refs == {"project": "p-1", "job": "j-1", "order": "o-1"}
    assert table.store.record_vendor_ids("ghost", "v-1", {}) is None
    assert table.item("ghost") is None


def test_vendor_refs_are_checkpointed_one_by_one(table: Table) -> None:
    given(table, new_job())
    table.set_updated_at("ref-1", OLD)

    table.store.record_vendor_refs("ref-1", {"project": "p-1"})
    table.store.record_vendor_refs("ref-1", {"job": "j-1"})
    table.store.record_vendor_refs("ghost", {"job": "j-1"})

    job = table.store.get("ref-1")
    assert job is not None
    assert job.vendor_refs == {"project": "p-1", "job": "j-1"}
    assert (job.status, job.version) == (JobStatus.QUEUED, 1)
    assert job.updated_at > OLD
    assert table.item("ghost") is None


# --- the reconciler's view -------------------------------------------------------------------------


def test_stale_jobs_come_oldest_first_of_one_status_written_before_the_bound(table: Table) -> None:
    given(
        table,
        new_job("newer", status=JobStatus.SUBMITTED, at="2026-01-01T00:00:03.000Z"),
        new_job("oldest", status=JobStatus.SUBMITTED, at="2026-01-01T00:00:01.000Z"),
        new_job("middle", status=JobStatus.SUBMITTED, at="2026-01-01T00:00:02.000Z"),
        new_job("at-bound", status=JobStatus.SUBMITTED, at="2026-01-01T00:00:04.000Z"),
        new_job("other-status", status=JobStatus.IN_PROGRESS, at="2026-01-01T00:00:00.000Z"),
    )

    found = table.store.stale(JobStatus.SUBMITTED, "2026-01-01T00:00:04.000Z", limit=10)

    assert [(s.reference_id, s.status, s.updated_at, s.vendor) for s in found] == [
        ("oldest", JobStatus.SUBMITTED, "2026-01-01T00:00:01.000Z", "playment"),
        ("middle", JobStatus.SUBMITTED, "2026-01-01T00:00:02.000Z", "playment"),
        ("newer", JobStatus.SUBMITTED, "2026-01-01T00:00:03.000Z", "playment"),
    ]
    assert [s.reference_id for s in table.store.stale(JobStatus.SUBMITTED, "2026-12-31", limit=2)] == [
        "oldest",
        "middle",
    ]


def test_stale_jobs_of_one_vendor_or_of_all_but_some(table: Table) -> None:
    given(
        table,
        *(
            new_job(f"{vendor}-{n}", vendor=vendor, status=JobStatus.IN_PROGRESS, at=f"2026-01-01T00:00:0{n}.000Z")
            for n, vendor in enumerate(["textking", "playment", "textking", "scale", "playment"])
        ),
    )

    def stale(**kwargs: Any) -> list[str]:
        return [s.reference_id for s in table.store.stale(JobStatus.IN_PROGRESS, "2027", limit=2, **kwargs)]

    assert stale(vendor="playment") == ["playment-1", "playment-4"]
    assert stale(vendor="textking") == ["textking-0", "textking-2"]
    assert stale(other_than=("textking",)) == ["playment-1", "scale-3"]
    assert stale(other_than=("textking", "playment")) == ["scale-3"]
    assert stale(vendor="nobody") == []


def _listing_given(table: Table) -> None:
    given(
        table,
        *(
            new_job(
                f"j-{n}",
                vendor=vendor,
                status=status,
                at=f"2026-01-01T00:00:0{n}.000Z",
                batch_ref="b-1" if n % 2 else None,
                vendor_job_id=f"v-{n}",
            )
            for n, (vendor, status) in enumerate(
                [
                    ("playment", JobStatus.SUBMITTED),
                    ("scale", JobStatus.SUBMITTED),
                    ("playment", JobStatus.COMPLETED),
                    ("playment", JobStatus.SUBMITTED),
                    ("textking", JobStatus.SUBMITTED),
                    ("playment", JobStatus.SUBMITTED),
                ]
            )
        ),
    )


@pytest.mark.parametrize(
    ("key", "value", "where", "expected"),
    [
        ("status", "SUBMITTED", {}, ["j-5", "j-4", "j-3", "j-1", "j-0"]),
        ("status", "SUBMITTED", {"vendor": "playment"}, ["j-5", "j-3", "j-0"]),
        ("vendor", "playment", {}, ["j-5", "j-3", "j-2", "j-0"]),
        ("batch_ref", "b-1", {}, ["j-5", "j-3", "j-1"]),
        ("batch_ref", "b-1", {"status": "SUBMITTED", "vendor": "scale"}, ["j-1"]),
        ("vendor", "nobody", {}, []),
    ],
)
def test_a_listing_index_gives_its_partition_newest_first_with_the_summary_fields(
    table: Table, key: str, value: str, where: dict[str, str], expected: list[str]
) -> None:
    _listing_given(table)

    page = table.store.list_index(key, value, upto=None, after=None, where=where, limit=10)

    assert [j.reference_id for j in page.jobs] == expected
    assert (page.frontier, page.start) == (None, None)
    for summary in page.jobs:
        job = table.store.get(summary.reference_id)
        assert job is not None
        assert summary.model_dump() == job.model_dump(include=set(summary.model_dump()))
    assert table.requests[:1] == ["Query"]


def test_a_listing_index_pages_with_limits_applied_before_the_filter_and_bounds_on_updated_at(table: Table) -> None:
    _listing_given(table)

    # Limit counts items evaluated, then the filter: the page may hold fewer, and says how far it read
    first = table.store.list_index("status", "SUBMITTED", upto=None, after=None, where={"vendor": "playment"}, limit=2)
    rest = table.store.list_index(
        "status", "SUBMITTED", upto=None, after=None, where={"vendor": "playment"}, limit=10, start=first.start
    )
    bounded = table.store.list_index(
        "status", "SUBMITTED", upto="2026-01-01T00:00:04.000Z", after="2026-01-01T00:00:01.000Z", where={}, limit=10
    )
    after_only = table.store.list_index(
        "status", "SUBMITTED", upto=None, after="2026-01-01T00:00:03.000Z", where={}, limit=10
    )
    upside_down = table.store.list_index(
        "status", "SUBMITTED", upto="2026-01-01T00:00:01.000Z", after="2026-01-01T00:00:03.000Z", where={}, limit=10
    )

    assert [j.reference_id for j in first.jobs] == ["j-5"]
    assert first.frontier == "2026-01-01T00:00:04.000Z"
    assert first.start is not None
    assert [j.reference_id for j in rest.jobs] == ["j-3", "j-0"]
    assert [j.reference_id for j in bounded.jobs] == ["j-4", "j-3"]  # upto inclusive, after exclusive
    assert [j.reference_id for j in after_only.jobs] == ["j-5", "j-4"]
    assert upside_down.jobs == []


def test_jobs_awaiting_cleanup_are_those_whose_marker_is_set_oldest_first(table: Table) -> None:
    # given three FAILED jobs, two of which left something at their vendor (the marker set by a
    # transition's vendor_refs and by a checkpoint), and one whose marker was cleared again
    given(
        table,
        new_job("left-late", status=JobStatus.FAILED, at="2026-01-01T00:00:03.000Z"),
        new_job("left-early", status=JobStatus.FAILED, at="2026-01-01T00:00:01.000Z"),
        new_job("cleared", status=JobStatus.FAILED, at="2026-01-01T00:00:02.000Z"),
    )
    table.store.record_vendor_refs("left-late", {"project_id": "p-3", "cleanup": "project"})
    table.store.record_vendor_refs("left-early", {"project_id": "p-1", "cleanup": "project"})
    table.store.record_vendor_refs("cleared", {"cleanup": "job"})
    table.store.record_vendor_refs("cleared", {"cleanup": ""})
    table.set_updated_at("left-late", "2026-01-01T00:00:03.000Z")
    table.set_updated_at("left-early", "2026-01-01T00:00:01.000Z")

    found = table.store.awaiting_cleanup(limit=10)

    # then the two marked jobs, oldest first, from one Query of the sparse index
    assert [(s.reference_id, s.status) for s in found] == [
        ("left-early", JobStatus.FAILED),
        ("left-late", JobStatus.FAILED),
    ]
    assert table.item("cleared") is not None
    assert "cleanup_due" not in (table.item("cleared") or {})
    assert (table.item("left-early") or {})["cleanup_due"] == {"S": "due"}
    assert [s.reference_id for s in table.store.awaiting_cleanup(limit=1)] == ["left-early"]


def test_an_error_of_any_size_is_kept_within_its_budget_by_every_write_that_records_one(table: Table) -> None:
    # given a queued job, and a vendor whose transient error says 450,000 characters
    given(table, new_job("loud"))
    error = JobError(code="api_error", message="E" * 450_000, retryable=True, details=[{"x": "y" * 10_000}])

    # when the attempt is recorded (the worker's path for a transient failure)
    job = table.store.record_failed_attempt("loud", error)

    # then the write went through, inside the item's budget for errors, saying what was left out
    assert job is not None
    assert job.attempts == 1
    assert job.last_error is not None
    assert job.last_error.code == "api_error"
    assert job.last_error.message.endswith("\u2026")
    assert job.last_error.details == [{"omitted": 1}]
    assert item_size({"last_error": (table.item("loud") or {})["last_error"]}) <= STORED_BUDGETS["last_error"]


def test_a_job_marked_checked_goes_to_the_back_of_the_line_without_a_status_change(table: Table) -> None:
    given(table, new_job("a", status=JobStatus.SUBMITTED), new_job("b", status=JobStatus.SUBMITTED))
    table.set_updated_at("a", "2020-01-01T00:00:01.000Z")
    table.set_updated_at("b", "2020-01-01T00:00:02.000Z")

    assert table.store.mark_checked("a", JobStatus.SUBMITTED)

    item = table.item("a") or {}
    assert item["updated_at"] == item["checked_at"]
    assert item["updated_at"]["S"] > "2020-01-01T00:00:02.000Z"
    job = table.store.get("a")
    assert job is not None
    assert (job.status, job.version, len(job.history)) == (JobStatus.SUBMITTED, 1, 1)  # no status change written
    assert [s.reference_id for s in table.store.stale(JobStatus.SUBMITTED, "2999", limit=10)] == ["b", "a"]


def test_a_job_whose_status_moved_is_not_marked_checked(table: Table) -> None:
    given(table, new_job(status=JobStatus.COMPLETED))
    before = table.item("ref-1")

    assert not table.store.mark_checked("ref-1", JobStatus.SUBMITTED)
    assert not table.store.mark_checked("ghost", JobStatus.SUBMITTED)

    assert table.item("ref-1") == before
    assert table.item("ghost") is None


# --- the fake alone: the real limit --------------------------------------------------------------


def test_the_fake_keeps_the_real_history_limit() -> None:
    # (the contract above proves trimming on both with a small limit; this one, the real number)
    fake = FakeJobStore()
    fake.create(new_job())
    revision, delivered = transition_to(JobStatus.IN_PROGRESS, revision=True), transition_to(JobStatus.DELIVERED)
    job = None
    for _ in range(HISTORY_LIMIT):
        fake.transition("ref-1", delivered, source="callback")
        job = fake.transition("ref-1", revision, source="callback").job
    assert job is not None
    assert len(job.history) == HISTORY_LIMIT
    assert job.history[-1].status is JobStatus.IN_PROGRESS
    assert job.version == 2 * HISTORY_LIMIT + 1


# --- cancel and order ------------------------------------------------------------------------------


def test_a_cancel_that_requires_no_lease_is_refused_while_an_attempt_holds_the_job(table: Table) -> None:
    # given a QUEUED job written claimed, as SubmitJob writes the job it attempts at once
    assert table.store.create(new_job(), lease_seconds=60).created
    before = table.item("ref-1")
    cancel = transition_to(JobStatus.CANCELED)

    # when it is canceled on condition that no attempt holds it
    held = table.store.transition("ref-1", cancel, source="operator", require_unleased=True)

    # then nothing is written while the lease holds
    assert not held.applied
    assert held.job is not None
    assert held.job.status is JobStatus.QUEUED
    assert table.item("ref-1") == before
    # and once it is released, the same cancel applies
    table.store.release("ref-1")
    freed = table.store.transition("ref-1", cancel, source="operator", require_unleased=True)
    assert freed.applied
    assert freed.job is not None
    assert freed.job.status is JobStatus.CANCELED


def test_an_order_is_recorded_once_with_its_refs_and_time(table: Table) -> None:
    given(table, new_job(status=JobStatus.SUBMITTED, vendor_refs={"project_id": "p-1", "ordered": "false"}))

    first = table.store.record_order("ref-1", {"ordered": "true"})
    again = table.store.record_order("ref-1", {"ordered": "true"})

    assert first.applied
    assert first.job is not None
    assert first.job.vendor_refs == {"project_id": "p-1", "ordered": "true"}
    assert first.job.ordered_at is not None
    assert first.job.status is JobStatus.SUBMITTED  # no status change
    assert first.job.version == 2
    item = table.item("ref-1")
    assert item is not None
    assert item["vendor_refs"]["M"]["ordered"] == {"S": "true"}
    # the second write is refused: the job as found, unchanged
    assert not again.applied
    assert again.job == first.job
    assert table.store.record_order("nope", {"ordered": "true"}).job is None
    assert table.item("nope") is None
