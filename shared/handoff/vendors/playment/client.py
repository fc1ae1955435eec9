"""Playment (image, video and sensor annotation): job creation, batches, job lookup.

Built from ../REFERENCE.md §1: errors are HTTP 400 with {"error": {"code", "message"}}, a repeated
reference_id is FS_0001, 401 bodies may not be JSON, statuses differ in case between callbacks
(PENDING) and lookups (completed). Host, paths, the auth header and the routing field (tag vs
work_flow_id) all come from PlaymentSettings: PLAYMENT_API_GENERATION's, each overridable. A 401 is
`unauthorized_request` and a 404 without Playment's error body is a path this Playment does not
serve (a generation mismatch): both permanent, with a message that says what to fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from pydantic import ValidationError

from handoff import vendor_json
from handoff.callbacks import CallbackApplier, Tally, Verdict
from handoff.lifecycle import Document, Observation, VendorUpdate
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
    VendorError,
    json_or_none,
    new_session,
    path_segment,
    raise_for_status,
    send,
    static_key_matches,
)
from handoff.vendors.playment.models import PlaymentAnnotation, PlaymentSubmitRequest
from handoff.vendors.playment.settings import PlaymentSettings, playment_settings

if TYPE_CHECKING:  # requests is imported where a request is made: a function that calls no vendor never loads it
    import requests

NAME = "playment"
ALREADY_SUBMITTED_CODES = frozenset({"FS_0001"})
AUTH_CODES = frozenset({"auth-failure", "core.webutil.token_auth", "unauthorized", "core.webutil.auther"})
# Vendor-side failures that Playment documents as "try again after some time".
TRANSIENT_CODES = frozenset({"FS_0000", "FS_0008", "api_error"})
# What a permanent refusal most likely means on our side: appended to Playment's message, so a
# FAILED job says what to fix (REFERENCE.md §1.6).
_HINTS = {
    "resource_error": "project not found: check PLAYMENT_PROJECT_ID or the request's project_id",
    "FS_0005": "the routing field is sent as {settings.routing_field!r} (PLAYMENT_ROUTING_FIELD, "
    "generation {settings.api_generation!r}), with the request's tag or PLAYMENT_DEFAULT_TAG",
    "GE_0001": "malformed JSON or an id that is not a UUID (batch_id?)",
    "FS_00012": "priority_weight must be an integer 1-9",
    "BATCH_CREATION": "a batch of that name already exists in the project",
}

_STATUS_MAP = {
    "PENDING": VendorUpdate(JobStatus.IN_PROGRESS),
    "COMPLETED": VendorUpdate(JobStatus.COMPLETED),
    "COMPLETE": VendorUpdate(JobStatus.COMPLETED),
    "FAILED": VendorUpdate(JobStatus.FAILED),
}


def status_update(vendor_status: str) -> VendorUpdate | None:
    """Playment's status in any letter case -> what it means for the job (None: not one we know)."""
    # ASCII only: Unicode case mapping would take "PEND\\u0131NG" (a dotless i) for PENDING
    return _STATUS_MAP.get(vendor_status.strip().upper()) if vendor_status.isascii() else None


def observation(annotation: PlaymentAnnotation) -> Observation | None:
    """One callback annotation as an Observation (None when its status is not one we know)."""
    update = status_update(annotation.status)
    if update is None:
        return None
    error = None
    if update.status is JobStatus.FAILED:
        vendor_error = annotation.error
        meta = vendor_error.meta_data if vendor_error else None
        failures = meta.get("failures") if isinstance(meta, dict) else None
        # every failure is kept, whatever its shape (a bare value is wrapped); and when the code,
        # message and failures do not say all Playment said, the whole error besides
        if failures is not None and not isinstance(failures, list):
            failures = [failures]  # one failure given as an object, or a bare value: kept all the same
        details = [f if isinstance(f, dict) else {"value": f} for f in failures or []]
        if vendor_error is not None and not vendor_error.told_whole:
            details.append({"vendor_error": vendor_error.model_dump(exclude_unset=True)})
        error = JobError(
            code=vendor_error.code_text if vendor_error else "failed",
            message=vendor_error.message_text if vendor_error else "Playment reported the job FAILED",
            retryable=False,
            details=details,
        )
    return Observation(
        reference_id=annotation.reference_id,
        vendor_job_id=annotation.vendor_job_id,
        update=update,
        result=annotation.result if update.status is JobStatus.COMPLETED else None,
        error=error,
        detail=f"playment {annotation.status.strip().upper()}",
    )


