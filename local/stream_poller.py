"""Feeds a DynamoDB stream to a handler the way Lambda's DynamoDB event source does, with the
mapping's own settings (`EventSourceMapping`, read from the template's event by local/stack.py).
AWS's words: "Lambda parameters for Amazon DynamoDB event source mappings", "Retaining discarded
records for a DynamoDB event source", "Configuring partial batch response with DynamoDB".

- Each shard is read in order from `StartingPosition`, up to `BatchSize` records a batch.
- A function error (the handler raised or timed out) fails the whole batch. With
  `BisectBatchOnFunctionError` a failed batch of several records is split in two halves, each
  retried on its own, the first half first, down to single records; splitting does not count
  as a retry. Otherwise the same batch is retried.
- With `ReportBatchItemFailures` in `FunctionResponseTypes`, an answer listing batchItemFailures
  means the records before the lowest failed sequence number are done: the rest of the batch,
  from that record on, is retried (a retry of the batch). An empty or null list, or no answer,
  is a success; a failure whose itemIdentifier is empty, null, under another key (or names no
  record of the batch) makes the whole batch a failure, as a function error. Without
  `ReportBatchItemFailures` the answer is not read.
- A batch that fails again after `MaximumRetryAttempts` retries (-1: no limit, as AWS until the
  record expires) is given up: a description of it is sent to the `OnFailure` destination (an
  SQS queue), the JSON document Lambda sends for a stream (requestContext, responseContext,
  version, timestamp, DDBStreamBatchInfo: shardId, start and end sequence numbers, approximate
  arrival of the first and last record, batchSize, streamArn), and reading goes on after it.
  Without a destination the batch is dropped, as Lambda drops it (a line on stderr says so).

Records are not read again from the stream to retry them: the poller keeps the batches still to
be retried, and reads on only when none are left, so a shard's records stay in order. Before a
retry of the same records the shard pauses `retry_interval` seconds (a transient fault may pass);
the halves of a split batch are tried at once.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local.context import LocalContext

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class EventSourceMapping:
    """The settings of a DynamoDB event source that the poller acts on (AWS's defaults)."""

    batch_size: int = 100
    starting_position: str = "TRIM_HORIZON"
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = -1  # -1: retried until the record expires (locally: forever)
    report_batch_item_failures: bool = False
    on_failure: str = ""  # the URL of the SQS queue given-up batches are described to; "" none

    @classmethod
    def from_sam_event(cls, properties: Mapping[str, Any], queue_url: Callable[[str], str]) -> EventSourceMapping:
        """From the Properties of a SAM `Type: DynamoDB` event; `queue_url` gives the URL of the
        stack's queue by logical id (the destination is named by `!GetAtt Queue.Arn`)."""
        on_failure = ""
        destination = properties.get("DestinationConfig", {}).get("OnFailure")
        if destination:
            if destination.get("Type", "SQS") != "SQS":
                raise ValueError(f"the local stream poller sends given-up batches to SQS only, not {destination}")
            on_failure = queue_url(_logical_id(destination["Destination"]))
        return cls(
            batch_size=int(properties.get("BatchSize", cls.batch_size)),
            starting_position=str(properties.get("StartingPosition", cls.starting_position)),
            bisect_batch_on_function_error=bool(properties.get("BisectBatchOnFunctionError", False)),
            maximum_retry_attempts=int(properties.get("MaximumRetryAttempts", cls.maximum_retry_attempts)),
            report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
            on_failure=on_failure,
        )


def _logical_id(reference: Any) -> str:
    """`EventsDLQ` from {"Fn::GetAtt": ["EventsDLQ", "Arn"]} (or "EventsDLQ.Arn")."""
    if isinstance(reference, Mapping) and "Fn::GetAtt" in reference:
        target = reference["Fn::GetAtt"]
        return str(target[0] if isinstance(target, list) else str(target).split(".", 1)[0])
    if isinstance(reference, Mapping) and "Ref" in reference:
        return str(reference["Ref"])
    raise ValueError(f"an OnFailure destination the local stack cannot resolve: {reference!r}")


@dataclass
class _Batch:
    records: list[dict[str, Any]]
    retries: int = 0  # retries spent on these records (a split keeps the count, does not add to it)


@dataclass
class _Shard:
    iterator: str
    pending: deque[_Batch] = field(default_factory=deque)  # batches read and still to be retried
    not_before: float = 0.0  # monotonic time before which the shard waits (after a failure)


class _FunctionError(Exception):
    pass


class StreamPoller:
    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        handler: Handler,
        *,
        mapping: EventSourceMapping | None = None,
        sqs: Any = None,
        function_name: str = "EventPublisherFunction",
        timeout_seconds: float = 60.0,
        interval: float = 0.25,
        retry_interval: float = 0.25,
    ) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.handler = handler
        self.mapping = mapping or EventSourceMapping()
        if self.mapping.on_failure and sqs is None:
            raise ValueError("an OnFailure destination needs an SQS client")
        self.sqs = sqs
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.interval = interval
        self.retry_interval = retry_interval
        self.invocations = 0
        self.given_up = 0  # batches given up after their retries
        self._shards: dict[str, _Shard] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-poller", daemon=True)

    def poll_once(self) -> int:
        """One invocation per shard that has records (waiting ones skipped); how many records were
        handed over."""
        handed = 0
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for description in shards:
            shard_id = description["ShardId"]
            if shard_id not in self._shards:
                iterator = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType=self.mapping.starting_position
                )["ShardIterator"]
                self._shards[shard_id] = _Shard(iterator)
            shard = self._shards[shard_id]
            if time.monotonic() < shard.not_before:
                continue
            if not shard.pending:
                page = self.streams.get_records(ShardIterator=shard.iterator, Limit=self.mapping.batch_size)
                shard.iterator = page.get("NextShardIterator") or shard.iterator
                if not page.get("Records"):
                    continue
                shard.pending.append(_Batch(list(page["Records"])))
            handed += self._invoke(shard_id, shard)
        return handed

    def start(self) -> StreamPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.poll_once():
                    self._stop.wait(self.interval)
            except Exception:  # keep polling, as Lambda's event source does
                self._stop.wait(1.0)

    # -- one invocation and what follows from it -----------------------------------------------------

    def _invoke(self, shard_id: str, shard: _Shard) -> int:
        batch = shard.pending[0]
        context = LocalContext(self.function_name, self.timeout_seconds)
        event = {"Records": [{**record, "eventSourceARN": self.stream_arn} for record in batch.records]}
        self.invocations += 1
        try:
            try:
                answer = self.handler(event, context)
            except Exception as exc:
                raise _FunctionError from exc
            failed = self._failed_from(answer, batch)
        except _FunctionError:
            self._after_function_error(shard_id, shard, context)
        else:
            if failed is None:
                shard.pending.popleft()
            else:
                self._after_partial_failure(shard_id, shard, failed, context)
        return len(batch.records)

    def _failed_from(self, answer: Any, batch: _Batch) -> int | None:
        """The index in the batch of the lowest failed record; None: all succeeded."""
        if not self.mapping.report_batch_item_failures or answer is None:
            return None
        if not isinstance(answer, Mapping):
            raise _FunctionError
        failures = answer.get("batchItemFailures")
        if not failures:
            return None
        if not isinstance(failures, list):
            raise _FunctionError
        sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in batch.records]
        indexes = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
            if not isinstance(identifier, str) or identifier not in sequence_numbers:
                raise _FunctionError  # Lambda: the whole batch failed
            indexes.append(sequence_numbers.index(identifier))
        return min(indexes)

    def _after_function_error(self, shard_id: str, shard: _Shard, context: LocalContext) -> None:
        batch = shard.pending[0]
        if self.mapping.bisect_batch_on_function_error and len(batch.records) > 1:
            half = (len(batch.records) + 1) // 2
            shard.pending.popleft()
            shard.pending.appendleft(_Batch(batch.records[half:], batch.retries))
            shard.pending.appendleft(_Batch(batch.records[:half], batch.retries))
        elif self._exhausted(batch):
            self._give_up(shard_id, batch.records, batch.retries, context, function_error="Unhandled")
            shard.pending.popleft()
        else:
            batch.retries += 1
            shard.not_before = time.monotonic() + self.retry_interval

    def _after_partial_failure(self, shard_id: str, shard: _Shard, failed: int, context: LocalContext) -> None:
        batch = shard.pending[0]
        rest = batch.records[failed:]
        if self._exhausted(batch):
            self._give_up(shard_id, rest, batch.retries, context, function_error=None)
            shard.pending.popleft()
        else:
            shard.pending[0] = _Batch(rest, batch.retries + 1)
            shard.not_before = time.monotonic() + self.retry_interval

    def _exhausted(self, batch: _Batch) -> bool:
        limit = self.mapping.maximum_retry_attempts
        return limit >= 0 and batch.retries >= limit

    def _give_up(
        self,
        shard_id: str,
        records: list[dict[str, Any]],
        retries: int,
        context: LocalContext,
        *,
        function_error: str | None,
    ) -> None:
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if function_error:
            response_context["functionError"] = function_error
        message = {
            "requestContext": {
                "requestId": context.aws_request_id,
                "functionArn": context.invoked_function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": retries + 1,
            },
            "responseContext": response_context,
            "version": "1.0",
            "timestamp": _iso(datetime.now(UTC)),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first.get("ApproximateCreationDateTime")),
                "approximateArrivalOfLastRecord": _iso(last.get("ApproximateCreationDateTime")),
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
        }
        if self.mapping.on_failure:
            self.sqs.send_message(QueueUrl=self.mapping.on_failure, MessageBody=json.dumps(message))
        else:
            print(f"[stream-poller] batch given up and dropped (no OnFailure destination): {message}", file=sys.stderr)
        self.given_up += 1


def _iso(moment: Any) -> str:
    """ISO 8601 in UTC with milliseconds and Z, as Lambda writes its timestamps."""
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    if not isinstance(moment, datetime):
        moment = datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
