"""The JobStore (handoff.ports) on DynamoDB: every read and write of a job.

Writes are conditional and single-shot. `create` puts the item only if the reference_id is
unused; `transition` moves the status with ONE UpdateItem whose condition names the allowed
predecessor statuses. There is no read-then-write: a losing or duplicate writer learns the
item's current state from the failed condition itself (ReturnValuesOnConditionCheckFailure).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import ValidationError

from handoff import vendor_json
from handoff.itemsize import item_size
from handoff.lifecycle import Transition
from handoff.models import CLEANUP_REF, ORDERED_REF, Batch, HistoryEntry, Job, JobError, JobStatus, JobSummary
from handoff.observability import logger

# The history keeps the latest entries; older ones are dropped after a transition pushes past it.
HISTORY_LIMIT = 50

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Attributes that hold data Handoff does not own (the caller's request with its pass-through
# fields, a vendor's result, a vendor's error details): stored as JSON text, never as DynamoDB
# maps, so no value of theirs (NaN, a 40-digit number, an empty key, deep nesting) can make an
# item unwritable or unreadable.
JSON_TEXT_ATTRIBUTES = frozenset({"request", "result", "last_error"})

# What each of them may take of the item, measured as DynamoDB measures it (name and value:
# handoff.itemsize), so that with the job's own fields (50 history entries of at most
# HISTORY_DETAIL_LIMIT characters, ids, timestamps) an item stays inside DynamoDB's 400 KB
# (409,600 bytes) whatever a caller or vendor sends. Larger results and error details go to S3
# (handoff.callbacks); a larger request is refused before anything is written (413).
# Vendor data nested deeper than this is kept in S3, not in the item: a job read back is
# validated and serialised by pydantic, whose recursion guard stops somewhere under 256 levels.
MAX_INLINE_DEPTH = 64
STORED_BUDGETS = {"request": 256 * 1024, "result": 64 * 1024, "last_error": 8 * 1024}
HISTORY_DETAIL_LIMIT = 500


def stored_size(name: str, value: Any) -> int:
    """The bytes DynamoDB counts for attribute `name` holding `value` as the store writes it.
    Raises ValueError for a JSON-text attribute that strict JSON cannot carry (NaN, infinities)."""
    return item_size({name: attribute(name, value)})


def fits(name: str, value: Any) -> bool:
    """Whether `value` may be stored inline as `name`: strict JSON of Unicode text (no NaN, no
    vendor_json.RawNumber, no lone surrogate), within STORED_BUDGETS."""
    if not vendor_json.holds_only_unicode(value) or vendor_json.depth_exceeds(value, MAX_INLINE_DEPTH):
        return False
    try:
        return stored_size(name, value) <= STORED_BUDGETS[name]
    except (ValueError, TypeError):
        return False


def bounded_error(error: dict[str, Any], whole_ref: str | None = None) -> dict[str, Any]:
    """A last_error that fits its budget: whole when it does; else its code and message, cut (with
    "…") until they fit, and in `details` where the whole error is kept (`whole_ref`, an S3 URI:
    handoff.callbacks keeps a vendor's whole error there first) or how many details were left out."""
    if fits("last_error", error):
        return error
    details = error.get("details") or []
    count = len(details) if isinstance(details, list) else 1
    code, message = _unicode(str(error.get("code", ""))), _unicode(str(error.get("message", "")))
    for limit in (2000, 500, 100, 20):
        bounded = {
            "code": _cut(code, min(limit, 128)),
            "message": _cut(message, limit),
            "retryable": bool(error.get("retryable", False)),
            "details": [{"details_ref": whole_ref, "count": count}] if whole_ref else [{"omitted": count}],
        }
        if fits("last_error", bounded):
            return bounded
    return {"code": "vendor_error", "message": "…", "retryable": False, "details": bounded["details"]}


def _unicode(text: str) -> str:
    # a lone surrogate as U+FFFD: the summary must be storable text (the whole error is in S3 as sent)
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_dynamo(value: Any) -> dict[str, Any]:
    # A JSON round trip turns floats into Decimal, which is what DynamoDB numbers must be.
    return dict(_serializer.serialize(json.loads(json.dumps(value), parse_float=Decimal)))


def json_text(value: Any) -> str:
    """Strict JSON text (RFC 8259) of a value; raises ValueError for NaN or an infinity. ASCII with
    escapes: a vendor's lone surrogate ("\\ud800") stays storable text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def attribute(name: str, value: Any) -> dict[str, Any]:
    """The DynamoDB attribute value of one job attribute."""
    if name in JSON_TEXT_ATTRIBUTES:
        return {"S": json_text(value)}
    return to_dynamo(value)


def _json_like(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_like(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_like(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class UnreadableItem(ValueError):
    """An item of JobsTable that is not a job as Handoff writes them (edited by hand, or by
    something else): reading it again will not help, a person must look at it."""


def item_to_job(item: dict[str, Any]) -> Job:
    """The job an item holds. Raises UnreadableItem when it holds none."""
    try:
        plain = {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}
        if not all(_json_like(v) for v in plain.values()):
            raise TypeError("a binary or set attribute: Handoff writes neither")
        for name in JSON_TEXT_ATTRIBUTES:
            # Items written before these became JSON text hold maps: read both.
            if isinstance(plain.get(name), str):
                plain[name] = json.loads(plain[name])
        return Job.model_validate(plain)
    except (ValueError, TypeError) as exc:
        reference = item.get("reference_id", {}).get("S", "?") if isinstance(item, dict) else "?"
        raise UnreadableItem(f"the item of {reference!r} is not a job Handoff wrote") from exc


@dataclass(frozen=True)
class CreateOutcome:
    created: bool
    job: Job  # the new job, or the one that already held the reference_id


@dataclass(frozen=True)
class TransitionOutcome:
    applied: bool
    job: Job | None  # after the write when applied; as found when not (None: no such job)


@dataclass(frozen=True)
class ClaimOutcome:
    claimed: bool
    job: Job | None  # the claimed job; when not claimed, the job as found (None: no such job)


@dataclass(frozen=True)
class StaleJob:
    reference_id: str
    status: JobStatus
    updated_at: str
    vendor: str = ""


BATCH_INDEX = "batch_ref-index"
CLEANUP_INDEX = "cleanup_due-index"
CLEANUP_DUE, CLEANUP_DUE_VALUE = "cleanup_due", "due"
STATUS_INDEX = "status-updated_at-index"
VENDOR_INDEX = "vendor-updated_at-index"

# The indexes GET /jobs reads, by the attribute each is partitioned on. Every one is sorted by
# updated_at and projects every field of a JobSummary (template.yaml; a template test checks it).
LISTING_INDEXES = {"status": STATUS_INDEX, "vendor": VENDOR_INDEX, "batch_ref": BATCH_INDEX}
SUMMARY_FIELDS = tuple(JobSummary.model_fields)


@dataclass(frozen=True)
class IndexPage:
    """One Query of a listing index, newest first.

    `jobs` are the items that passed the filters. `frontier` is the updated_at of the last item
    the Query evaluated (filtered out or not): every item of the partition written after it has
    been seen, but items written at that very instant may still follow. None: the partition is
    exhausted. `start` continues the Query (DynamoDB's LastEvaluatedKey, never shown to callers).
    """

    jobs: list[JobSummary]
    frontier: str | None
    start: dict[str, Any] | None


class _ConditionalTable:
    """A DynamoDB table written one conditional request at a time: `_put` and `_update` are the
    only writes, keyed by `key_name` (a string attribute)."""

    key_name = ""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("dynamodb")
        return self._client

    def _put(self, item: dict[str, Any], condition: _Update) -> tuple[bool, dict[str, Any] | None]:
        """One conditional PutItem: (True, None) when written, (False, the item as found) when not."""
        written, current = _conditional(
            self.client.put_item,
            TableName=self.table_name,
            Item=item,
            ConditionExpression=condition.condition(),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
            **condition.placeholders(),
        )
        return written is not None, current

    def _update(self, key: str, update: _Update) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """One conditional UpdateItem: (item after, None) when applied, (None, item as found) when not."""
        response, old = _conditional(
            self.client.update_item,
            TableName=self.table_name,
            Key={self.key_name: {"S": key}},
            UpdateExpression=update.expression(),
            ConditionExpression=update.condition(),
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
            **update.placeholders(),
        )
        return (response["Attributes"], None) if response is not None else (None, old)


class DynamoJobStore(_ConditionalTable):
    """The JobStore (handoff.ports) on the JobsTable. Each method builds its one conditional write
    as data (`_Update`: what changes and on what condition) and hands it to one of four requests:
    `_put`, `_update`, `_read`, `_query`. Only those four speak DynamoDB."""

    key_name = "reference_id"

    def create(self, job: Job, *, lease_seconds: int | None = None) -> CreateOutcome:
        """Put the new job unless its reference_id is taken. `lease_seconds`: the job is written
        claimed (as `claim` would), for a caller that attempts it at once (SubmitJob inline), so
        that nothing else (a worker, a cancel) acts on it while the attempt may create a vendor job."""
        condition = _Update()
        condition.require_absent("reference_id")
        return self._create_or_found(job, condition, lease_seconds)

    def replace(self, job: Job, existing: Job, *, lease_seconds: int | None = None) -> CreateOutcome:
        """Put `job` in place of `existing`, only if that is still exactly as read (same version,
        FAILED, no vendor job). The history carries on; `job` takes the next version.
        `lease_seconds` as in `create`."""
        history = [*existing.history, *job.history][-HISTORY_LIMIT:]
        replacement = job.model_copy(
            update={"history": history, "version": existing.version + 1, "created_at": existing.created_at}
        )
        condition = _Update()
        condition.require_equal("status", JobStatus.FAILED.value)
        condition.require_equal("version", existing.version)
        condition.require_absent("vendor_job_id")
        return self._create_or_found(replacement, condition, lease_seconds)

    def _create_or_found(self, job: Job, condition: _Update, lease_seconds: int | None = None) -> CreateOutcome:
        """One conditional put of the whole job: created, or the item as it stands."""
        item = job_item(job)
        if lease_seconds is not None:
            item["lease_until"] = to_dynamo(round(time.time() + lease_seconds, 3))
        written, current = self._put(item, condition)
        if not written:  # refused: what holds the reference_id now (or the job, if nothing does)
            return CreateOutcome(created=False, job=item_to_job(current) if current else job)
        return CreateOutcome(created=True, job=job)

    def get(self, reference_id: str) -> Job | None:
        item = self._read(reference_id)
        return item_to_job(item) if item else None

    def transition(
        self,
        reference_id: str,
        transition: Transition,
        *,
        source: str,
        detail: str | None = None,
        set_fields: dict[str, Any] | None = None,
        set_if_absent: dict[str, Any] | None = None,
        remove_fields: tuple[str, ...] = (),
        count_attempt: bool = False,
        require_no_vendor_job: bool = False,
        require_unleased: bool = False,
        vendor: str | None = None,
        vendor_job_id: str | None = None,
    ) -> TransitionOutcome:
        """Move the job to `transition.target` if its status is one of `transition.allowed_from`.

        One UpdateItem: the status, updated_at, version, a history entry, and any extra fields
        change together or not at all. A failed condition writes nothing and reports the job as
        it stands. `vendor` requires the job to belong to that vendor; `vendor_job_id` requires
        the stored vendor job id to be absent (it is then recorded) or equal; `require_unleased`
        requires that no submission attempt holds the job (no lease, or one run out: `claim`).
        """
        now = utc_now()
        if detail is not None and len(detail) > HISTORY_DETAIL_LIMIT:
            detail = detail[: HISTORY_DETAIL_LIMIT - 1] + "…"
        entry = HistoryEntry(at=now, status=transition.target, source=source, detail=detail)
        update = _Update()
        update.set("status", transition.target.value)
        update.set("updated_at", now)
        update.increment("version")
        update.append("history", entry.model_dump(mode="json", exclude_none=True))
        if count_attempt:
            update.increment("attempts")
        for name, value in (set_fields or {}).items():
            update.set(name, bounded_error(value) if name == "last_error" and isinstance(value, dict) else value)
        for name, value in (set_if_absent or {}).items():
            update.set_if_absent(name, value)
        for name in remove_fields:
            update.remove(name)

        update.require_exists()
        update.require_in("status", sorted(s.value for s in transition.allowed_from))
        if require_no_vendor_job:
            update.require_absent("vendor_job_id")
        if require_unleased:
            update.require_absent_or_below("lease_until", round(time.time(), 3))
        if vendor is not None:
            update.require_equal("vendor", vendor)
        if vendor_job_id is not None:
            update.set_if_absent("vendor_job_id", vendor_job_id)
            update.require_absent_or_equal("vendor_job_id", vendor_job_id)
        new, old = self._update(reference_id, update)
        if new is None:
            return TransitionOutcome(applied=False, job=item_to_job(old) if old else None)
        job = item_to_job(new)
        if len(job.history) > HISTORY_LIMIT:
            job = self._trim_history(reference_id, len(job.history) - HISTORY_LIMIT) or job
        return TransitionOutcome(applied=True, job=job)

    def claim(self, reference_id: str, lease_seconds: int) -> ClaimOutcome:
        """Take a QUEUED job for one submission attempt, unless another attempt holds it.

        Two messages for one job (SQS delivers at least once; an operator may enqueue it again)
        must not become two concurrent attempts: for a vendor with billed orders, two orders. The lease
        ends with the attempt's verdict write, or by itself after `lease_seconds` if the worker died.
        """
        now = time.time()
        update = _Update()
        update.set("lease_until", round(now + lease_seconds, 3))
        update.require_equal("status", JobStatus.QUEUED.value)
        update.require_absent_or_below("lease_until", round(now, 3))
        new, old = self._update(reference_id, update)
        if new is None:
            return ClaimOutcome(claimed=False, job=item_to_job(old) if old else None)
        return ClaimOutcome(claimed=True, job=item_to_job(new))

    def release(self, reference_id: str) -> None:
        """End a claim without a verdict (the attempt did not happen)."""
        update = _Update()
        update.remove("lease_until")
        update.require_exists()
        self._update(reference_id, update)

    def record_failed_attempt(
        self, reference_id: str, error: JobError, next_attempt_at: str | None = None
    ) -> Job | None:
        """Count a submission attempt that did not reach a verdict; the job stays QUEUED."""
        update = _Update()
        update.set("last_error", error.model_dump(mode="json"))
        update.set("updated_at", utc_now())
        if next_attempt_at is not None:
            update.set("next_attempt_at", next_attempt_at)
        update.increment("attempts")
        update.increment("version")
        update.remove("lease_until")
        update.require_equal("status", JobStatus.QUEUED.value)
        new, old = self._update(reference_id, update)
        if new is None:
            return item_to_job(old) if old else None
        return item_to_job(new)

    def record_vendor_ids(self, reference_id: str, vendor_job_id: str, vendor_refs: dict[str, str]) -> Job | None:
        """Record the vendor's ids without touching the status (ids already recorded are kept)."""
        update = _Update()
        update.set_if_absent("vendor_job_id", vendor_job_id)
        update.set_map_entries("vendor_refs", vendor_refs)
        update.require_exists()
        new, _ = self._update(reference_id, update)
        return item_to_job(new) if new else None

    def record_vendor_refs(self, reference_id: str, refs: dict[str, str]) -> None:
        """Checkpoint a multi-step submission's vendor ids (no status change)."""
        update = _Update()
        update.set_map_entries("vendor_refs", refs)
        update.set("updated_at", utc_now())
        update.require_exists()
        self._update(reference_id, update)

    def record_order(self, reference_id: str, refs: dict[str, str]) -> TransitionOutcome:
        """Record that the vendor's order is placed: `refs` into vendor_refs (ORDERED_REF "true"
        among them) and ordered_at, unless vendor_refs already says ordered (then: not applied,
        the job as found). No status change; updated_at and version move. The stream record
        where vendor_refs.ordered goes "false" -> "true" is the job's `Job Ordered` event."""
        now = utc_now()
        update = _Update()
        update.set_map_entries("vendor_refs", refs)
        update.set("ordered_at", now)
        update.set("updated_at", now)
        update.increment("version")
        update.require_exists()
        update.require_map_entry_not("vendor_refs", ORDERED_REF, "true")
        new, old = self._update(reference_id, update)
        if new is None:
            return TransitionOutcome(applied=False, job=item_to_job(old) if old else None)
        return TransitionOutcome(applied=True, job=item_to_job(new))

    def stale(
        self,
        status: JobStatus,
        updated_before: str,
        limit: int,
        *,
        vendor: str | None = None,
        other_than: tuple[str, ...] = (),
    ) -> list[StaleJob]:
        """Jobs in `status` not written since `updated_before`, oldest first (status-updated_at-index),
        of `vendor` only, or of any vendor but those in `other_than`."""
        return _stale_jobs(self._query(status, updated_before, limit, vendor, other_than))

    def awaiting_cleanup(self, limit: int) -> list[StaleJob]:
        """Up to `limit` jobs whose vendor_refs name something left at the vendor (CLEANUP_REF
        set), least recently written first: one Query of the sparse cleanup_due-index, which
        holds only those (the caller checks each is still FAILED)."""
        return _stale_jobs(self._query_cleanup(limit))

    def mark_checked(self, reference_id: str, status: JobStatus) -> bool:
        """Note that the reconciler looked at the job and found nothing new (no status change).

        updated_at moves too, so the job goes to the back of the reconciler's line and the next
        run starts with jobs it has not looked at yet.
        """
        now = utc_now()
        update = _Update()
        update.set("updated_at", now)
        update.set("checked_at", now)
        update.require_equal("status", status.value)
        new, _ = self._update(reference_id, update)
        return new is not None

    def batch_jobs(self, batch_ref: str) -> dict[str, JobStatus]:
        """Every job of a batch and its status (batch_ref-index: a Query, every page). The index is
        eventually consistent: a write of the last second may not be in it yet."""
        return {i["reference_id"]["S"]: JobStatus(i["status"]["S"]) for i in self._query_batch(batch_ref)}

    def list_index(
        self,
        key: str,
        value: str,
        *,
        upto: str | None,
        after: str | None,
        where: dict[str, str],
        limit: int,
        start: dict[str, Any] | None = None,
    ) -> IndexPage:
        """Up to `limit` items evaluated in one Query of the listing index partitioned on `key`
        (LISTING_INDEXES), in the partition `value`, newest first: updated_at <= `upto` and
        > `after` where given, keeping those whose attributes equal `where` (a filter: DynamoDB
        applies it after the limit, so a page may hold fewer jobs than evaluated)."""
        items, last = self._query_page(key, value, upto, after, where, limit, start)
        jobs = []
        for item in items:
            try:
                jobs.append(JobSummary.model_validate(_plain_summary(item)))
            except ValidationError:  # one item edited by hand must not make every listing fail
                reference = item.get("reference_id", {}).get("S", "?")
                logger.error(
                    "an item is not a job Handoff wrote: left out of the listing", extra={"reference_id": reference}
                )
        frontier = last["updated_at"]["S"] if last else None
        return IndexPage(jobs, frontier, last)

    def _trim_history(self, reference_id: str, drop: int) -> Job | None:
        # Rare (a job with more than HISTORY_LIMIT status changes): one extra write drops the oldest.
        update = _Update()
        update.remove_first("history", drop)
        update.require_exists()
        new, _ = self._update(reference_id, update)
        return item_to_job(new) if new else None

    # -- the four requests ---------------------------------------------------------------------------

    def _read(self, reference_id: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table_name, Key={"reference_id": {"S": reference_id}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _query_batch(self, batch_ref: str) -> list[dict[str, Any]]:
        """Every item of batch_ref-index under `batch_ref` (reference_id and status)."""
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": BATCH_INDEX,
            "KeyConditionExpression": "#batch_ref = :batch_ref",
            "ExpressionAttributeNames": {
                "#batch_ref": "batch_ref",
                "#status": "status",
                "#reference_id": "reference_id",
            },
            "ExpressionAttributeValues": {":batch_ref": {"S": batch_ref}},
            "ProjectionExpression": "#reference_id, #status",
        }
        while True:
            response = self.client.query(**request)
            found.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return found
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _query_cleanup(self, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` items of cleanup_due-index, oldest first (keys, status, vendor)."""
        response = self.client.query(
            TableName=self.table_name,
            IndexName=CLEANUP_INDEX,
            KeyConditionExpression="#due = :due",
            ExpressionAttributeNames={"#due": CLEANUP_DUE},
            ExpressionAttributeValues={":due": {"S": CLEANUP_DUE_VALUE}},
            ScanIndexForward=True,
            Limit=limit,
        )
        items: list[dict[str, Any]] = response.get("Items", [])
        return items

    def _query_page(
        self,
        key: str,
        value: str,
        upto: str | None,
        after: str | None,
        where: dict[str, str],
        limit: int,
        start: dict[str, Any] | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One Query of a listing index, newest first: the items (SUMMARY_FIELDS) and LastEvaluatedKey."""
        names = {"#key": key}
        if upto is not None or after is not None:
            names["#updated_at"] = "updated_at"
        values: dict[str, Any] = {":key": {"S": value}}
        condition = "#key = :key"
        filters = []
        if upto is not None and after is not None:
            if after >= upto:  # DynamoDB refuses a BETWEEN whose bounds are the wrong way round
                return [], None
            # one condition on the sort key: BETWEEN includes `after`, the filter drops it
            condition += " AND #updated_at BETWEEN :after AND :upto"
            filters.append("#updated_at > :after")
        elif upto is not None:
            condition += " AND #updated_at <= :upto"
        elif after is not None:
            condition += " AND #updated_at > :after"
        if upto is not None:
            values[":upto"] = {"S": upto}
        if after is not None:
            values[":after"] = {"S": after}
        for i, (name, wanted) in enumerate(sorted(where.items())):
            names[f"#w{i}"] = name
            values[f":w{i}"] = {"S": wanted}
            filters.append(f"#w{i} = :w{i}")
        names.update({f"#p{i}": field for i, field in enumerate(SUMMARY_FIELDS)})
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": LISTING_INDEXES[key],
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ProjectionExpression": ", ".join(f"#p{i}" for i in range(len(SUMMARY_FIELDS))),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        if start:
            request["ExclusiveStartKey"] = start
        response = self.client.query(**request)
        return response.get("Items", []), response.get("LastEvaluatedKey")

    def _query(
        self,
        status: JobStatus,
        updated_before: str,
        limit: int,
        vendor: str | None,
        other_than: tuple[str, ...],
    ) -> list[dict[str, Any]]:
        """Up to `limit` items of status-updated_at-index (keys and vendor), oldest first."""
        found: list[dict[str, Any]] = []
        names = {"#status": "status", "#updated_at": "updated_at"}
        values: dict[str, Any] = {":status": {"S": status.value}, ":before": {"S": updated_before}}
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": "status-updated_at-index",
            "KeyConditionExpression": "#status = :status AND #updated_at < :before",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": True,
        }
        if vendor is not None or other_than:
            names["#vendor"] = "vendor"
            if vendor is not None:
                values[":vendor"] = {"S": vendor}
                request["FilterExpression"] = "#vendor = :vendor"
            else:
                values.update({f":v{i}": {"S": v} for i, v in enumerate(other_than)})
                request["FilterExpression"] = f"NOT #vendor IN ({', '.join(f':v{i}' for i in range(len(other_than)))})"
        while len(found) < limit:
            response = self.client.query(**request, Limit=limit - len(found))
            found.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found


def _plain_summary(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items() if k in SUMMARY_FIELDS}


def job_item(job: Job) -> dict[str, Any]:
    """The job as the table holds it (DynamoDB JSON)."""
    return {k: attribute(k, v) for k, v in job.model_dump(mode="json", exclude_none=True).items()}


def _conditional(call: Any, **request: Any) -> tuple[Any, dict[str, Any] | None]:
    """Make a conditional write. A failed condition is an answer, not an error: it comes back as
    (None, the item as it stands), which DynamoDB returns with the failure at no extra read."""
    try:
        return call(**request), None
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        item = cast(dict[str, Any], exc.response).get("Item")
        return None, item if isinstance(item, dict) else None


class _Update:
    """Builds one UpdateExpression and its ConditionExpression. Only names and values that a
    clause uses are declared: DynamoDB rejects unused ones.

    What it does is also kept as data, each value as DynamoDB holds it: `actions` (SET, REMOVE ...)
    and `checks` (the condition's terms, all of which must hold). The tests' in-memory store
    (tests/fakes/store.py) applies those, so it writes exactly what this store writes."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.conditions: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.actions: list[tuple[Any, ...]] = []
        self.checks: list[tuple[Any, ...]] = []

    def value(self, value: Any) -> str:
        key = f":v{len(self.values)}"
        self.values[key] = to_dynamo(value)
        return key

    def name(self, name: str) -> str:
        key = f"#{name}"
        self.names[key] = name
        return key

    # -- what changes -------------------------------------------------------------------------------

    def set(self, name: str, value: Any) -> None:
        if name == "last_error" and isinstance(value, dict) and not fits(name, value):
            # every write of an error stays inside its budget, whatever path writes it (a vendor's
            # 450 KB message in a transient failure too): cut, saying how much was left out
            value = bounded_error(value)
        if name in JSON_TEXT_ATTRIBUTES:
            value = json_text(value)
        placeholder = self.value(value)
        self.sets.append(f"{self.name(name)} = {placeholder}")
        self.actions.append(("set", name, self.values[placeholder]))
        if name == "vendor_refs" and isinstance(value, dict) and CLEANUP_REF in value:
            self._mirror_cleanup(value[CLEANUP_REF])

    def _mirror_cleanup(self, marker: Any) -> None:
        # cleanup_due, the key of the sparse cleanup_due-index, exists exactly while vendor_refs'
        # cleanup marker is set: the reconciler finds those jobs without reading every FAILED one
        if marker:
            self.set(CLEANUP_DUE, CLEANUP_DUE_VALUE)
        else:
            self.remove(CLEANUP_DUE)

    def set_if_absent(self, name: str, value: Any) -> None:
        placeholder, value_key = self.name(name), self.value(value)
        self.sets.append(f"{placeholder} = if_not_exists({placeholder}, {value_key})")
        self.actions.append(("set_if_absent", name, self.values[value_key]))

    def increment(self, name: str) -> None:
        placeholder = self.name(name)
        self.values[":zero"], self.values[":one"] = to_dynamo(0), to_dynamo(1)
        self.sets.append(f"{placeholder} = if_not_exists({placeholder}, :zero) + :one")
        self.actions.append(("increment", name))

    def append(self, name: str, entry: Any) -> None:
        placeholder, value_key = self.name(name), self.value([entry])
        self.values[":empty"] = to_dynamo([])
        self.sets.append(f"{placeholder} = list_append(if_not_exists({placeholder}, :empty), {value_key})")
        self.actions.append(("append", name, self.values[value_key]))

    def set_map_entries(self, name: str, entries: dict[str, Any]) -> None:
        """SET name.key = value for each entry (the map itself must exist: jobs are created with one)."""
        if not entries:
            return  # a name no clause uses would make DynamoDB refuse the request
        placeholder = self.name(name)
        for key, value in entries.items():
            value_key = self.value(value)
            self.sets.append(f"{placeholder}.{self.name(key)} = {value_key}")
            self.actions.append(("set_map_entry", name, key, self.values[value_key]))
        if name == "vendor_refs" and CLEANUP_REF in entries:
            self._mirror_cleanup(entries[CLEANUP_REF])

    def remove(self, name: str) -> None:
        self.removes.append(self.name(name))
        self.actions.append(("remove", name))

    def remove_first(self, name: str, count: int) -> None:
        """REMOVE the first `count` elements of list `name`."""
        placeholder = self.name(name)
        self.removes.extend(f"{placeholder}[{i}]" for i in range(count))
        self.actions.append(("remove_first", name, count))

    # -- on what condition --------------------------------------------------------------------------

    def require_equal_or_below(self, name: str, value: Any, other: str, bound: float) -> None:
        """`name` = value, or `other` below `bound` (either may hold)."""
        first, first_value = self.name(name), self.value(value)
        second, bound_value = self.name(other), self.value(bound)
        self.conditions.append(f"({first} = {first_value} OR {second} < {bound_value})")
        self.checks.append(("equal_or_below", name, self.values[first_value], other, self.values[bound_value]))

    def require_exists(self, key: str = "reference_id") -> None:
        """The item (or the attribute `key`) exists (an update never creates an item)."""
        self.conditions.append(f"attribute_exists({self.name(key)})")
        self.checks.append(("exists", key))

    def require_absent(self, name: str) -> None:
        self.conditions.append(f"attribute_not_exists({self.name(name)})")
        self.checks.append(("absent", name))

    def require_equal(self, name: str, value: Any) -> None:
        placeholder = self.value(value)
        self.conditions.append(f"{self.name(name)} = {placeholder}")
        self.checks.append(("equal", name, self.values[placeholder]))

    def require_in(self, name: str, values: list[Any]) -> None:
        if not values:  # DynamoDB refuses `IN ()`: a transition from no status is a mistake in the caller
            raise ValueError(f"no {name} to require: the condition could never hold")
        placeholders = [self.value(v) for v in values]
        self.conditions.append(f"{self.name(name)} IN ({', '.join(placeholders)})")
        self.checks.append(("in", name, [self.values[p] for p in placeholders]))

    def require_absent_or_equal(self, name: str, value: Any) -> None:
        placeholder, value_key = self.name(name), self.value(value)
        self.conditions.append(f"(attribute_not_exists({placeholder}) OR {placeholder} = {value_key})")
        self.checks.append(("absent_or_equal", name, self.values[value_key]))

    def require_map_entry_not(self, name: str, key: str, value: Any) -> None:
        """Map `name` has no entry `key`, or one other than `value`."""
        path, value_key = f"{self.name(name)}.{self.name(key)}", self.value(value)
        self.conditions.append(f"(attribute_not_exists({path}) OR {path} <> {value_key})")
        self.checks.append(("map_entry_not", name, key, self.values[value_key]))

    def require_absent_or_below(self, name: str, value: float) -> None:
        placeholder, value_key = self.name(name), self.value(value)
        self.conditions.append(f"(attribute_not_exists({placeholder}) OR {placeholder} < {value_key})")
        self.checks.append(("absent_or_below", name, self.values[value_key]))

    def placeholders(self) -> dict[str, Any]:
        """ExpressionAttributeNames and ExpressionAttributeValues, each only when it has entries:
        DynamoDB refuses an empty one (a REMOVE on condition that the item exists has no values)."""
        declared: dict[str, Any] = {}
        if self.names:
            declared["ExpressionAttributeNames"] = self.names
        if self.values:
            declared["ExpressionAttributeValues"] = self.values
        return declared

    def expression(self) -> str:
        parts = [f"SET {', '.join(self.sets)}"] if self.sets else []
        if self.removes:
            parts.append(f"REMOVE {', '.join(self.removes)}")
        return " ".join(parts)

    def condition(self) -> str:
        return " AND ".join(self.conditions)


# --- batches ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchWrite:
    applied: bool
    batch: Batch | None  # after the write when applied; as found when not (None: no such batch)


def batch_item(batch: Batch) -> dict[str, Any]:
    return {k: to_dynamo(v) for k, v in batch.model_dump(mode="json", exclude_none=True).items()}


def item_to_batch(item: dict[str, Any]) -> Batch:
    return Batch.model_validate({k: _plain(_deserializer.deserialize(v)) for k, v in item.items()})


class DynamoBatchStore(_ConditionalTable):
    """The BatchStore (handoff.ports) on the BatchesTable (key batch_ref): one conditional write
    per change, through three requests (`_put`, `_update`, `_delete`) and one read (`_read`)."""

    key_name = "batch_ref"

    def create(self, batch: Batch) -> BatchWrite:
        """Write a new batch unless its batch_ref is taken (then: the batch that holds it)."""
        condition = _Update()
        condition.require_absent("batch_ref")
        written, current = self._put(batch_item(batch), condition)
        if not written:
            return BatchWrite(False, item_to_batch(current) if current else None)
        return BatchWrite(True, batch)

    def get(self, batch_ref: str) -> Batch | None:
        item = self._read(batch_ref)
        return item_to_batch(item) if item else None

    def record_vendor_batch(self, batch_ref: str, vendor_batch_id: str) -> BatchWrite:
        """The vendor created the batch: keep its id (once; an id already there stays)."""
        update = _Update()
        update.set("vendor_batch_id", vendor_batch_id)
        update.set("updated_at", utc_now())
        update.increment("version")
        update.require_exists("batch_ref")
        update.require_absent("vendor_batch_id")
        return self._write(batch_ref, update)

    def forget(self, batch_ref: str) -> None:
        """Remove a batch the vendor never created (its creation failed): nothing half-written."""
        condition = _Update()
        condition.require_absent("vendor_batch_id")
        self._delete(batch_ref, condition)

    def discard(self, batch_ref: str) -> None:
        """Remove a batch that was never sized (a bulk's new batch that took no job)."""
        condition = _Update()
        condition.require_absent("expected_jobs")
        self._delete(batch_ref, condition)

    def close(self, batch_ref: str, expected_jobs: int) -> BatchWrite:
        """Fix the batch's size: it completes when `expected_jobs` jobs are final. Closing again
        with the same size is applied again; with another size, refused."""
        update = _Update()
        update.set("expected_jobs", expected_jobs)
        update.set_if_absent("closed_at", utc_now())
        update.set("updated_at", utc_now())
        update.increment("version")
        update.require_exists("batch_ref")
        update.require_absent_or_equal("expected_jobs", expected_jobs)
        return self._write(batch_ref, update)

    def claim_completion(self, batch_ref: str, counts: dict[str, int], claimant: str, lease_until: float) -> BatchWrite:
        """Claim the batch's one `Batch Completed` event: applied for exactly one caller, ever.
        `claimant` holds the publication until `lease_until` (epoch s)."""
        now = utc_now()
        update = _Update()
        update.set("completed_at", now)
        update.set("final_counts", counts)
        update.set("claimant", claimant)
        update.set("publishing_until", round(lease_until, 3))
        update.set("updated_at", now)
        update.increment("version")
        update.require_exists("batch_ref")
        update.require_absent("completed_at")
        return self._write(batch_ref, update)

    def take_publication(self, batch_ref: str, claimant: str, now: float, lease_until: float) -> BatchWrite:
        """Publish a claimed completion that is not published yet: the claimant itself again (its
        stream record retried after a crash), or anyone once the claimant's lease has run out."""
        update = _Update()
        update.set("claimant", claimant)
        update.set("publishing_until", round(lease_until, 3))
        update.require_exists("batch_ref")
        update.require_exists("completed_at")
        update.require_absent("published_at")
        update.require_equal_or_below("claimant", claimant, "publishing_until", round(now, 3))
        return self._write(batch_ref, update)

    def mark_published(self, batch_ref: str) -> BatchWrite:
        update = _Update()
        update.set("published_at", utc_now())
        update.remove("publishing_until")
        update.require_exists("batch_ref")
        update.require_absent("published_at")
        return self._write(batch_ref, update)

    def _write(self, batch_ref: str, update: _Update) -> BatchWrite:
        new, old = self._update(batch_ref, update)
        if new is None:
            return BatchWrite(False, item_to_batch(old) if old else None)
        return BatchWrite(True, item_to_batch(new))

    # -- the requests ---------------------------------------------------------------------------------

    def _delete(self, batch_ref: str, condition: _Update) -> None:
        _conditional(
            self.client.delete_item,
            TableName=self.table_name,
            Key={"batch_ref": {"S": batch_ref}},
            ConditionExpression=condition.condition(),
            **condition.placeholders(),
        )

    def _read(self, batch_ref: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table_name, Key={"batch_ref": {"S": batch_ref}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = response.get("Item")
        return item


def _stale_jobs(items: list[dict[str, Any]]) -> list[StaleJob]:
    """Index items (keys, status, updated_at, vendor) as the reconciler's candidates."""
    return [
        StaleJob(
            i["reference_id"]["S"],
            JobStatus(i["status"]["S"]),
            i["updated_at"]["S"],
            i.get("vendor", {}).get("S", ""),
        )
        for i in items
    ]