# The most annotations one callback may carry: each is one conditional write (plus an S3 put for a
# large result, or a fetch for a result given as a URL), applied APPLY_CONCURRENCY at a time, so the
# maximum stays far inside the callback function's timeout (on DynamoDB about 0.5 s; on the local
# stack, whose moto server takes one write at a time, about 6 s of the function's 15: make bench,
# "largest callback").
MAX_ANNOTATIONS = 500
APPLY_CONCURRENCY = 16
# Result URLs are fetched only in the first FETCH_SECONDS of a callback, each request waiting at
# most what is left of them: the function (Timeout 15 s) then always answers, and the annotations
# whose result was not fetched are `deferred`, re-applied from the archive (CallbackRetry), never
# lost to a timeout.
FETCH_SECONDS = 8.0
MAX_REDIRECTS = 3


CALLBACK_CONTENT_TYPE = "application/json"


def apply_callback(body: bytes, applier: CallbackApplier, payload: Any = None) -> Tally:
    """Apply every annotation of a callback body {"annotations": [...]} (REFERENCE.md §1.4).

    `payload` is the body already parsed (the live path parses it once, at the API's gate); the
    archive path passes the raw bytes only. Each annotation gets one verdict; DEFERRED when it
    could not be applied now (the table failed, or its result URL could not be fetched yet).
    Never raises for what the body holds.
    """
    if payload is None:
        try:
            payload = vendor_json.loads(body)
        except ValueError:
            payload = None
    annotations = payload.get("annotations") if isinstance(payload, dict) else None
    tally = Tally()
    if not isinstance(annotations, list) or not annotations:
        tally.add(Verdict.INVALID)
        return tally
    deadline = time.monotonic() + FETCH_SECONDS
    with ThreadPoolExecutor(max_workers=min(APPLY_CONCURRENCY, len(annotations))) as pool:
        for verdict in pool.map(lambda raw: _apply_annotation(raw, applier, deadline), annotations[:MAX_ANNOTATIONS]):
            tally.add(verdict)
    for _ in annotations[MAX_ANNOTATIONS:]:  # the API refuses these; an archive holds none
        tally.add(Verdict.INVALID)
    return tally


def _apply_annotation(raw: Any, applier: CallbackApplier, deadline: float | None = None) -> Verdict:
    try:
        annotation = PlaymentAnnotation.model_validate(raw)
    except ValidationError as exc:
        logger.warning("invalid annotation", extra={"errors": exc.error_count()})
        return Verdict.INVALID
    log = {"reference_id": annotation.reference_id}
    seen = observation(annotation)
    if seen is None:
        logger.warning("annotation with an unknown status", extra={**log, "status": annotation.status[:32]})
        return Verdict.INVALID
    try:
        if is_result_url(seen.result):
            fetched = _with_fetched_result(seen, applier, deadline)
            if isinstance(fetched, Verdict):
                return fetched
            seen = fetched
        verdict = applier.apply(seen, source="playment-callback")
    except Rejected as exc:
        if exc.auth_failure:  # our key: fixed by a person, then the retry applies it
            logger.error("result refused to our API key; applied again later", extra={**log, "error_code": exc.code})
            return Verdict.DEFERRED
        # Playment refuses this URL for good (not one of its results): no retry can fetch it. The
        # annotation is invalid; the reconciler reads the job's real result URL from Playment.
        logger.warning("result URL refused by Playment for good; invalid", extra={**log, "error_code": exc.code})
        return Verdict.INVALID
    except VendorError as exc:
        logger.warning("result could not be fetched; applied again later", extra={**log, "error_code": exc.code})
        return Verdict.DEFERRED
    except Exception:
        logger.exception("annotation could not be stored; applied again later", extra=log)
        return Verdict.DEFERRED
    logger.info("annotation applied", extra={**log, "verdict": verdict.value, "status": seen.update.status.value})
    return verdict


def is_result_url(result: Any) -> bool:
    """Playment's `result` may be the URL of the result file instead of the result (gotcha 11)."""
    return isinstance(result, str) and result.strip().lower().startswith(("https://", "http://"))


