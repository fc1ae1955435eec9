"""Preflight: every registered vendor's configuration checked against the vendor, before traffic
flows (`make preflight`, or a direct invoke of SubmitJob with {"action": "preflight"}).

Each vendor package declares its checks (`Vendor.preflight`); this module runs them, with the
function's own settings, role and secrets, read fresh (a key put a minute ago is the one checked).
Vendors are checked side by side; a vendor whose checks break is one FAILED line, never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from handoff.observability import logger
from handoff.settings import ConfigurationError, core_settings
from handoff.vendors import VENDORS
from handoff.vendors.base import Timeouts
from handoff.vendors.checks import FAILED, Check, PreflightContext


def run(callback_urls: Any = None) -> list[Check]:
    """Every vendor's checks, in vendor order. `callback_urls`: vendor -> its callback URL as the
    stack publishes it, for vendors whose functions are not told theirs (anything else in it is
    ignored: only http(s) URLs of registered vendors are probed)."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # the secrets and parameters as they are now, not as cached
    core = core_settings()
    timeouts = Timeouts(core.vendor_connect_timeout, core.vendor_read_timeout)
    urls = _callback_urls(callback_urls)
    checked = [(name, registered) for name, registered in VENDORS.items() if registered.preflight is not None]

    def one(name: str) -> list[Check]:
        registered = VENDORS[name]
        try:
            if registered.settings is not None:
                registered.settings()
            assert registered.preflight is not None
            checks: list[Check] = registered.preflight(PreflightContext(timeouts, urls.get(name)))
            return checks
        except ConfigurationError as exc:
            return [Check(name, "configuration", FAILED, f"{exc}: fix the stack's parameters and deploy")]
        except Exception as exc:
            logger.exception("preflight checks broke", extra={"vendor": name})
            return [
                Check(
                    name,
                    "preflight",
                    FAILED,
                    f"the checks themselves failed ({type(exc).__name__}); see the function's log",
                )
            ]

    with ThreadPoolExecutor(max_workers=max(1, len(checked))) as pool:
        results = list(pool.map(one, [name for name, _ in checked]))
    return [check for checks in results for check in checks]


def _callback_urls(given: Any) -> Mapping[str, str]:
    if not isinstance(given, dict):
        return {}
    return {
        name: url
        for name, url in given.items()
        if name in VENDORS and isinstance(url, str) and url.startswith(("https://", "http://"))
    }


def answer(checks: list[Check]) -> dict[str, Any]:
    """The direct invoke's answer: {"ok": no check FAILED, "checks": [{vendor, name, verdict, detail}]}."""
    for check in checks:
        logger.info("preflight check", extra={"vendor": check.vendor, "check": check.name, "verdict": check.verdict})
    return {"ok": all(c.verdict != FAILED for c in checks), "checks": [c.as_dict() for c in checks]}
