"""GetJob: GET /jobs/{reference_id} (IAM) -> 200 the job with its history, or 404;
GET /jobs?status=&vendor=&batch=&updated_after=&limit=&cursor= (IAM) -> 200 a page of jobs, newest
first, from the table's indexes (handoff.listing), or 422 for a filter or cursor that is not one."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

import boto3
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from handoff import api, listing
from handoff.models import BATCH_REF_PATTERN, REFERENCE_ID_PATTERN, Job, JobList, JobStatus
from handoff.observability import for_job, logger, metrics, tracer
from handoff.settings import core_settings
from handoff.store import DynamoJobStore
from handoff.vendors import VENDOR_NAMES

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


@app.get(
    "/jobs",
    summary="Jobs, newest first, filtered by status, vendor, batch and time",
    security=api.IAM,
    responses={
        200: api.answer("a page of jobs, newest first, and the cursor of the next page", JobList),
        403: api.refusal(api.GATEWAY_403),
        422: api.refusal("a filter that is not one, or a cursor given for other filters (invalid_cursor)"),
    },
)
def list_jobs(
    status: Annotated[JobStatus | None, Query(description="only jobs in this status")] = None,
    vendor: Annotated[
        str | None,
        Query(
            description="only this vendor's jobs",
            pattern=r"^[a-z][a-z0-9_]{0,31}$",
            json_schema_extra={"enum": sorted(VENDOR_NAMES)},
        ),
    ] = None,
    batch: Annotated[
        str | None, Query(description="only the jobs of this batch_ref", pattern=BATCH_REF_PATTERN)
    ] = None,
    updated_after: Annotated[
        str | None,
        Query(
            description="only jobs last written after this time: RFC 3339 (2026-11-23T10:00:00Z, ...+01:00)",
            pattern=listing.RFC3339_PATTERN,
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    limit: Annotated[
        str,
        Query(
            description=f"jobs per page, 1-{listing.MAX_LIMIT} in plain digits (a page may hold fewer)",
            pattern=listing.LIMIT_PATTERN,
        ),
    ] = str(listing.DEFAULT_LIMIT),
    cursor: Annotated[
        str | None,
        Query(description="next_cursor of the previous page", pattern=r"^[A-Za-z0-9_-]{1,2048}$"),
    ] = None,
) -> Response[str]:
    if vendor is not None and vendor not in VENDOR_NAMES:
        known = ", ".join(sorted(VENDOR_NAMES))
        return api.error_response(
            422,
            "invalid_request",
            "1 invalid field(s)",
            [{"field": "vendor", "message": f"must be one of: {known}", "type": "literal_error"}],
        )
    try:
        after = listing.table_time(datetime.fromisoformat(updated_after.upper())) if updated_after else None
    except ValueError:  # the pattern's form, but no such day (2026-02-30) or hour
        detail = {"field": "updated_after", "message": "not a date-time that exists", "type": "datetime_parsing"}
        return api.error_response(422, "invalid_request", "1 invalid field(s)", [detail])
    wanted = listing.JobFilter(
        status=status,
        vendor=vendor,
        batch_ref=batch,
        updated_after=after,
    )
    try:
        page = listing.list_jobs(store(), wanted, int(limit), cursor)
    except listing.ListingRefused as exc:
        return api.error_response(
            422, exc.code, exc.message, [{"field": exc.field, "message": exc.message, "type": exc.code}]
        )
    return api.json_response(200, page.model_dump(mode="json"))


@api.api_only
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    return app.resolve(event, context)