def _with_fetched_result(
    seen: Observation, applier: CallbackApplier, deadline: float | None = None
) -> Observation | Verdict:
    """The observation with the result behind its URL, fetched through Playment's Attachment API;
    a verdict instead when the job does not need it (unknown, another Playment job's id, or
    already past COMPLETED's reach).
    Raises VendorError when the result cannot be fetched now."""
    job = applier.store.get(seen.reference_id)
    if job is None or job.vendor != NAME:
        return Verdict.UNKNOWN
    if job.vendor_job_id and seen.vendor_job_id and job.vendor_job_id != seen.vendor_job_id:
        return Verdict.INVALID  # not this job's callback: nothing to fetch, nothing to apply
    if not seen.update.transition.applies_to(job.status):
        return Verdict.DUPLICATE
    from handoff.vendors import client_for  # the registry, which imports this package

    client: PlaymentClient = client_for(NAME)  # type: ignore[assignment]
    return _with_result(seen, client.fetch_result(str(seen.result).strip(), deadline))


def _with_result(seen: Observation, fetched: Any) -> Observation:
    """The observation with the fetched result: JSON as the result, any other file as a document."""
    if isinstance(fetched, Document):
        return replace(seen, result=None, document=fetched)
    return replace(seen, result=fetched)


def callback_key_matches(presented: str | None, keys: list[str]) -> bool:
    """The x-playment-key header against the current and previous key (constant time)."""
    return static_key_matches(presented, keys)


@dataclass(frozen=True)
class PlaymentJob:
    job_id: str
    reference_id: str | None
    status: str
    result_url: str | None


