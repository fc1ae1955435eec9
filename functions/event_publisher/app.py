"""EventPublisher (JobsTable stream, ReportBatchItemFailures): one `Job Status Changed` event per
status change on the bus, and one `Batch Completed` event per batch whose jobs are all final
(handoff.batches); a batch whose events could not all be published is retried from the
first record not published; a record that is not a readable job is set aside in the events
dead-letter queue (EVENTS_DLQ_URL) and the rest is published. See handoff.events."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from handoff.batches import Batches
from handoff.events import EventPublisher
from handoff.observability import logger, metrics, tracer
from handoff.settings import ConfigurationError, core_settings

events = boto3.client("events")
sqs = boto3.client("sqs")
dynamodb = boto3.client("dynamodb")


@lru_cache(maxsize=1)
def publisher() -> EventPublisher:
    bus = core_settings().event_bus_name
    if not bus:
        raise ConfigurationError("EVENT_BUS_NAME is not set")
    dead_letters = os.environ.get("EVENTS_DLQ_URL", "")

    def quarantine(record: Mapping[str, Any], reason: str) -> None:
        if not dead_letters:
            raise ConfigurationError("EVENTS_DLQ_URL is not set")
        body = {"reason": reason, "record": record}
        sqs.send_message(QueueUrl=dead_letters, MessageBody=json.dumps(body, default=str)[:1_000_000])

    published = EventPublisher(events, bus, quarantine=quarantine)
    if core_settings().batches_table_name:
        published.batches = Batches.for_stack(dynamodb, published.publish_batch_completed)
    return published


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    stream = DynamoDBStreamEvent(event)
    retry = publisher().publish(record.raw_event for record in stream.records)
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in retry]}
