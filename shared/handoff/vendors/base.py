"""What every vendor client offers, and the one way vendor failures are classified.

2xx                           accepted
400 + "already submitted"     AlreadySubmitted   (vendor-specific recognition, e.g. Playment FS_0001)
401 / 403 auth failures       Rejected(auth_failure=True)
other 4xx (not 408 / 429)     Rejected           will not change on retry
408, 429, 5xx                 Transient          retry with backoff
timeout, connection error     Transient
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from urllib3.exceptions import ProtocolError, ReadTimeoutError

from handoff.lifecycle import Observation
from handoff.models import Job, JobError, Quote
from handoff.observability import trace_vendor_http, tracer

if TYPE_CHECKING:  # requests is imported where a request is made: a function that calls no vendor never loads it
    import requests

TRANSIENT_STATUSES = frozenset({408, 425, 429})
AUTH_STATUSES = frozenset({401, 403})


class VendorError(Exception):
    retryable = False

    def __init__(
        self, code: str, message: str, *, http_status: int | None = None, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.details = details or []

    def as_job_error(self) -> JobError:
        return JobError(code=self.code, message=self.message, retryable=self.retryable, details=self.details)


class Transient(VendorError):
    """May succeed if tried again later."""

    retryable = True


class MissedSlot(Transient):
    """The request would have started too long after its rate slot (see handoff.pacing)."""


# The latest moment the next request may start (armed by Checkpoint.check_start, after the
# submitter waited for a rate slot). Checked by `send` once the request is built, right before it
# goes out, then cleared: only the first request of a submission is paced. A context variable:
# each record of a batch runs in a thread of its own (queue.process_batch).
_start_by: ContextVar[float | None] = ContextVar("handoff_start_by", default=None)
# When every vendor request of this context must be done (time.monotonic()): `within`.
_deadline: ContextVar[float | None] = ContextVar("handoff_deadline", default=None)
# A request is not started with less time than this left before its deadline.
MIN_REQUEST_SECONDS = 0.5


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Every vendor request made inside is done (answered and read) within `seconds` from now, or
    Transient: a function that must answer in time (a callback) wraps its vendor reads in it."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _check_slot(start_by: float | None) -> None:
    if start_by is not None and time.time() > start_by:
        raise MissedSlot("missed_rate_slot", "the request would have started too late for its rate slot")


def disarm() -> None:
    """Forget a slot armed by check_start whose request was never sent (the submission failed first)."""
    _start_by.set(None)


class Rejected(VendorError):
    """The vendor refused the request; trying again will not change that."""

    def __init__(self, code: str, message: str, *, auth_failure: bool = False, **kwargs: Any) -> None:
        super().__init__(code, message, **kwargs)
        self.auth_failure = auth_failure


class MissingCredential(Rejected):
    """The vendor's secret lacks what the request needs (no key, no token): the vendor was not called."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, auth_failure=True)


class AlreadySubmitted(VendorError):
    """The vendor already holds a job for this reference: an earlier attempt got through."""


@dataclass(frozen=True)
class Acceptance:
    vendor_job_id: str
    vendor_refs: dict[str, str] = field(default_factory=dict)
    quote: Quote | None = None  # what the vendor asks for a job it holds unordered (recorded on the job)


class Checkpoint:
    """Progress of a multi-step submission, saved as it happens.

    A vendor whose submission takes several non-idempotent calls (TEXTKING: project, job,
    callbacks, order) records each id the moment it exists, so that a retry after a crash or a
    failure midway continues from there instead of creating a second project.
    """

    def __init__(
        self, refs: dict[str, str], save: Callable[[dict[str, str]], None], *, start_by: float | None = None
    ) -> None:
        self.refs = dict(refs)
        self._save = save
        # The submission's rate slot: its first vendor request must start by this time (epoch s).
        self.start_by = start_by

    def check_start(self) -> None:
        """Call before the submission's first vendor request. Raises MissedSlot when it would start
        too late for its rate slot (sent later, it could crowd the requests after it into one
        second; the submitter takes a new slot): now, and again in `send` at the moment the request
        goes out, so that a stall while it is being built cannot send it late. Later requests of
        the submission are not paced."""
        start_by, self.start_by = self.start_by, None
        _check_slot(start_by)
        _start_by.set(start_by)

    def record(self, **refs: str) -> None:
        self.refs.update(refs)
        self._save(refs)


