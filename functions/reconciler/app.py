"""Reconciler (schedule): quiet jobs are looked up at their vendor and brought up to date; quiet
QUEUED jobs that nobody holds are enqueued again. See handoff.reconcile for the rules."""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import boto3
import requests  # noqa: F401 (this function calls a vendor: requests loads at cold start, not in a request)
from aws_lambda_powertools.utilities.typing import LambdaContext

from handoff.callbacks import CallbackApplier
from handoff.observability import logger, metrics, tracer
from handoff.queue import SubmissionQueue
from handoff.reconcile import Reconciler
from handoff.settings import core_settings, reconciler_settings, submission_settings
from handoff.store import DynamoJobStore
from handoff.vendors import VENDORS, client_for

# Stop taking new jobs when less than this is left of the invocation.
STOP_WITH_SECONDS_LEFT = 45

dynamodb = boto3.client("dynamodb")
s3 = boto3.client("s3")
sqs = boto3.client("sqs")


@cache
def applier(vendor: str) -> CallbackApplier:
    return CallbackApplier.for_vendor(vendor, dynamodb, s3)


@lru_cache(maxsize=1)
def reconciler() -> Reconciler:
    return Reconciler(
        DynamoJobStore(core_settings().jobs_table_name, dynamodb),
        client_for,
        applier,
        SubmissionQueue(submission_settings().queue_url, sqs),
        reconciler_settings(),
        cleanups=lambda name: VENDORS[name].cleanup if name in VENDORS else None,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return reconciler().run(lambda: context.get_remaining_time_in_millis() < STOP_WITH_SECONDS_LEFT * 1000)
