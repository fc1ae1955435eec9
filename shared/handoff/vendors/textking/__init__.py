"""TEXTKING (human translation) as a Handoff vendor.

client.py    projects, jobs, documents, callbacks and their tokens, the order, the quote,
             cancel and a later order (REFERENCE.md §2)
models.py    its submit request
settings.py  TEXTKING_* variables
"""

from __future__ import annotations

from handoff.models import Job
from handoff.vendors.base import CancelCapability, Cleaned, CleanupCapability, OrderCapability, ReplayFrame, Vendor
from handoff.vendors.textking.client import (
    CALLBACK_CONTENT_TYPE,
    NAME,
    TRIGGER_STATES,
    CallbackForm,
    TextkingClient,
    apply_callback,
    authenticate,
    belongs_to,
    build_client,
    left_by,
    make_token,
    parse_callback_form,
    sign,
    status_update,
    verify_token,
)
from handoff.vendors.textking.models import TextkingCallbackForm, TextkingDocument, TextkingSubmitRequest
from handoff.vendors.textking.preflight import preflight
from handoff.vendors.textking.settings import TextkingSettings, textking_callback_url, textking_settings

__all__ = [
    "CALLBACK_CONTENT_TYPE",
    "NAME",
    "TRIGGER_STATES",
    "VENDOR",
    "CallbackForm",
    "TextkingCallbackForm",
    "TextkingClient",
    "TextkingDocument",
    "TextkingSettings",
    "TextkingSubmitRequest",
    "apply_callback",
    "authenticate",
    "belongs_to",
    "build_client",
    "make_token",
    "parse_callback_form",
    "sign",
    "status_update",
    "textking_callback_url",
    "textking_settings",
    "verify_token",
]


def _client() -> TextkingClient:
    from handoff.vendors import client_for  # the registry, which imports this package

    client: TextkingClient = client_for(NAME)  # type: ignore[assignment]
    return client


def _cancel(job: Job) -> None:
    _client().cancel(job)


def _order(job: Job) -> dict[str, str]:
    return _client().place_order(job)


def _clean_up(job: Job) -> Cleaned:
    return _client().clean_up(job)


def _reset() -> None:
    textking_settings.cache_clear()


VENDOR = Vendor(
    name=NAME,
    request_model=TextkingSubmitRequest,
    build_client=build_client,
    callback_content_type=CALLBACK_CONTENT_TYPE,
    apply_callback=apply_callback,
    # the signed token is in the body itself: no header to add
    replay=ReplayFrame(event="textking_callback/api_form_base64.json", function_output="TextkingCallbackFunctionArn"),
    reset=_reset,
    callback_body=TextkingCallbackForm,  # authenticated by the signed token inside it: no scheme
    settings=textking_settings,
    preflight=preflight,
    cancel=CancelCapability(cancel=_cancel),  # while its project is prepared (REFERENCE.md §2.2)
    order=OrderCapability(place=_order),  # PUT state=running on a prepared project
    # a project (or job) a failed submission created and could not delete: retried by the reconciler
    cleanup=CleanupCapability(left_by=left_by, delete=_clean_up),
)
