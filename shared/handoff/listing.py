"""GET /jobs: jobs found through the table's indexes, newest first, a page at a time. No AWS here.

Which index answers (store.LISTING_INDEXES, each sorted by updated_at):

    batch given    batch_ref-index, one partition      status, vendor as filters
    status given   status-updated_at-index, one         vendor as a filter
    vendor given   vendor-updated_at-index, one
    nothing        status-updated_at-index, every status's partition, merged

The pages of the partitions are merged newest first (updated_at, then reference_id, both
descending). An item is given out only when every partition has been read past it, so two jobs
written in the same millisecond in different partitions come out in one order whatever the page
size. The cursor is where the last page stopped (updated_at and reference_id) and the filters it
was made for; it is opaque to callers (base64url JSON) and refused with other filters.

A job written while a caller walks the pages moves to the front (its updated_at is new): it is
not given twice, and a walk that wants it again starts over, or asks for `updated_after`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from handoff.models import REFERENCE_ID_PATTERN, JobList, JobStatus, JobSummary
from handoff.ports import JobStore

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
# ?limit= in plain digits, 1-100 (not "+5", " 5", "05", "5.0" or "5_0", which a lax int parser takes)
LIMIT_PATTERN = r"^(?:100|[1-9][0-9]?)$"
# ?updated_after= as RFC 3339 has a date-time (what the schema's format date-time means): a date,
# "T", a time with seconds, an optional fraction, and "Z" or an offset. No epoch numbers, no
# basic form, no space.
RFC3339_PATTERN = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
# Items DynamoDB evaluates per Query. A filtered listing may read many to find a few; at most
# MAX_QUERIES Queries per page, after which the page ends early with a cursor (as DynamoDB's own
# Limit does) and the next page goes on from there.
PAGE_ITEMS = 100
MAX_QUERIES = 30


class ListingRefused(Exception):
    """A listing request that cannot be answered: (code, message, field), answered 422."""

    def __init__(self, code: str, message: str, field_name: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field_name


@dataclass(frozen=True)
class JobFilter:
    status: JobStatus | None = None
    vendor: str | None = None
    batch_ref: str | None = None
    updated_after: str | None = None  # ISO-8601 UTC as the table writes it (store.utc_now)

    def as_dict(self) -> dict[str, str]:
        found = {"status": self.status, "vendor": self.vendor, "batch": self.batch_ref, "after": self.updated_after}
        return {k: str(v) for k, v in found.items() if v is not None}


def table_time(value: datetime) -> str:
    """A timezone-aware time as the table writes updated_at (UTC, milliseconds, Z), cut (never
    rounded) to the millisecond so that "after it" keeps meaning after it. A time whose UTC
    falls outside years 1-9999 (0001-01-01T00:00+01:00) is the first or last one there is."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        return "0001-01-01T00:00:00.000Z" if value.year == 1 else "9999-12-31T23:59:59.999Z"
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A cursor's position: updated_at as the table writes it, and a reference_id (or none).
_TABLE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@dataclass(frozen=True)
class Position:
    """Where a page stopped: every job ordered before (updated_at, reference_id) was given.
    reference_id None: every job written at updated_at is still to come."""

    updated_at: str
    reference_id: str | None = None

    def passed(self, job: JobSummary) -> bool:
        """True when `job` comes at or before this position (it was given, or skipped)."""
        if job.updated_at != self.updated_at:
            return job.updated_at > self.updated_at
        return self.reference_id is not None and job.reference_id >= self.reference_id


