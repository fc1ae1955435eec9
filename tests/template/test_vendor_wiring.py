"""Every registered vendor is wired whole: a vendor package without its function, routes, variables,
rate, silence budget, sample events or sandbox fails here, not in production (README "Adding a
vendor" lists the same steps)."""

from __future__ import annotations

from typing import Any

import pytest

from handoff.vendors import VENDORS
from tests.conftest import ROOT, load_template

# The functions that submit, reconcile and re-apply callbacks serve every vendor.
SUBMITTERS = ("SubmitJobFunction", "SubmissionWorkerFunction", "ReconcilerFunction")


def variables(resources: dict[str, Any], function: str) -> dict[str, Any]:
    return dict(resources[function]["Properties"].get("Environment", {}).get("Variables", {}))


def globals_variables(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))


def entries(value: Any) -> set[str]:
    """The vendor names of a `name=value,...` list as the template writes it (!Sub or plain)."""
    text = (value.get("Fn::Sub") or value.get("!Sub")) if isinstance(value, dict) else value
    return {part.split("=", 1)[0] for part in str(text).split(",") if "=" in part}


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_each_vendor_is_wired_whole(name: str) -> None:
    template = load_template()
    resources = template["Resources"]
    title = name.capitalize()
    prefix = f"{name.upper()}_"

    # its callback function, on POST /callbacks/<name> without IAM (the function authenticates)
    callback = resources.get(f"{title}CallbackFunction")
    assert callback is not None, f"no {title}CallbackFunction in template.yaml"
    (event,) = callback["Properties"]["Events"].values()
    assert (event["Properties"]["Path"], event["Properties"]["Method"].upper()) == (f"/callbacks/{name}", "POST")
    assert (ROOT / "functions" / f"{name}_callback" / "app.py").exists()
    assert list((ROOT / "events" / f"{name}_callback").glob("*.json")), f"no events/{name}_callback samples"
    assert (ROOT / "events" / "submit_job" / f"direct_invoke_{name}.json").exists()

    # its variables and secret on every function that submits or reconciles
    for function in SUBMITTERS:
        assert f"{prefix}SECRET_NAME" in variables(resources, function), f"{function} lacks {prefix}SECRET_NAME"
    # CallbackRetry applies its archived callbacks as its callback function would: with its variables
    own = {k for k in variables(resources, f"{title}CallbackFunction") if k.startswith(prefix)}
    missing = own - set(variables(resources, "CallbackRetryFunction"))
    assert not missing, f"CallbackRetryFunction lacks {sorted(missing)}"

    # its rate and its silence budget
    shared = globals_variables(template)
    assert name in entries(shared["VENDOR_MAX_REQUESTS_PER_SECOND"])
    assert name in entries(shared["RECONCILE_AFTER_SECONDS_BY_VENDOR"])


def test_each_vendor_has_a_sandbox_on_the_local_stack() -> None:
    from local.sandboxes.base import local_vendors

    assert set(local_vendors()) == set(VENDORS)
