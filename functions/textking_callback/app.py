"""TextkingCallback: POST /callbacks/textking (no IAM; authenticated by the signed extra_data token).

TEXTKING posts a form with project_id, job_id and extra_data only: no state, no signature. We
registered each callback with extra_data = a token signed over (reference_id, trigger state), so:

    415  not application/x-www-form-urlencoded (UTF-8)    413  over 16 KiB
    400  not UTF-8, or not such a form
    401  bad token, or job_id/project_id not the job's own                 (nothing written)
    200  {"applied", "duplicate", "unknown", "invalid", "deferred"}, one of them 1: the raw body
         archived, the job's REAL state read with GET /project/{p}/job/{j} (the callback is only a
         hint) and applied; on delivery the translation is fetched into S3 and the job points at
         it. "deferred": TEXTKING
         (or the table) could not be read now; Handoff applies the archived body again later
         (CallbackRetryQueue), since TEXTKING documents no redelivery.
    503  the body could not be archived (or, deferred, not queued): send again
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
from handoff.models import Job
from handoff.observability import count, for_job, logger, metrics, tracer
from handoff.settings import core_settings
from handoff.store import DynamoJobStore
from handoff.vendors import client_for, intake_for
from handoff.vendors.textking import NAME, TextkingClient, authenticate, parse_callback_form, verify_token

MAX_BODY_BYTES = 16 * 1024

dynamodb = boto3.client("dynamodb")
s3 = boto3.client("s3")
sqs = boto3.client("sqs")
app = api.new_resolver(
    {("POST", "/callbacks/textking"): api.form_body(MAX_BODY_BYTES)},
    validation=False,  # its one route takes no typed parameter
)


@lru_cache(maxsize=1)
def intake() -> CallbackIntake:
    return intake_for(NAME, dynamodb, s3, sqs)


@app.post(
    "/callbacks/textking",
    summary="TEXTKING job state callback",
    responses={
        200: api.answer("the callback's verdict: one of the counts is 1", api.CallbackCounts),
        400: api.refusal("not UTF-8, or not TEXTKING's form"),
        401: api.refusal("bad token, or not this job's ids"),
        413: api.refusal("over 16 KiB"),
        415: api.refusal("not application/x-www-form-urlencoded (UTF-8)"),
        503: api.refusal("the callback could not be archived: send it again"),
    },
)
def textking_callback() -> Response[str]:
    body = api.raw_body(app.current_event)  # the gate has checked it: a UTF-8 form within the size limit
    try:
        form = parse_callback_form(body)
    except ValueError as exc:
        return api.error_response(400, "malformed_form", str(exc))
    textking: TextkingClient = client_for(NAME)  # type: ignore[assignment]
    keys = textking.signing_keys()
    verified = verify_token(form.extra_data, keys)
    if verified is not None:
        for_job(verified[0])
    refused = authenticate(form, _job(verified[0]) if verified else None, keys)
    if refused:
        count("CallbackRejected", NAME)
        logger.warning("callback refused", extra={"reason": refused})
        return api.error_response(401, "unauthorized", refused)
    return api.callback_answer(intake(), body)


def _job(reference_id: str) -> Job | None:
    """The job, to check the callback is its own; None when it cannot be read now (the callback is
    then kept and applied later, where the check is made again)."""
    try:
        return _store().get(reference_id)
    except Exception:
        logger.exception("the job could not be read to authenticate the callback")
        return None


@lru_cache(maxsize=1)
def _store() -> DynamoJobStore:
    return DynamoJobStore(core_settings().jobs_table_name, dynamodb)


@api.api_only
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return app.resolve(event, context)
