"""SubmitJob: POST /jobs (IAM) and direct invoke, one code path.

One job:   201 SUBMITTED (vendor accepted)     202 QUEUED (the retry path owns it)
           200 the existing job (same request) 409 conflict (reference_id used by another request)
           424 vendor rejected (job FAILED)    422 invalid, or what the vendor would refuse (its
           own `prepare` check, e.g. a document outside DocumentSourceBucket): nothing written
           400 malformed JSON / not UTF-8      413 too large      415 not application/json
           A different request for a job the vendor refused before accepting it replaces it
           (201/202/424 as a new job); the same request again is 200 with the FAILED job.
{"jobs": [...]} (up to 500): every valid job recorded QUEUED and enqueued for the worker, which
           submits at the vendor's pace. 202 with one row per job (queued, replayed, conflict,
           invalid); 200 when nothing new was queued; 422 when no job was accepted. A
           reference_id given twice: the first entry decides, later ones are replayed/conflict.
POST /jobs/{reference_id}/retry, or direct invoke {"action": "retry", "reference_id": ...}:
           202 a job that FAILED before any vendor accepted it is QUEUED again; 404; 409.
POST /jobs/{reference_id}/cancel, or direct invoke {"action": "cancel", "reference_id": ...}:
           200 the job CANCELED (a QUEUED job without contacting the vendor; a submitted one at
           the vendor where it allows; already CANCELED: as it is); 404 job_not_found; 409
           not_cancellable / submission_in_progress; 502 vendor_auth_failed; 503 vendor_unavailable
           (handoff.cancel_order).
POST /jobs/{reference_id}/order, or direct invoke {"action": "order", "reference_id": ...}:
           200 the job with its vendor order placed (already ordered: as it is); 404; 409
           not_orderable; 422 order_not_supported; 502; 503 (handoff.cancel_order).
Direct invoke {"action": "preflight", "callback_urls": {vendor: url}} (make preflight): every
           vendor's configuration checked against the vendor with this function's settings, role
           and secrets: {"ok", "checks": [{vendor, name, verdict, detail}]}. No HTTP route.

Batches (handoff.batches), for a vendor that has them:
POST /batches, or direct invoke {"action": "create_batch", "vendor", "name", ...}:
           201 created at the vendor; 200 the same request again (same batch_ref); 409 the
           batch_ref holds another request; 422 invalid (an unregistered vendor too) or
           batches_not_supported (a registered vendor without batches); 424 the vendor
           refused it; 503 the vendor could not be reached. Nothing is written unless 200/201.
POST /batches/{batch_ref}/close, or {"action": "close_batch", "batch_ref", "expected_jobs"?}:
           200 the batch with its size fixed (no size, or no body: the jobs it holds; the same
           size again writes nothing; another: 409), and, if it holds it and every job is final, completed.
GET /batches/{batch_ref}[?vendor=true], or {"action": "get_batch", "batch_ref", "vendor"?}:
           200 the batch, its jobs counted by status, and (vendor=true) the vendor's own word on it.
A job names its batch by "batch_ref"; {"batch": {...}, "jobs": [...]} creates a batch (as
POST /batches) and submits the jobs into it, which sizes it with them (or removes it if it took none).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from functools import lru_cache
from typing import Annotated, Any, Literal

import boto3
import requests  # noqa: F401 (this function calls a vendor: requests loads at cold start, not in a request)
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handoff import api, preflight, vendor_json
from handoff.batches import Batches, BatchRefused
from handoff.cancel_order import JobControl, JobRefused
from handoff.models import (
    BATCH_REF_PATTERN,
    REFERENCE_ID_PATTERN,
    Batch,
    BatchProgress,
    BatchSize,
    BatchView,
    CreateBatchRequest,
    Job,
)
from handoff.observability import for_job, logger, metrics, tracer
from handoff.store import STORED_BUDGETS, stored_size
from handoff.submission import (
    ConflictError,
    InvalidForVendor,
    NotRetryable,
    Outcome,
    Submitter,
)
from handoff.vendors import VENDOR_NAMES, BulkSubmitRequest, SubmitBody, parse_submit_request, vendor

# A whole body (up to 500 jobs): Lambda's limit for a synchronous invocation's payload.
MAX_BODY_BYTES = 6 * 1024 * 1024
STATUS_BY_OUTCOME = {Outcome.SUBMITTED: 201, Outcome.QUEUED: 202, Outcome.REPLAYED: 200}

MAX_BATCH_BODY_BYTES = 16 * 1024

dynamodb = boto3.client("dynamodb")
sqs = boto3.client("sqs")
events = boto3.client("events")
app = api.new_resolver(
    {
        ("POST", "/jobs"): api.json_body(MAX_BODY_BYTES, object_only=True),
        ("POST", "/batches"): api.json_body(MAX_BATCH_BODY_BYTES, object_only=True),
        ("POST", "/batches/{batch_ref}/close"): api.json_body(MAX_BATCH_BODY_BYTES, object_only=True, optional=True),
    }
)


@lru_cache(maxsize=1)
def submitter() -> Submitter:
    return Submitter.for_stack(dynamodb, sqs)


@lru_cache(maxsize=1)
def job_control() -> JobControl:
    return JobControl.for_stack(dynamodb)


@lru_cache(maxsize=1)
def batches() -> Batches:
    from handoff.events import EventPublisher
    from handoff.settings import core_settings

    bus = EventPublisher(events, core_settings().event_bus_name)  # a close may complete the batch
    return Batches.for_stack(dynamodb, bus.publish_batch_completed)


JOB_OR_BATCH = Job | api.BulkAnswer
# Direct-invoke actions on one job {"action", "reference_id"}: answered as POST /jobs/{reference_id}/<action>.
JOB_ACTIONS = frozenset({"retry", "cancel", "order"})


@app.post(
    "/jobs",
    summary='Submit a job, or up to 500 jobs as {"jobs": [...]}',
    security=api.IAM,
    responses={
        201: api.answer("the vendor accepted the job (SUBMITTED)", Job),
        202: api.answer("QUEUED: the retry path owns it; or, for {jobs: [...]}, one row per job", JOB_OR_BATCH),
        200: api.answer("the same request again: the existing job; or a batch with nothing new", JOB_OR_BATCH),
        400: api.refusal(
            "the body is missing, not UTF-8, not JSON (RFC 8259: no NaN or Infinity), or nested deeper than 64 levels"
        ),
        403: api.refusal(api.GATEWAY_403),
        409: api.refusal("the reference_id holds a different request; or its batch is closed (batch_closed)"),
        413: api.refusal(
            "one job's request over 256 KiB as stored (JSON text, as DynamoDB counts it), or the body over 6 MiB"
        ),
        415: api.refusal("not application/json (UTF-8)"),
        422: api.refusal(
            "invalid request (details per field), or what the vendor would refuse (its check before any vendor "
            "call); or no job of a batch accepted. Nothing is written"
        ),
        424: api.refusal(
            "the vendor rejected the job; the job (FAILED) is in `job`. Or the vendor refused a bulk's new batch"
        ),
        503: api.refusal("the vendor could not create a bulk's new batch now; the same request again is safe"),
    },
)
def post_job(body: Annotated[SubmitBody, Body()]) -> Response[str]:
    if isinstance(body, BulkSubmitRequest):
        return _submit_bulk(body)
    for_job(body.reference_id)
    too_large = _too_large(body.model_dump(mode="json"))
    if too_large:
        return api.error_response(413, "request_too_large", too_large)
    try:
        # its claim on the job lasts as long as this invocation can (a Lambda timeout ends it)
        invocation = _invocation.get(None)
        lives_for = invocation.get_remaining_time_in_millis() / 1000 if invocation is not None else None
        result = submitter().submit(body, lives_for=lives_for)
    except InvalidForVendor as exc:
        return api.error_response(422, "invalid_request", str(exc), exc.details)
    except BatchRefused as exc:
        return _batch_refusal(exc)
    except ConflictError as exc:
        return api.error_response(409, "conflict", str(exc), api.conflict_details(exc.existing))
    job = result.job.model_dump(mode="json")
    if result.outcome is Outcome.REJECTED:
        error = result.job.last_error
        message = f"the vendor rejected the job: {error.message}" if error else "the vendor rejected the job"
        return api.error_response(424, "vendor_rejected", message, api.job_error_details(error), job=job)
    return api.json_response(STATUS_BY_OUTCOME[result.outcome], job)


@app.post(
    "/jobs/<reference_id>/retry",
    summary="Resubmit a job that failed before the vendor accepted it",
    security=api.IAM,
    responses={
        202: api.answer("the FAILED job is QUEUED again", Job),
        403: api.refusal(api.GATEWAY_403),
        404: api.refusal("no such job"),
        409: api.refusal(
            "not a job that FAILED before a vendor accepted it; or a job of a completed batch (batch_completed)"
        ),
        422: api.refusal("not a valid reference_id"),
    },
)
def retry_job(reference_id: Annotated[str, Path(pattern=REFERENCE_ID_PATTERN)]) -> Response[str]:
    for_job(reference_id)
    try:
        job = submitter().resubmit(reference_id)
    except BatchRefused as exc:
        return _batch_refusal(exc)
    except NotRetryable as exc:
        if exc.job is None:
            return api.error_response(404, "job_not_found", "no job with that reference_id")
        return api.error_response(
            409,
            "not_retryable",
            "only a job that FAILED before any vendor accepted it can be resubmitted",
            [{"status": exc.job.status.value, "vendor_job_id": exc.job.vendor_job_id}],
        )
    logger.info("job resubmitted by an operator")
    return api.json_response(202, job.model_dump(mode="json"))


@app.post(
    "/jobs/<reference_id>/cancel",
    summary="Cancel a job: a QUEUED one without the vendor, a submitted one at the vendor where it allows",
    security=api.IAM,
    responses={
        200: api.answer("the job, CANCELED (already CANCELED: as it was)", Job),
        403: api.refusal(api.GATEWAY_403),
        404: api.refusal("no such job (job_not_found)"),
        409: api.refusal(
            "not_cancellable: the job is COMPLETED or FAILED, its vendor has no cancel, or the vendor refuses "
            "(e.g. work has begun, or the order is placed), details say why; "
            "submission_in_progress: a submission attempt holds the QUEUED job now, send the cancel again shortly"
        ),
        422: api.refusal("not a valid reference_id"),
        502: api.refusal("the vendor refused Handoff's credentials (vendor_auth_failed); nothing changed"),
        503: api.refusal("the vendor could not be reached (vendor_unavailable); nothing changed, safe to send again"),
    },
)
def cancel_job(reference_id: Annotated[str, Path(pattern=REFERENCE_ID_PATTERN)]) -> Response[str]:
    return _controlled(reference_id, job_control().cancel)


@app.post(
    "/jobs/<reference_id>/order",
    summary="Place the vendor's order of a job submitted without it (a vendor with an order step)",
    security=api.IAM,
    responses={
        200: api.answer("the job, vendor_refs.ordered = true (already ordered: as it was)", Job),
        403: api.refusal(api.GATEWAY_403),
        404: api.refusal("no such job (job_not_found)"),
        409: api.refusal(
            "not_orderable: the job is not SUBMITTED-and-unordered, or the vendor refuses (e.g. its project "
            "is no longer prepared), details say why"
        ),
        422: api.refusal("not a valid reference_id; or its vendor has no order step (order_not_supported)"),
        502: api.refusal("the vendor refused Handoff's credentials (vendor_auth_failed); nothing changed"),
        503: api.refusal("the vendor could not be reached (vendor_unavailable); nothing changed, safe to send again"),
    },
)
def order_job(reference_id: Annotated[str, Path(pattern=REFERENCE_ID_PATTERN)]) -> Response[str]:
    return _controlled(reference_id, job_control().order)


def _controlled(reference_id: str, control: Callable[[str], Job]) -> Response[str]:
    """A cancel or an order: 200 with the job as it is now, or the refusal's error body."""
    for_job(reference_id)
    try:
        job = control(reference_id)
    except JobRefused as exc:
        return api.error_response(exc.status, exc.code, exc.message, exc.details)
    return api.json_response(200, job.model_dump(mode="json"))


