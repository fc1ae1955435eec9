"""TextkingCallback: POST /callbacks/textking (no IAM; authenticated by the signed extra_data token).

TEXTKING posts a form with project_id, job_id and extra_data only: no state, no signature. We
registered each callback with extra_data = a token signed over (reference_id, trigger state), so:

    415  not application/x-www-form-urlencoded (UTF-8)    413  over 16 KiB
    400  not UTF-8, or not such a form
    401  bad token, or job_id/project_id not the job's own                 (nothing written)
    200  {"applied"|"duplicate"|"unknown": 1}: the raw body archived, the job's REAL state read
         with GET /project/{p}/job/{j} (the callback is only a hint) and applied; on delivery
         the translation is fetched into S3 and the job points at it
    503  TEXTKING could not be asked; the body is archived and sending again is safe
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from handoff import api
from handoff.callbacks import CallbackApplier, Verdict
from handoff.lifecycle import Observation, is_terminal
from handoff.models import Job
from handoff.observability import count, for_job, logger, metrics, tracer
from handoff.vendors import client_for
from handoff.vendors.base import VendorError
from handoff.vendors.textking import NAME, TextkingClient, parse_callback_form, verify_token

MAX_BODY_BYTES = 16 * 1024

dynamodb = boto3.client("dynamodb")
s3 = boto3.client("s3")
app = api.new_resolver({("POST", "/callbacks/textking"): api.form_body(MAX_BODY_BYTES)})


@lru_cache(maxsize=1)
def applier() -> CallbackApplier:
    return CallbackApplier.for_vendor(NAME, dynamodb, s3)


def textking() -> TextkingClient:
    client: TextkingClient = client_for(NAME)
    return client


@app.post("/callbacks/textking", summary="TEXTKING job state callback")
def textking_callback() -> Response[str]:
    event = app.current_event
    body = api.raw_body(event)  # the gate has checked it: a UTF-8 form within the size limit
    try:
        form = parse_callback_form(body)
    except ValueError as exc:
        return api.error_response(400, "malformed_form", str(exc))
    verified = verify_token(form.extra_data, textking().signing_keys())
    if verified is None:
        return _unauthorized("extra_data is not a valid token")
    reference_id, trigger_state = verified
    for_job(reference_id)

    job = applier().store.get(reference_id)
    if job is not None and not _belongs_to(job, form.project_id, form.job_id):
        return _unauthorized("the token does not belong to this job")
    archive_key = applier().archive.put_callback(NAME, body, "application/x-www-form-urlencoded")
    logger.info("callback received", extra={"trigger_state": trigger_state, "archive_key": archive_key})
    if job is None:
        count("CallbackUnknown", NAME)
        return api.json_response(200, {Verdict.UNKNOWN.value: 1})
    if is_terminal(job.status):
        count("CallbackDuplicate", NAME)
        return api.json_response(200, {Verdict.DUPLICATE.value: 1})

    try:
        seen = textking().observe(job)
    except VendorError as exc:
        logger.warning("TEXTKING could not be read", extra={"error_code": exc.code})
        return api.error_response(
            503, "vendor_unavailable", "the job's state could not be read from TEXTKING; send again"
        )
    verdict = _apply(job, seen)
    count({"applied": "CallbackApplied", "duplicate": "CallbackDuplicate"}.get(verdict.value, "CallbackInvalid"), NAME)
    return api.json_response(200, {verdict.value: 1})


def _apply(job: Job, seen: Observation | None) -> Verdict:
    if seen is None:
        logger.warning("TEXTKING reported a state we do not know")
        return Verdict.INVALID
    if not seen.update.transition.applies_to(job.status):
        return Verdict.DUPLICATE  # late or repeated: the job is already there or beyond
    verdict = applier().apply(seen, source="textking-callback")
    logger.info("callback applied", extra={"verdict": verdict.value, "status": seen.update.status.value})
    return verdict


def _belongs_to(job: Job, project_id: str, job_id: str) -> bool:
    stored_job = job.vendor_job_id or job.vendor_refs.get("job_id")
    stored_project = job.vendor_refs.get("project_id")
    return job.vendor == NAME and stored_job == job_id and stored_project in (None, project_id)


def _unauthorized(reason: str) -> Response[str]:
    count("CallbackRejected", NAME)
    logger.warning("callback refused", extra={"reason": reason})
    return api.error_response(401, "unauthorized", reason)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return app.resolve(event, context)
