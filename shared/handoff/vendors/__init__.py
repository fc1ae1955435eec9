"""The vendor registry: every package under handoff/vendors/ that defines `VENDOR` (a
handoff.vendors.base.Vendor) is a vendor. Adding one is adding its package (and its callback
function and template entries); nothing here or in the core names a vendor.

From what is registered: the vendor list, the SubmitRequest union (discriminated by "vendor"),
the POST /jobs body, clients (built once per container) and callback intakes.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, TypeAdapter

from handoff.callbacks import CallbackApplier, CallbackIntake, CallbackRetryQueue
from handoff.models import NOT_BLANK, VENDORS_WITH_BATCHES, BatchRef, not_blank
from handoff.settings import callback_retry_settings
from handoff.vendors.base import Vendor, VendorClient

_clients: dict[str, Any] = {}


class UnknownVendor(LookupError):
    pass


def vendor(name: str) -> Vendor:
    """The registered vendor `name`. Raises UnknownVendor."""
    try:
        return VENDORS[name]
    except KeyError:
        raise UnknownVendor(name) from None


def client_for(name: str) -> VendorClient:
    """The (cached) client of vendor `name`, built on first use. Raises UnknownVendor."""
    if name not in _clients:
        _clients[name] = vendor(name).build_client()
    client: VendorClient = _clients[name]
    return client


def intake_for(name: str, dynamodb: Any, s3: Any, sqs: Any) -> CallbackIntake:
    """The CallbackIntake of vendor `name` on the stack's table, ResultsBucket and CallbackRetryQueue."""
    registered = vendor(name)
    return CallbackIntake(
        name,
        registered.callback_content_type,
        CallbackApplier.for_vendor(name, dynamodb, s3),
        CallbackRetryQueue(callback_retry_settings().queue_url, sqs),
        registered.apply_callback,
    )


def reset() -> None:
    """Forget built clients and each vendor's cached settings (tests)."""
    _clients.clear()
    for registered in VENDORS.values():
        registered.reset()


def _discover() -> dict[str, Vendor]:
    found: dict[str, Vendor] = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.ispkg:
            continue
        registered = getattr(importlib.import_module(f"{__name__}.{info.name}"), "VENDOR", None)
        if isinstance(registered, Vendor):
            found[registered.name] = registered
    return dict(sorted(found.items()))


VENDORS: dict[str, Vendor] = _discover()
VENDOR_NAMES: frozenset[str] = frozenset(VENDORS)
# for the OpenAPI document's enum of a batch's vendor (handoff.models)
VENDORS_WITH_BATCHES[:] = sorted(name for name, v in VENDORS.items() if v.batches is not None)


def check_configured(env: Mapping[str, str] | None = None) -> None:
    """Validate the settings of every vendor this environment configures (any <NAME>_ variable),
    so a misconfigured function fails at cold start, before it accepts a job. Raises
    ConfigurationError naming each variable at fault."""
    env = os.environ if env is None else env
    for name, registered in VENDORS.items():
        if registered.settings is not None and any(variable.startswith(f"{name.upper()}_") for variable in env):
            registered.settings()


check_configured()  # at cold start: every function imports the registry (through handoff.api)

# --- what callers submit -------------------------------------------------------------------------

MAX_BULK_JOBS = 500

if TYPE_CHECKING:
    SubmitRequest = Any  # one of the registered request models: known only at run time
else:
    _models = tuple(v.request_model for v in VENDORS.values())
    SubmitRequest = (
        Annotated[Union[_models], Field(discriminator="vendor")]  # noqa: UP007 (a runtime tuple)
        if len(_models) > 1
        else _models[0]
    )
_SUBMIT_REQUEST: TypeAdapter[Any] = TypeAdapter(SubmitRequest)


def parse_submit_request(value: Any) -> Any:
    """One submit request from plain data, as its vendor's model (raises pydantic.ValidationError)."""
    return _SUBMIT_REQUEST.validate_python(value)


class NewBatch(BaseModel):
    """A batch a bulk submission creates for its jobs (as POST /batches), closed with them."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, BeforeValidator(not_blank)] = Field(
        min_length=1,
        max_length=255,
        pattern=NOT_BLANK,
        description="The vendor's batch name (unique per project; not blank).",
    )
    description: str = Field(default="", max_length=2000)
    batch_ref: BatchRef | None = Field(
        default=None, description="Your id for the batch: give one to make the whole bulk safe to send again."
    )
    vendor: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="Default: the jobs' vendor.",
        json_schema_extra={"enum": [*VENDORS_WITH_BATCHES, None]},
    )


class BulkSubmitRequest(BaseModel):
    """Many jobs in one call. Each job is validated on its own: one invalid job does not reject the rest."""

    model_config = ConfigDict(extra="forbid")

    batch: NewBatch | None = Field(
        default=None, description="Create this batch and put every job in it (a vendor that has batches)."
    )

    jobs: list[Any] = Field(
        min_length=1,
        max_length=MAX_BULK_JOBS,
        description=f"Up to {MAX_BULK_JOBS} submit requests, each shaped like a single POST /jobs body. An entry "
        "that is not one is an `invalid` row; a bulk with no entry that could be a job is refused (422).",
        # each entry is checked on its own (an invalid one is a row of the answer), so the items
        # are not constrained; but a bulk without one object naming a vendor and a reference_id
        # can never be accepted, and the document says so
        json_schema_extra={
            "contains": {
                "type": "object",
                "required": ["vendor", "reference_id"],
                "properties": {"vendor": {"type": "string"}, "reference_id": {"type": "string"}},
            }
        },
    )


def _body_kind(value: Any) -> str:
    return "bulk" if isinstance(value, dict) and "jobs" in value else "single"


# POST /jobs takes one request, or {"jobs": [...]}.
if TYPE_CHECKING:
    SubmitBody = Any
else:
    SubmitBody = Annotated[
        Annotated[SubmitRequest, Tag("single")] | Annotated[BulkSubmitRequest, Tag("bulk")],
        Discriminator(_body_kind),
    ]
BODY_TAGS = frozenset({"single", "bulk"})
