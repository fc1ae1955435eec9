"""A downstream consumer of the local stack's events: takes every event off `events_queue` as it
arrives, as a subscriber to the bus would. Keeping that queue drained also keeps moto's SQS fast
(moto scans a queue's messages on every send and receive)."""

from __future__ import annotations

import json
import threading
from typing import Any

from local.aws import endpoint_client


class EventSubscriber:
    def __init__(self, aws_endpoint: str, queue_url: str) -> None:
        self.sqs = endpoint_client(aws_endpoint, "sqs")
        self.url = queue_url
        self.events: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-subscriber", daemon=True)

    def start(self) -> EventSubscriber:
        self._thread.start()
        return self

    def __enter__(self) -> EventSubscriber:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages = batch.get("Messages", [])
            if messages:
                self.events += [json.loads(m["Body"]) for m in messages]
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
                self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def statuses_by_job(self) -> dict[str, list[str]]:
        """reference_id -> the statuses its events announced, in version order."""
        found: dict[str, list[str]] = {}
        for event in sorted(self.events, key=lambda e: (e["detail"]["reference_id"], e["detail"]["version"])):
            found.setdefault(event["detail"]["reference_id"], []).append(event["detail"]["status"])
        return found
