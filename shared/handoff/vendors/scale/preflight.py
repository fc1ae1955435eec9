"""Scale AI's preflight checks (REFERENCE.md §6): the API key, the project and the callback URL.

api key       GET /v1/tasks?limit=1 (a read: no task created); 401 is the key
project       not checked: Scale's API as Handoff uses it has no read of a project, and a
              task creation is the only other way (a live key bills it)
callback url  the URL every task is created with: a callback without scale-callback-auth is
              answered 401 by the ScaleCallback function
"""

from __future__ import annotations

from handoff.settings import ConfigurationError
from handoff.vendors.base import MissingCredential, Rejected, VendorError
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
from handoff.vendors.scale.client import NAME, ScaleClient, build_client
from handoff.vendors.scale.settings import scale_callback_url


def preflight(context: PreflightContext) -> list[Check]:
    client = build_client()
    checks = [_key(client, context)]
    project = client.settings.project
    checks.append(
        Check(
            NAME,
            "project",
            SKIPPED,
            f"ScaleProject {project!r} is not checked: only a task creation would, and a "
            "live key bills it (a wrong project is refused at the first task, 424)",
        )
        if project
        else Check(NAME, "project", SKIPPED, "no ScaleProject: every request must name its project")
    )
    try:
        url: str | None = scale_callback_url()
    except (ConfigurationError, VendorError) as exc:
        url = None
        checks.append(Check(NAME, "callback url", FAILED, f"the callback URL cannot be read: {exc}"))
    if url is not None:
        checks.append(
            probe_callback(
                NAME,
                url,
                content_type="application/json",
                body=b"{}",
                timeouts=context.timeouts,
                setting="the ScaleCallbackUrl (the SSM parameter /<stack>/scale-callback-url)",
            )
        )
    return checks


def _key(client: ScaleClient, context: PreflightContext) -> Check:
    name = "api key"
    base = client.settings.base_url
    try:
        retried(context, lambda: client._call("GET", "/tasks", params={"limit": "1"}))
    except MissingCredential as exc:
        return Check(
            NAME,
            name,
            FAILED,
            f"the ScaleSecret has no api_key ({exc.message}; Scale was not asked): put your Scale API key "
            "(Scale dashboard -> API Keys) in ScaleSecret's api_key",
        )
    except Rejected as exc:
        if exc.auth_failure:
            return Check(
                NAME,
                name,
                FAILED,
                f"Scale refused the API key ({status_of(exc)}): put your Scale API key "
                "(Scale dashboard -> API Keys) in ScaleSecret's api_key",
            )
        if exc.http_status in (404, 405):
            return Check(
                NAME,
                name,
                FAILED,
                f"GET {base}/tasks: no such path ({status_of(exc)}): ScaleBaseUrl is not Scale's API",
            )
        return Check(NAME, name, FAILED, f"GET {base}/tasks was refused ({refusal(exc)}): check ScaleBaseUrl")
    except VendorError as exc:
        return unanswered_check(NAME, name, exc, f"ScaleBaseUrl ({base})")
    kind = " (a test key: its tasks are not done by people)" if client._api_key().startswith("test_") else ""
    return Check(NAME, name, OK, f"accepted by {base}{kind}")
