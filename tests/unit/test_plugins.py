"""Vendors are plug-ins: the layer's core names none of them, and the registry finds each one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pytest

from handoff import vendors
from tests.conftest import ROOT

CORE = ROOT / "shared" / "handoff"


def vendor_neutral_files() -> list[Path]:
    """What adding a vendor must not touch: the layer's core, the functions that serve every
    vendor, the operator tools and the local stack (a vendor's own files are its package, its
    callback function, its sandbox, its events, its tests, which set up their own fixtures)."""
    own_callbacks = {f"{name}_callback" for name in vendors.VENDOR_NAMES}
    return [
        *CORE.glob("*.py"),
        *(p for p in ROOT.glob("functions/*/*.py") if p.parent.name not in own_callbacks),
        *ROOT.glob("ops/*.py"),
        *ROOT.glob("local/*.py"),
        ROOT / "local" / "sandboxes" / "__init__.py",
        ROOT / "local" / "sandboxes" / "base.py",
        ROOT / "local" / "sandboxes" / "callbacks.py",
        ROOT / "local" / "sandboxes" / "server.py",
    ]


def test_no_vendor_neutral_module_names_a_vendor() -> None:
    # code and comments alike: a name there means that adding a vendor edits it
    names = sorted(vendors.VENDOR_NAMES)
    pattern = re.compile(r"\b(" + "|".join(names) + r")\b", re.IGNORECASE)
    files = vendor_neutral_files()
    named = {
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    }
    assert names
    assert len(files) > 30
    assert named == set(), "a vendor-neutral module names a vendor"


def test_the_local_stack_finds_a_sandbox_for_every_vendor() -> None:
    from local.sandboxes.base import local_vendors

    assert set(local_vendors()) == set(vendors.VENDOR_NAMES)


def test_the_registry_builds_the_request_union_from_the_vendor_packages() -> None:
    packages = {p.name for p in (CORE / "vendors").iterdir() if (p / "__init__.py").exists()}
    assert set(vendors.VENDOR_NAMES) == packages
    for name, registered in vendors.VENDORS.items():
        # the union's discriminator: each request model says which vendor it is for
        assert registered.request_model.model_fields["vendor"].annotation == Literal[name]
        assert vendors.vendor(name) is registered


def test_a_misconfigured_vendor_fails_the_function_at_cold_start_before_any_job() -> None:
    import os
    import subprocess
    import sys

    # given a SubmitJob environment with a malformed Scale task type (the rest as in the tests)
    env = {**os.environ, "SCALE_SECRET_NAME": "handoff/scale", "SCALE_TASK_TYPE": "Image-Annotation"}

    # when the function's module is imported (Lambda's init)
    init = subprocess.run(
        [sys.executable, "-c", "import functions.submit_job.app"],
        env={**env, "PYTHONPATH": f"{ROOT / 'shared'}{os.pathsep}{ROOT}"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    # then it fails, naming the variable: no request is ever taken
    assert init.returncode != 0
    assert "ConfigurationError" in init.stderr
    assert "SCALE_TASK_TYPE" in init.stderr


def test_a_vendor_the_environment_does_not_configure_is_not_checked() -> None:
    from handoff.settings import ConfigurationError

    vendors.check_configured({"JOBS_TABLE_NAME": "t"})  # e.g. GetJob: no vendor variables at all
    with pytest.raises(ConfigurationError, match="SCALE_SECRET_NAME"):
        vendors.check_configured({"SCALE_BASE_URL": "https://api.scale.com/v1"})
