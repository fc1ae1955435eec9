"""CallbackRetry: drains CallbackRetryQueue (SQS event source, ReportBatchItemFailures).

Per message {"vendor", "archive_key"}: read the archived raw callback body and apply it again,
through the same vendor code as a live callback (what was applied before is a duplicate):

    done      nothing deferred any more                                   -> deleted
    retry     still deferred: visible again after a full-jitter backoff    -> reported failed
    give up   still deferred on the last receive: logged (CallbackAbandoned) and made visible at
              once, so SQS moves it to CallbackRetryDLQ (an alarm); `make replay KEY=...` applies
              it by hand, and the reconciler looks the job up after the vendor's silence budget
    poison    not a retry message, or the archived body is gone            -> dead-lettered the same way
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import boto3
import requests  # noqa: F401 (this function calls a vendor: requests loads at cold start, not in a request)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from handoff.callbacks import CallbackIntake, CallbackRetryQueue, reapply_message
from handoff.observability import logger, metrics, tracer
from handoff.queue import process_batch, settle
from handoff.settings import callback_retry_settings
from handoff.vendors import intake_for

dynamodb = boto3.client("dynamodb")
s3 = boto3.client("s3")
sqs = boto3.client("sqs")


@cache
def intake(vendor: str) -> CallbackIntake:
    return intake_for(vendor, dynamodb, s3, sqs)


@lru_cache(maxsize=1)
def queue() -> CallbackRetryQueue:
    return CallbackRetryQueue(callback_retry_settings().queue_url, sqs)


def handle_record(record: SQSRecord) -> None:
    receives = int(record.attributes.approximate_receive_count or 1)
    outcome = reapply_message(record.body, receives, intake, callback_retry_settings())
    settle(outcome, record.receipt_handle, queue())


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return process_batch(event, context, handle_record)