def _submit_bulk(body: BulkSubmitRequest) -> Response[str]:
    rows: list[dict[str, Any]] = [{} for _ in body.jobs]
    valid: list[tuple[int, Any]] = []
    for index, raw in enumerate(body.jobs):
        given = raw.get("reference_id") if isinstance(raw, dict) else None
        # only an id that is one: a refused input is never echoed back
        reference_id = given if isinstance(given, str) and re.match(REFERENCE_ID_PATTERN, given) else None
        rows[index] = {"index": index, "reference_id": reference_id}
        try:
            request = parse_submit_request(raw)
        except ValidationError as exc:
            details = api.validation_details(exc.errors())
            rows[index].update(outcome="invalid", error=_error("invalid_request", "invalid job", details))
            continue
        too_large = _too_large(request.model_dump(mode="json"))
        if too_large:
            rows[index].update(outcome="invalid", error=_error("request_too_large", too_large))
            continue
        valid.append((index, request))
    batch: Batch | None = None
    created = False
    if body.batch is not None and valid:
        try:
            created, batch, valid = _into_new_batch(body.batch, valid, rows)
        except BatchRefused as exc:
            return _batch_refusal(exc)
    results = submitter().submit_many([request for _, request in valid]) if valid else []
    for (index, _), result in zip(valid, results, strict=True):
        if isinstance(result, ConflictError):
            rows[index].update(
                outcome="conflict", error=_error("conflict", str(result), api.conflict_details(result.existing))
            )
        elif isinstance(result, InvalidForVendor):
            rows[index].update(outcome="invalid", error=_error("invalid_request", str(result), result.details))
        elif isinstance(result, BatchRefused):
            outcome = "conflict" if result.status == 409 else "invalid"
            rows[index].update(outcome=outcome, error=_error(result.code, result.message, result.details))
        else:
            rows[index].update(outcome=result.outcome.value, status=result.job.status.value)
    totals = Counter(str(row["outcome"]) for row in rows)
    summary = {k: totals.get(k, 0) for k in ("queued", "replayed", "conflict", "invalid")}
    logger.info("bulk submission", extra=summary)
    extra: dict[str, Any] = {}
    if batch is not None and (summary["queued"] or summary["replayed"]):
        try:  # the batch holds these jobs and no others: closed with them
            batch = batches().close(batch.batch_ref, summary["queued"] + summary["replayed"])
        except BatchRefused as exc:
            logger.warning(
                "the bulk's batch could not be closed", extra={"batch_ref": batch.batch_ref, "code": exc.code}
            )
    if batch is not None and created and not summary["queued"] and not summary["replayed"]:
        batches().discard(batch.batch_ref)  # nothing kept: the vendor's empty batch stays (no delete)
        batch = None
    if batch is not None:
        extra["batch"] = batches().view(batch)
    if not summary["queued"] and not summary["replayed"]:
        details = [{"index": r["index"], "reference_id": r["reference_id"], **r["error"]} for r in rows]
        return api.error_response(
            422, "invalid_request", "no job in the batch was accepted", details, jobs=rows, totals=summary, **extra
        )
    return api.json_response(202 if summary["queued"] else 200, {"jobs": rows, "totals": summary, **extra})


