"""FakeJobStore: the JobStore (handoff.ports) in memory, for tests of the domain logic.

It is the DynamoDB store with its four requests (`_put`, `_update`, `_read`, `_query`) answered
from a dict instead of the JobsTable: every method builds the same write (handoff.store._Update:
what changes, on what condition) and reads the job back the same way (item_to_job), so history
trimming, budgets, leases and conditions are the store's own code. What is left here is what
DynamoDB itself does with a request, and tests/unit/test_store_contract.py runs the same cases
against this and the moto-backed table so the two cannot drift apart.

`items` holds each job as the table would (DynamoDB JSON), so a test can look at "the item".
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from handoff.itemsize import MAX_ITEM_BYTES, item_size
from handoff.models import Job, JobStatus
from handoff.store import CLEANUP_DUE, SUMMARY_FIELDS, DynamoBatchStore, DynamoJobStore, _Update, item_to_job, job_item

Item = dict[str, Any]


class FakeJobStore(DynamoJobStore):
    def __init__(self) -> None:
        super().__init__("fake-jobs", client=_NoClient())
        self.items: dict[str, Item] = {}
        self.requests: list[str] = []  # "PutItem", "UpdateItem", "GetItem", "Query": what DynamoDB would have seen
        self._lock = threading.Lock()  # DynamoDB applies each request atomically

    # -- what a test looks at ---------------------------------------------------------------------

    def item(self, reference_id: str) -> Item | None:
        """The job's item as the table holds it (DynamoDB JSON), or None."""
        with self._lock:
            return copy.deepcopy(self.items.get(reference_id))

    def jobs(self) -> list[dict[str, Any]]:
        """Every job as JSON (tests.conftest.table_items on the moto table gives the same)."""
        with self._lock:
            items = copy.deepcopy(list(self.items.values()))
        return [item_to_job(i).model_dump(mode="json") for i in items]

    def put_job(self, job: Job) -> None:
        """Write a job as it is, unconditionally (a test's given)."""
        with self._lock:
            self.items[job.reference_id] = job_item(job)

    def set_attribute(self, reference_id: str, name: str, value: Mapping[str, Any]) -> None:
        """Overwrite one attribute of an item, as a hand-made UpdateItem would (a test's given)."""
        with self._lock:
            self.items[reference_id][name] = copy.deepcopy(dict(value))

    # -- the four requests, answered from memory --------------------------------------------------

    def _put(self, item: Item, condition: _Update) -> tuple[bool, Item | None]:
        with self._lock:
            self.requests.append("PutItem")
            key = item["reference_id"]["S"]
            found = self.items.get(key)
            if not _holds(condition.checks, found):
                return False, copy.deepcopy(found)
            _check_size(item, "PutItem")
            self.items[key] = copy.deepcopy(item)
            return True, None

    def _update(self, reference_id: str, update: _Update) -> tuple[Item | None, Item | None]:
        with self._lock:
            self.requests.append("UpdateItem")
            found = self.items.get(reference_id)
            if not _holds(update.checks, found):
                return None, copy.deepcopy(found)
            # An update of a missing item creates it (no store write lets that happen: each requires the item).
            new = copy.deepcopy(found) if found is not None else {"reference_id": {"S": reference_id}}
            for action in update.actions:
                _apply(action, new)
            _check_size(new, "UpdateItem")
            self.items[reference_id] = new
            return copy.deepcopy(new), None

    def _read(self, reference_id: str) -> Item | None:
        with self._lock:
            self.requests.append("GetItem")
            return copy.deepcopy(self.items.get(reference_id))

    def _query(
        self,
        status: JobStatus,
        updated_before: str,
        limit: int,
        vendor: str | None,
        other_than: tuple[str, ...],
    ) -> list[Item]:
        """status-updated_at-index: items with both keys (a sparse index), oldest first, then the
        vendor filter (an item without a vendor matches no `vendor` and passes `other_than`)."""
        with self._lock:
            self.requests.append("Query")
            indexed = [
                i
                for i in self.items.values()
                if _string(i, "status") == status.value and _before(_string(i, "updated_at"), updated_before)
            ]
        indexed.sort(key=lambda i: (i["updated_at"]["S"], i["reference_id"]["S"]))
        if vendor is not None:
            indexed = [i for i in indexed if _string(i, "vendor") == vendor]
        elif other_than:
            indexed = [i for i in indexed if _string(i, "vendor") not in other_than]
        return [
            {k: copy.deepcopy(i[k]) for k in ("reference_id", "status", "updated_at", "vendor") if k in i}
            for i in indexed[:limit]
        ]

    def _query_cleanup(self, limit: int) -> list[Item]:
        """cleanup_due-index: the items that have cleanup_due (a sparse index), oldest first."""
        with self._lock:
            self.requests.append("Query")
            indexed = [i for i in self.items.values() if _string(i, CLEANUP_DUE) and _string(i, "updated_at")]
        indexed.sort(key=lambda i: (i["updated_at"]["S"], i["reference_id"]["S"]))
        return [
            {k: copy.deepcopy(i[k]) for k in ("reference_id", "status", "updated_at", "vendor") if k in i}
            for i in indexed[:limit]
        ]

    def _query_page(
        self,
        key: str,
        value: str,
        upto: str | None,
        after: str | None,
        where: dict[str, str],
        limit: int,
        start: Item | None,
    ) -> tuple[list[Item], Item | None]:
        """A listing index (sparse: items with `key` and updated_at), newest first; `limit` items
        evaluated, then the filter, as DynamoDB applies Limit before FilterExpression."""
        with self._lock:
            self.requests.append("Query")
            indexed = [
                copy.deepcopy(i)
                for i in self.items.values()
                if _string(i, key) == value
                and _string(i, "updated_at") is not None
                and (upto is None or i["updated_at"]["S"] <= upto)
                and (after is None or i["updated_at"]["S"] > after)
            ]
        # DynamoDB leaves the order of equal sort keys open: newest first, then by reference_id
        order = lambda i: (i["updated_at"]["S"], i["reference_id"]["S"])  # noqa: E731
        indexed.sort(key=order, reverse=True)
        if start is not None:
            indexed = [i for i in indexed if order(i) < (start["updated_at"]["S"], start["reference_id"]["S"])]
        evaluated, rest = indexed[:limit], indexed[limit:]
        last = {k: evaluated[-1][k] for k in ("reference_id", key, "updated_at")} if rest else None
        kept = [i for i in evaluated if all(_string(i, name) == wanted for name, wanted in where.items())]
        return [{k: v for k, v in i.items() if k in SUMMARY_FIELDS} for i in kept], last

    def _query_batch(self, batch_ref: str) -> list[Item]:
        """batch_ref-index: the items that have a batch_ref (a sparse index), keys and status."""
        with self._lock:
            self.requests.append("Query")
            return [
                {k: copy.deepcopy(i[k]) for k in ("reference_id", "status") if k in i}
                for i in sorted(self.items.values(), key=lambda i: i["reference_id"]["S"])
                if _string(i, "batch_ref") == batch_ref
            ]


