"""Scale AI (data annotation) as a Handoff vendor.

client.py    task creation (unique_id = reference_id), lookup by unique_id, task reads, cancel,
             the callback's reading and authentication (REFERENCE.md §6)
models.py    its submit request and callback models
settings.py  SCALE_* variables
"""

from __future__ import annotations

from typing import Any

from handoff.models import Job
from handoff.vendors.base import CancelCapability, ReplayFrame, Vendor
from handoff.vendors.scale.client import (
    CALLBACK_AUTH_HEADER,
    CALLBACK_CONTENT_TYPE,
    NAME,
    ScaleClient,
    apply_callback,
    build_client,
    callback_key_matches,
    callback_keys,
    observation,
    status_update,
)
from handoff.vendors.scale.models import (
    MAX_METADATA_BYTES,
    REFERENCE_KEY,
    ScaleCallback,
    ScaleSubmitRequest,
    ScaleTask,
)
from handoff.vendors.scale.preflight import preflight
from handoff.vendors.scale.settings import ScaleSettings, scale_callback_url, scale_settings

__all__ = [
    "CALLBACK_AUTH_HEADER",
    "CALLBACK_CONTENT_TYPE",
    "MAX_METADATA_BYTES",
    "NAME",
    "REFERENCE_KEY",
    "VENDOR",
    "ScaleCallback",
    "ScaleClient",
    "ScaleSettings",
    "ScaleSubmitRequest",
    "ScaleTask",
    "apply_callback",
    "build_client",
    "callback_key_matches",
    "callback_keys",
    "observation",
    "scale_callback_url",
    "scale_settings",
    "status_update",
]


def _replay_headers(secret: dict[str, Any]) -> dict[str, str]:
    key = secret.get("callback_auth_key")
    if not isinstance(key, str) or not key:
        raise LookupError("the Scale secret has no callback_auth_key")
    return {CALLBACK_AUTH_HEADER: key}


def _cancel(job: Job) -> None:
    from handoff.vendors import client_for  # the registry, which imports this package

    client: ScaleClient = client_for(NAME)  # type: ignore[assignment]
    client.cancel_task(job)


VENDOR = Vendor(
    name=NAME,
    request_model=ScaleSubmitRequest,
    build_client=build_client,
    callback_content_type=CALLBACK_CONTENT_TYPE,
    apply_callback=apply_callback,
    replay=ReplayFrame(
        event="scale_callback/api_completed.json",
        function_output="ScaleCallbackFunctionArn",
        secret_output="ScaleSecretArn",  # noqa: S106 (a stack output's name)
        auth_headers=_replay_headers,
    ),
    reset=scale_settings.cache_clear,
    callback_body=ScaleCallback,
    callback_security={"type": "apiKey", "in": "header", "name": "scale-callback-auth"},
    settings=scale_settings,
    preflight=preflight,
    cancel=CancelCapability(cancel=_cancel),  # only before work starts (REFERENCE.md §6)
)
