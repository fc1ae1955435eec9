"""Playment's preflight checks (REFERENCE.md §1): the API key, the project, the configured paths,
the routing field and the callback URL, with nothing billable created.

    api key, project   GET PlaymentProjectDetailsPath: 401 / auth-failure is the key;
                       `unauthorized` is a key without access to the project; resource_error
                       (or 404) is a project Playment does not know
    paths              the default batch's listing (PlaymentBatchJobsPath), a job lookup
                       (PlaymentGetJobPath: a listed job, else FS_0006 for one that does not
                       exist), the attachment API (PlaymentAttachmentsPath); 404/405 = no such path
    routing field      POST PlaymentCreateJobPath with a probe job that carries the routing field
                       and priority_weight 99, which Playment documents as refused (FS_00012,
                       "must be in the range of 1-9"): FS_0005 means the routing field was refused;
                       FS_00012 means it was not, and no job was created
    create batch path  not checked: only creating a batch would, and it stays in the project
"""

from __future__ import annotations

import uuid
from typing import Any

from handoff.vendors.base import MissingCredential, Rejected, VendorError, send
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
    unanswered,
)
from handoff.vendors.playment.client import NAME, PlaymentClient, build_client

# Playment's codes, REFERENCE.md §1.6
NO_ACCESS_CODES = frozenset({"unauthorized", "core.webutil.auther"})
NOT_FOUND_CODES = frozenset({"resource_error"})
ROUTING_MISSING = "FS_0005"
PRIORITY_REFUSED = "FS_00012"
JOB_NOT_FOUND = "FS_0006"
PROBE_PRIORITY = 99
NO_SUCH_PATH = frozenset({404, 405})
NO_ERROR_BODY_404 = "http_404"  # the client's code for a 404 without Playment's error: a path it does not serve


def preflight(context: PreflightContext) -> list[Check]:
    client = build_client()
    settings = client.settings
    project = settings.project_id
    checks: list[Check] = []
    try:
        details = retried(context, lambda: client._call("GET", settings.project_details_path, project_id=project))
    except Rejected as exc:
        checks += _refused_details(exc, project, settings.api_key_header, settings.api_generation)
        checks.append(Check(NAME, "paths", SKIPPED, "need an accepted API key and an existing project"))
    except VendorError as exc:
        checks.append(unanswered(NAME, "api key", exc, "PlaymentBaseUrl"))
        checks.append(Check(NAME, "project", SKIPPED, "Playment did not answer the key check"))
        checks.append(Check(NAME, "paths", SKIPPED, "Playment did not answer the key check"))
    else:
        batches = details.get("batches") if isinstance(details, dict) else None
        count = len(batches) if isinstance(batches, list) else 0
        checks.append(Check(NAME, "api key", OK, f"accepted by {settings.base_url}"))
        checks.append(
            Check(
                NAME,
                "project",
                OK,
                f"{project} exists ({count} batch{'' if count == 1 else 'es'}); the details path answers",
            )
        )
        checks += _paths(client, context, batches if isinstance(batches, list) else [])
        checks += _routing(client, context)
    checks.append(
        Check(
            NAME,
            "PlaymentCreateBatchPath",
            SKIPPED,
            "only creating a batch checks it, and the batch would stay in the project",
        )
    )
    checks.append(
        probe_callback(
            NAME,
            context.callback_url,
            content_type="application/json",
            body=b'{"annotations": []}',
            timeouts=context.timeouts,
            setting="the PlaymentCallbackUrl output (the URL Playment is given)",
        )
    )
    return checks


