"""Vendors are plug-ins: the layer's core names none of them, and the registry finds each one."""

from __future__ import annotations

import re
from typing import Literal

from handoff import vendors
from tests.conftest import ROOT

CORE = ROOT / "shared" / "handoff"


def test_no_core_module_names_a_vendor() -> None:
    # every module of the layer outside handoff/vendors/, code and comments alike
    names = sorted(vendors.VENDOR_NAMES)
    pattern = re.compile(r"\b(" + "|".join(names) + r")\b", re.IGNORECASE)
    named = {
        f"{path.name}:{number}"
        for path in CORE.glob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    }
    assert names
    assert named == set(), "a core module names a vendor"


def test_the_registry_builds_the_request_union_from_the_vendor_packages() -> None:
    packages = {p.name for p in (CORE / "vendors").iterdir() if (p / "__init__.py").exists()}
    assert set(vendors.VENDOR_NAMES) == packages
    for name, registered in vendors.VENDORS.items():
        # the union's discriminator: each request model says which vendor it is for
        assert registered.request_model.model_fields["vendor"].annotation == Literal[name]
        assert vendors.vendor(name) is registered
