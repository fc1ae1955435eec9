"""PlaymentCallback: POST /callbacks/playment (no IAM; authenticated by the x-playment-key header).

413  body over 5 MiB                          nothing written
415  not application/json (UTF-8)             nothing written
400  not UTF-8, not JSON, nested deeper than 64 levels, or no "annotations" list   nothing written
401  missing or wrong x-playment-key          nothing written
413  more than MAX_ANNOTATIONS annotations    nothing written
200  {"applied", "duplicate", "unknown", "invalid"}: the raw body archived in S3, then each
     annotation applied on its own (concurrently: the documented maximum finishes in seconds)
503  the body is archived but some annotations could not be stored: safe to send again

A vendor's values are never a reason to refuse: NaN, infinities and numbers beyond a double are
taken as Playment's encoder may write them, and the result is kept as JSON text or in S3.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
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
# The most annotations one callback may carry: each is one conditional write (plus an S3 put for a
# large result), applied APPLY_CONCURRENCY at a time, so the maximum stays far inside the timeout
# (on DynamoDB about 0.5 s; on the local stack, whose moto server takes one write at a time, about
# 6 s of the function's 15: make bench, "largest callback").
MAX_ANNOTATIONS = 500
APPLY_CONCURRENCY = 16
METRIC_BY_VERDICT = {
    "applied": "CallbackApplied",
    "duplicate": "CallbackDuplicate",
    "unknown": "CallbackUnknown",
    "invalid": "CallbackInvalid",
}

dynamodb = boto3.client("dynamodb")
s3 = boto3.client("s3")
app = api.new_resolver({("POST", "/callbacks/playment"): api.json_body(MAX_BODY_BYTES, strict=False)})


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
    body = api.raw_body(event)  # the gate has checked it: UTF-8 JSON within the size limit
    payload = app.body_json()
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
    archive_key = applier().archive.put_callback(NAME, body, "application/json")
    tally, failed = Tally(), 0
    with ThreadPoolExecutor(max_workers=min(APPLY_CONCURRENCY, len(annotations))) as pool:
        verdicts = list(pool.map(lambda raw: _apply_one(raw, archive_key), annotations))
    for verdict in verdicts:
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