class FakeBatchStore(DynamoBatchStore):
    """The BatchStore in memory: the DynamoDB batch store's own writes, answered from a dict."""

    def __init__(self) -> None:
        super().__init__("fake-batches", client=_NoClient())
        self.items: dict[str, Item] = {}
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def _put(self, item: Item, condition: _Update) -> tuple[bool, Item | None]:
        with self._lock:
            self.requests.append("PutItem")
            key = item["batch_ref"]["S"]
            found = self.items.get(key)
            if not _holds(condition.checks, found):
                return False, copy.deepcopy(found)
            self.items[key] = copy.deepcopy(item)
            return True, None

    def _update(self, batch_ref: str, update: _Update) -> tuple[Item | None, Item | None]:
        with self._lock:
            self.requests.append("UpdateItem")
            found = self.items.get(batch_ref)
            if not _holds(update.checks, found):
                return None, copy.deepcopy(found)
            new = copy.deepcopy(found) if found is not None else {"batch_ref": {"S": batch_ref}}
            for action in update.actions:
                _apply(action, new)
            self.items[batch_ref] = new
            return copy.deepcopy(new), None

    def _delete(self, batch_ref: str, condition: _Update) -> None:
        with self._lock:
            self.requests.append("DeleteItem")
            if _holds(condition.checks, self.items.get(batch_ref)):
                self.items.pop(batch_ref, None)

    def _read(self, batch_ref: str) -> Item | None:
        with self._lock:
            self.requests.append("GetItem")
            return copy.deepcopy(self.items.get(batch_ref))


