"""TEXTKING (human translation): project -> job -> document -> callbacks -> order.

Built from ../REFERENCE.md §2 and gotchas 19-32: errors are bare HTTP statuses (403 = the project
is no longer `prepared`, not an auth failure); callbacks are form-encoded and carry only
project_id, job_id and extra_data, with no state and no signature. So each callback is registered
with a token in extra_data (HMAC over reference_id and trigger state), and the job's real state is
always read back with GET before anything is applied. Starting a project places a billed order
and happens only when ordering is enabled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from handoff.callbacks import CallbackApplier, Tally, Verdict
from handoff.lifecycle import Document, Observation, VendorUpdate, is_terminal
from handoff.models import CLEANUP_REF, ORDERED_REF, DocumentUnavailable, Job, JobStatus, Quote
from handoff.observability import count, for_job, logger
from handoff.settings import core_settings, put_secret_json, secret_json
from handoff.vendors.base import (
    Acceptance,
    Checkpoint,
    Cleaned,
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
    within,
)
from handoff.vendors.textking.models import CALLBACK_FIELD_MAX, TextkingSubmitRequest, upload_content_type
from handoff.vendors.textking.settings import TextkingSettings, textking_callback_url, textking_settings

if TYPE_CHECKING:  # requests is imported where a request is made: a function that calls no vendor never loads it
    import requests

NAME = "textking"
DOCUMENT_KEPT_SECONDS = 60.0  # see TextkingClient._document
# POST-Document refuses an empty document (400), after its project and job exist.
EMPTY_DOCUMENT = "the document is empty: TEXTKING takes no empty document"
# Project states in which the order is placed (REFERENCE.md §2.2: running, then finished).
PLACED = frozenset({"running", "finished"})
# The submission's checkpoints, forgotten once what they name is deleted (a resubmission starts afresh).
FORGOTTEN = {"project_id": "", "job_id": "", "project_name": "", "job_requested": ""}
TRIGGER_STATES = ("translation-pending", "translation-delivered", "revision-requested", "completed", "canceled")

_STATE_MAP = {
    "new": VendorUpdate(JobStatus.SUBMITTED),
    "translation-pending": VendorUpdate(JobStatus.IN_PROGRESS),
    "revision-requested": VendorUpdate(JobStatus.IN_PROGRESS, revision=True),
    "translation-delivered": VendorUpdate(JobStatus.DELIVERED),
    "completed": VendorUpdate(JobStatus.COMPLETED),
    "canceled": VendorUpdate(JobStatus.CANCELED),
}


def status_update(state: str) -> VendorUpdate | None:
    return _STATE_MAP.get(state.strip().lower()) if state.isascii() else None  # ASCII only


# --- callback tokens -----------------------------------------------------------------------------
# extra_data = "<reference_id>~<trigger_state>~<signature>"; "~" cannot occur in a reference_id.


def sign(key: str, reference_id: str, trigger_state: str) -> str:
    digest = hmac.new(key.encode(), f"{reference_id}\n{trigger_state}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_token(key: str, reference_id: str, trigger_state: str) -> str:
    return f"{reference_id}~{trigger_state}~{sign(key, reference_id, trigger_state)}"


def verify_token(token: str, keys: list[str]) -> tuple[str, str] | None:
    """(reference_id, trigger_state) when the token was signed by one of `keys`, else None."""
    parts = token.split("~")
    if len(parts) != 3 or not all(parts) or parts[1] not in TRIGGER_STATES:
        return None
    reference_id, trigger_state, signature = parts
    valid = False
    for key in keys:  # every key is tried: the time taken does not tell which one matched
        valid |= hmac.compare_digest(sign(key, reference_id, trigger_state), signature)
    return (reference_id, trigger_state) if valid else None


@dataclass(frozen=True)
class CallbackForm:
    project_id: str
    job_id: str
    extra_data: str


def parse_callback_form(body: bytes) -> CallbackForm:
    """The form TEXTKING posts. Raises ValueError when it is not one.

    Parsed as the URL standard's application/x-www-form-urlencoded parser does: empty sequences
    (a leading, trailing or doubled "&") are skipped, not refused. A repeated field is refused.
    """
    try:
        # no max_num_fields: parse_qs counts empty sequences ("&&") as fields, which the standard
        # skips; the body is at most 16 KiB (the route's limit), so its fields are few anyway
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError("the body is not a form (application/x-www-form-urlencoded)") from exc
    repeated = sorted(name for name, given in fields.items() if len(given) > 1)
    if repeated:  # any field, ours or not: a form that says two things is not one TEXTKING sends
        raise ValueError(f"{len(repeated)} field(s) given more than once")
    values: dict[str, str] = {}
    for name in ("project_id", "job_id", "extra_data"):
        given = fields.get(name, [])
        if len(given) != 1 or not given[0] or len(given[0]) > CALLBACK_FIELD_MAX:
            raise ValueError(f"{name} must be given exactly once, non-empty and at most 1,024 characters")
        values[name] = given[0]
    return CallbackForm(**values)


# --- applying a callback -------------------------------------------------------------------------

CALLBACK_CONTENT_TYPE = "application/x-www-form-urlencoded"


def authenticate(form: CallbackForm, job: Job | None, keys: list[str]) -> str | None:
    """Why the callback is not the job's own (None: it is). The token must be signed by one of
    `keys`; when the job is known, job_id and project_id must be the ones it was created with."""
    verified = verify_token(form.extra_data, keys)
    if verified is None:
        return "extra_data is not a valid token"
    if job is not None and not belongs_to(job, form.project_id, form.job_id):
        return "the token does not belong to this job"
    return None


def belongs_to(job: Job, project_id: str, job_id: str) -> bool:
    stored_job = job.vendor_job_id or job.vendor_refs.get("job_id")
    stored_project = job.vendor_refs.get("project_id")
    return job.vendor == NAME and stored_job == job_id and stored_project in (None, project_id)


def apply_callback(body: bytes, applier: CallbackApplier, parsed: Any = None) -> Tally:
    """Apply one callback form (REFERENCE.md §2.5): the form is only a hint, so the job's real
    state is read with GET (and, once delivered, the translation fetched) and applied.

    One verdict: INVALID for a form or token that is not the job's own; UNKNOWN for no such job;
    DUPLICATE when the job is already final; DEFERRED when TEXTKING or the table cannot be read
    now. Never raises for what the body holds.
    """
    tally = Tally()
    tally.add(_apply_form(body, applier))
    return tally


# A callback reads the job (and, once delivered, the translation) from TEXTKING within this:
# TextkingCallback's Timeout is 25 s, API Gateway's 29 s. What is not read in time is deferred
# (200) and read again from the archive (CallbackRetry), never lost to a timeout.
READ_SECONDS = 15.0


def _apply_form(body: bytes, applier: CallbackApplier) -> Verdict:
    try:
        form = parse_callback_form(body)
    except ValueError:
        return Verdict.INVALID
    from handoff.vendors import client_for

    client: TextkingClient = client_for(NAME)  # type: ignore[assignment]
    verified = verify_token(form.extra_data, client.signing_keys())
    if verified is None:
        logger.warning("callback with an invalid token")
        return Verdict.INVALID
    reference_id, trigger_state = verified
    for_job(reference_id)
    try:
        job = applier.store.get(reference_id)
    except Exception:
        logger.exception("the job could not be read; applied again later")
        return Verdict.DEFERRED
    if job is None:
        return Verdict.UNKNOWN
    if not belongs_to(job, form.project_id, form.job_id):
        logger.warning("callback for another job's token")
        return Verdict.INVALID
    if is_terminal(job.status):
        return Verdict.DUPLICATE
    try:
        with within(READ_SECONDS):  # the function (Timeout 25 s) answers whatever TEXTKING does
            seen = client.observe(job)
    except VendorError as exc:
        logger.warning("TEXTKING could not be read; applied again later", extra={"error_code": exc.code})
        return Verdict.DEFERRED
    if seen is None:
        logger.warning("TEXTKING reported a state we do not know", extra={"trigger_state": trigger_state})
        return Verdict.INVALID
    if not seen.update.transition.applies_to(job.status):
        return Verdict.DUPLICATE  # late or repeated: the job is already there or beyond
    try:
        verdict = applier.apply(seen, source="textking-callback")
    except Exception:
        logger.exception("the observation could not be stored; applied again later")
        return Verdict.DEFERRED
    logger.info("callback applied", extra={"verdict": verdict.value, "status": seen.update.status.value})
    return verdict


# --- the client ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextkingJob:
    id: str
    state: str


@dataclass(frozen=True)
class Translation:
    content: bytes
    content_type: str
    filename: str


class TextkingClient:
    name = NAME

    def __init__(
        self,
        settings: TextkingSettings,
        credentials: Callable[..., dict[str, Any]],
        callback_url: Callable[[], str],
        read_document: Callable[[str], bytes],
        timeouts: Timeouts,
        session: requests.Session | None = None,
        check_document: Callable[[str], int] | None = None,
        store_credentials: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        # The secret: access_token, signing_key, previous_signing_key, and for the refresh grant
        # refresh_token, client_id, client_secret. Called with fresh=True: read past the cache.
        self._credentials = credentials
        self._store_credentials = store_credentials  # the secret's new value (after a refresh grant)
        self._refreshing = threading.Lock()  # one refresh at a time in this container
        self._callback_url = callback_url
        self._read_document = read_document  # raises DocumentUnavailable when it never will be readable
        self._check_document = check_document  # the same, without reading it (HeadObject): its size
        self._last_document: tuple[tuple[str, str], float, bytes] | None = None  # see _document
        self.timeouts = timeouts
        self.session = session or new_session()

    def signing_keys(self) -> list[str]:
        secret = self._credentials()
        return [k for k in (secret.get("signing_key"), secret.get("previous_signing_key")) if isinstance(k, str) and k]

    # -- submission -------------------------------------------------------------------------------

    def prepare(self) -> None:
        self._credentials()  # a cold function reads the secret now, not between its rate slot and the send

    def submit(self, request: TextkingSubmitRequest, checkpoint: Checkpoint) -> Acceptance:
        """Create (or continue) the TEXTKING order for `request`.

        TEXTKING has no idempotency key: every POST creates. So each step is checkpointed in
        vendor_refs before it is sent (`project_name`, `job_requested`) and its id the moment it
        is known; and a resumed submission reads what TEXTKING holds FIRST (the project's state,
        the job, its document, its callbacks) and sends only the steps still missing:

            project running/finished   the order is placed: accepted, nothing is sent
            project canceled           Rejected project_canceled
            project prepared           find the job (by id, or by name after a lost answer),
                                       upload only when it has no document, register only the
                                       missing callbacks, start the project when ordering

        A lost answer to POST /projects or POST /jobs is found again by listing (the project's
        name carries the reference_id); a duplicate created by it is deleted (it is prepared and
        empty), so a lost answer at any call ends in exactly one project, one job, one order.
        """
        problems = self.check(request, look=False)
        if problems:
            code = "unsupported_quality" if problems[0]["field"] == "quality" else "document_unavailable"
            raise Rejected(code, f"{problems[0]['field']}: {problems[0]['message']}", details=problems)
        document = request.document
        # The document first: one that cannot be read must not leave a project and job behind.
        try:
            content = (
                document.text.encode()
                if document.text is not None
                else self._document(request.reference_id, str(document.s3_uri))
            )
        except DocumentUnavailable as exc:
            raise Rejected("document_unavailable", str(exc)) from exc
        if not content:  # emptied since it was checked: TEXTKING would refuse it after the project exists
            raise Rejected("document_unavailable", f"document.s3_uri: {EMPTY_DOCUMENT}")
        try:
            return self._submit(request, checkpoint, content)
        except Rejected as exc:
            raise self._without_orphans(exc, checkpoint) from exc

    def _document(self, reference_id: str, uri: str) -> bytes:
        """The S3 document's bytes, kept a minute for the same job: a large one takes longer to
        read than a rate slot waits, and the attempt that missed its slot (nothing sent) goes
        again at once with the bytes in hand instead of reading them again (and missing again)."""
        key = (reference_id, uri)
        if self._last_document is not None:
            kept_key, kept_at, content = self._last_document
            if kept_key == key and time.monotonic() - kept_at < DOCUMENT_KEPT_SECONDS:
                return content
        content = self._read_document(uri)
        self._last_document = (key, time.monotonic(), content)
        return content

    def _without_orphans(self, exc: Rejected, checkpoint: Checkpoint) -> Rejected:
        """A submission TEXTKING refused for good leaves nothing behind: the project Handoff
        created for it is deleted (DELETE /project: prepared only, 204), or, in a caller's
        project, the job. Said in the job's last_error (and so its history). A deletion that
        fails is logged, counted (TextkingOrphanLeft) and said there too, and the job names it
        in vendor_refs[CLEANUP_REF] ("project" / "job"): the reconciler retries it (`clean_up`)."""
        refs = checkpoint.refs
        project_id, job_id = refs.get("project_id"), refs.get("job_id")
        if not project_id or exc.code == "project_not_prepared":
            return exc
        if refs.get("project_name"):
            target, what = f"/project/{_seg(project_id)}", f"project {project_id}"
        elif job_id:
            target, what = f"/project/{_seg(project_id)}/job/{_seg(job_id)}", f"job {job_id}"
        else:
            return exc
        if self._delete_quietly(target):
            checkpoint.record(**FORGOTTEN)
            note = f"; the TEXTKING {what} it created was deleted"
        else:
            logger.error("an orphan is left at TEXTKING", extra={"what": what})
            count("TextkingOrphanLeft", NAME)
            checkpoint.record(**{CLEANUP_REF: what.split()[0]})
            note = f"; the TEXTKING {what} it created could NOT be deleted yet: the reconciler retries it"
        return Rejected(
            exc.code,
            exc.message + note,
            http_status=exc.http_status,
            details=exc.details,
            auth_failure=exc.auth_failure,
        )

    def _submit(self, request: TextkingSubmitRequest, checkpoint: Checkpoint, content: bytes) -> Acceptance:
        document = request.document
        refs = dict(checkpoint.refs)
        resumed = any(refs.values())  # an earlier attempt sent something: read TEXTKING before acting
        order = request.order if request.order is not None else self.settings.ordering_enabled
        checkpoint.check_start()  # the first TEXTKING request must start inside its rate slot
        project_id = refs.get("project_id") or request.project_id
        if not project_id and refs.get("project_name"):
            project_id = self.find_project(refs["project_name"])  # its creation's answer was lost
        if not project_id:
            name = self.project_name(request)
            checkpoint.record(project_name=name)
            project_id = self.create_project(name)
        if refs.get("project_id") != project_id:
            checkpoint.record(project_id=project_id)
        ours = bool(refs.get("project_name") or checkpoint.refs.get("project_name"))
        state = self.project_state(project_id) if resumed else "prepared"
        job_id = refs.get("job_id") or None
        if job_id is None and refs.get("job_requested"):
            job_id = self.find_job(project_id, request, ours=ours)  # its creation's answer was lost
            if job_id is not None:
                checkpoint.record(job_id=job_id)
        if state in PLACED:
            if job_id is None or not self.job_exists(project_id, job_id):
                raise Rejected("project_not_prepared", f"project {project_id} is {state} without this job")
            logger.info("the order is already placed; nothing sent", extra={"reference_id": request.reference_id})
            return _acceptance(project_id, job_id, ordered=True)
        if state != "prepared":
            raise Rejected("project_canceled", f"project {project_id} is {state}")
        if job_id is not None and resumed and not self.job_exists(project_id, job_id):
            job_id = None  # deleted at TEXTKING since: created again below
        if job_id is None:
            checkpoint.record(job_requested="true")
            job_id = self.create_job(project_id, request)
            checkpoint.record(job_id=job_id)
        if not (resumed and self.has_document(project_id, job_id)):
            self.upload_document(project_id, job_id, document.filename, content, upload_content_type(document))
        self.register_callbacks(project_id, job_id, request.reference_id, skip_existing=resumed)
        if order:
            self.start_project(project_id)
            return _acceptance(project_id, job_id, ordered=True)
        return _acceptance(project_id, job_id, ordered=False, quote=self.quote(project_id, job_id))

    def project_name(self, request: TextkingSubmitRequest) -> str:
        """The name a new project is created with: it carries the reference_id, so that a project
        whose creation's answer was lost is found again by name (GET /projects)."""
        base = request.project_name or self.settings.default_project_name
        return f"{base} [{request.reference_id}]"

    def project_state(self, project_id: str) -> str:
        project = json_or_none(self._call("GET", f"/project/{_seg(project_id)}"))
        if not isinstance(project, dict) or not isinstance(project.get("state"), str):
            raise Transient("ambiguous_response", "TEXTKING project lookup answered without a state")
        return str(project["state"])

    def job_exists(self, project_id: str, job_id: str) -> bool:
        try:
            self.get_job(project_id, job_id)
        except Rejected as exc:
            if exc.http_status == 404:
                return False
            raise
        return True

    def find_project(self, name: str) -> str | None:
        """The prepared project named `name` (GET /projects?state=prepared, paged). More than one:
        the answers to several creations were lost; the first is kept, the others deleted."""
        found = [p["id"] for p in self._listing("/projects", {"state": "prepared"}) if p.get("name") == name]
        for extra in found[1:]:
            self._delete_quietly(f"/project/{_seg(extra)}")
        return found[0] if found else None

    def find_job(self, project_id: str, request: TextkingSubmitRequest, *, ours: bool) -> str | None:
        """This request's job in the project after a lost answer to POST /jobs: in a project
        Handoff created for it, its jobs (extras are deleted); in a caller's project, the first
        job with the request's name and languages."""
        jobs = self._listing(f"/project/{_seg(project_id)}/jobs", {})
        matching = [
            j["id"]
            for j in jobs
            if ours
            or (
                j.get("name") == request.name
                and j.get("source_language") == request.source_language
                and j.get("target_language") == request.target_language
            )
        ]
        if ours:
            for extra in matching[1:]:
                self._delete_quietly(f"/project/{_seg(project_id)}/job/{_seg(extra)}")
        return matching[0] if matching else None

    def _listing(self, path: str, params: dict[str, str], max_pages: int = 20) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, max_pages + 1):
            body = json_or_none(self._call("GET", path, params={**params, "per_page": "100", "page": str(page)}))
            batch = body.get("items") if isinstance(body, dict) else None
            if not isinstance(batch, list):
                raise Transient("ambiguous_response", f"TEXTKING listed {path} without items")
            items += [i for i in batch if isinstance(i, dict) and isinstance(i.get("id"), str)]
            if len(batch) < 100:
                break
        return items

    def _delete_quietly(self, path: str) -> bool:
        try:
            self._call("DELETE", path)
        except VendorError as exc:
            logger.warning("a TEXTKING duplicate could not be deleted", extra={"error_code": exc.code})
            return False
        return True

    def check(self, request: TextkingSubmitRequest, *, look: bool = True) -> list[dict[str, Any]]:
        """What TEXTKING (or reading the document) would refuse, known before any vendor call:
        a quality the account does not take, a document outside DocumentSourceBucket, and (with
        `look`) a document object that is missing or not readable. [] when none."""
        problems: list[dict[str, Any]] = []
        if request.quality not in self.settings.quality_names:
            problems.append(
                _problem("quality", f"not one of the stack's TextkingQualities {sorted(self.settings.quality_names)}")
            )
        uri = request.document.s3_uri
        if uri is not None:
            bucket = uri.removeprefix("s3://").partition("/")[0]
            if not self.settings.document_bucket:
                problems.append(_problem("document.s3_uri", "no DocumentSourceBucket is configured: send text"))
            elif bucket != self.settings.document_bucket:
                problems.append(_problem("document.s3_uri", "must name an object in the stack's DocumentSourceBucket"))
            elif look and self._check_document is not None:
                try:
                    size = self._check_document(uri)
                except DocumentUnavailable as exc:
                    problems.append(_problem("document.s3_uri", str(exc)))
                else:
                    if size == 0:
                        problems.append(_problem("document.s3_uri", EMPTY_DOCUMENT))
        return problems

    def create_project(self, name: str) -> str:
        response = self._call("POST", "/projects", json={"name": name})
        return self._created_id(response, "project")

    def create_job(self, project_id: str, request: TextkingSubmitRequest) -> str:
        body = {
            "name": request.name,
            "source_language": request.source_language,
            "target_language": request.target_language,
            "quality": request.quality,
        }
        if request.topic:
            body["topic"] = request.topic
        if request.briefing:
            body["briefing"] = request.briefing
        response = self._call("POST", f"/project/{_seg(project_id)}/jobs", json=body)
        return self._created_id(response, "job")

    def upload_document(self, project_id: str, job_id: str, filename: str, content: bytes, content_type: str) -> None:
        self._call(
            "POST",
            f"/project/{_seg(project_id)}/job/{_seg(job_id)}/document/{_seg(filename)}",
            data=content,
            headers={"Content-Type": content_type},
        )

    def register_callbacks(self, project_id: str, job_id: str, reference_id: str, *, skip_existing: bool) -> None:
        base = f"/project/{_seg(project_id)}/job/{_seg(job_id)}/callbacks"
        url = self._callback_url()
        existing = self.registered_trigger_states(project_id, job_id) if skip_existing else set()
        key = self.signing_keys()[:1]
        if not key:
            raise Rejected("missing_signing_key", "the TEXTKING secret has no signing_key")
        for state in TRIGGER_STATES:
            if state not in existing:
                token = make_token(key[0], reference_id, state)
                self._call("POST", base, json={"url": url, "trigger_state": state, "extra_data": token})

    def start_project(self, project_id: str) -> None:
        """PUT state=running: places the billed order (only ever sent to a project just read
        `prepared`, or created by this attempt)."""
        self._call("PUT", f"/project/{_seg(project_id)}", json={"state": "running"})

    # -- reading back ------------------------------------------------------------------------------

    def find(self, request: TextkingSubmitRequest, job: Job) -> Acceptance | None:
        """The TEXTKING job an earlier attempt created, if TEXTKING holds it ACCEPTED: in a
        running or finished project (the order is placed, whatever else is missing), or complete
        (the job, its document, a callback for every trigger state) and, when not ordering, in a
        prepared project.

        TEXTKING never answers "already submitted" (it has no idempotency key; every POST creates),
        so the checkpoint names the job and TEXTKING is asked what it holds. Anything short of
        that is not found: the job was never accepted (no document to translate, or no callbacks
        to say when it is done), and it is resumed or failed loudly, never SUBMITTED.
        """
        project_id, job_id = job.vendor_refs.get("project_id"), job.vendor_refs.get("job_id")
        if not project_id or not job_id:
            return None
        state = self.project_state(project_id)
        if not self.job_exists(project_id, job_id):
            return None
        if state in PLACED:
            return _acceptance(project_id, job_id, ordered=True)
        if state != "prepared":
            return None
        if not self.has_document(project_id, job_id):
            logger.warning("TEXTKING holds the job without its document", extra={"reference_id": job.reference_id})
            return None
        missing = set(TRIGGER_STATES) - self.registered_trigger_states(project_id, job_id)
        if missing:
            logger.warning(
                "TEXTKING holds the job without all its callbacks",
                extra={"reference_id": job.reference_id, "missing": sorted(missing)},
            )
            return None
        order = request.order if request.order is not None else self.settings.ordering_enabled
        return None if order else _acceptance(project_id, job_id, ordered=False, quote=self.quote(project_id, job_id))

    def quote(self, project_id: str, job_id: str) -> Quote | None:
        """The job's quote as TEXTKING gives it once its document is uploaded: GET the job, its
        `words`, `net_price` and `currency` (REFERENCE.md §2.3). None when TEXTKING does not say
        (yet), or cannot be read now: the job is accepted all the same, without a quote."""
        try:
            body = json_or_none(self._call("GET", f"/project/{_seg(project_id)}/job/{_seg(job_id)}"))
        except VendorError as exc:
            logger.warning("the TEXTKING job's quote could not be read", extra={"error_code": exc.code})
            return None
        if not isinstance(body, dict):
            return None
        try:
            return Quote.model_validate({name: body.get(name) for name in ("words", "net_price", "currency")})
        except ValidationError:
            logger.warning("TEXTKING answered the job without a usable quote")
            return None

    # -- after a failure: what is left -------------------------------------------------------------

    def clean_up(self, job: Job) -> Cleaned:
        """Delete what the FAILED `job` left at TEXTKING (vendor_refs[CLEANUP_REF], for the
        reconciler): the project Handoff created for it (DELETE /project/{id}, prepared only,
        204; REFERENCE.md §2.2), found by name when its creation's answer was lost; in a caller's
        project, only its job (DELETE .../job/{id}, §2.3). A project or job already gone (404) or
        a project canceled is nothing left. Returns the history detail and FORGOTTEN refs.

        Raises Transient when TEXTKING cannot be asked now; Rejected `order_placed` when the
        project is running or finished (a billed order exists: a person must look), or TEXTKING's
        own refusal (e.g. the token: `forbidden`, http_401). Each failure counts TextkingOrphanLeft.
        """
        try:
            detail = self._delete_left(job)
        except VendorError as exc:
            count("TextkingOrphanLeft", NAME)
            logger.error(
                "what the failed job left at TEXTKING could not be deleted",
                extra={"reference_id": job.reference_id, "error_code": exc.code},
            )
            raise
        return Cleaned(detail, dict(FORGOTTEN))

    def _delete_left(self, job: Job) -> str:
        refs = job.vendor_refs
        ours = bool(refs.get("project_name"))
        project_id = refs.get("project_id") or job.request.get("project_id")
        if ours and not project_id:
            project_id = self.find_project(refs["project_name"])
        if not project_id:
            return "nothing was left at TEXTKING (no project was created)"
        if ours:
            target, what = f"/project/{_seg(project_id)}", f"project {project_id}"
        else:
            job_id = refs.get("job_id") or None
            if job_id is None and refs.get("job_requested"):
                request = TextkingSubmitRequest.model_validate(job.request)
                job_id = self.find_job(project_id, request, ours=False)
            if job_id is None:
                return "nothing was left at TEXTKING (no job was created)"
            target, what = f"/project/{_seg(project_id)}/job/{_seg(job_id)}", f"job {job_id}"
        try:
            self._call("DELETE", target)
        except Rejected as exc:
            if exc.http_status == 404:
                return f"the TEXTKING {what} is gone already"
            if exc.code != "project_not_prepared":
                raise
            state = self.project_state(project_id)
            if ours and state == "canceled":
                return f"the TEXTKING {what} is canceled"
            raise Rejected(
                "order_placed",
                f"the TEXTKING {what} cannot be deleted: project {project_id} is {state} (an order is placed)",
                http_status=exc.http_status,
            ) from exc
        return f"the TEXTKING {what} it created was deleted"

    # -- after submission: cancel, order -----------------------------------------------------------

    def cancel(self, job: Job) -> None:
        """Cancel the job at TEXTKING, which allows it only while its project is `prepared` (not
        ordered; REFERENCE.md §2.2, gotcha 28): the project Handoff created for it is canceled
        (PUT /project/{id} state=canceled); in a caller's own project (the request's project_id)
        only this job is deleted (DELETE .../job/{id}, prepared only), the project's other jobs
        stay. Raises Rejected `not_cancellable` once the project is running or finished (the
        order is placed); Transient when TEXTKING cannot be asked now. A project already canceled,
        or a job already deleted (an earlier cancel whose answer was lost), is done."""
        project_id, job_id = job.vendor_refs.get("project_id"), job.vendor_job_id or job.vendor_refs.get("job_id")
        if not project_id or not job_id:
            raise Rejected("not_cancellable", "the job has no TEXTKING project and job to cancel")
        ours = not job.request.get("project_id")
        try:
            if ours:
                self._call("PUT", f"/project/{_seg(project_id)}", json={"state": "canceled"})
            else:
                self._call("DELETE", f"/project/{_seg(project_id)}/job/{_seg(job_id)}")
        except Rejected as exc:
            if exc.code == "project_not_prepared":
                state = self.project_state(project_id)
                if ours and state == "canceled":
                    return
                raise Rejected(
                    "not_cancellable",
                    f"TEXTKING cancels only while the project is prepared; project {project_id} is {state}",
                    http_status=exc.http_status,
                ) from exc
            if exc.http_status == 404 and not ours:
                return
            raise

    def place_order(self, job: Job) -> dict[str, str]:
        """Place the billed order of a job submitted without it: PUT /project/{id} state=running on
        its project, which TEXTKING allows only while it is `prepared` (REFERENCE.md §2.2, gotcha
        27: billed, one-way; it orders every active job of the project). Returns the vendor_refs
        to record ({"ordered": "true"}). A project already running or finished (an earlier order
        whose answer was lost) is ordered: the same. Raises Rejected `not_orderable` for a project
        canceled (or otherwise not prepared); Transient when TEXTKING cannot be asked now."""
        project_id = job.vendor_refs.get("project_id")
        if not project_id:
            raise Rejected("not_orderable", "the job has no TEXTKING project to order")
        try:
            self.start_project(project_id)
        except Rejected as exc:
            if exc.code != "project_not_prepared":
                raise
            state = self.project_state(project_id)
            if state not in PLACED:
                raise Rejected(
                    "not_orderable",
                    f"TEXTKING orders only a prepared project; project {project_id} is {state}",
                    http_status=exc.http_status,
                ) from exc
        return {ORDERED_REF: "true"}

    def has_document(self, project_id: str, job_id: str) -> bool:
        """GET .../document: 200 when the job has its source document, 404 when not (§2.4)."""
        try:  # streamed and closed unread: the document itself is not needed
            self._call(
                "GET", f"/project/{_seg(project_id)}/job/{_seg(job_id)}/document", accept="*/*", stream=True
            ).close()
        except Rejected as exc:
            if exc.http_status == 404:
                return False
            raise
        return True

    def registered_trigger_states(self, project_id: str, job_id: str) -> set[str]:
        """The trigger states with a callback to this stack's URL (GET .../callbacks, §2.5)."""
        listing = json_or_none(self._call("GET", f"/project/{_seg(project_id)}/job/{_seg(job_id)}/callbacks"))
        items = listing.get("items", []) if isinstance(listing, dict) else []
        url = self._callback_url()
        return {str(i.get("trigger_state")) for i in items if isinstance(i, dict) and i.get("url") == url}

    def observe(self, job: Job) -> Observation | None:
        """The job's real state (callbacks are only hints), with the translation once it is delivered.

        The translation is fetched only when the state would move the job: on translation-delivered,
        and on completed if no delivery was stored before.
        """
        project_id = job.vendor_refs.get("project_id")
        job_id = job.vendor_job_id or job.vendor_refs.get("job_id")
        if not project_id or not job_id:
            return None
        state = self.get_job(project_id, job_id).state
        update = status_update(state)
        if update is None:
            return None
        document = None
        moves = update.transition.applies_to(job.status)
        if moves and (
            update.status is JobStatus.DELIVERED or (update.status is JobStatus.COMPLETED and job.result_ref is None)
        ):
            translation = self.get_translation(project_id, job_id)
            document = Document(translation.filename, translation.content, translation.content_type)
        return Observation(job.reference_id, job_id, update, document=document, detail=f"textking {state}")

    def get_job(self, project_id: str, job_id: str) -> TextkingJob:
        body = json_or_none(self._call("GET", f"/project/{_seg(project_id)}/job/{_seg(job_id)}"))
        if not isinstance(body, dict) or not isinstance(body.get("state"), str):
            raise Transient("ambiguous_response", "TEXTKING job lookup answered without a state")
        return TextkingJob(id=str(body.get("id") or job_id), state=body["state"])

    def get_translation(self, project_id: str, job_id: str) -> Translation:
        response = self._call("GET", f"/project/{_seg(project_id)}/job/{_seg(job_id)}/translation", accept="*/*")
        # The header as the standard reads it (quoted or not, RFC 2231's filename*=UTF-8''...):
        # TEXTKING sends the name unquoted (REFERENCE.md §2.4)
        header = Message()
        header["Content-Disposition"] = response.headers.get("Content-Disposition", "")
        filename = re.sub(r"[/\\\x00-\x1f\x7f]", "_", (header.get_filename() or "").strip()) or "translation"
        return Translation(
            content=response.content,
            content_type=response.headers.get("Content-Type", "application/octet-stream"),
            filename=filename,
        )

    # -- plumbing ---------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, accept: str = "application/json", **kwargs: Any) -> requests.Response:
        token = self._credentials().get("access_token")
        if not isinstance(token, str) or not token:
            raise MissingCredential("missing_access_token", "the TEXTKING secret has no access_token")
        headers = {"Authorization": f"Bearer {token}", "Accept": accept, **kwargs.pop("headers", {})}
        response = send(self.session, method, self.settings.base_url + path, self.timeouts, headers=headers, **kwargs)
        if response.status_code == 401:
            fresh = self._fresh_token(refused=token)
            if fresh is not None:  # the refresh grant gave a new token: the call once more, with it
                headers["Authorization"] = f"Bearer {fresh}"
                response = send(
                    self.session, method, self.settings.base_url + path, self.timeouts, headers=headers, **kwargs
                )
        if response.status_code == 403:
            raise self._forbidden(method, path, headers)
        if response.status_code == 401:
            count("TextkingAuthFailed", NAME)
            logger.error("TEXTKING refused the access token", extra={"method": method, "status": 401})
        raise_for_status(response, auth_statuses=frozenset({401}))
        return response

    def _fresh_token(self, refused: str) -> str | None:
        """A token to use instead of `refused` (answered 401), or None when the secret holds no
        refresh grant (the long-lived offline_access token: the 401 is an auth failure as it is).

        The secret is read again past the cache first: when its access_token is no longer the
        refused one, another function has refreshed (or someone rotated it): that one is used.
        Else the refresh grant (REFERENCE.md §2.1: POST <TEXTKING_OAUTH_TOKEN_URL>, form
        grant_type=refresh_token, client_id, client_secret, refresh_token; the answer's
        access_token, and refresh_token when TEXTKING rotates it, inferred as OAuth 2.0 names
        them) and the new token(s) stored in the secret (PutSecretValue). Once per 401: no loop.

        Raises Rejected `refresh_refused` (auth failure, metric TextkingAuthFailed) when TEXTKING
        refuses the grant (400/401) or the secret lacks client_id/client_secret; Transient when the
        token endpoint cannot be asked now (5xx, timeout) or answers without an access_token.
        """
        with self._refreshing:
            secret = self._credentials(fresh=True)
            current = secret.get("access_token")
            if isinstance(current, str) and current and current != refused:
                logger.info("the TEXTKING access token was refreshed elsewhere; using it")
                return current
            refresh_token = secret.get("refresh_token")
            if not isinstance(refresh_token, str) or not refresh_token:
                return None
            client_id, client_secret = secret.get("client_id"), secret.get("client_secret")
            if not (isinstance(client_id, str) and client_id and isinstance(client_secret, str) and client_secret):
                raise self._refresh_refused("the TEXTKING secret has a refresh_token without client_id/client_secret")
            answer = send(
                self.session,
                "POST",
                self.settings.oauth_token_url,
                self.timeouts,
                data={
                    "grant_type": "refresh_token",
                    "client_id": client_id,
                    "client_secret": client_secret,
                    "refresh_token": refresh_token,
                },
                headers={"Accept": "application/json"},
            )
            if answer.status_code in (400, 401):
                # A concurrent refresh elsewhere may have used up a rotated refresh token: its token stands.
                again = self._credentials(fresh=True).get("access_token")
                if isinstance(again, str) and again and again != refused:
                    return again
                said = json_or_none(answer)
                error = said.get("error") if isinstance(said, dict) else None  # OAuth's code, e.g. invalid_grant
                reason = error if isinstance(error, str) and len(error) <= 64 else f"HTTP {answer.status_code}"
                raise self._refresh_refused(f"TEXTKING refused the refresh grant ({reason})", answer.status_code)
            raise_for_status(answer, code="refresh_failed", message=f"the token endpoint answered {answer.status_code}")
            body = json_or_none(answer)
            token = body.get("access_token") if isinstance(body, dict) else None
            if not isinstance(token, str) or not token:
                raise Transient("ambiguous_response", "TEXTKING's token endpoint answered without an access_token")
            updated = {**secret, "access_token": token}
            rotated = body.get("refresh_token") if isinstance(body, dict) else None
            if isinstance(rotated, str) and rotated:
                updated["refresh_token"] = rotated
            expires_in = body.get("expires_in") if isinstance(body, dict) else None
            if isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 0:
                updated["access_token_expires_at"] = str(int(time.time()) + expires_in)  # epoch seconds
            self._store(updated)
            logger.info("the TEXTKING access token was refreshed", extra={"rotated_refresh_token": bool(rotated)})
            return token

    def _store(self, secret: dict[str, Any]) -> None:
        """The refreshed secret into Secrets Manager. A failure is logged loudly and the new token
        used for this call all the same: the next 401 refreshes again (with the stored refresh_token)."""
        if self._store_credentials is None:
            return
        try:
            self._store_credentials(secret)
        except Exception as exc:  # the type only: the exception may quote the request, secrets and all
            count("TextkingAuthFailed", NAME)
            logger.error("the refreshed TEXTKING token could not be stored", extra={"error": type(exc).__name__})

    @staticmethod
    def _refresh_refused(message: str, status: int | None = None) -> Rejected:
        count("TextkingAuthFailed", NAME)
        logger.error("the TEXTKING refresh grant failed", extra={"status": status})
        return Rejected("refresh_refused", message, http_status=status, auth_failure=True)

    def _forbidden(self, method: str, path: str, headers: dict[str, str]) -> Rejected:
        """What a 403 means. TEXTKING documents 403 only for a change to a project (or its jobs)
        that is no longer `prepared` (REFERENCE.md gotcha 28). So a 403 to a change under
        /project/{id} is `project_not_prepared` when the project is indeed not prepared; any other
        403 (a read, a create, a change under a prepared project) is the token's permission:
        `forbidden`, an auth failure (metric TextkingAuthFailed)."""
        match = re.match(r"^/project/([^/]+)", path)
        if method != "GET" and match:
            look = send(
                self.session,
                "GET",
                f"{self.settings.base_url}/project/{match.group(1)}",
                self.timeouts,
                headers=headers,
            )
            state = (json_or_none(look) or {}).get("state") if look.status_code == 200 else None
            if isinstance(state, str) and state != "prepared":
                return Rejected(
                    "project_not_prepared",
                    f"{method} {path}: the project is {state}, no longer prepared",
                    http_status=403,
                )
        count("TextkingAuthFailed", NAME)
        logger.error("TEXTKING refused the token's permission", extra={"method": method, "status": 403})
        return Rejected(
            "forbidden",
            f"{method} {path}: TEXTKING refused the access token's permission (403)",
            http_status=403,
            auth_failure=True,
        )

    @staticmethod
    def _created_id(response: requests.Response, what: str) -> str:
        body = json_or_none(response)
        if isinstance(body, dict) and isinstance(body.get("id"), str) and body["id"]:
            return body["id"]
        # Old revisions send Location, current ones Content-Location (gotcha 24).
        location = response.headers.get("Content-Location") or response.headers.get("Location") or ""
        if location.rstrip("/"):
            return location.rstrip("/").rsplit("/", 1)[-1]
        raise Transient("ambiguous_response", f"TEXTKING created a {what} without telling its id")


