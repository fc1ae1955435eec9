"""TEXTKING's preflight checks (REFERENCE.md §2): the secret, the access token and the callback URL.

secret        access_token and signing_key are in TextkingSecret
access token  GET /projects?per_page=1 (a read: nothing is created, nothing ordered); 401 is
              the token
callback url  the URL TEXTKING is given with every job: a form with a token that is not ours
              is answered 401 by the TextkingCallback function
"""

from __future__ import annotations

from urllib.parse import urlencode

from handoff.settings import ConfigurationError
from handoff.vendors.base import Rejected, VendorError, json_or_none
from handoff.vendors.checks import (
    FAILED,
    OK,
    SKIPPED,
    Check,
    PreflightContext,
    probe_callback,
    refusal,
    retried,
    status_of,
)
from handoff.vendors.checks import unanswered as unanswered_check
from handoff.vendors.textking.client import NAME, TextkingClient, build_client
from handoff.vendors.textking.settings import textking_callback_url


def preflight(context: PreflightContext) -> list[Check]:
    client = build_client()
    secret = client._credentials()
    checks: list[Check] = []
    missing = [k for k in ("access_token", "signing_key") if not isinstance(secret.get(k), str) or not secret.get(k)]
    if missing:
        checks.append(
            Check(
                NAME,
                "secret",
                FAILED,
                f"TextkingSecret has no {' and no '.join(missing)}: put the "
                "OAuth access token in access_token (the stack generates signing_key)",
            )
        )
    else:
        checks.append(Check(NAME, "secret", OK, "access_token and signing_key are set"))
    if "access_token" in missing:
        checks.append(Check(NAME, "access token", SKIPPED, "none in the secret"))
    else:
        checks.append(_token(client, context))
    try:
        url: str | None = textking_callback_url()
    except (ConfigurationError, VendorError) as exc:
        url = None
        checks.append(Check(NAME, "callback url", FAILED, f"the callback URL cannot be read: {exc}"))
    if url is not None:
        form = urlencode({"project_id": "handoff-preflight", "job_id": "handoff-preflight", "extra_data": "preflight"})
        checks.append(
            probe_callback(
                NAME,
                url,
                content_type="application/x-www-form-urlencoded",
                body=form.encode(),
                timeouts=context.timeouts,
                setting="the TextkingCallbackUrl (the SSM parameter /<stack>/textking-callback-url)",
            )
        )
    return checks


def _token(client: TextkingClient, context: PreflightContext) -> Check:
    base_url = client.settings.base_url
    name = "access token"
    try:
        response = retried(context, lambda: client._call("GET", "/projects", params={"per_page": "1"}))
    except Rejected as exc:
        if exc.auth_failure:
            return Check(
                NAME,
                name,
                FAILED,
                f"TEXTKING refused the access token ({status_of(exc)}): put a valid "
                "OAuth token (offline_access works best) in TextkingSecret's access_token",
            )
        if exc.http_status in (404, 405):
            return Check(
                NAME,
                name,
                FAILED,
                f"GET {base_url}/projects: no such path ({status_of(exc)}): TextkingBaseUrl is not TEXTKING's API",
            )
        return Check(NAME, name, FAILED, f"GET {base_url}/projects was refused ({refusal(exc)}): check TextkingBaseUrl")
    except VendorError as exc:
        return unanswered_check(NAME, name, exc, f"TextkingBaseUrl ({base_url})")
    listing = json_or_none(response)
    total = listing.get("total") if isinstance(listing, dict) else None
    return Check(NAME, name, OK, f"accepted by {base_url}" + (f" ({total} projects)" if total is not None else ""))
