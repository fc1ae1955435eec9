"""SubmissionQueue: the SQS queue that carries jobs still to be submitted (bulk, and retries).

A message is only a pointer, {"reference_id": ...}: the job's request lives in the table, which
is written before the message is sent, so a message can never hold a request the table does not.
Retries do not send new messages: the worker changes the visibility of the one it holds, so
SQS's receive count is the attempt count and the redrive policy moves a job that used up its
attempts to the dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from handoff.backoff import MAX_DELAY_SECONDS
from handoff.models import SubmissionMessage
from handoff.observability import logger, record_threads

BATCH_LIMIT = 10  # SendMessageBatch takes at most 10 entries


class Disposition(StrEnum):
    """What becomes of a received message (the SQS-fed functions' one vocabulary)."""

    DONE = "done"  # delete it
    RETRY = "retry"  # visible again after `delay` seconds
    GIVE_UP = "give_up"  # visible at once, so the redrive policy moves it to the dead-letter queue
    POISON = "poison"  # not ours to read: the same way, after the remaining receives


@dataclass(frozen=True)
class MessageOutcome:
    disposition: Disposition
    delay: int = 0  # seconds (RETRY)
    reason: str = ""


class NotDone(Exception):
    """The record stays in its queue (reported in batchItemFailures); its visibility has been set."""


def settle(outcome: MessageOutcome, receipt_handle: str, queue: Any) -> None:
    """Act on a record's outcome: nothing for DONE (the batch processor deletes it), else make it
    visible again after `outcome.delay` (0 for GIVE_UP and POISON) and raise NotDone."""
    if outcome.disposition is Disposition.DONE:
        return
    queue.retry_later(receipt_handle, outcome.delay)
    raise NotDone(outcome.reason or outcome.disposition.value)


def process_batch(
    event: dict[str, Any], context: Any, handle_record: Callable[..., None], *, concurrency: int = 1
) -> dict[str, Any]:
    """An SQS batch through Powertools' BatchProcessor with partial batch responses.

    `concurrency` > 1: up to that many of the batch's records are handled at once, each in a
    thread of its own (records that mostly wait on a vendor or a rate slot: see
    functions/submission_worker). One processor per invocation: it holds the batch's results, and
    the local stack runs several invocations of a module at once in threads. A batch whose every
    record failed is a normal answer (a vendor outage), not a crash."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    class ConcurrentBatchProcessor(BatchProcessor):
        def process(self) -> list[tuple[Any, ...]]:
            workers = max(1, min(concurrency, len(self.records)))
            if workers == 1:
                return super().process()
            with ThreadPoolExecutor(max_workers=workers, initializer=record_threads()) as pool:
                return list(pool.map(self._one_record, self.records))

        def _one_record(self, record: dict[str, Any]) -> Any:
            logger.thread_safe_clear_keys()  # this thread's keys were the previous record's
            return self._process_record(record)

    processor = ConcurrentBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(event=event, record_handler=handle_record, processor=processor, context=context)
    )


class SubmissionQueue:
    def __init__(self, url: str, client: Any) -> None:
        self.url = url
        self.client = client

    def send(self, reference_id: str, delay: int = 0) -> None:
        self.client.send_message(
            QueueUrl=self.url,
            MessageBody=SubmissionMessage(reference_id=reference_id).model_dump_json(),
            DelaySeconds=max(0, min(delay, MAX_DELAY_SECONDS)),
        )

    def send_many(self, reference_ids: Iterable[str]) -> list[str]:
        """Enqueue every id (SendMessageBatch, 10 at a time); returns the ids that could not be sent."""
        ids = list(reference_ids)
        chunks = [ids[i : i + BATCH_LIMIT] for i in range(0, len(ids), BATCH_LIMIT)]
        if not chunks:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(chunks))) as pool:
            return [ref for failed in pool.map(self._send_chunk, chunks) for ref in failed]

    def retry_later(self, receipt_handle: str, delay: int) -> None:
        """Make a received message visible again after `delay` seconds (0: at once)."""
        self.client.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, delay)
        )

    def _send_chunk(self, chunk: list[str]) -> list[str]:
        pending = dict(enumerate(chunk))
        for _ in range(2):  # a failed entry is tried once more
            response = self.client.send_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "MessageBody": SubmissionMessage(reference_id=ref).model_dump_json()}
                    for i, ref in pending.items()
                ],
            )
            failed = {int(f["Id"]) for f in response.get("Failed", [])}
            pending = {i: ref for i, ref in pending.items() if i in failed}
            if not pending:
                return []
        for ref in pending.values():
            logger.error("could not enqueue job; the reconciler will pick it up", extra={"reference_id": ref})
        return list(pending.values())