def _into_new_batch(
    spec: Any, valid: list[tuple[int, Any]], rows: list[dict[str, Any]]
) -> tuple[bool, Batch, list[tuple[int, Any]]]:
    """Create the bulk's batch (as POST /batches: idempotent on its batch_ref) and put each valid
    job in it; a job of another vendor, or naming another batch, is an invalid row."""
    vendors = sorted({request.vendor for _, request in valid})
    name = spec.vendor or vendors[0]
    request = CreateBatchRequest(vendor=name, name=spec.name, description=spec.description, batch_ref=spec.batch_ref)
    created, batch = batches().create(request)
    capability = vendor(name).batches
    if capability is None or batch.vendor_batch_id is None:  # create answers neither
        raise BatchRefused(503, "try_again", "the batch is not ready; send the request again")
    members: list[tuple[int, Any]] = []
    for index, job in valid:
        if job.vendor != batch.vendor or getattr(job, "batch_ref", None) not in (None, batch.batch_ref):
            message = "the bulk's batch is a batch of another vendor" if job.vendor != batch.vendor else ""
            details = [{"field": "batch_ref", "message": message or "names another batch than the bulk's"}]
            rows[index].update(outcome="invalid", error=_error("batch_mismatch", "not for the bulk's batch", details))
            continue
        members.append((index, capability.assign(job, batch.batch_ref, batch.vendor_batch_id)))
    return created, batch, members


