"""PlaymentCallback: POST /callbacks/playment (no IAM; authenticated by the x-playment-key header).

401  missing or wrong x-playment-key (checked first: the body is not looked at)   nothing written
413  body over 5 MiB                          nothing written
415  not application/json (UTF-8)             nothing written
400  not UTF-8, not JSON, nested deeper than 512 levels, or no "annotations" list   nothing written
413  more than MAX_ANNOTATIONS annotations    nothing written
200  {"applied", "duplicate", "unknown", "invalid", "deferred"}: the raw body archived in S3, then
     each annotation applied on its own (concurrently: the documented maximum finishes in
     seconds). "deferred" annotations could not be applied now (the table, or a result URL that
     cannot be fetched yet): Handoff applies the archived body again (CallbackRetryQueue), so
     Playment, which never resends a callback it got 200 for, need not.
503  the body could not be archived (or, partly deferred, not queued): send again

A vendor's values are never a reason to refuse: NaN, infinities and numbers beyond a double are
taken as Playment's encoder may write them, and the result is kept as JSON text or in S3.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
import requests  # noqa: F401 (this function calls a vendor: requests loads at cold start, not in a request)
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from handoff import api
from handoff.callbacks import CallbackIntake
from handoff.observability import for_job, logger, metrics, tracer
from handoff.vendors import client_for, intake_for
from handoff.vendors.playment import MAX_ANNOTATIONS, NAME, PlaymentClient

MAX_BODY_BYTES = 5 * 1024 * 1024

dynamodb = boto3.client("dynamodb")
s3 = boto3.client("s3")
sqs = boto3.client("sqs")


def playment() -> PlaymentClient:
    client: PlaymentClient = client_for(NAME)  # type: ignore[assignment]
    return client


authenticate = api.header_key("x-playment-key", lambda: playment().callback_keys(), NAME)
app = api.new_resolver(
    {("POST", "/callbacks/playment"): api.json_body(MAX_BODY_BYTES, strict=False, authenticate=authenticate)},
    validation=False,  # its one route takes no typed parameter
)


@lru_cache(maxsize=1)
def intake() -> CallbackIntake:
    return intake_for(NAME, dynamodb, s3, sqs)


@app.post(
    "/callbacks/playment",
    summary="Playment job status callback",
    responses={
        200: api.answer("how many annotations got each verdict", api.CallbackCounts),
        400: api.refusal("not UTF-8, not JSON, nested deeper than 512 levels, or no annotations"),
        401: api.refusal("missing or wrong x-playment-key"),
        413: api.refusal(f"over 5 MiB, or more than {MAX_ANNOTATIONS} annotations"),
        415: api.refusal("not application/json (UTF-8)"),
        503: api.refusal("the callback could not be archived: send it again"),
    },
)
def playment_callback() -> Response[str]:
    event = app.current_event
    payload = app.body_json()  # the gate has checked it: UTF-8 JSON within the size limit
    annotations = payload.get("annotations") if isinstance(payload, dict) else None
    if not isinstance(annotations, list) or not annotations:
        return api.error_response(400, "invalid_callback", 'the body needs a non-empty "annotations" list')
    if len(annotations) > MAX_ANNOTATIONS:
        return api.error_response(
            413, "too_many_annotations", f"{len(annotations)} annotations; at most {MAX_ANNOTATIONS} per callback"
        )
    if (
        len(annotations) == 1
        and isinstance(annotations[0], dict)
        and isinstance(annotations[0].get("reference_id"), str)
    ):
        for_job(annotations[0]["reference_id"][:256])  # the usual case: one job per callback

    return api.callback_answer(intake(), api.raw_body(event), payload)


@api.api_only
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return app.resolve(event, context)