def _refused_details(exc: Rejected, project: str, header: str, generation: str) -> list[Check]:
    if isinstance(exc, MissingCredential):
        return [
            Check(
                NAME,
                "api key",
                FAILED,
                f"the PlaymentSecret has no api_key ({exc.message}; Playment was not asked): put the key from "
                "Playment's dashboard (Settings -> API Keys) in the PlaymentSecret's api_key",
            ),
            Check(NAME, "project", SKIPPED, "needs an API key"),
        ]
    if exc.code == NO_ERROR_BODY_404:
        return [
            Check(NAME, "api key", SKIPPED, "cannot tell: the project details path is not one Playment serves"),
            Check(
                NAME,
                "project",
                FAILED,
                f"not checked: Playment answered HTTP 404 without an error of its own, so the path, not the "
                f"project, is wrong: set PlaymentApiGeneration (now {generation}) to the generation your "
                "account's API speaks (README 'Configuring Playment'), or PlaymentProjectDetailsPath",
            ),
        ]
    if exc.code in NO_ACCESS_CODES:
        return [
            Check(NAME, "api key", OK, "accepted (Playment says it has no access to the project)"),
            Check(
                NAME,
                "project",
                FAILED,
                f"the API key has no access to project {project} ({refusal(exc)}): use "
                "a key of the project's workspace, or set PlaymentProjectId",
            ),
        ]
    if exc.auth_failure:
        return [
            Check(
                NAME,
                "api key",
                FAILED,
                f"Playment refused the API key ({status_of(exc)}): put the key from "
                f"Playment's dashboard (Settings -> API Keys) in the PlaymentSecret's api_key (sent as {header}, "
                "PlaymentApiKeyHeader)",
            ),
            Check(NAME, "project", SKIPPED, "needs an accepted API key"),
        ]
    if exc.code in NOT_FOUND_CODES or exc.http_status in NO_SUCH_PATH:
        return [
            Check(NAME, "api key", OK, "accepted (not refused; Playment answered not found)"),
            Check(
                NAME,
                "project",
                FAILED,
                f"Playment does not know project {project} ({refusal(exc)}): set "
                "PlaymentProjectId to your project's id (or, if it is right, PlaymentProjectDetailsPath)",
            ),
        ]
    return [
        Check(
            NAME,
            "api key",
            FAILED,
            f"Playment refused the project details read ({refusal(exc)}): check "
            "PlaymentBaseUrl, PlaymentProjectDetailsPath and the API key",
        ),
        Check(NAME, "project", SKIPPED, "Playment refused the key check"),
    ]


def _paths(client: PlaymentClient, context: PreflightContext, batches: list[Any]) -> list[Check]:
    settings = client.settings
    project = settings.project_id
    checks: list[Check] = []
    default = next((b for b in batches if isinstance(b, dict) and b.get("is_default") and b.get("id")), None)
    job_id: str | None = None
    if default is None:
        checks.append(Check(NAME, "PlaymentBatchJobsPath", SKIPPED, "the project lists no default batch to read"))
    else:
        try:
            listing = retried(
                context,
                lambda: client._call("GET", settings.batch_jobs_path, project_id=project, batch_id=str(default["id"])),
            )
        except VendorError as exc:
            checks.append(_path_refused("PlaymentBatchJobsPath", settings.batch_jobs_path, exc))
        else:
            jobs = listing.get("jobs") if isinstance(listing, dict) else None
            listed = [j for j in jobs if isinstance(j, dict) and j.get("id")] if isinstance(jobs, list) else []
            job_id = str(listed[0]["id"]) if listed else None
            checks.append(Check(NAME, "PlaymentBatchJobsPath", OK, "the default batch's listing answers"))
    probe_id = job_id or f"handoff-preflight-{uuid.uuid4()}"
    try:
        retried(context, lambda: client._call("GET", settings.get_job_path, project_id=project, job_id=probe_id))
    except Rejected as exc:
        if exc.code == JOB_NOT_FOUND and job_id is None:
            checks.append(
                Check(NAME, "PlaymentGetJobPath", OK, f"answers ({JOB_NOT_FOUND} for a job that does not exist)")
            )
        else:
            checks.append(_path_refused("PlaymentGetJobPath", settings.get_job_path, exc))
    except VendorError as exc:
        checks.append(_path_refused("PlaymentGetJobPath", settings.get_job_path, exc))
    else:
        checks.append(Check(NAME, "PlaymentGetJobPath", OK, "a listed job's lookup answers"))
    checks.append(_attachments(client, context))
    return checks


