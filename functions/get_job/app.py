"""GetJob: GET /jobs/{reference_id} (IAM) -> 200 the job with its history, or 404."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

import boto3
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from handoff import api
from handoff.models import REFERENCE_ID_PATTERN, Job
from handoff.observability import for_job, logger, metrics, tracer
from handoff.settings import core_settings
from handoff.store import DynamoJobStore

dynamodb = boto3.client("dynamodb")
app = api.new_resolver()


@lru_cache(maxsize=1)
def store() -> DynamoJobStore:
    return DynamoJobStore(core_settings().jobs_table_name, dynamodb)


@app.get(
    "/jobs/<reference_id>",
    summary="A job with its history",
    security=api.IAM,
    responses={
        200: api.answer("the job with its history", Job),
        403: api.refusal(api.GATEWAY_403),
        404: api.refusal("no such job"),
        422: api.refusal("not a valid reference_id (control characters never match a job)"),
    },
)
def get_job(reference_id: Annotated[str, Path(pattern=REFERENCE_ID_PATTERN)]) -> Response[str]:
    for_job(reference_id)
    job = store().get(reference_id)
    if job is None:
        return api.error_response(404, "job_not_found", "no job with that reference_id")
    return api.json_response(200, job.model_dump(mode="json"))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return app.resolve(event, context)
