"""Keeping every function's submissions under a vendor's rate limit: a limiter shared through DynamoDB.

Vendors document how many job-creation requests per second they take (REFERENCE.md). Several
workers run at once (the queue's MaximumConcurrency) and each process knows nothing of the others,
so the pace is kept in one place: a RateLimitTable item per vendor holding `next_slot`, the earliest time the next
request may start. `reserve` takes that slot and moves it on by one interval with ONE conditional
UpdateItem, then the caller sleeps until its slot. Every request therefore starts at least one
interval after the one before it, whichever function sends it, and no one-second window can hold
more than the limit. The interval is stretched by HEADROOM (10%), and a request may start at most
LATENESS_ALLOWANCE after its slot (checked at the moment it is sent: vendors/base.send), so the
requests of any one-second window are those whose slots lie in a 1 + LATENESS_ALLOWANCE second
span: at most limit x (1 + LATENESS_ALLOWANCE) / (1 + HEADROOM). What is left, HEADROOM -
LATENESS_ALLOWANCE = 0.08 s, absorbs what happens after the check and before the vendor counts the
request (a CPU stall, the network, clock skew between functions).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

from botocore.exceptions import ClientError

from handoff.ports import RateLimiter

__all__ = ["HEADROOM", "LATENESS_ALLOWANCE", "RateLimiter", "SharedRateLimiter", "Unlimited"]

HEADROOM = 0.1  # the pace is limit / 1.1 per second
LATENESS_ALLOWANCE = 0.02  # seconds a request may start after its slot; the rest of HEADROOM is margin


class Unlimited:
    def rate(self, vendor: str) -> float | None:
        return None

    def reserve(self, vendor: str, max_wait: float) -> float | None:
        return 0.0


class SharedRateLimiter:
    def __init__(
        self,
        table_name: str,
        client: Any,
        rates: dict[str, float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table_name = table_name
        self.client = client
        self.rates = rates  # vendor -> requests per second; a vendor not listed is not limited
        self.clock = clock
        # Which write to try first, from what this process saw last: a lone submission usually
        # finds the schedule idle, a bulk run finds it running. A wrong guess costs one failed write.
        self._running: dict[str, bool] = {}

    def rate(self, vendor: str) -> float | None:
        return self.rates.get(vendor) or None

    def interval(self, vendor: str) -> float | None:
        rate = self.rate(vendor)
        return (1.0 + HEADROOM) / rate if rate else None

    def reserve(self, vendor: str, max_wait: float) -> float | None:
        interval = self.interval(vendor)
        if interval is None:
            return 0.0
        try_running_first = self._running.get(vendor, False)
        for _ in range(8):  # each round either reserves or learns that another writer moved the slot
            now = self.clock()
            if not try_running_first:
                # Idle (no slot yet, or it lies in the past): start the schedule at now.
                started, _ = self._update(
                    vendor,
                    "SET #slot = :next",
                    "attribute_not_exists(#slot) OR #slot < :now",
                    {":next": now + interval, ":now": now},
                )
                if started is not None:
                    self._running[vendor] = False
                    # The schedule was idle: nobody's request is near ours, so it goes at once
                    # however long the write took (the next slot is `now` + one interval).
                    return 0.0
            try_running_first = False
            # The schedule is running: take the next slot if it is close enough.
            taken, found = self._update(
                vendor,
                "SET #slot = #slot + :interval",
                "#slot >= :now AND #slot <= :latest",
                {":interval": interval, ":now": now, ":latest": now + max_wait},
                ReturnValues="UPDATED_OLD",
            )
            slot = taken.get("Attributes", {}).get("next_slot") if taken is not None else None
            if slot is not None:
                self._running[vendor] = True
                # Measured after the write: the time the write itself took is not waited twice, and
                # a slot the write took us past comes back negative (the caller takes another: sent
                # now, it would crowd the requests after it into one second).
                return float(slot["N"]) - self.clock()
            if found is not None and float(found["next_slot"]["N"]) > now + max_wait:
                self._running[vendor] = True
                return None  # busy: the next free slot is further away than the caller can wait
        return None

    def _update(
        self, vendor: str, expression: str, condition: str, values: dict[str, float], **extra: Any
    ) -> tuple[Any, dict[str, Any] | None]:
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key={"vendor": {"S": vendor}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#slot": "next_slot"},
                ExpressionAttributeValues={k: {"N": _number(v)} for k, v in values.items()},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **extra,
            )
            return response, None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            item = cast(dict[str, Any], exc.response).get("Item")
            return None, item if isinstance(item, dict) and "next_slot" in item else None


def _number(value: float) -> str:
    return str(Decimal(value).quantize(Decimal("0.000001")))
