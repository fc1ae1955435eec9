"""PlaymentCallback: POST /callbacks/playment (no IAM; authenticated by the x-playment-key header).

401  missing or wrong x-playment-key          nothing written
413  body over 5 MiB                          nothing written
415  not application/json                     nothing written
400  not JSON / no "annotations" list         nothing written
200  {"applied", "duplicate", "unknown", "invalid"}: the raw body archived in S3, then each
     annotation applied on its own
503  the body is archived but some annotations could not be stored: safe to send again
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from handoff import api
from handoff.callbacks import CallbackApplier, Tally, Verdict
from handoff.models import PlaymentAnnotation
from handoff.observability import count, for_job, logger, metrics, tracer
from handoff.vendors import client_for
from handoff.vendors.playment import NAME, callback_key_matches, observation

MAX_BODY_BYTES = 5 * 1024 * 1024
METRIC_BY_VERDICT = {
    "applied": "CallbackApplied",
    "duplicate": "CallbackDuplicate",
    "unknown": "CallbackUnknown",
    "invalid": "CallbackInvalid",
}

dynamodb = boto3.client("dynamodb")
s3 = boto3.client("s3")
app = api.new_resolver()


@lru_cache(maxsize=1)
def applier() -> CallbackApplier:
    return CallbackApplier.for_vendor(NAME, dynamodb, s3)


@app.post("/callbacks/playment", summary="Playment job status callback")
def playment_callback() -> Response[str]:
    event = app.current_event
    if not callback_key_matches(event.headers.get("x-playment-key"), client_for(NAME).callback_keys()):
        count("CallbackRejected", NAME)
        logger.warning("callback refused: missing or wrong x-playment-key")
        return api.error_response(401, "unauthorized", "missing or wrong x-playment-key")
    body = api.raw_body(event)
    if len(body) > MAX_BODY_BYTES:
        return api.error_response(413, "payload_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
    if api.media_type(event) != "application/json":
        return api.error_response(415, "unsupported_media_type", "send application/json")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        logger.warning("callback refused: body is not JSON", extra={"bytes": len(body)})
        return api.error_response(400, "malformed_json", "the body is not valid JSON")
    annotations = payload.get("annotations") if isinstance(payload, dict) else None
    if not isinstance(annotations, list) or not annotations:
        return api.error_response(400, "invalid_callback", 'the body needs a non-empty "annotations" list')

    if (
        len(annotations) == 1
        and isinstance(annotations[0], dict)
        and isinstance(annotations[0].get("reference_id"), str)
    ):
        for_job(annotations[0]["reference_id"][:256])  # the usual case: one job per callback
    archive_key = applier().archive.put_callback(NAME, body, "application/json")
    tally, failed = Tally(), 0
    for raw in annotations:
        verdict = _apply_one(raw, archive_key)
        if verdict is None:
            failed += 1
        else:
            tally.add(verdict)
    counts = tally.as_dict()
    for name, metric in METRIC_BY_VERDICT.items():
        if counts[name]:
            count(metric, NAME, counts[name])
    logger.info("callback processed", extra={"archive_key": archive_key, **counts, "failed": failed})
    if failed:
        return api.error_response(
            503,
            "partially_applied",
            f"{failed} annotation(s) could not be stored; sending the callback again is safe",
            [counts],
        )
    return api.json_response(200, counts)


def _apply_one(raw: Any, archive_key: str) -> Verdict | None:
    """Apply one annotation; None when it could not be stored (the caller answers 503)."""
    try:
        annotation = PlaymentAnnotation.model_validate(raw)
    except ValidationError as exc:
        logger.warning("invalid annotation", extra={"archive_key": archive_key, "errors": exc.error_count()})
        return Verdict.INVALID
    seen = observation(annotation)
    if seen is None:
        logger.warning(
            "annotation with an unknown status",
            extra={"reference_id": annotation.reference_id, "status": annotation.status[:32]},
        )
        return Verdict.INVALID
    try:
        verdict = applier().apply(seen, source="playment-callback")
    except Exception:
        logger.exception(
            "annotation could not be stored", extra={"reference_id": seen.reference_id, "archive_key": archive_key}
        )
        return None
    logger.info(
        "annotation applied",
        extra={"reference_id": seen.reference_id, "verdict": verdict.value, "status": seen.update.status.value},
    )
    return verdict


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return app.resolve(event, context)
