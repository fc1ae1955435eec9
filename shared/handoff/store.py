"""JobStore: every DynamoDB read and write of a job.

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

from handoff.itemsize import item_size
from handoff.lifecycle import Transition
from handoff.models import HistoryEntry, Job, JobError, JobStatus

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
STORED_BUDGETS = {"request": 256 * 1024, "result": 64 * 1024, "last_error": 8 * 1024}
HISTORY_DETAIL_LIMIT = 500


def stored_size(name: str, value: Any) -> int:
    """The bytes DynamoDB counts for attribute `name` holding `value` as the store writes it.
    Raises ValueError for a JSON-text attribute that strict JSON cannot carry (NaN, infinities)."""
    return item_size({name: attribute(name, value)})


def fits(name: str, value: Any) -> bool:
    """Whether `value` may be stored inline as `name` (strict JSON, within STORED_BUDGETS)."""
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
    code, message = str(error.get("code", "")), str(error.get("message", ""))
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


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def item_to_job(item: dict[str, Any]) -> Job:
    plain = {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}
    for name in JSON_TEXT_ATTRIBUTES:
        # Items written before these became JSON text hold maps: read both.
        if isinstance(plain.get(name), str):
            plain[name] = json.loads(plain[name])
    return Job.model_validate(plain)


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


class JobStore:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("dynamodb")
        return self._client

    def create(self, job: Job) -> CreateOutcome:
        return self._put(job, "attribute_not_exists(reference_id)", {}, {})

    def replace(self, job: Job, existing: Job) -> CreateOutcome:
        """Put `job` in place of `existing`, only if that is still exactly as read (same version,
        FAILED, no vendor job). The history carries on; `job` takes the next version."""
        history = [*existing.history, *job.history][-HISTORY_LIMIT:]
        replacement = job.model_copy(
            update={"history": history, "version": existing.version + 1, "created_at": existing.created_at}
        )
        return self._put(
            replacement,
            "#status = :failed AND #version = :version AND attribute_not_exists(vendor_job_id)",
            {"#status": "status", "#version": "version"},
            {":failed": {"S": JobStatus.FAILED.value}, ":version": {"N": str(existing.version)}},
        )

    def _put(self, job: Job, condition: str, names: dict[str, str], values: dict[str, Any]) -> CreateOutcome:
        """One conditional PutItem of the whole job: created, or the item as it stands."""
        item = {k: attribute(k, v) for k, v in job.model_dump(mode="json", exclude_none=True).items()}
        extra = {"ExpressionAttributeNames": names, "ExpressionAttributeValues": values} if names else {}
        written, current = _conditional(
            self.client.put_item,
            TableName=self.table_name,
            Item=item,
            ConditionExpression=condition,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
            **extra,
        )
        if written is None:  # refused: what holds the reference_id now (or the job, if nothing does)
            return CreateOutcome(created=False, job=item_to_job(current) if current else job)
        return CreateOutcome(created=True, job=job)

    def get(self, reference_id: str) -> Job | None:
        response = self.client.get_item(
            TableName=self.table_name, Key={"reference_id": {"S": reference_id}}, ConsistentRead=True
        )
        item = response.get("Item")
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
        vendor: str | None = None,
        vendor_job_id: str | None = None,
    ) -> TransitionOutcome:
        """Move the job to `transition.target` if its status is one of `transition.allowed_from`.

        One UpdateItem: the status, updated_at, version, a history entry, and any extra fields
        change together or not at all. A failed condition writes nothing and reports the job as
        it stands. `vendor` requires the job to belong to that vendor; `vendor_job_id` requires
        the stored vendor job id to be absent (it is then recorded) or equal.
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

        allowed = sorted(s.value for s in transition.allowed_from)
        condition = f"attribute_exists(reference_id) AND #status IN ({', '.join(update.values_for(allowed))})"
        if require_no_vendor_job:
            condition += f" AND attribute_not_exists({update.name('vendor_job_id')})"
        if vendor is not None:
            condition += f" AND {update.name('vendor')} = {update.value(vendor)}"
        if vendor_job_id is not None:
            update.set_if_absent("vendor_job_id", vendor_job_id)
            jid = update.name("vendor_job_id")
            condition += f" AND (attribute_not_exists({jid}) OR {jid} = {update.value(vendor_job_id)})"
        response, old = self._update(reference_id, update, condition)
        if response is None:
            return TransitionOutcome(applied=False, job=item_to_job(old) if old else None)
        job = item_to_job(response["Attributes"])
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
        lease = update.name("lease_until")
        condition = (
            f"{update.name('status')} = {update.value(JobStatus.QUEUED.value)}"
            f" AND (attribute_not_exists({lease}) OR {lease} < {update.value(round(now, 3))})"
        )
        response, old = self._update(reference_id, update, condition)
        if response is None:
            return ClaimOutcome(claimed=False, job=item_to_job(old) if old else None)
        return ClaimOutcome(claimed=True, job=item_to_job(response["Attributes"]))

    def release(self, reference_id: str) -> None:
        """End a claim without a verdict (the attempt did not happen)."""
        update = _Update()
        update.remove("lease_until")
        self._update(reference_id, update, "attribute_exists(reference_id)")

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
        condition = f"{update.name('status')} = {update.value(JobStatus.QUEUED.value)}"
        response, old = self._update(reference_id, update, condition)
        if response is None:
            return item_to_job(old) if old else None
        return item_to_job(response["Attributes"])

    def record_vendor_ids(self, reference_id: str, vendor_job_id: str, vendor_refs: dict[str, str]) -> Job | None:
        """Record the vendor's ids without touching the status (ids already recorded are kept)."""
        update = _Update()
        update.set_if_absent("vendor_job_id", vendor_job_id)
        update.set_map_entries("vendor_refs", vendor_refs)
        response, _ = self._update(reference_id, update, "attribute_exists(reference_id)")
        return item_to_job(response["Attributes"]) if response else None

    def record_vendor_refs(self, reference_id: str, refs: dict[str, str]) -> None:
        """Checkpoint a multi-step submission's vendor ids (no status change)."""
        update = _Update()
        update.set_map_entries("vendor_refs", refs)
        update.set("updated_at", utc_now())
        self._update(reference_id, update, "attribute_exists(reference_id)")

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
        found: list[StaleJob] = []
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
            found.extend(
                StaleJob(
                    i["reference_id"]["S"],
                    JobStatus(i["status"]["S"]),
                    i["updated_at"]["S"],
                    i.get("vendor", {}).get("S", ""),
                )
                for i in response.get("Items", [])
            )
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found

    def mark_checked(self, reference_id: str, status: JobStatus) -> bool:
        """Note that the reconciler looked at the job and found nothing new (no status change).

        updated_at moves too, so the job goes to the back of the reconciler's line and the next
        run starts with jobs it has not looked at yet.
        """
        now = utc_now()
        update = _Update()
        update.set("updated_at", now)
        update.set("checked_at", now)
        condition = f"{update.name('status')} = {update.value(status.value)}"
        response, _ = self._update(reference_id, update, condition)
        return response is not None

    def _update(self, reference_id: str, update: _Update, condition: str) -> tuple[Any, dict[str, Any] | None]:
        """One conditional UpdateItem: (response, None) when applied, (None, item as found) when not."""
        return _conditional(
            self.client.update_item,
            TableName=self.table_name,
            Key={"reference_id": {"S": reference_id}},
            UpdateExpression=update.expression(),
            ConditionExpression=condition,
            ExpressionAttributeNames=update.names,
            ExpressionAttributeValues=update.values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def _trim_history(self, reference_id: str, drop: int) -> Job | None:
        # Rare (a job with more than HISTORY_LIMIT status changes): one extra write drops the oldest.
        response = self.client.update_item(
            TableName=self.table_name,
            Key={"reference_id": {"S": reference_id}},
            UpdateExpression="REMOVE " + ", ".join(f"#history[{i}]" for i in range(drop)),
            ConditionExpression="attribute_exists(reference_id)",
            ExpressionAttributeNames={"#history": "history"},
            ReturnValues="ALL_NEW",
        )
        return item_to_job(response["Attributes"])


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
    """Builds one UpdateExpression. Only names and values that a clause uses are declared:
    DynamoDB rejects unused ones."""

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def value(self, value: Any) -> str:
        key = f":v{len(self.values)}"
        self.values[key] = to_dynamo(value)
        return key

    def values_for(self, values: list[Any]) -> list[str]:
        return [self.value(v) for v in values]

    def name(self, name: str) -> str:
        key = f"#{name}"
        self.names[key] = name
        return key

    def set(self, name: str, value: Any) -> None:
        if name in JSON_TEXT_ATTRIBUTES:
            value = json_text(value)
        self.sets.append(f"{self.name(name)} = {self.value(value)}")

    def set_if_absent(self, name: str, value: Any) -> None:
        placeholder = self.name(name)
        self.sets.append(f"{placeholder} = if_not_exists({placeholder}, {self.value(value)})")

    def increment(self, name: str) -> None:
        placeholder = self.name(name)
        self.values[":zero"], self.values[":one"] = to_dynamo(0), to_dynamo(1)
        self.sets.append(f"{placeholder} = if_not_exists({placeholder}, :zero) + :one")

    def append(self, name: str, entry: Any) -> None:
        placeholder = self.name(name)
        self.values[":empty"] = to_dynamo([])
        self.sets.append(f"{placeholder} = list_append(if_not_exists({placeholder}, :empty), {self.value([entry])})")

    def set_map_entries(self, name: str, entries: dict[str, Any]) -> None:
        """SET name.key = value for each entry (the map itself must exist: jobs are created with one)."""
        placeholder = self.name(name)
        self.sets.extend(f"{placeholder}.{self.name(k)} = {self.value(v)}" for k, v in entries.items())

    def remove(self, name: str) -> None:
        self.removes.append(self.name(name))

    def expression(self) -> str:
        parts = [f"SET {', '.join(self.sets)}"] if self.sets else []
        if self.removes:
            parts.append(f"REMOVE {', '.join(self.removes)}")
        return " ".join(parts)
