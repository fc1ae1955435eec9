"""Vendor clients by name. A vendor is one module here with a `build_client()`."""

from __future__ import annotations

import importlib
from typing import Any

_clients: dict[str, Any] = {}


def client_for(vendor: str) -> Any:
    """The (cached) client of `vendor`, built on first use from its module's build_client()."""
    if vendor not in _clients:
        module = importlib.import_module(f"handoff.vendors.{vendor}")
        _clients[vendor] = module.build_client()
    return _clients[vendor]


def reset() -> None:
    """Forget built clients (tests)."""
    _clients.clear()
