"""EventPublisher (JobsTable stream, ReportBatchItemFailures): one `Job Status Changed` event per
status change on the bus; a batch whose events could not all be published is retried from the
first record not published. See handoff.events."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from handoff.events import EventPublisher
from handoff.observability import logger, metrics, tracer
from handoff.settings import ConfigurationError, core_settings

events = boto3.client("events")


@lru_cache(maxsize=1)
def publisher() -> EventPublisher:
    bus = core_settings().event_bus_name
    if not bus:
        raise ConfigurationError("EVENT_BUS_NAME is not set")
    return EventPublisher(events, bus)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    stream = DynamoDBStreamEvent(event)
    retry = publisher().publish(record.raw_event for record in stream.records)
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in retry]}