class PlaymentClient:
    name = NAME

    def __init__(
        self,
        settings: PlaymentSettings,
        api_key: Callable[[], str],
        timeouts: Timeouts,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self._api_key = api_key  # called per request so a rotated key is picked up from the cache
        self.timeouts = timeouts
        self.session = session or new_session()

    # -- requests ---------------------------------------------------------------------------------

    def prepare(self) -> None:
        self._api_key()  # a cold function reads the secret now, not between its rate slot and the send

    def check(self, request: PlaymentSubmitRequest) -> list[dict[str, Any]]:
        """Nothing beyond the request model: Playment checks attachments only after creating the job."""
        return []

    def submit(self, request: PlaymentSubmitRequest, checkpoint: Checkpoint) -> Acceptance:
        # One idempotent call: Playment refuses a repeated reference_id (FS_0001), so there is
        # nothing to checkpoint but the rate slot.
        return self.create_job(request, checkpoint)

    def create_job(self, request: PlaymentSubmitRequest, checkpoint: Checkpoint | None = None) -> Acceptance:
        routing = request.tag or self.settings.default_tag
        if not routing:
            raise Rejected("missing_tag", "no tag in the request and no PlaymentDefaultTag configured")
        body: dict[str, Any] = {
            "reference_id": request.reference_id,
            "data": request.vendor_data(),
            self.settings.routing_field: routing,
            "priority_weight": request.priority_weight,
        }
        if request.batch_id:
            body["batch_id"] = request.batch_id
        project_id = request.project_id or self.settings.project_id
        if checkpoint is not None:
            checkpoint.check_start()  # the paced request: it must start inside its rate slot
        data = self._call("POST", self.settings.create_job_path, project_id=project_id, json=body)
        job_id = data.get("job_id") if isinstance(data, dict) else None
        if not isinstance(job_id, str) or not job_id:
            # A 2xx without a job id is ambiguous: the job may exist. A retry answers FS_0001 and
            # reconciles, which is safer than calling it a failure.
            raise Transient("ambiguous_response", "Playment answered 2xx without data.job_id")
        return Acceptance(vendor_job_id=job_id, vendor_refs={"project_id": project_id})

    def create_batch(self, name: str, description: str = "", project_id: str | None = None) -> str:
        """A new batch in the project; its Playment batch_id (a UUID). A name the project already
        has is Rejected with BATCH_CREATION."""
        project_id = project_id or self.settings.project_id
        # The docs send {name, description}; the SDK adds project_id and label. The superset is harmless.
        body = {"project_id": project_id, "label": name, "name": name, "description": description}
        data = self._call("POST", self.settings.create_batch_path, project_id=project_id, json=body)
        batch_id = data.get("batch_id") if isinstance(data, dict) else None
        if not isinstance(batch_id, str) or not batch_id:
            raise Transient("ambiguous_response", "Playment answered 2xx without data.batch_id")
        return batch_id

    def project_batches(self, project_id: str | None = None) -> list[dict[str, Any]]:
        """The project's batches as its details list them (REFERENCE.md §1.2 #5)."""
        data = self._call("GET", self.settings.project_details_path, project_id=project_id or self.settings.project_id)
        batches = data.get("batches") if isinstance(data, dict) else None
        return [b for b in batches if isinstance(b, dict)] if isinstance(batches, list) else []

    def find_batch(self, name: str) -> str | None:
        """The id of the project's batch named `name` (names are unique per project), or None."""
        for batch in self.project_batches():
            if batch.get("name") == name and batch.get("id"):
                return str(batch["id"])
        return None

    def batch_details(self, batch_id: str) -> dict[str, Any] | None:
        """Playment's own word on one batch (its entry in the project details: total_jobs,
        completed_jobs, status ...), or None when the project lists no such batch."""
        for batch in self.project_batches():
            if str(batch.get("id")) == batch_id:
                return batch
        return None

    def get_job(self, job_id: str, project_id: str | None = None) -> PlaymentJob:
        data = self._call(
            "GET", self.settings.get_job_path, project_id=project_id or self.settings.project_id, job_id=job_id
        )
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise Transient("ambiguous_response", "Playment job lookup answered without data.status")
        result = data.get("result")
        return PlaymentJob(
            job_id=str(data.get("job_id") or job_id),
            reference_id=data.get("reference_id"),
            status=data["status"],
            result_url=result if isinstance(result, str) and result else None,
        )

    def find(self, request: PlaymentSubmitRequest, job: Job) -> Acceptance | None:
        """The Playment job that already holds `request.reference_id` (after FS_0001).

        Playment has no lookup by reference_id; its batch listing carries reference_id next to the
        job id (REFERENCE.md §1.2 #4, gotcha 9), so the request's batch (or the project's default
        batch) is paged through, 100 jobs a page, up to max_listing_pages.
        """
        project_id = request.project_id or self.settings.project_id
        batch_id = request.batch_id or self.default_batch_id(project_id)
        if batch_id is None:
            return None
        page_token: str | None = None
        for _ in range(self.settings.max_listing_pages):
            data = self._call(
                "GET",
                self.settings.batch_jobs_path,
                project_id=project_id,
                batch_id=batch_id,
                params={"page_token": page_token} if page_token else None,
            )
            jobs = data.get("jobs") if isinstance(data, dict) else None
            if not isinstance(jobs, list) or not jobs:
                return None
            for listed in jobs:
                if isinstance(listed, dict) and listed.get("reference_id") == request.reference_id and listed.get("id"):
                    return Acceptance(
                        vendor_job_id=str(listed["id"]), vendor_refs={"project_id": project_id, "batch_id": batch_id}
                    )
            token = data.get("next_page_token")
            if not token:
                return None
            page_token = str(token)
        return None

    def project_details(self, project_id: str | None = None) -> dict[str, Any]:
        """Playment's project details: {name, base, batches: [{id, name, is_default, total_jobs,
        completed_jobs, ...}]} (REFERENCE.md §1.2 #5)."""
        data = self._call("GET", self.settings.project_details_path, project_id=project_id or self.settings.project_id)
        if not isinstance(data, dict):
            raise Transient("ambiguous_response", "Playment's project details answered without a data object")
        return data

    def default_batch_id(self, project_id: str) -> str | None:
        for batch in self.project_batches(project_id):
            if batch.get("is_default") and batch.get("id"):
                return str(batch["id"])
        return None

    def observe(self, job: Job) -> Observation | None:
        """The job as Playment's GET job reports it; a COMPLETED job comes with its result."""
        if not job.vendor_job_id:
            return None
        found = self.get_job(job.vendor_job_id, job.vendor_refs.get("project_id"))
        update = status_update(found.status)
        if update is None:
            return None
        result = None
        error = None
        if update.status is JobStatus.COMPLETED and update.transition.applies_to(job.status):
            if found.result_url is None:
                return None  # "completed" before the result is there: look again next time
            result = self.fetch_result(found.result_url)
        document = result if isinstance(result, Document) else None
        result = None if document is not None else result
        if update.status is JobStatus.FAILED:
            error = JobError(code="failed", message="Playment reports the job FAILED", retryable=False)
        return Observation(
            reference_id=job.reference_id,
            vendor_job_id=found.job_id,
            update=update,
            result=result,
            document=document,
            error=error,
            detail=f"playment {found.status.strip().upper()} (lookup)",
        )

    def fetch_result(self, result_url: str, deadline: float | None = None) -> Any:
        """The JSON behind a job's result URL, read as vendor JSON (handoff.vendor_json); a file
        that is not JSON comes back as a Document (the file as it came, kept in S3 by the applier).

        Since 2021-07-15 result URLs are private: GET /v1/attachments?url=... with the API key
        answers with a redirect to a signed URL, which is then fetched WITHOUT the key (gotcha 11).
        `deadline` (time.monotonic()): no request starts after it, and none waits past it.
        Raises VendorError (Transient `out_of_time` at the deadline: fetch it later).
        """
        response = send(
            self.session,
            "GET",
            self.settings.base_url + self.settings.attachments_path,
            self.timeouts,
            deadline=deadline,
            params={"url": result_url},
            headers={self.settings.api_key_header: self._api_key(), "Accept": "application/json"},
        )
        # The Attachment API redirects to the signed URL, which may redirect again (a CDN): each
        # Location read against the URL it answered (RFC 9110 §10.2.2: it may be relative), at
        # most MAX_REDIRECTS hops, none of them with the key.
        for _ in range(MAX_REDIRECTS):
            if not (response.is_redirect and response.headers.get("Location")):
                break
            location = urljoin(response.url, response.headers["Location"])
            response = send(self.session, "GET", location, self.timeouts, deadline=deadline)
        raise_for_status(response)
        try:
            return vendor_json.loads(response.content)
        except ValueError:
            # Not JSON: the file is still the job's result, kept as it came (no retry would
            # make it JSON): a Document the applier keeps in S3 and points the job at.
            name = urlsplit(result_url).path.rpartition("/")[2] or "result"
            content_type = response.headers.get("Content-Type") or "application/octet-stream"
            return Document(filename=name, content=response.content, content_type=content_type)

    def callback_keys(self) -> list[str]:
        secret = secret_json(self.settings.secret_name)
        return [
            k for k in (secret.get("callback_key"), secret.get("previous_callback_key")) if isinstance(k, str) and k
        ]

    # -- plumbing ---------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path_template: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        **path_values: str,
    ) -> Any:
        path = path_template.format(**{k: path_segment(v) for k, v in path_values.items()})
        response = send(
            self.session,
            method,
            self.settings.base_url + path,
            self.timeouts,
            json=json,
            params=params,
            headers={self.settings.api_key_header: self._api_key(), "Accept": "application/json"},
        )
        body = json_or_none(response)
        error = body.get("error") if isinstance(body, dict) else None
        code = error.get("code") if isinstance(error, dict) and isinstance(error.get("code"), str) else None
        message = error.get("message") if isinstance(error, dict) and isinstance(error.get("message"), str) else None
        if response.status_code == 401:
            # Playment's 401 carries no JSON body (the SDK names it unauthorized_request, gotcha 10)
            logger.error("Playment refused the API key (HTTP 401)", extra={"header": self.settings.api_key_header})
            raise Rejected(
                "unauthorized_request",
                f"Playment refused the API key (HTTP 401): check the secret's api_key and the "
                f"{self.settings.api_key_header} header (PLAYMENT_API_KEY_HEADER)",
                http_status=401,
                auth_failure=True,
            )
        if response.status_code == 404 and code is None:
            # not one of Playment's documented errors: a path this Playment does not serve
            raise Rejected(
                "http_404",
                f"Playment has no {method} {path_template}: is PLAYMENT_API_GENERATION "
                f"({self.settings.api_generation}) the generation this account's API speaks?",
                http_status=404,
            )
        if code in _HINTS and message is not None:
            message = f"{message} ({_HINTS[code].format(settings=self.settings)})"
        if code in ALREADY_SUBMITTED_CODES and 400 <= response.status_code < 500:
            raise AlreadySubmitted(code, message or "reference_id already used", http_status=response.status_code)
        if code in AUTH_CODES and 400 <= response.status_code < 500:
            raise Rejected(
                code, message or "Playment refused the API key", http_status=response.status_code, auth_failure=True
            )
        if code in TRANSIENT_CODES:
            raise Transient(code, message or "Playment-side failure", http_status=response.status_code)
        raise_for_status(response, code, message)
        if not isinstance(body, dict):
            raise Transient(
                "ambiguous_response", f"Playment answered HTTP {response.status_code} without a JSON object"
            )
        if body.get("success") is False:
            raise Rejected(
                code or "unsuccessful", message or "Playment answered success=false", http_status=response.status_code
            )
        return body.get("data")


def build_client() -> PlaymentClient:
    settings = playment_settings()
    core = core_settings()

    def api_key() -> str:
        key = secret_json(settings.secret_name).get("api_key")
        if not isinstance(key, str) or not key:
            raise MissingCredential("missing_api_key", f"secret {settings.secret_name} has no api_key")
        return key

    return PlaymentClient(settings, api_key, Timeouts(core.vendor_connect_timeout, core.vendor_read_timeout))
