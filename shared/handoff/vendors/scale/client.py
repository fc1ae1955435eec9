"""Scale AI (data annotation): task creation, lookup by unique_id, task reads, cancel; the callback's reading.

Built from REFERENCE.md §6 and the official SDK (scaleapi, scaleapi/api.py and exceptions.py):

    auth        HTTP basic, the API key as user name and an empty password
    create      POST /v1/task/{type} with unique_id = our reference_id and callback_url = ScaleCallback's
                URL; 200 with the task. A repeated unique_id is 409 {"status_code": 409, "error":
                "... already used for a different task (<task_id>)"}: AlreadySubmitted, and the task
                is found with GET /v1/tasks?unique_id=... (as the SDK does after a 5xx), so a lost
                answer never becomes a second task nor a FAILED job.
    errors      {"status_code", "error"}; 400 invalid, 401 bad key, 402 not enabled, 404 not found,
                409 duplicate -> Rejected (409 on create: AlreadySubmitted); 408, 429, 5xx, timeouts
                -> Transient (503 "may have created the task": the retry meets the 409)
    statuses    pending -> SUBMITTED (the task exists and is waiting: Scale says nothing of work
                begun, so it is not IN_PROGRESS), completed -> COMPLETED with the response as the
                result, canceled (and v2's deleted) -> CANCELED, error -> FAILED
    callbacks   POST {"task", "response", "task_id"} with the scale-callback-auth header (a static
                key, compared in constant time with the current and previous key); Scale retries a
                non-2xx up to 20 times in 24 h, so duplicates are normal
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from handoff import vendor_json
from handoff.callbacks import CallbackApplier, Tally, Verdict
from handoff.lifecycle import Observation, VendorUpdate
from handoff.models import Job, JobError, JobStatus
from handoff.observability import logger
from handoff.settings import core_settings, secret_json
from handoff.vendors.base import (
    Acceptance,
    AlreadySubmitted,
    Checkpoint,
    MissingCredential,
    Rejected,
    Timeouts,
    Transient,
    json_or_none,
    new_session,
    path_segment,
    raise_for_status,
    send,
    static_key_matches,
)
from handoff.vendors.scale.models import REFERENCE_KEY, ScaleCallback, ScaleSubmitRequest, ScaleTask
from handoff.vendors.scale.settings import ScaleSettings, scale_callback_url, scale_settings

if TYPE_CHECKING:  # requests is imported where a request is made: a function that calls no vendor never loads it
    import requests

NAME = "scale"
CALLBACK_CONTENT_TYPE = "application/json"
CALLBACK_AUTH_HEADER = "scale-callback-auth"
# The SDK's exception classes, by status (scaleapi/exceptions.py), as our error codes.
ERROR_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    402: "not_enabled",
    404: "not_found",
    409: "duplicate_resource",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
    504: "timeout",
}

_STATUS_MAP = {
    "pending": VendorUpdate(JobStatus.SUBMITTED),
    "completed": VendorUpdate(JobStatus.COMPLETED),
    "canceled": VendorUpdate(JobStatus.CANCELED),
    "cancelled": VendorUpdate(JobStatus.CANCELED),
    "deleted": VendorUpdate(JobStatus.CANCELED),  # v2: the task is gone, nothing more will come
    "error": VendorUpdate(JobStatus.FAILED),
}


def status_update(vendor_status: str) -> VendorUpdate | None:
    """Scale's task status -> what it means for the job (None: not one we know)."""
    return _STATUS_MAP.get(vendor_status.strip().lower()) if vendor_status.isascii() else None  # ASCII only


def observation(task: ScaleTask, response: Any = None) -> Observation | None:
    """A Scale task (from a callback or a read) as an Observation; None when it names no job of
    ours or its status is not one we know. `response`: the callback's result, if it carries one
    beside the task."""
    update = status_update(task.status)
    reference_id = task.reference_id
    if update is None or reference_id is None:
        return None
    result = None
    if update.status is JobStatus.COMPLETED:
        result = response if response is not None else task.response
    error = None
    if update.status is JobStatus.FAILED:
        error = _task_error(task)
    return Observation(
        reference_id=reference_id,
        vendor_job_id=task.task_id,
        update=update,
        result=result,
        error=error,
        detail=f"scale {task.status.strip().lower()}",
    )


def _task_error(task: ScaleTask) -> JobError:
    """The task's `error` as the job keeps it: a code and message to read, and Scale's whole error
    (any shape, any length) in details, which the applier keeps inline or in S3 by its size."""
    said = task.error
    if said is None or said == "" or said == {}:
        return JobError(code="task_error", message="Scale reported the task as error")
    if isinstance(said, dict):
        code = said.get("code") or said.get("type") or "task_error"
        message = said.get("message") or said.get("error") or said
    else:
        code, message = "task_error", said
    text = message if isinstance(message, str) else vendor_json.dumps(message).decode()
    code_text = code if isinstance(code, str) else vendor_json.dumps(code).decode()
    told_whole = isinstance(said, str) and len(said) <= 2000  # the message says it all
    details = [] if told_whole else [{"vendor_error": said}]
    return JobError(code=code_text[:128], message=text[:2000], details=details)


