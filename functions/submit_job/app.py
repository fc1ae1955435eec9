"""SubmitJob: POST /jobs (IAM) and direct invoke, one code path.

201 SUBMITTED (vendor accepted)     202 QUEUED (transient failure; the retry path owns it)
200 the existing job (same request) 409 conflict (reference_id used by another request)
424 vendor rejected (job FAILED)    422 invalid / 400 malformed JSON / 413 too large
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

import boto3
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.utilities.typing import LambdaContext

from handoff import api
from handoff.models import SubmitRequest, canonical_json
from handoff.observability import logger, metrics, tracer
from handoff.settings import core_settings
from handoff.store import JobStore
from handoff.submission import ConflictError, Outcome, Submitter, UnscheduledRetry, conflict_details, job_error_details
from handoff.vendors import client_for

# A job item must stay well under DynamoDB's 400 KB; the request is most of it.
MAX_REQUEST_BYTES = 256 * 1024
STATUS_BY_OUTCOME = {Outcome.SUBMITTED: 201, Outcome.QUEUED: 202, Outcome.REPLAYED: 200}

dynamodb = boto3.client("dynamodb")
app = api.new_resolver()


@lru_cache(maxsize=1)
def submitter() -> Submitter:
    return Submitter(JobStore(core_settings().jobs_table_name, dynamodb), client_for, UnscheduledRetry())


@app.post("/jobs", summary="Submit a job to a vendor")
def post_job(request: Annotated[SubmitRequest, Body()]) -> Response[str]:
    logger.append_keys(reference_id=request.reference_id)
    size = len(canonical_json(request.model_dump(mode="json")).encode())
    if size > MAX_REQUEST_BYTES:
        return api.error_response(
            413, "request_too_large", f"the request is {size} bytes; the limit is {MAX_REQUEST_BYTES}"
        )
    try:
        result = submitter().submit(request)
    except ConflictError as exc:
        return api.error_response(409, "conflict", str(exc), conflict_details(exc.existing))
    job = result.job.model_dump(mode="json")
    if result.outcome is Outcome.REJECTED:
        error = result.job.last_error
        message = f"the vendor rejected the job: {error.message}" if error else "the vendor rejected the job"
        return api.error_response(424, "vendor_rejected", message, job_error_details(error), job=job)
    return api.json_response(STATUS_BY_OUTCOME[result.outcome], job)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return api.handle(app, event, context, method="POST", path="/jobs")
