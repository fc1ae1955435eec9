"""Playment (image, video and sensor annotation) as a Handoff vendor.

client.py    job creation, batches, lookups, the callback's reading (REFERENCE.md §1)
models.py    its submit request and callback models
settings.py  PLAYMENT_* variables
"""

from __future__ import annotations

from typing import Any

from handoff.vendors.base import BatchCapability, ReplayFrame, Vendor
from handoff.vendors.playment.client import (
    CALLBACK_CONTENT_TYPE,
    MAX_ANNOTATIONS,
    NAME,
    PlaymentClient,
    apply_callback,
    build_client,
    callback_key_matches,
    is_result_url,
    observation,
    status_update,
)
from handoff.vendors.playment.models import (
    PlaymentAnnotation,
    PlaymentCallbackBody,
    PlaymentCallbackError,
    PlaymentSubmitRequest,
)
from handoff.vendors.playment.preflight import preflight
from handoff.vendors.playment.settings import PlaymentSettings, playment_settings

__all__ = [
    "CALLBACK_CONTENT_TYPE",
    "MAX_ANNOTATIONS",
    "NAME",
    "VENDOR",
    "PlaymentAnnotation",
    "PlaymentCallbackBody",
    "PlaymentCallbackError",
    "PlaymentClient",
    "PlaymentSettings",
    "PlaymentSubmitRequest",
    "apply_callback",
    "build_client",
    "callback_key_matches",
    "is_result_url",
    "observation",
    "playment_settings",
    "status_update",
]


def _replay_headers(secret: dict[str, Any]) -> dict[str, str]:
    key = secret.get("callback_key")
    if not isinstance(key, str) or not key:
        raise LookupError("the Playment secret has no callback_key")
    return {"x-playment-key": key}


def _client() -> PlaymentClient:
    from handoff.vendors import client_for  # the registry, which imports this package

    client: PlaymentClient = client_for(NAME)  # type: ignore[assignment]
    return client


def _assign(request: PlaymentSubmitRequest, batch_ref: str, batch_id: str) -> PlaymentSubmitRequest:
    return request.model_copy(update={"batch_ref": batch_ref, "batch_id": batch_id})


BATCHES = BatchCapability(
    create=lambda name, description: _client().create_batch(name, description),
    find=lambda name: _client().find_batch(name),
    details=lambda batch_id: _client().batch_details(batch_id),
    named_in=lambda request: request.batch_id,
    assign=_assign,
)

VENDOR = Vendor(
    name=NAME,
    request_model=PlaymentSubmitRequest,
    build_client=build_client,
    callback_content_type=CALLBACK_CONTENT_TYPE,
    apply_callback=apply_callback,
    replay=ReplayFrame(
        event="playment_callback/api_completed.json",
        function_output="PlaymentCallbackFunctionArn",
        secret_output="PlaymentSecretArn",  # noqa: S106 (a stack output's name)
        auth_headers=_replay_headers,
    ),
    reset=playment_settings.cache_clear,
    callback_body=PlaymentCallbackBody,
    callback_security={"type": "apiKey", "in": "header", "name": "x-playment-key"},
    settings=playment_settings,
    preflight=preflight,
    batches=BATCHES,
)