def apply_callback(body: bytes, applier: CallbackApplier, payload: Any = None) -> Tally:
    """Apply one Scale callback body {"task": {...}, "response": {...}, "task_id": "..."}.

    `payload` is the body already parsed (the live path); the archive path passes the raw bytes
    only. One verdict: INVALID for what is no Scale task (or whose task_id contradicts the job's),
    UNKNOWN for a task that names no job of ours, DEFERRED when it could not be stored now.
    Never raises for what the body holds.
    """
    tally = Tally()
    tally.add(_apply(body, applier, payload))
    return tally


def _apply(body: bytes, applier: CallbackApplier, payload: Any) -> Verdict:
    if payload is None:
        try:
            payload = vendor_json.loads(body)
        except ValueError:
            return Verdict.INVALID
    try:
        callback = ScaleCallback.model_validate(payload)
    except ValidationError as exc:
        logger.warning("invalid Scale callback", extra={"errors": exc.error_count()})
        return Verdict.INVALID
    task = callback.task
    log = {"reference_id": task.reference_id, "task_id": task.task_id}
    if status_update(task.status) is None:
        logger.warning("Scale callback with an unknown status", extra={**log, "status": task.status[:32]})
        return Verdict.INVALID
    seen = observation(task, callback.response)
    if seen is None:
        logger.warning("Scale callback for a task that names no job", extra=log)
        return Verdict.UNKNOWN
    try:
        verdict = applier.apply(seen, source="scale-callback")
    except Exception:
        logger.exception("Scale callback could not be stored; applied again later", extra=log)
        return Verdict.DEFERRED
    logger.info("Scale callback applied", extra={**log, "verdict": verdict.value, "status": seen.update.status.value})
    return verdict


def callback_key_matches(presented: str | None, keys: list[str]) -> bool:
    """The scale-callback-auth header against the current and previous key (constant time)."""
    return static_key_matches(presented, keys)


def callback_keys() -> list[str]:
    """The callback auth keys in the secret: the current one, and the previous during a rotation."""
    secret = secret_json(scale_settings().secret_name)
    return [
        k
        for k in (secret.get("callback_auth_key"), secret.get("previous_callback_auth_key"))
        if isinstance(k, str) and k
    ]


