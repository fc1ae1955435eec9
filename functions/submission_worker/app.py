"""SubmissionWorker: drains SubmissionQueue (SQS event source, ReportBatchItemFailures).

Per message {"reference_id"}: claim the job if it is still QUEUED, submit it at the vendor's pace,
and tell SQS what to do with the message:

    done      accepted, rejected (FAILED), or already past QUEUED        -> deleted
    retry     transient failure: visible again after a full-jitter backoff -> reported failed
    give up   transient failure on the last receive: the job is FAILED retries_exhausted first,
              then the message is made visible at once so SQS moves it to the dead-letter queue
    poison    not a submission message, or no such job                    -> visible at once;
              after maxReceiveCount quick receives it is in the dead-letter queue

A batch's records are handled at once, each in a thread of its own (up to RECORD_CONCURRENCY):
a record mostly waits, for its rate slot and then for the vendor's answer, so the vendor requests
in flight are BatchSize x the queue's MaximumConcurrency, not one per invocation. A failed record
never holds up the others in its batch.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
import requests  # noqa: F401 (this function calls a vendor: requests loads at cold start, not in a request)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from handoff.observability import logger, metrics, tracer
from handoff.queue import process_batch, settle
from handoff.settings import submission_settings
from handoff.submission import RetryQueue, Submitter

# The event source's BatchSize is at most this (template.yaml): every record of a batch at once.
RECORD_CONCURRENCY = 10

dynamodb = boto3.client("dynamodb")
sqs = boto3.client("sqs")


@lru_cache(maxsize=1)
def submitter() -> Submitter:
    return Submitter.for_stack(dynamodb, sqs)


def queue() -> RetryQueue:
    return submitter().queue  # the one SubmissionQueue the submitter was built with


def handle_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    outcome = submitter().handle_message(
        record.body,
        receives=int(record.attributes.approximate_receive_count or 1),
        max_receives=submission_settings().max_receives,
        remaining=lambda_context.get_remaining_time_in_millis() / 1000,
    )
    settle(outcome, record.receipt_handle, queue())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return process_batch(event, context, handle_record, concurrency=RECORD_CONCURRENCY)
