"""What each function loads at cold start (issue 17): structural checks, never timings.

- X-Ray patches botocore at cold start and requests only where a vendor client's session is made,
  never every library the SDK knows (patch_all: sqlite3, the database drivers it looks for);
- Powertools' secrets and SSM providers are built on a client from boto3's default session, never
  on a new Session of their own;
- Powertools validates requests only in functions whose routes take typed parameters;
- requests (the vendor clients' HTTP library) is loaded by the functions that call a vendor only.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from typing import Any

import boto3
import pytest

from handoff import observability, settings
from handoff.vendors import base
from tests.conftest import ROOT

# function folder -> (its routes take typed parameters, it calls a vendor in a request)
FUNCTIONS = {
    "callback_retry": (None, True),
    "event_publisher": (None, False),
    "get_job": (True, False),
    "playment_callback": (False, True),  # builds its PlaymentClient for the callback keys
    "reconciler": (None, True),
    "scale_callback": (False, False),  # reads its keys from the secret alone
    "submission_worker": (None, True),
    "submit_job": (True, True),
    "textking_callback": (False, True),  # looks the job up at TEXTKING
}


def test_every_function_is_listed() -> None:
    assert sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists()) == sorted(FUNCTIONS)


def test_tracer_patches_only_botocore_at_cold_start() -> None:
    assert observability.TRACED_AT_COLD_START == ("botocore",)
    assert observability.tracer._config["patch_modules"] == ("botocore",)


def test_a_vendor_session_traces_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    patched: list[Any] = []
    monkeypatch.setattr(observability.tracer, "patch", lambda modules: patched.append(tuple(modules)))
    base.new_session()
    assert patched == [("requests",)]


@pytest.mark.parametrize(("kind", "service"), [("secrets", "secretsmanager"), ("ssm", "ssm")])
def test_parameters_providers_use_a_client_of_the_default_session(
    monkeypatch: pytest.MonkeyPatch, kind: str, service: str
) -> None:
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

    made: list[str] = []

    def client(name: str, *args: Any, **kwargs: Any) -> Any:
        made.append(name)
        return object()

    def no_session(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a provider built a boto3 Session of its own")

    parameters.clear_caches()
    monkeypatch.setattr(boto3, "client", client)
    monkeypatch.setattr(boto3.session, "Session", no_session)
    try:
        provider = settings.parameters_provider(kind)
        assert DEFAULT_PROVIDERS[kind] is provider  # what parameters.get_secret/get_parameter use too
        assert made == [service]
        assert settings.parameters_provider(kind) is provider  # built once, until clear_caches
    finally:
        parameters.clear_caches()


@pytest.mark.parametrize("folder", sorted(f for f, (typed, _) in FUNCTIONS.items() if typed is not None))
def test_validation_only_where_routes_take_typed_parameters(folder: str) -> None:
    app = importlib.import_module(f"functions.{folder}.app").app
    typed = [bool(inspect.signature(route.func).parameters) for route in app._static_routes + app._dynamic_routes]
    assert app._enable_validation == any(typed) == FUNCTIONS[folder][0]


def _cold_modules(folder: str) -> set[str]:
    """The modules a fresh process holds after importing the function, with Lambda's variables
    (tracing on, as deployed)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("POWERTOOLS_TRACE")} | {
        "AWS_LAMBDA_FUNCTION_NAME": f"handoff-{folder}",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "LAMBDA_TASK_ROOT": "/var/task",
    }
    program = (
        f"import sys, json; sys.path[:0] = [{str(ROOT / 'shared')!r}, {str(ROOT)!r}]; "
        f"import functions.{folder}.app; print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("folder", sorted(FUNCTIONS))
def test_what_a_cold_start_loads(folder: str) -> None:
    typed, calls_vendor = FUNCTIONS[folder]
    modules = _cold_modules(folder)
    assert "aws_xray_sdk.ext.botocore.patch" in modules  # traced: every function calls AWS
    assert not {"sqlite3", "aws_xray_sdk.ext.sqlite3", "aws_xray_sdk.ext.requests"} & modules  # no patch_all
    assert ("requests" in modules) == calls_vendor
    assert ("aws_lambda_powertools.event_handler.openapi.models" in modules) == bool(typed)
    assert "aws_lambda_powertools.utilities.parameters" not in modules  # a provider is built at first read
