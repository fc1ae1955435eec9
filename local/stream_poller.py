"""Feeds a DynamoDB stream to a handler the way Lambda's DynamoDB event source does.

Records are handed over in order, up to `batch_size` at a time. When the handler reports
batchItemFailures, reading resumes at the lowest failed sequence number (the records after it
come again), as Lambda does; a handler that raises gets the same batch again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from local.context import LocalContext


class StreamPoller:
    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        handler: Callable[[dict[str, Any], Any], Any],
        *,
        function_name: str = "EventPublisherFunction",
        batch_size: int = 100,
        interval: float = 0.25,
    ) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.handler = handler
        self.function_name = function_name
        self.batch_size = batch_size
        self.interval = interval
        self._iterators: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-poller", daemon=True)

    def poll_once(self) -> int:
        handed = 0
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            page = self.streams.get_records(ShardIterator=self._iterators[shard_id], Limit=self.batch_size)
            records = page.get("Records", [])
            if not records:
                self._iterators[shard_id] = page.get("NextShardIterator") or self._iterators[shard_id]
                continue
            event = {"Records": [{**r, "eventSourceARN": self.stream_arn} for r in records]}
            try:
                answer = self.handler(event, LocalContext(self.function_name, 60))
                failed = [f["itemIdentifier"] for f in (answer or {}).get("batchItemFailures", [])]
            except Exception:
                failed = [records[0]["dynamodb"]["SequenceNumber"]]
            if failed:
                self._iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn,
                    ShardId=shard_id,
                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                    SequenceNumber=min(failed, key=int),
                )["ShardIterator"]
            else:
                self._iterators[shard_id] = page["NextShardIterator"]
            handed += len(records)
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