# --- batches ------------------------------------------------------------------------------------


def _batch_refusal(exc: BatchRefused) -> Response[str]:
    return api.error_response(exc.status, exc.code, exc.message, exc.details)


@app.post(
    "/batches",
    summary="Create a batch at a vendor that has batches",
    security=api.IAM,
    responses={
        201: api.answer("the vendor created the batch: Handoff's record with the vendor's batch id", BatchView),
        200: api.answer("the same request again (same batch_ref): the batch it created", BatchView),
        400: api.refusal("the body is missing, not UTF-8 or not JSON"),
        403: api.refusal(api.GATEWAY_403),
        409: api.refusal("the batch_ref holds a different request"),
        413: api.refusal("the body is over 16 KiB"),
        415: api.refusal("not application/json (UTF-8)"),
        422: api.refusal("invalid request (details per field), or a vendor without batches (batches_not_supported)"),
        424: api.refusal("the vendor refused the batch (e.g. its name is taken in the project)"),
        503: api.refusal("the vendor could not be reached; the same request again is safe"),
    },
)
def post_batch(body: Annotated[CreateBatchRequest, Body()]) -> Response[str]:
    if body.vendor not in VENDOR_NAMES:  # as POST /jobs answers an unknown vendor
        known = ", ".join(f"'{name}'" for name in sorted(VENDOR_NAMES))
        details = [{"field": "vendor", "message": f"must be one of: {known}", "type": "union_tag_invalid"}]
        return api.error_response(422, "invalid_request", "1 invalid field(s)", details)
    try:
        created, batch = batches().create(body)
    except BatchRefused as exc:
        return _batch_refusal(exc)
    return api.json_response(201 if created else 200, batches().view(batch))


class CloseBatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected_jobs: BatchSize | None = Field(
        default=None,
        description="The batch's size (a JSON integer, at least the jobs it holds); absent, or no body: "
        "the jobs it holds now.",
    )


@app.post(
    "/batches/<batch_ref>/close",
    summary="Close a batch: fix how many jobs it holds, so that it can complete",
    security=api.IAM,
    responses={
        200: api.answer(
            "the batch, sized (and completed if it holds its size and every job is final); the same size "
            "again changes nothing",
            BatchView,
        ),
        400: api.refusal("the body is not UTF-8 or not JSON (no body at all is taken)"),
        403: api.refusal(api.GATEWAY_403),
        404: api.refusal("no such batch"),
        409: api.refusal(
            "sized before with another size (no body: the jobs it holds), a size below the jobs it holds, "
            "not created yet, or holding no job"
        ),
        413: api.refusal("the body is over 16 KiB"),
        415: api.refusal("not application/json (UTF-8)"),
        422: api.refusal("not a valid batch_ref or expected_jobs"),
    },
)
def close_batch(
    batch_ref: Annotated[str, Path(pattern=BATCH_REF_PATTERN)], body: Annotated[CloseBatchBody | None, Body()] = None
) -> Response[str]:
    try:
        batch = batches().close(batch_ref, body.expected_jobs if body else None)
    except BatchRefused as exc:
        return _batch_refusal(exc)
    return api.json_response(200, batches().view(batch))


