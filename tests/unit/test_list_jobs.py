"""GET /jobs: jobs from the indexes, newest first, filtered, a page at a time with an opaque cursor.

The paging rules run on the in-memory store (tests.fakes.store, kept true to moto by the
list_index cases of test_store_contract.py); the route runs on moto's table from template.yaml.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest

from functions.get_job import app as get_app
from handoff import listing
from handoff.models import Job, JobStatus
from handoff.store import DynamoJobStore
from tests.conftest import LambdaContext, load_event
from tests.fakes.store import FakeJobStore

STATUSES = list(JobStatus)
VENDORS = ["playment", "textking", "scale"]


def job(n: int, *, status: JobStatus, vendor: str, at: str, batch_ref: str | None = None) -> Job:
    return Job(
        reference_id=f"job-{n:04d}",
        vendor=vendor,
        status=status,
        request={"vendor": vendor},
        request_hash="h",
        vendor_job_id=None if status is JobStatus.QUEUED else f"v-{n}",
        batch_ref=batch_ref,
        created_at="2026-11-01T00:00:00.000Z",
        updated_at=at,
    )


def many(store: FakeJobStore | DynamoJobStore, count: int, *, same_instant_every: int = 1) -> list[Job]:
    """`count` jobs over every status and vendor; every `same_instant_every` jobs share one updated_at."""
    jobs = []
    for n in range(count):
        second = n // same_instant_every
        at = f"2026-11-30T10:{second // 60 % 60:02d}:{second % 60:02d}.{second // 3600:03d}Z"
        j = job(
            n,
            status=STATUSES[n * 3 % len(STATUSES)],
            vendor=VENDORS[n % 3],
            at=at,
            batch_ref="b-1" if n % 4 == 0 else None,
        )
        if isinstance(store, FakeJobStore):
            store.put_job(j)
        else:
            store.create(j)
        jobs.append(j)
    return jobs


def newest_first(jobs: list[Job]) -> list[str]:
    return [j.reference_id for j in sorted(jobs, key=lambda j: (j.updated_at, j.reference_id), reverse=True)]


def walk(store: Any, wanted: listing.JobFilter, limit: int) -> tuple[list[str], int]:
    """Every page in turn: the reference_ids in the order given, and the number of pages."""
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = listing.list_jobs(store, wanted, limit, cursor)
        pages += 1
        seen += [j.reference_id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            return seen, pages
        assert pages < 1000


# -- the paging rules (in memory) -------------------------------------------------------------------


@pytest.mark.parametrize("same_instant_every", [1, 7, 40])
@pytest.mark.parametrize("limit", [1, 3, 50])
def test_every_job_comes_once_newest_first_across_the_status_partitions(
    monkeypatch: pytest.MonkeyPatch, limit: int, same_instant_every: int
) -> None:
    # given 120 jobs over every status, some written in the same millisecond, and small Query pages
    monkeypatch.setattr(listing, "PAGE_ITEMS", 4)
    store = FakeJobStore()
    jobs = many(store, 120, same_instant_every=same_instant_every)

    # when a caller walks every page with no filter
    seen, _ = walk(store, listing.JobFilter(), limit)

    # then each job came once, newest first, ties broken by reference_id
    assert seen == newest_first(jobs)


@pytest.mark.parametrize(
    ("wanted", "keep"),
    [
        (listing.JobFilter(status=JobStatus.SUBMITTED), lambda j: j.status is JobStatus.SUBMITTED),
        (listing.JobFilter(vendor="textking"), lambda j: j.vendor == "textking"),
        (listing.JobFilter(batch_ref="b-1"), lambda j: j.batch_ref == "b-1"),
        (
            listing.JobFilter(status=JobStatus.FAILED, vendor="scale"),
            lambda j: j.status is JobStatus.FAILED and j.vendor == "scale",
        ),
        (
            listing.JobFilter(batch_ref="b-1", status=JobStatus.QUEUED, vendor="playment"),
            lambda j: j.batch_ref == "b-1" and j.status is JobStatus.QUEUED and j.vendor == "playment",
        ),
        (
            listing.JobFilter(updated_after="2026-11-30T10:00:20.000Z"),
            lambda j: j.updated_at > "2026-11-30T10:00:20.000Z",
        ),
        (
            listing.JobFilter(vendor="playment", updated_after="2026-11-30T10:00:30.000Z"),
            lambda j: j.vendor == "playment" and j.updated_at > "2026-11-30T10:00:30.000Z",
        ),
    ],
)
def test_filters_give_exactly_the_matching_jobs_newest_first(
    monkeypatch: pytest.MonkeyPatch, wanted: listing.JobFilter, keep: Any
) -> None:
    monkeypatch.setattr(listing, "PAGE_ITEMS", 5)
    store = FakeJobStore()
    jobs = many(store, 150, same_instant_every=3)

    seen, _ = walk(store, wanted, 7)

    assert seen == newest_first([j for j in jobs if keep(j)])
    assert seen  # each case matches some jobs: an empty answer would prove nothing


def test_a_rare_match_ends_pages_early_with_a_cursor_that_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # given one matching job behind 200 that the filter drops, and a Query budget of 3 per page
    monkeypatch.setattr(listing, "PAGE_ITEMS", 10)
    monkeypatch.setattr(listing, "MAX_QUERIES", 3)
    store = FakeJobStore()
    for n in range(200):
        store.put_job(
            job(n, status=JobStatus.COMPLETED, vendor="playment", at=f"2026-11-30T11:{n // 60:02d}:{n % 60:02d}.000Z")
        )
    rare = job(999, status=JobStatus.COMPLETED, vendor="scale", at="2026-11-30T09:00:00.000Z")
    store.put_job(rare)

    # when the caller lists that status for the rare vendor
    first = listing.list_jobs(store, listing.JobFilter(status=JobStatus.COMPLETED, vendor="scale"), 10)
    seen, pages = walk(store, listing.JobFilter(status=JobStatus.COMPLETED, vendor="scale"), 10)

    # then the first page is empty but not the last, and walking on finds the job
    assert first.jobs == []
    assert first.next_cursor is not None
    assert seen == ["job-0999"]
    assert pages > 1


def test_a_job_written_during_the_walk_is_never_given_twice() -> None:
    # given 30 jobs, and a caller who has read the first page of 10
    store = FakeJobStore()
    many(store, 30)
    first = listing.list_jobs(store, listing.JobFilter(), 10)
    given = [j.reference_id for j in first.jobs]
    later = [r for r in newest_first([item_job(store, r) for r in store.items]) if r not in given]

    # when a job already given and a job still to come are both written again (they move ahead)
    for reference_id in (given[3], later[5]):
        store.put_job(item_job(store, reference_id).model_copy(update={"updated_at": "2026-12-01T00:00:00.000Z"}))
    rest, _ = walk_from(store, first.next_cursor, 10)

    # then the walk goes on with every other job, none twice (the moved one is found by a new walk)
    assert rest == [r for r in later if r != later[5]]
    assert later[5] in walk(store, listing.JobFilter(), 10)[0][:2]


def item_job(store: FakeJobStore, reference_id: str) -> Job:
    from handoff.store import item_to_job

    return item_to_job(store.items[reference_id])


def walk_from(store: Any, cursor: str | None, limit: int) -> tuple[list[str], int]:
    seen: list[str] = []
    pages = 0
    while cursor is not None:
        page = listing.list_jobs(store, listing.JobFilter(), limit, cursor)
        pages += 1
        seen += [j.reference_id for j in page.jobs]
        cursor = page.next_cursor
    return seen, pages


def test_a_cursor_is_refused_with_other_filters_and_when_it_is_not_one() -> None:
    store = FakeJobStore()
    many(store, 30)
    cursor = listing.list_jobs(store, listing.JobFilter(vendor="playment"), 2).next_cursor
    assert cursor is not None

    with pytest.raises(listing.ListingRefused) as other:
        listing.list_jobs(store, listing.JobFilter(vendor="scale"), 2, cursor)
    with pytest.raises(listing.ListingRefused) as garbled:
        listing.list_jobs(store, listing.JobFilter(vendor="playment"), 2, cursor[:-3] + "AAA")

    assert other.value.code == garbled.value.code == "invalid_cursor"


def test_an_empty_table_is_one_empty_last_page() -> None:
    page = listing.list_jobs(FakeJobStore(), listing.JobFilter(), 10)

    assert page.jobs == []
    assert page.next_cursor is None


# -- the route (moto) -----------------------------------------------------------------------------


def list_event(**query: str) -> dict[str, Any]:
    event = load_event("get_job/api_list.json")
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    return event


def answer(event: dict[str, Any], context: LambdaContext) -> tuple[int, dict[str, Any]]:
    response = get_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def table(aws: None) -> DynamoJobStore:
    return get_app.store()


def test_the_sample_lists_playment_jobs_submitted_newest_first(table: DynamoJobStore, context: LambdaContext) -> None:
    # given jobs of every status and vendor in the table
    jobs = many(table, 40)

    # when an operator sends the sample (status=SUBMITTED, vendor=playment, limit=20)
    status, body = answer(load_event("get_job/api_list.json"), context)

    # then 200 with those jobs as the index holds them, newest first, and no further page
    expected = [j for j in jobs if j.status is JobStatus.SUBMITTED and j.vendor == "playment"]
    assert status == 200
    assert [j["reference_id"] for j in body["jobs"]] == newest_first(expected)
    assert body["next_cursor"] is None
    first = next(j for j in body["jobs"])
    source = next(j for j in expected if j.reference_id == first["reference_id"])
    assert first == {
        "reference_id": source.reference_id,
        "vendor": "playment",
        "status": "SUBMITTED",
        "vendor_job_id": source.vendor_job_id,
        "batch_ref": source.batch_ref,
        "created_at": source.created_at,
        "updated_at": source.updated_at,
    }


def test_pages_follow_the_cursor_over_http_to_every_job(table: DynamoJobStore, context: LambdaContext) -> None:
    jobs = many(table, 45, same_instant_every=4)

    seen: list[str] = []
    query = {"limit": "8"}
    while True:
        status, body = answer(list_event(**query), context)
        assert status == 200
        seen += [j["reference_id"] for j in body["jobs"]]
        if body["next_cursor"] is None:
            break
        query = {"limit": "8", "cursor": body["next_cursor"]}

    assert seen == newest_first(jobs)


def test_updated_after_takes_any_time_zone_and_batch_filters(table: DynamoJobStore, context: LambdaContext) -> None:
    jobs = many(table, 60)

    # 11:00:30+01:00 is 10:00:30Z
    status, body = answer(list_event(batch="b-1", updated_after="2026-11-30T11:00:30+01:00"), context)

    expected = [j for j in jobs if j.batch_ref == "b-1" and j.updated_at > "2026-11-30T10:00:30.000Z"]
    assert status == 200
    assert [j["reference_id"] for j in body["jobs"]] == newest_first(expected)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "DONE"}, "status"),
        ({"vendor": "acme"}, "vendor"),
        ({"vendor": "Playment!"}, "vendor"),
        ({"batch": "bad batch"}, "batch"),
        ({"updated_after": "2026-11-30T10:00:00"}, "updated_after"),  # no time zone: which time?
        ({"updated_after": "yesterday"}, "updated_after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "true"}, "limit"),
        ({"limit": "2.5"}, "limit"),
        ({"limit": "+5"}, "limit"),
        ({"limit": "5_0"}, "limit"),
        ({"limit": " 5"}, "limit"),
        ({"limit": "05"}, "limit"),
        ({"updated_after": "0"}, "updated_after"),  # an epoch number is no time of RFC 3339
        ({"updated_after": "1700000000"}, "updated_after"),
        ({"updated_after": "2026-11-30 10:00:00Z"}, "updated_after"),
        ({"updated_after": "20261130T100000Z"}, "updated_after"),
        ({"updated_after": "2026-02-30T10:00:00Z"}, "updated_after"),  # the form, but no such day
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": "eyJ1IjogMX0"}, "cursor"),  # base64url JSON, but not one of ours
        ({"cursor": "eyJmIjp7fSwiciI6bnVsbCwidSI6IiJ9"}, "cursor"),  # {"f":{},"r":null,"u":""}
        ({"cursor": "eyJmIjp7fSwiciI6Ilx1ZDgwMCIsInUiOiIyMDI2LTExLTMwVDEwOjAwOjAwLjAwMFoifQ"}, "cursor"),
    ],
)
def test_a_filter_that_is_not_one_is_422_naming_it(
    table: DynamoJobStore, context: LambdaContext, query: dict[str, str], field: str
) -> None:
    status, body = answer(list_event(**query), context)

    assert status == 422
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert [d["field"] for d in body["error"]["details"]] == [field]


@pytest.mark.parametrize(
    "moment",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+00:31"],
)
def test_a_time_at_the_ends_of_the_calendar_is_a_time_not_a_500(
    moment: str, table: DynamoJobStore, context: LambdaContext
) -> None:
    jobs = many(table, 3)

    status, body = answer(list_event(updated_after=moment), context)

    assert status == 200
    expected = newest_first(jobs) if moment.startswith("0001") else []
    assert [j["reference_id"] for j in body["jobs"]] == expected


def test_a_cursor_from_other_filters_is_422_invalid_cursor(table: DynamoJobStore, context: LambdaContext) -> None:
    many(table, 20)
    _, first = answer(list_event(vendor="playment", limit="2"), context)

    status, body = answer(list_event(vendor="scale", limit="2", cursor=first["next_cursor"]), context)

    assert status == 422
    assert body["error"]["code"] == "invalid_cursor"


def test_an_item_edited_by_hand_is_left_out_of_the_listing_not_a_500(
    table: DynamoJobStore, context: LambdaContext
) -> None:
    # given jobs, and an item someone wrote by hand whose index keys are right but not its fields
    jobs = many(table, 5)
    client = boto3.client("dynamodb")
    client.put_item(
        TableName=os.environ["JOBS_TABLE_NAME"],
        Item={
            "reference_id": {"S": "by-hand"},
            "status": {"S": "COMPLETED"},
            "vendor": {"S": "playment"},
            "updated_at": {"S": "2026-12-01T00:00:00.000Z"},
            "vendor_job_id": {"N": "12"},
        },
    )

    # when the jobs are listed, with and without filters
    answers = [answer(list_event(**q), context) for q in ({}, {"status": "COMPLETED"}, {"vendor": "playment"})]

    # then every answer is 200 and holds every job of Handoff's, the hand-written item left out
    for status, body in answers:
        assert status == 200
        assert "by-hand" not in [j["reference_id"] for j in body["jobs"]]
    assert [j["reference_id"] for j in answers[0][1]["jobs"]] == newest_first(jobs)
