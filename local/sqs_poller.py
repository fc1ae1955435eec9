"""Feeds an SQS queue to a handler the way Lambda's SQS event source does.

moto's own SQS -> Lambda mapping calls the function inside SendMessage and ignores
batchItemFailures (../notes/local-aws.md §2d), so the local stack and the tests poll themselves:
receive up to `batch_size` messages, call the handler with a real SQS event, and delete exactly
the records the handler did not report in batchItemFailures (nothing at all if it raised). What
is not deleted comes back when its visibility ends, as the handler set it, and SQS's redrive
policy moves it to the dead-letter queue after maxReceiveCount receives. `concurrency` threads
poll at once, as MaximumConcurrency invocations would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from local.context import LocalContext

Handler = Callable[[dict[str, Any], Any], Any]
EMPTY_SHORT_POLL_PAUSE = 0.02  # seconds between short polls that found nothing


class SqsPoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        function_name: str = "SubmissionWorker",
        batch_size: int = 5,
        concurrency: int = 2,
        wait_seconds: int = 1,
        timeout_seconds: float = 120.0,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.handler = handler
        self.function_name = function_name
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.wait_seconds = wait_seconds
        self.timeout_seconds = timeout_seconds
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def poll_once(self) -> int:
        """One receive -> invoke -> delete round; returns how many records were handed over."""
        received = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return 0
        event = {"Records": [self._record(m) for m in received]}
        try:
            response = self.handler(event, LocalContext(self.function_name, self.timeout_seconds))
        except Exception:  # like Lambda: a crashed invocation returns every record to the queue
            with self._lock:
                self.errors += 1
            return len(received)
        failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        done = [m for m in received if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(received)

    def start(self) -> None:
        self._stop.clear()
        for n in range(self.concurrency):
            thread = threading.Thread(target=self._run, name=f"{self.function_name}-poller-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, wait: bool = True) -> None:
        """Stop polling. wait: until each poller's receive (a long poll of `wait_seconds`) and
        invocation are over; else return at once and let them end by themselves (daemon threads
        that start nothing more): the stack stopping its functions and moto just after."""
        self._stop.set()
        for thread in self._threads if wait else ():
            thread.join(timeout=self.wait_seconds + self.timeout_seconds)
        self._threads.clear()

    def __enter__(self) -> SqsPoller:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                received = self.poll_once()
            except Exception:  # a poller outlives a failed receive, as Lambda's does
                self._stop.wait(0.5)
                continue
            if not received and self.wait_seconds == 0:
                # Short polling (tests against moto in-process, where a long poll would hold the
                # serialised moto for its whole wait): an empty queue is looked at again shortly,
                # never in a busy loop that starves the handler's and the vendor's threads.
                self._stop.wait(EMPTY_SHORT_POLL_PAUSE)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.queue_arn.split(":")[3],
        }
