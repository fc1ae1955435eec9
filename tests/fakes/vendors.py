"""Vendor clients as the registry builds them, with their credentials given instead of read from
Secrets Manager: what the domain tests on the fakes hand the use cases. They still speak HTTP to a
sandbox (local/sandboxes) or the tests' HTTP server, wherever *_BASE_URL points."""

from __future__ import annotations

from collections.abc import Callable

from handoff.settings import core_settings
from handoff.vendors.base import Timeouts, VendorClient
from handoff.vendors.playment import PlaymentClient, playment_settings
from tests.conftest import PLAYMENT_API_KEY


def timeouts() -> Timeouts:
    core = core_settings()
    return Timeouts(core.vendor_connect_timeout, core.vendor_read_timeout)


def playment_client(api_key: str = PLAYMENT_API_KEY) -> PlaymentClient:
    """What handoff.vendors.playment.build_client makes, with the API key given."""
    return PlaymentClient(playment_settings(), lambda: api_key, timeouts())


def clients(**built: VendorClient) -> Callable[[str], VendorClient]:
    """A `clients` for the use cases (vendor name -> client), like handoff.vendors.client_for."""

    def client_for(name: str) -> VendorClient:
        if name not in built:
            raise LookupError(f"no client for {name} in this test")
        return built[name]

    return client_for