@app.get(
    "/batches/<batch_ref>",
    summary="A batch's progress: its jobs counted by status",
    security=api.IAM,
    responses={
        200: api.answer(
            "the batch, `jobs`, `final` and `counts` by status; with vendor=true `vendor_details`", BatchProgress
        ),
        403: api.refusal(api.GATEWAY_403),
        404: api.refusal("no such batch"),
        422: api.refusal("not a valid batch_ref"),
    },
)
def get_batch(
    batch_ref: Annotated[str, Path(pattern=BATCH_REF_PATTERN)],
    vendor_details: Annotated[
        Literal["true", "false"],
        Query(alias="vendor", description="true: also the vendor's own word on the batch (only true or false)"),
    ] = "false",
) -> Response[str]:
    try:
        progress = batches().progress(batch_ref, with_vendor=vendor_details == "true")
    except BatchRefused as exc:
        return _batch_refusal(exc)
    return api.json_response(200, progress)


def _too_large(request: dict[str, Any]) -> str | None:
    """Why the request cannot be stored in its job item (None: it can). Measured as DynamoDB
    measures the stored request (JSON text, non-ASCII escaped), not as its UTF-8 body."""
    size = stored_size("request", request)
    limit = STORED_BUDGETS["request"]
    if size <= limit:
        return None
    return (
        f"the request takes {size} bytes as stored; the limit is {limit}"
        " (send large content by reference: a URL, or an S3 URI where the request takes one)"
    )


def _error(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or []}


def _direct_id(event: dict[str, Any], name: str) -> str:
    """An id of a direct-invoke action, as the path parameter it stands for. Only a JSON string
    is an id: anything else (5, null, absent, a string that is no Unicode text) stands for no id,
    answered 422 as an empty one."""
    value = event.get(name)
    # a lone surrogate ("\ud800") is no text a path can carry: no id either
    return value if isinstance(value, str) and vendor_json.holds_only_unicode(value) else ""


# This invocation's context. Not the resolver's `app.lambda_context`, which is one for the class:
# invocations run side by side in one process (in-process tests) would read each other's.
_invocation: ContextVar[LambdaContext] = ContextVar("invocation")


def lambda_handler(event: Any, context: LambdaContext) -> Any:
    # A direct invoke's payload may be any JSON: null is no request at all (422, as {}), never a
    # crash in the decorators below, which read the event as an object.
    _invocation.set(context)
    return _handle({} if event is None else event, context)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def _handle(event: dict[str, Any], context: LambdaContext) -> Any:
    if isinstance(event, dict) and not api.is_api_event(event) and event.get("action") == "preflight":
        return preflight.answer(preflight.run(event.get("callback_urls")))
    direct = isinstance(event, dict) and not api.is_api_event(event)
    action = event.get("action") if direct else None
    if action == "create_batch":
        body = {k: v for k, v in event.items() if k != "action"}
        return api.handle(app, body, context, method="POST", resource="/batches")
    if action == "close_batch":
        ref = _direct_id(event, "batch_ref")
        body = {k: v for k, v in event.items() if k not in ("action", "batch_ref")}
        params = {"batch_ref": ref}
        return api.handle(
            app, body, context, method="POST", resource="/batches/{batch_ref}/close", path_parameters=params
        )
    if action == "get_batch":
        ref = _direct_id(event, "batch_ref")
        # "vendor": a JSON boolean, as ?vendor= takes only true or false; anything else is answered 422
        shown = event.get("vendor")
        flag = None if "vendor" not in event else json.dumps(shown) if not isinstance(shown, str) else repr(shown)
        query = {"vendor": flag} if flag is not None else None
        return api.handle(
            app,
            None,
            context,
            method="GET",
            resource="/batches/{batch_ref}",
            path_parameters={"batch_ref": ref},
            query=query,
        )
    if isinstance(action, str) and action in JOB_ACTIONS:
        reference_id = _direct_id(event, "reference_id")
        return api.handle(
            app,
            None,
            context,
            method="POST",
            resource=f"/jobs/{{reference_id}}/{action}",
            path_parameters={"reference_id": reference_id},
        )
    return api.handle(app, event, context, method="POST", resource="/jobs")
