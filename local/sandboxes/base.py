"""A vendor on the local stack: its sandbox, how the stack wires it, and its part of the demo.

Each module in local/sandboxes/ that defines `LOCAL_VENDOR` (a LocalVendor subclass) is one vendor
of the local stack; local/stack.py and local/demo.py find them here and name none. A new vendor's
sandbox module is all the local stack needs (see README "Adding a vendor").
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict

from local.sandboxes.server import BackgroundServer


@dataclass
class Faults:
    """Fault knobs of the sandboxes (see local/sandboxes/*.py); a sandbox without a knob ignores it."""

    error_rate: float = 0.0  # a job creation is answered 503
    timeout_rate: float = 0.0  # the answer stalls past the client's timeout, nothing created
    lost_rate: float = 0.0  # the job is created, then the answer stalls (a repeat on retry)
    failed_rate: float = 0.0  # the vendor reports a job failed
    drop_rate: float = 0.0  # a callback is never sent
    duplicate_rate: float = 0.0  # a callback is sent twice
    reorder_seconds: float = 0.0  # callbacks may overtake each other by up to this much

    @classmethod
    def demo(cls) -> Faults:
        return cls(
            error_rate=0.2,
            lost_rate=0.05,
            failed_rate=0.1,
            drop_rate=0.1,
            duplicate_rate=0.2,
            reorder_seconds=0.5,
        )


class CreationFaults(TypedDict):
    """A sandbox's job-creation knobs (SANDBOX_KNOBS in local/sandboxes/server.py)."""

    rate_limit: float
    error_rate: float
    timeout_rate: float
    lost_rate: float
    stall_seconds: float


@dataclass(frozen=True)
class LocalSetup:
    """What the stack decides for every sandbox."""

    faults: Faults = field(default_factory=Faults)
    work_seconds: float = 3.0  # how long a vendor takes over a job
    rate_limits: Mapping[str, float] = field(default_factory=dict)  # vendor -> requests/s, else its default
    stall_seconds: float = 3.0  # how long a stalled answer stalls (past the stack's read timeout)
    # vendor -> {option: value}: a vendor's own choices (LocalVendor.options), e.g. which of its
    # API's versions the sandbox speaks and the stack's parameters configure
    options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


class LocalVendor(ABC):
    """One vendor's sandbox on the local stack. Life cycle: __init__ (sandbox built) -> start()
    (served) -> parameters() (the template's parameters that point the functions at it) ->
    secret() (its secret's value, written by the stack) -> connect() (callback URL known)."""

    name: ClassVar[str]  # the vendor's name in Handoff's registry ("vendor" in a request)
    title: ClassVar[str]  # how people write it
    secret_logical_id: ClassVar[str]  # the template's secret for this vendor
    default_rate: ClassVar[float] = 20.0  # requests/s the sandbox allows unless the stack says
    demo_bulk: ClassVar[bool] = False  # the demo sends its jobs in one bulk POST
    # The options it takes (`python -m local.stack --option VENDOR.NAME=VALUE`): name -> the values
    # allowed, the first being the default.
    options: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    # What this vendor's events/ samples carry, for `make local SAM_LOCAL=1` (local/samples.py):
    # the callback keys (secret field -> the sample's value) and the vendor's ids of the jobs the
    # samples name (reference_id -> the vendor's ids of the job, e.g. a job id, or a project
    # id and a job id).
    sample_keys: ClassVar[Mapping[str, str]] = {}
    sample_ids: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    sandbox: Any  # the WSGI app; has `callbacks` (a CallbackSender) and `stop()`

    def __init__(self, setup: LocalSetup) -> None:
        self.setup = setup
        self.rate_limit = float(setup.rate_limits.get(self.name, self.default_rate))
        self.server: BackgroundServer | None = None

    def option(self, name: str) -> str:
        """The value of one of its `options` on this stack (its default unless the setup says)."""
        return self.setup.options.get(self.name, {}).get(name, self.options[name][0])

    def creation_faults(self) -> CreationFaults:
        """The keyword arguments of a sandbox with the job-creation knobs (SANDBOX_KNOBS in
        local/sandboxes/server.py): its rate limit and the stack's faults."""
        faults = self.setup.faults
        return CreationFaults(
            rate_limit=self.rate_limit,
            error_rate=faults.error_rate,
            timeout_rate=faults.timeout_rate,
            lost_rate=faults.lost_rate,
            stall_seconds=self.setup.stall_seconds,
        )

    def start(self) -> LocalVendor:
        faults = self.setup.faults
        for knob in ("drop_rate", "duplicate_rate", "reorder_seconds"):
            setattr(self.sandbox.callbacks, knob, getattr(faults, knob))
        self.server = BackgroundServer(self.sandbox).start()
        self.served(self.server.url)
        return self

    def served(self, url: str) -> None:  # noqa: B027 (a hook: most sandboxes need nothing here)
        """Hook: the sandbox is served at `url`."""

    @property
    def url(self) -> str:
        """Where the vendor's API is, as its client's base URL setting wants it."""
        assert self.server is not None, "start() first"
        return self.server.url

    def play_samples(self) -> None:  # noqa: B027 (a hook: a vendor without samples needs nothing here)
        """Hook, called before secret(): from now on the vendor's secret holds `sample_keys` (its
        callbacks carry them), and a job created for a reference_id of `sample_ids` gets the
        sample's ids and is left in progress (no progress, no callback), so that the samples'
        own callbacks find it where they expect it."""

    @abstractmethod
    def parameters(self) -> dict[str, str]:
        """The template's parameters that point the functions at this sandbox."""

    @abstractmethod
    def secret(self, current: Mapping[str, str]) -> dict[str, str]:
        """The value of the vendor's secret, given the one the stack created from the template."""

    @abstractmethod
    def connect(self, callback_url: str) -> None:
        """The vendor's callback URL on the local API is `callback_url`."""

    @abstractmethod
    def silence(self) -> None:
        """The sandbox never calls back (jobs are still worked on where the vendor would)."""

    @abstractmethod
    def demo_jobs(self) -> list[dict[str, Any]]:
        """The requests `make demo` submits for this vendor."""

    def demo_batch(self) -> dict[str, Any] | None:
        """The batch a bulk demo puts its jobs in ({"name", "batch_ref"}: the bulk's "batch"), or
        None. The demo then shows the batch's progress and its `Batch Completed` event."""
        return None

    def expected_status(self, reference_id: str) -> str:
        """The status a demo job must end in, given what the sandbox decided for it."""
        return "COMPLETED"

    def demo_step(self, jobs: Mapping[str, Mapping[str, Any]]) -> None:  # noqa: B027 (a hook: most need none)
        """Hook, called about once a second while the demo runs with every job as the table holds
        it: what a person does at the vendor meanwhile (e.g. accept a delivered result)."""

    def doubled(self) -> list[str]:
        """reference_ids the vendor holds more than one job for (must stay empty)."""
        return []

    def demo_complete(self) -> bool:
        """Whether the vendor holds one job for each of the demo's requests."""
        return True

    @abstractmethod
    def summary(self) -> str:
        """One line for the demo's report: what the vendor saw."""

    def stop(self) -> None:
        self.sandbox.stop()
        if self.server is not None:
            self.server.stop()


def vendor_option(text: str) -> tuple[str, str, str]:
    """`VENDOR.NAME=VALUE` -> (vendor, name, value), checked against the vendor's `options`.
    Raises ValueError saying what is known."""
    key, sep, value = text.partition("=")
    vendor, _, name = key.partition(".")
    known = local_vendors()
    if vendor not in known:
        raise ValueError(f"no sandbox for vendor {vendor!r} (known: {', '.join(known)})")
    options = known[vendor].options
    if not sep or name not in options:
        offered = ", ".join(f"{vendor}.{n}" for n in options) or "none"
        raise ValueError(f"{text!r}: expected VENDOR.NAME=VALUE; {vendor} takes {offered}")
    if value not in options[name]:
        raise ValueError(f"{text!r}: {vendor}.{name} is one of {', '.join(options[name])}")
    return vendor, name, value


def local_vendors() -> dict[str, type[LocalVendor]]:
    """Every sandbox module's LOCAL_VENDOR, by vendor name, in name order."""
    import local.sandboxes as package

    found: dict[str, type[LocalVendor]] = {}
    for module in pkgutil.iter_modules(package.__path__):
        vendor = getattr(importlib.import_module(f"{package.__name__}.{module.name}"), "LOCAL_VENDOR", None)
        if vendor is not None:
            found[vendor.name] = vendor
    return dict(sorted(found.items()))
