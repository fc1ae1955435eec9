"""Vendors by name. A vendor is one module here with:

NAME, build_client()                     its client (handoff.vendors.base.VendorClient)
CALLBACK_CONTENT_TYPE, apply_callback()  how a raw callback body of its is applied
"""

from __future__ import annotations

import importlib
from typing import Any

from handoff.callbacks import CallbackApplier, CallbackIntake, CallbackRetryQueue
from handoff.settings import callback_retry_settings

_clients: dict[str, Any] = {}


def client_for(vendor: str) -> Any:
    """The (cached) client of `vendor`, built on first use from its module's build_client()."""
    if vendor not in _clients:
        _clients[vendor] = _module(vendor).build_client()
    return _clients[vendor]


def intake_for(vendor: str, dynamodb: Any, s3: Any, sqs: Any) -> CallbackIntake:
    """The CallbackIntake of `vendor` on the stack's table, ResultsBucket and CallbackRetryQueue."""
    module = _module(vendor)
    return CallbackIntake(
        vendor,
        module.CALLBACK_CONTENT_TYPE,
        CallbackApplier.for_vendor(vendor, dynamodb, s3),
        CallbackRetryQueue(callback_retry_settings().queue_url, sqs),
        module.apply_callback,
    )


class UnknownVendor(LookupError):
    pass


def _module(vendor: str) -> Any:
    """The vendor's module. Raises UnknownVendor for a name that is not a vendor."""
    try:
        module = importlib.import_module(f"handoff.vendors.{vendor}")
    except ModuleNotFoundError:
        raise UnknownVendor(vendor) from None
    if getattr(module, "NAME", None) != vendor:
        raise UnknownVendor(vendor)  # e.g. handoff.vendors.base
    return module


def reset() -> None:
    """Forget built clients (tests)."""
    _clients.clear()