class VendorClient(Protocol):
    """What Handoff needs from a vendor: one module under vendors/ implements it."""

    name: str

    def prepare(self) -> None:
        """Load what a submission needs (credentials), so the paced request goes out on time."""
        ...

    def check(self, request: Any) -> list[dict[str, Any]]:
        """What the vendor would refuse that can be known before calling it, as error details
        ({field, message, type}); [] when none. Called before the job is written."""
        ...

    def submit(self, request: Any, checkpoint: Checkpoint) -> Acceptance:
        """Create the vendor's job (Transient / Rejected / AlreadySubmitted when it cannot)."""
        ...

    def find(self, request: Any, job: Job) -> Acceptance | None:
        """The vendor's job for this reference if an earlier attempt fully submitted it (None: not
        found). Asked after AlreadySubmitted, and before a job whose last attempt failed is given up."""
        ...

    def observe(self, job: Job) -> Observation | None:
        """The vendor's current word on a job it accepted, read from its API (None: nothing usable)."""
        ...


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float

    def as_tuple(self) -> tuple[float, float]:
        return (self.connect, self.read)


# Connections kept per vendor host: more than a batch's records in flight at once (the submission
# worker's RECORD_CONCURRENCY), and the local stack runs several invocations in one process.
POOL_SIZE = 32


def new_session() -> requests.Session:
    """A session for a vendor client, whose connection pool holds every request in flight (with
    requests' default of 10, the 11th concurrent request would open and throw away a connection).
    Its calls are traced (only the functions that make one patch requests for X-Ray)."""
    import requests

    trace_vendor_http()
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@tracer.capture_method(capture_response=False)
def send(
    session: requests.Session,
    method: str,
    url: str,
    timeouts: Timeouts,
    *,
    deadline: float | None = None,
    **kwargs: Any,
) -> requests.Response:
    """One HTTP request, whole (answer and body) within connect + read timeout, or by `deadline`
    (time.monotonic()) when that is sooner: requests' read timeout bounds each read, not the
    body, so a vendor trickling its answer would otherwise hold a function past its own timeout.
    Network failures and a body not read in time come back as Transient. A request that cannot
    even be built (a header value with a line break, a URL that is not one) is Rejected
    (`request_not_built`): sending it again can never succeed."""
    import requests  # loaded by the session's maker already (new_session)

    until = time.monotonic() + timeouts.connect + timeouts.read
    for bound in (deadline, _deadline.get()):
        if bound is not None:
            left = bound - time.monotonic()
            if left < MIN_REQUEST_SECONDS:
                raise Transient("out_of_time", f"{method} {_path(url)} not sent: no time left for it")
            until = min(until, bound)
            # no wait (to connect, for the answer's start) longer than what is left either
            timeouts = Timeouts(min(timeouts.connect, left), min(timeouts.read, left))
    try:
        # session.request, in its two halves: build the request, then send it, so that a rate slot
        # (Checkpoint.check_start) is checked after the building, at the moment it goes out.
        kwargs.pop("stream", None)
        prepared = session.prepare_request(requests.Request(method, url, **kwargs))
        settings = session.merge_environment_settings(prepared.url, {}, True, None, None)
        start_by = _start_by.get()
        if start_by is not None:
            _start_by.set(None)
            _check_slot(start_by)
        response = session.send(prepared, timeout=timeouts.as_tuple(), allow_redirects=False, **settings)
        return _read_by(response, until, f"{method} {_path(url)}")
    except requests.Timeout as exc:
        raise Transient("timeout", f"{method} {_path(url)} timed out: {type(exc).__name__}") from exc
    except requests.ConnectionError as exc:
        raise Transient("connection_error", f"{method} {_path(url)} could not connect") from exc
    except (ValueError, requests.exceptions.URLRequired, requests.exceptions.InvalidJSONError) as exc:
        # InvalidHeader, InvalidURL, MissingSchema, InvalidSchema, http.client's InvalidURL and
        # UnicodeEncodeError are ValueErrors: raised while the request is built, before any byte is sent.
        raise Rejected("request_not_built", f"{method} {_path(url)} could not be built: {type(exc).__name__}") from exc
    except requests.RequestException as exc:
        raise Transient("request_error", f"{method} {_path(url)} failed: {type(exc).__name__}") from exc