def left_by(refs: dict[str, str]) -> str | None:
    """What a submission given up after transient failures may have left at TEXTKING, by its
    checkpoints: the project it created (or asked for: its answer may have been lost), or its
    job in a caller's project. None: nothing was asked for."""
    if refs.get("project_name"):
        return "project"
    if refs.get("job_id") or refs.get("job_requested"):
        return "job"
    return None


def _acceptance(project_id: str, job_id: str, *, ordered: bool, quote: Quote | None = None) -> Acceptance:
    return Acceptance(
        vendor_job_id=job_id,
        vendor_refs={"project_id": project_id, "job_id": job_id, ORDERED_REF: "true" if ordered else "false"},
        quote=quote,
    )


def _problem(field: str, message: str) -> dict[str, Any]:
    return {"field": field, "message": message, "type": "vendor_constraint"}


def _seg(value: str) -> str:
    return path_segment(value)


def build_client() -> TextkingClient:
    from handoff.archive import check_s3_uri, read_s3_uri

    settings = textking_settings()
    core = core_settings()
    return TextkingClient(
        settings,
        credentials=lambda fresh=False: secret_json(settings.secret_name, force_fetch=fresh),
        store_credentials=lambda value: put_secret_json(settings.secret_name, value),
        callback_url=textking_callback_url,
        read_document=read_s3_uri,
        timeouts=Timeouts(core.vendor_connect_timeout, core.vendor_read_timeout),
        check_document=check_s3_uri,
    )