class _NoClient:
    """The fake never reaches DynamoDB: any request to a client is a mistake in the fake."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"FakeJobStore made a DynamoDB request ({name}); it should answer from memory")


def _string(item: Item, name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


def _before(value: str | None, bound: str) -> bool:
    return value is not None and value < bound


def _holds(checks: list[tuple[Any, ...]], item: Item | None) -> bool:
    """Whether every term of a ConditionExpression holds for `item` (None: no such item)."""
    found = item or {}
    for check in checks:
        kind, name = check[0], check[1]
        present = name in found
        if kind == "exists":
            ok = present
        elif kind == "absent":
            ok = not present
        elif kind == "equal":
            ok = present and _same(found[name], check[2])
        elif kind == "in":
            ok = present and any(_same(found[name], v) for v in check[2])
        elif kind == "absent_or_equal":
            ok = not present or _same(found[name], check[2])
        elif kind == "absent_or_below":
            ok = not present or ("N" in found[name] and Decimal(found[name]["N"]) < Decimal(check[2]["N"]))
        elif kind == "map_entry_not":
            entry = found.get(name, {}).get("M", {}).get(check[2]) if present else None
            ok = entry is None or not _same(entry, check[3])
        elif kind == "equal_or_below":
            other = found.get(check[3])
            ok = (present and _same(found[name], check[2])) or (
                other is not None and "N" in other and Decimal(other["N"]) < Decimal(check[4]["N"])
            )
        else:
            raise AssertionError(f"a condition the fake does not know: {kind}")
        if not ok:
            return False
    return True


def _same(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    """DynamoDB's `=`: same type and value (numbers by value: 1 = 1.0)."""
    if "N" in left and "N" in right:
        return Decimal(left["N"]) == Decimal(right["N"])
    return dict(left) == dict(right)


def _apply(action: tuple[Any, ...], item: Item) -> None:
    kind, name = action[0], action[1]
    if kind == "set":
        item[name] = copy.deepcopy(action[2])
    elif kind == "set_if_absent":
        item.setdefault(name, copy.deepcopy(action[2]))
    elif kind == "increment":
        item[name] = {"N": str(Decimal(item[name]["N"]) + 1 if name in item else Decimal(1))}
    elif kind == "append":
        item[name] = {"L": [*item.get(name, {"L": []})["L"], *copy.deepcopy(action[2]["L"])]}
    elif kind == "set_map_entry":
        if "M" not in item.get(name, {}):
            raise _validation("UpdateItem", "The document path provided in the update expression is invalid for update")
        item[name]["M"][action[2]] = copy.deepcopy(action[3])
    elif kind == "remove":
        item.pop(name, None)
    elif kind == "remove_first":
        if "L" in item.get(name, {}):
            item[name] = {"L": item[name]["L"][action[2] :]}
    else:
        raise AssertionError(f"an update the fake does not know: {kind}")


def _check_size(item: Item, operation: str) -> None:
    if item_size(item) > MAX_ITEM_BYTES:
        raise _validation(operation, "Item size has exceeded the maximum allowed size")


def _validation(operation: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, operation)