def _read_by(response: requests.Response, until: float, what: str) -> requests.Response:
    """The response with its body read (response.content), or Transient `timeout` once `until`
    (time.monotonic()) passes while it is being read."""
    chunks = []
    raw = response.raw
    if raw is None or not hasattr(raw, "read"):  # an adapter that answered with no stream (tests)
        return response
    # read1: what has arrived (up to 64 KiB), not a wait for a full chunk; chunked and compressed
    # bodies decoded as requests decodes them
    read = getattr(raw, "read1", None) or (lambda amt, decode_content: raw.read(4096, decode_content=decode_content))
    try:
        while chunk := read(64 * 1024, decode_content=True):
            chunks.append(chunk)
            if time.monotonic() > until:
                raise Transient("timeout", f"{what} was not answered whole in time")
    except (ProtocolError, ReadTimeoutError, OSError) as exc:
        raise Transient("connection_error", f"{what}: the answer broke off ({type(exc).__name__})") from exc
    finally:
        response.close()
    # what requests' own `content` holds once read (it has no public setter)
    response._content = b"".join(chunks)
    return response


def static_key_matches(presented: str | None, keys: list[str]) -> bool:
    """A static callback secret (a header's value) against the current and previous keys, in
    constant time: every key is compared, so the time taken does not tell which one matched."""
    if not presented or not keys:
        return False
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    return matched


def path_segment(value: str) -> str:
    """`value` as one URL path segment (every reserved character percent-encoded). Raises Rejected
    (`request_not_built`) for a value no URL can carry as a segment: empty, "." or "..", which
    clients and servers remove as dot-segments (RFC 3986 §5.2.4), sending the request elsewhere."""
    if value in ("", ".", ".."):
        raise Rejected("request_not_built", f"{value!r} cannot be a URL path segment")
    return quote(value, safe="")


def json_or_none(response: requests.Response) -> Any:
    """The body as JSON, or None when it is not JSON (vendors' error pages often are not)."""
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None


def raise_for_status(
    response: requests.Response,
    code: str | None = None,
    message: str | None = None,
    *,
    auth_statuses: frozenset[int] = AUTH_STATUSES,
) -> None:
    """Classify a non-2xx answer. `code`/`message` are what the vendor's body said, if anything;
    `auth_statuses` are the statuses that mean "your credentials" for this vendor."""
    status = response.status_code
    if 200 <= status < 300:
        return
    code = code or f"http_{status}"
    message = message or _snippet(response)
    if status in TRANSIENT_STATUSES or status >= 500:
        raise Transient(code, message, http_status=status)
    if status in auth_statuses:
        raise Rejected(code, message, http_status=status, auth_failure=True)
    raise Rejected(code, message, http_status=status)


def _snippet(response: requests.Response) -> str:
    text = (response.text or "").strip().replace("\n", " ")
    return f"HTTP {response.status_code}" + (f": {text[:200]}" if text else "")


def _path(url: str) -> str:
    # Error messages keep the path only: query strings may carry tokens.
    return url.split("?", 1)[0]


@dataclass(frozen=True)
class ReplayFrame:
    """How `make replay` hands an archived callback of this vendor to its callback function."""

    event: str  # a sample under events/: the API Gateway request the vendor's callback makes
    function_output: str  # the stack output holding the callback function's ARN
    secret_output: str | None = None  # the stack output of the secret that auth_headers reads
    auth_headers: Callable[[dict[str, Any]], dict[str, str]] = field(default=lambda secret: {})


@dataclass(frozen=True)
class BatchCapability:
    """A vendor's batches (a named group of jobs at the vendor), for the core's batch use case
    (handoff.batches). A vendor without it answers 422 `batches_not_supported`."""

    # (name, description) -> the vendor's batch id. Raises VendorError (Rejected: the vendor
    # refuses it, e.g. a name already taken; Transient: try again).
    create: Callable[[str, str], str]
    # name -> the vendor's id of its batch of that name, or None (a creation whose answer was lost).
    find: Callable[[str], str | None]
    # vendor batch id -> the vendor's own word on the batch (e.g. its counts), or None when unknown.
    details: Callable[[str], dict[str, Any] | None]
    # the vendor batch id a submit request already names (None: none).
    named_in: Callable[[Any], str | None]
    # (request, batch_ref, vendor batch id) -> the request carrying both, as it is stored and sent.
    assign: Callable[[Any, str, str], Any]


