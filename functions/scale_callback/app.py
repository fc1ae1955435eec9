"""ScaleCallback: POST /callbacks/scale (no IAM; authenticated by the scale-callback-auth header).

Scale POSTs {"task": {...}, "response": {...}, "task_id": "..."} to each task's callback_url and
retries anything but a 2xx up to 20 times over 24 hours, so duplicates are normal:

413  body over 5 MiB                          nothing written
415  not application/json (UTF-8)             nothing written
400  not UTF-8, not JSON, nested deeper than 512 levels, or no "task" object   nothing written
401  missing or wrong scale-callback-auth     nothing written
200  {"applied", "duplicate", "unknown", "invalid", "deferred"} (one of them 1): the raw body
     archived in S3, then applied: "duplicate" for a status the job already has (Scale's
     retries), "invalid" for a task_id that is not the job's, "unknown" for a task that names no
     job here. "deferred": it could not be stored now; Handoff applies the archived body again
     (CallbackRetryQueue), so Scale need not.
503  the body could not be archived (or, deferred, not queued): Scale sends it again
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from handoff import api
from handoff.callbacks import CallbackIntake
from handoff.observability import for_job, logger, metrics, tracer
from handoff.vendors import intake_for
from handoff.vendors.scale import CALLBACK_AUTH_HEADER, NAME, callback_keys

MAX_BODY_BYTES = 5 * 1024 * 1024

dynamodb = boto3.client("dynamodb")
s3 = boto3.client("s3")
sqs = boto3.client("sqs")


app = api.new_resolver(
    {
        ("POST", "/callbacks/scale"): api.json_body(
            MAX_BODY_BYTES, strict=False, authenticate=api.header_key(CALLBACK_AUTH_HEADER, callback_keys, NAME)
        )
    },
    validation=False,  # its one route takes no typed parameter
)


@lru_cache(maxsize=1)
def intake() -> CallbackIntake:
    return intake_for(NAME, dynamodb, s3, sqs)


@app.post(
    "/callbacks/scale",
    summary="Scale AI task callback",
    responses={
        200: api.answer("one of applied, duplicate, unknown, invalid, deferred: 1", api.CallbackCounts),
        400: api.refusal('not UTF-8, not JSON, nested deeper than 512 levels, or no "task" object'),
        401: api.refusal(f"missing or wrong {CALLBACK_AUTH_HEADER}"),
        413: api.refusal("over 5 MiB"),
        415: api.refusal("not application/json (UTF-8)"),
        503: api.refusal("the callback could not be archived: send it again"),
    },
)
def scale_callback() -> Response[str]:
    event = app.current_event
    payload = app.body_json()  # the gate has checked it: UTF-8 JSON within the size limit
    task = payload.get("task") if isinstance(payload, dict) else None
    if not isinstance(task, dict):
        return api.error_response(400, "invalid_callback", 'the body needs a "task" object')
    reference_id = task.get("unique_id")
    if isinstance(reference_id, str) and reference_id:
        for_job(reference_id[:256])
    return api.callback_answer(intake(), api.raw_body(event), payload)


@api.api_only
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return app.resolve(event, context)