class ScaleClient:
    name = NAME

    def __init__(
        self,
        settings: ScaleSettings,
        api_key: Callable[[], str],
        callback_url: Callable[[], str],
        timeouts: Timeouts,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self._api_key = api_key  # called per request so a rotated key is picked up from the cache
        self._callback_url = callback_url
        self.timeouts = timeouts
        self.session = session or new_session()

    # -- the VendorClient protocol ------------------------------------------------------------------

    def prepare(self) -> None:
        # a cold function reads the secret and the callback URL now, not between its rate slot and the send
        self._api_key()
        self._callback_url()

    def check(self, request: ScaleSubmitRequest) -> list[dict[str, Any]]:
        """A task needs a project: the request's, or the stack's ScaleProject."""
        if request.project or self.settings.project:
            return []
        return [
            {
                "field": "project",
                "message": "no project in the request and no ScaleProject configured",
                "type": "missing",
            }
        ]

    def submit(self, request: ScaleSubmitRequest, checkpoint: Checkpoint) -> Acceptance:
        # One call, made idempotent by unique_id: a repeat is refused (409), nothing to checkpoint.
        task_type, project = self._task_type(request), self._project(request)
        body = {
            **request.task_fields(),
            "project": project,
            "unique_id": request.reference_id,
            "callback_url": self._callback_url(),
        }
        checkpoint.check_start()  # the paced request: it must start inside its rate slot
        task = self._call("POST", f"/task/{path_segment(task_type)}", json=body, creating=True)
        task_id = task.get("task_id") if isinstance(task, dict) else None
        if not isinstance(task_id, str) or not task_id:
            # The task may exist: the retry meets the 409 and finds it, safer than calling it a failure.
            raise Transient("ambiguous_response", "Scale answered 2xx without a task_id")
        return Acceptance(vendor_job_id=task_id, vendor_refs={"project": project, "task_type": task_type})

    def find(self, request: ScaleSubmitRequest, job: Job) -> Acceptance | None:
        """The task Scale holds under unique_id = reference_id (after a 409, or before giving up).

        Raises Rejected (`unique_id_in_use`) when that task is not one this deployment created for
        this job: its metadata must name the reference_id AND its callback_url must be this stack's
        (unique_id is global across the account: another system, or another Handoff stack marking
        its tasks the same way, must never have its task taken for ours)."""
        data = self._call("GET", "/tasks", params={"unique_id": request.reference_id, "limit": "1"})
        docs = data.get("docs") if isinstance(data, dict) else None
        if not isinstance(docs, list) or not docs:
            return None
        try:
            task = ScaleTask.model_validate(docs[0])
        except ValidationError:
            raise Transient("ambiguous_response", "Scale's task lookup answered without a task") from None
        marked = task.metadata.get(REFERENCE_KEY) if isinstance(task.metadata, dict) else None
        if marked != request.reference_id or task.callback_url != self._callback_url():
            raise Rejected(
                "unique_id_in_use",
                f"Scale holds task {task.task_id} under this unique_id, not created by Handoff for this job",
            )
        return Acceptance(
            vendor_job_id=task.task_id,
            vendor_refs={"project": self._project(request), "task_type": self._task_type(request)},
        )

    def observe(self, job: Job) -> Observation | None:
        """GET /v1/task/{task_id}: Scale's current word on the job (the reconciler's lookup)."""
        if not job.vendor_job_id:
            return None
        task = self.get_task(job.vendor_job_id)
        seen = observation(task)
        if seen is None:
            return None
        # Scale's word on this job's own task: the reference_id is ours even if Scale forgot it.
        return Observation(
            reference_id=job.reference_id,
            vendor_job_id=seen.vendor_job_id,
            update=seen.update,
            result=seen.result,
            error=seen.error,
            detail=f"{seen.detail} (lookup)",
        )

    # -- beyond the protocol ------------------------------------------------------------------------

    def get_task(self, task_id: str) -> ScaleTask:
        data = self._call("GET", f"/task/{path_segment(task_id)}")
        try:
            return ScaleTask.model_validate(data)
        except ValidationError:
            raise Transient("ambiguous_response", "Scale's task read answered without task_id and status") from None

    def cancel(self, job: Job, *, clear_unique_id: bool = False) -> Observation | None:
        """POST /v1/task/{task_id}/cancel: Scale cancels a task only while no work has begun on
        it; otherwise it refuses (Rejected `not_cancellable`). `clear_unique_id` frees the
        reference_id at Scale for another task. Returns the canceled task as an observation, to be
        applied like a callback."""
        if not job.vendor_job_id:
            raise Rejected("not_submitted", "the job has no Scale task to cancel")
        params = {"clear_unique_id": "true"} if clear_unique_id else None
        try:
            data = self._call("POST", f"/task/{path_segment(job.vendor_job_id)}/cancel", params=params)
        except Rejected as exc:
            if exc.auth_failure or exc.http_status == 404:
                raise
            raise Rejected("not_cancellable", exc.message, http_status=exc.http_status) from exc
        try:
            task = ScaleTask.model_validate(data)
        except ValidationError:
            return None
        seen = observation(task)
        if seen is None:
            return None
        return Observation(
            reference_id=job.reference_id,
            vendor_job_id=seen.vendor_job_id,
            update=seen.update,
            result=seen.result,
            error=seen.error,
            detail=f"{seen.detail} (cancel)",
        )

    def cancel_task(self, job: Job) -> None:
        """Cancel the job's task at Scale (REFERENCE.md §6: only before work starts), for
        POST /jobs/{reference_id}/cancel. The unique_id is kept: the reference_id stays Handoff's
        CANCELED job. Raises Rejected `not_cancellable` when Scale refuses (work has begun, the
        task is done); a task already canceled (an earlier cancel whose answer was lost) is done."""
        try:
            self.cancel(job)
        except Rejected as exc:
            if exc.code != "not_cancellable" or not job.vendor_job_id:
                raise
            if self.get_task(job.vendor_job_id).status in {"canceled", "cancelled"}:
                return
            raise

    # -- plumbing -----------------------------------------------------------------------------------

    def _task_type(self, request: ScaleSubmitRequest) -> str:
        return request.task_type or self.settings.task_type

    def _project(self, request: ScaleSubmitRequest) -> str:
        project = request.project or self.settings.project
        if not project:
            raise Rejected("missing_project", "no project in the request and no ScaleProject configured")
        return project

    def _call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None, creating: bool = False
    ) -> Any:
        response = send(
            self.session,
            method,
            self.settings.base_url + path,
            self.timeouts,
            json=json,
            params=params,
            auth=(self._api_key(), ""),
            headers={"Accept": "application/json"},
        )
        body = json_or_none(response)
        said = body.get("error") if isinstance(body, dict) else None
        message = said if isinstance(said, str) and said else None
        status = response.status_code
        if creating and status == 409:
            # unique_id already used: an earlier attempt created the task (its answer was lost)
            raise AlreadySubmitted("duplicate_resource", message or "unique_id already used", http_status=status)
        raise_for_status(response, ERROR_CODES.get(status), (message or "")[:2000] or None)
        if not isinstance(body, dict):
            raise Transient("ambiguous_response", f"Scale answered HTTP {status} without a JSON object")
        return body


def build_client() -> ScaleClient:
    settings = scale_settings()
    core = core_settings()

    def api_key() -> str:
        key = secret_json(settings.secret_name).get("api_key")
        if not isinstance(key, str) or not key:
            raise MissingCredential("missing_api_key", f"secret {settings.secret_name} has no api_key")
        return key

    return ScaleClient(
        settings, api_key, scale_callback_url, Timeouts(core.vendor_connect_timeout, core.vendor_read_timeout)
    )