@dataclass(frozen=True)
class CancelCapability:
    """A vendor's cancel of a job it accepted, for the core's cancel use case (handoff.cancel_order).
    A vendor without it answers 409 `not_cancellable` for a job it holds (a QUEUED job is canceled
    without the vendor whatever the vendor)."""

    # job -> None once the vendor canceled it (or had already). Raises Rejected when the vendor
    # refuses (e.g. work has begun: the job is not cancellable), Transient when it cannot be asked now.
    cancel: Callable[[Job], None]


@dataclass(frozen=True)
class OrderCapability:
    """A vendor whose accepted jobs may wait for a billed order placed later (POST
    /jobs/{reference_id}/order, handoff.cancel_order). The job records the order as
    vendor_refs["ordered"] ("true" / "false", handoff.models.ORDERED_REF). A vendor without it
    answers 422 `order_not_supported`."""

    # job -> the vendor_refs to record once the order is placed (or was already placed). Raises
    # Rejected when the vendor refuses (the job is not orderable), Transient when it cannot be asked now.
    place: Callable[[Job], dict[str, str]]


@dataclass(frozen=True)
class Cleaned:
    """What a cleanup did: said in the job's history, and the vendor_refs to record with it (e.g.
    the deleted ids forgotten, so that a resubmission starts afresh)."""

    detail: str
    refs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CleanupCapability:
    """A vendor whose submission creates things before the vendor accepts the job (a project, a
    job) that must not be left behind when the job FAILS. The job names what is left in
    vendor_refs[CLEANUP_REF] (handoff.models); the reconciler (handoff.reconcile) retries
    `delete` on FAILED jobs holding it until it succeeds, then clears it and records it in the
    job's history. A vendor without it leaves nothing behind."""

    # vendor_refs of a job given up after transient failures (retries_exhausted) -> the marker to
    # record when the attempts may have created something at the vendor (None: nothing to delete).
    left_by: Callable[[dict[str, str]], str | None]
    # FAILED job holding the marker -> Cleaned once nothing is left (deleted now, or gone already).
    # Raises VendorError when it cannot be deleted now (Transient) or is refused (Rejected): the
    # marker stays and the next run tries again.
    delete: Callable[[Job], Cleaned]


@dataclass(frozen=True)
class Vendor:
    """A vendor as the registry (handoff.vendors) knows it: everything the core needs, nothing named.

    A vendor is one package under handoff/vendors/ whose __init__ defines VENDOR = Vendor(...).
    """

    name: str  # the request's "vendor" value, the metric dimension, the archive prefix
    request_model: type[Any]  # its submit request (a pydantic model with vendor: Literal[name])
    build_client: Callable[[], VendorClient]
    callback_content_type: str
    # (raw body, applier, body as the API's gate parsed it or None) -> Tally; never raises for the body
    apply_callback: Callable[[bytes, Any, Any], Any]
    replay: ReplayFrame
    reset: Callable[[], None] = field(default=lambda: None)  # forget cached settings (tests)
    # The callback route's OpenAPI parts: its body (a pydantic model, documentation only: the
    # function reads the raw body) and how it is authenticated (an OpenAPI security scheme).
    callback_body: type[Any] | None = None
    callback_security: dict[str, Any] | None = None
    # Its settings (cached; raises ConfigurationError): validated at cold start in every function
    # whose environment configures the vendor (handoff.vendors.check_configured).
    settings: Callable[[], Any] | None = None
    # Its preflight checks (handoff.vendors.checks): (PreflightContext) -> [Check], one per thing
    # checked against the vendor (key, project, paths, callback URL ...); nothing billable is created.
    preflight: Callable[[Any], list[Any]] | None = None
    # Its batches (POST /batches, jobs submitted into one, Batch Completed); None: it has none.
    batches: BatchCapability | None = None
    # Its cancel of a job it accepted (POST /jobs/{reference_id}/cancel); None: it has none.
    cancel: CancelCapability | None = None
    # Its order placed after submission (POST /jobs/{reference_id}/order); None: it has none.
    order: OrderCapability | None = None
    # Its cleanup of what a FAILED job left at it (retried by the reconciler); None: it leaves nothing.
    cleanup: CleanupCapability | None = None