def encode_cursor(position: Position, wanted: JobFilter) -> str:
    raw = json.dumps({"u": position.updated_at, "r": position.reference_id, "f": wanted.as_dict()}, sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, wanted: JobFilter) -> Position:
    """The position in `cursor`. Raises ListingRefused (invalid_cursor) for a cursor this API did
    not give, or gave for other filters."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ListingRefused("invalid_cursor", "not a cursor this API gave", "cursor") from None
    if (
        not isinstance(raw, dict)
        or set(raw) != {"u", "r", "f"}
        or not isinstance(raw["u"], str)
        or not _TABLE_TIME.match(raw["u"])
        or not (raw["r"] is None or (isinstance(raw["r"], str) and re.match(REFERENCE_ID_PATTERN, raw["r"])))
    ):
        raise ListingRefused("invalid_cursor", "not a cursor this API gave", "cursor")
    if raw["f"] != wanted.as_dict():
        raise ListingRefused("invalid_cursor", "the cursor was given for other filters: send the same ones", "cursor")
    return Position(raw["u"], raw["r"])


@dataclass
class _Partition:
    """One partition of an index, read a Query at a time into `buffer` (newest first)."""

    key: str
    value: str
    buffer: list[JobSummary] = field(default_factory=list)
    frontier: str | None = None  # updated_at of the last item evaluated; None before the first Query
    start: dict[str, Any] | None = None
    exhausted: bool = False

    def fully_read_after(self, updated_at: str) -> bool:
        """Every item of this partition written after `updated_at`, and at it, has been read."""
        return self.exhausted or (self.frontier is not None and self.frontier < updated_at)


def list_jobs(store: JobStore, wanted: JobFilter, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> JobList:
    """One page of jobs matching `wanted`, newest first, and the cursor of the next (None: last).

    Raises ListingRefused for a cursor that is not one, or one given for other filters.
    """
    position = decode_cursor(cursor, wanted) if cursor else None
    key, values, where = _plan(wanted)
    partitions = [_Partition(key, v) for v in values]
    upto = position.updated_at if position else None
    queries = 0
    page: list[JobSummary] = []
    while len(page) < limit:
        # the newest job not yet given, of every partition's buffer
        heads = [p for p in partitions if p.buffer]
        head = max(heads, key=lambda p: _order(p.buffer[0]), default=None)
        unsure = [p for p in partitions if head is None or not p.fully_read_after(head.buffer[0].updated_at)]
        unsure = [p for p in unsure if not p.exhausted]
        if not unsure:
            if head is None:
                break  # every partition read to its end
            page.append(head.buffer.pop(0))
            continue
        if queries >= MAX_QUERIES:
            break
        # read on in the partition that holds the page back the most (the newest frontier)
        behind = max(unsure, key=lambda p: p.frontier or "\uffff")
        queries += 1
        result = store.list_index(
            behind.key,
            behind.value,
            upto=upto,
            after=wanted.updated_after,
            where=where,
            limit=PAGE_ITEMS,
            start=behind.start,
        )
        fresh = [j for j in result.jobs if position is None or not position.passed(j)]
        behind.buffer = sorted(behind.buffer + fresh, key=_order, reverse=True)
        behind.start = result.start
        behind.frontier = result.frontier
        behind.exhausted = result.start is None
    more = any(p.buffer or not p.exhausted for p in partitions)
    if not more:
        return JobList(jobs=page, next_cursor=None)
    if page:
        last = page[-1]
        return JobList(jobs=page, next_cursor=encode_cursor(Position(last.updated_at, last.reference_id), wanted))
    # the Query budget ran out before any job could be given: go on from the furthest point that
    # every partition has been read to (all jobs newer than it were filtered out)
    open_ = [p for p in partitions if not p.exhausted]
    frontiers = [p.frontier for p in open_ if p.frontier is not None]
    reached = max(frontiers) if frontiers and len(frontiers) == len(open_) else None
    resume = Position(reached, None) if reached else position
    return JobList(jobs=[], next_cursor=encode_cursor(resume, wanted) if resume else None)


def _order(job: JobSummary) -> tuple[str, str]:
    return (job.updated_at, job.reference_id)


def _plan(wanted: JobFilter) -> tuple[str, list[str], dict[str, str]]:
    """(index key, its partitions to read, filters on other attributes)."""
    where: dict[str, str] = {}
    if wanted.batch_ref is not None:
        if wanted.status is not None:
            where["status"] = wanted.status.value
        if wanted.vendor is not None:
            where["vendor"] = wanted.vendor
        return "batch_ref", [wanted.batch_ref], where
    if wanted.status is not None:
        if wanted.vendor is not None:
            where["vendor"] = wanted.vendor
        return "status", [wanted.status.value], where
    if wanted.vendor is not None:
        return "vendor", [wanted.vendor], where
    return "status", [s.value for s in JobStatus], where