def _attachments(client: PlaymentClient, context: PreflightContext) -> Check:
    """GET the attachment API for a URL that is no result: Playment answers with its own refusal
    (or a redirect); a path it does not serve is 404/405."""
    settings = client.settings
    name = "PlaymentAttachmentsPath"
    try:
        response = retried(
            context,
            lambda: _raise_transient(
                send(
                    client.session,
                    "GET",
                    settings.base_url + settings.attachments_path,
                    client.timeouts,
                    params={"url": "https://preflight.invalid/handoff-preflight.json"},
                    headers={settings.api_key_header: client._api_key(), "Accept": "application/json"},
                )
            ),
        )
    except VendorError as exc:
        return unanswered(NAME, name, exc, f"PlaymentAttachmentsPath ({settings.attachments_path})")
    status = response.status_code
    if status in NO_SUCH_PATH or status in (401, 403):
        return Check(
            NAME,
            name,
            FAILED,
            f"GET {settings.attachments_path} answered HTTP {status}: set "
            "PlaymentAttachmentsPath to Playment's attachment API (/v1/attachments)",
        )
    return Check(NAME, name, OK, f"answers (HTTP {status} for a URL that is no result)")


def _raise_transient(response: Any) -> Any:
    from handoff.vendors.base import raise_for_status

    if response.status_code >= 500 or response.status_code in (408, 425, 429):
        raise_for_status(response)
    return response


def _path_refused(name: str, template: str, exc: VendorError) -> Check:
    if isinstance(exc, Rejected) and (exc.http_status in NO_SUCH_PATH or exc.auth_failure):
        return Check(
            NAME,
            name,
            FAILED,
            f"{template} is not a path Playment serves ({status_of(exc)}): set {name} to the path of your "
            "Playment API's generation, or PlaymentApiGeneration to the generation your account's API speaks "
            "(README 'Configuring Playment')",
        )
    if isinstance(exc, Rejected):
        return Check(NAME, name, FAILED, f"Playment refused {template} ({refusal(exc)}): check {name}")
    return unanswered(NAME, name, exc, name)


def _routing(client: PlaymentClient, context: PreflightContext) -> list[Check]:
    settings = client.settings
    field = settings.routing_field
    value = settings.default_tag or "handoff-preflight"
    reference_id = f"handoff-preflight-{uuid.uuid4()}"
    body = {
        "reference_id": reference_id,
        "data": {"image_url": "https://preflight.invalid/handoff-preflight.jpg"},
        field: value,
        "priority_weight": PROBE_PRIORITY,
    }
    create = "PlaymentCreateJobPath"
    try:
        data = retried(
            context, lambda: client._call("POST", settings.create_job_path, project_id=settings.project_id, json=body)
        )
    except Rejected as exc:
        if exc.code == PRIORITY_REFUSED:
            return [
                Check(NAME, create, OK, "answers (the probe job was refused, as intended: nothing created)"),
                Check(
                    NAME,
                    "routing field",
                    OK,
                    f"{field} not refused (Playment refused the probe only for its "
                    f"priority_weight {PROBE_PRIORITY}, {PRIORITY_REFUSED}: no job created)",
                ),
            ]
        if exc.code == ROUTING_MISSING:
            other = "tag" if field == "work_flow_id" else "work_flow_id"
            return [
                Check(NAME, create, OK, "answers"),
                Check(
                    NAME,
                    "routing field",
                    FAILED,
                    f"Playment refused the routing field {field} ({refusal(exc)}): "
                    f"set PlaymentRoutingField to the field of your API's generation ({other}?) to match "
                    f"PlaymentCreateJobPath {settings.create_job_path}",
                ),
            ]
        if exc.http_status in NO_SUCH_PATH or exc.code in NOT_FOUND_CODES:
            return [
                _path_refused(create, settings.create_job_path, exc),
                Check(NAME, "routing field", SKIPPED, "the job creation path does not answer"),
            ]
        return [
            Check(NAME, create, OK, "answers"),
            Check(
                NAME,
                "routing field",
                SKIPPED,
                f"cannot tell without creating a job: Playment refused the "
                f"probe for something else first ({refusal(exc)})",
            ),
        ]
    except VendorError as exc:
        return [
            unanswered(NAME, create, exc, create),
            Check(NAME, "routing field", SKIPPED, "the job creation path did not answer"),
        ]
    job_id = data.get("job_id") if isinstance(data, dict) else None
    return [
        Check(NAME, create, OK, "answers"),
        Check(
            NAME,
            "routing field",
            FAILED,
            f"Playment accepted a probe it documents as refused (priority_weight "
            f"{PROBE_PRIORITY}) and created job {job_id} (reference_id {reference_id}): delete it in Playment, "
            "and check PlaymentBaseUrl and PlaymentCreateJobPath point at Playment",
        ),
    ]
