"""Preflight checks: what a vendor package declares to check its configuration against the vendor
before traffic flows (`Vendor.preflight`), and the pieces every vendor's checks share.

A check never creates billable work at the vendor. What cannot be checked without side effects is
reported `skipped` with the reason, never `ok`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from handoff.observability import trace_vendor_http
from handoff.vendors.base import Rejected, Timeouts, Transient, VendorError, json_or_none, send

if TYPE_CHECKING:  # requests is imported where a request is made: a function that calls no vendor never loads it
    import requests

OK = "ok"
FAILED = "FAILED"
SKIPPED = "skipped"
VERDICTS = (OK, FAILED, SKIPPED)

T = TypeVar("T")
CALLBACK_READ_SECONDS = 15.0


@dataclass(frozen=True)
class Check:
    """One check's verdict: `detail` says what was seen and, when it FAILED, what to do."""

    vendor: str
    name: str
    verdict: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Check:
        return cls(str(value["vendor"]), str(value["name"]), str(value["verdict"]), str(value["detail"]))


@dataclass(frozen=True)
class PreflightContext:
    """What a vendor's checks get besides their own settings and secret.

    `callback_url`: the vendor's callback URL as the stack publishes it (an output), for a vendor
    whose functions are not told it (one configured out of band at the vendor); None when unknown.
    """

    timeouts: Timeouts
    callback_url: str | None = None
    attempts: int = 4  # tries of a check whose answer was transient (408, 429, 5xx, a timeout)
    retry_seconds: float = 0.5


def retried(context: PreflightContext, call: Callable[[], T]) -> T:
    """`call()`, tried again while the vendor's answer is transient (an operator's check should
    not fail on one 503). Raises the last Transient."""
    for attempt in range(1, context.attempts + 1):
        try:
            return call()
        except Transient:
            if attempt == context.attempts:
                raise
            time.sleep(context.retry_seconds * attempt)
    raise AssertionError("unreachable")


def unanswered(vendor: str, name: str, exc: VendorError, what_to_check: str) -> Check:
    """The vendor did not answer usefully (still transient after the retries, or a request that
    could not be built): the check FAILED, because nothing was proven."""
    if isinstance(exc, Transient):
        return Check(
            vendor,
            name,
            FAILED,
            f"could not check: {exc.code} ({exc.message}); run again, and if it persists check {what_to_check}",
        )
    return Check(vendor, name, FAILED, f"{exc.code}: {exc.message}; check {what_to_check}")


def probe_callback(
    vendor: str,
    url: str | None,
    *,
    content_type: str,
    body: bytes,
    timeouts: Timeouts,
    setting: str,
    session: requests.Session | None = None,
) -> Check:
    """POST an unauthenticated callback to `url`: Handoff's callback route answers 401 to it
    (authentication comes before the body), which proves the URL reaches the stack's function
    from outside. Nothing is written by a refused callback."""
    name = "callback url"
    if not url:
        return Check(vendor, name, SKIPPED, f"no callback URL known here ({setting})")
    # A callback function may be starting cold: give it the time a vendor would.
    patient = Timeouts(timeouts.connect, max(timeouts.read, CALLBACK_READ_SECONDS))
    import requests

    trace_vendor_http()
    http = session or requests.Session()
    try:
        response = send(http, "POST", url, patient, data=body, headers={"Content-Type": content_type})
    except VendorError as exc:
        return Check(
            vendor,
            name,
            FAILED,
            f"{url} is not reachable ({exc.code}): check {setting}, and that the API's domain, stage and base "
            "path answer",
        )
    said = json_or_none(response)
    error = said.get("error") if isinstance(said, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if response.status_code == 401 and code == "unauthorized":
        return Check(vendor, name, OK, f"{url} reachable: an unauthenticated callback is answered 401")
    if 200 <= response.status_code < 300:
        return Check(
            vendor,
            name,
            FAILED,
            f"{url} accepted an unauthenticated callback (HTTP "
            f"{response.status_code}): it is not Handoff's callback route; check {setting}",
        )
    return Check(
        vendor,
        name,
        FAILED,
        f"{url} answered HTTP {response.status_code} {code or ''}".rstrip()
        + f", not Handoff's 401 to an unauthenticated callback: check {setting} (domain, stage, base "
        "path, route)",
    )


def status_of(exc: Rejected) -> str:
    """A refusal as status and code only ("HTTP 401 unauthorized_request"), for a verdict that
    already says what the refusal means (the client's own message would say it again)."""
    status = f"HTTP {exc.http_status}" if exc.http_status else ""
    code = "" if exc.code == f"http_{exc.http_status}" else exc.code  # no code of the vendor's
    return " ".join(part for part in (status, code) if part)


def refusal(exc: Rejected) -> str:
    """How a vendor's refusal reads in a verdict: its HTTP status, its code and message (each once)."""
    status = f"HTTP {exc.http_status}" if exc.http_status else ""
    if status and exc.code == f"http_{exc.http_status}" and exc.message.startswith(status):
        return exc.message[:300]  # no code of the vendor's: the message is the status and what the body said
    return " ".join(part for part in (status, f"{exc.code}: {exc.message}") if part)[:300]
