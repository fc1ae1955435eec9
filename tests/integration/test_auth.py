"""Authentication of both callback routes over real HTTP, including key rotation: a local stack of
its own whose functions read secrets afresh on every call (SecretsMaxAgeSeconds 0)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from handoff.vendors.textking import make_token
from local.process import StackProcess
from tests.integration.conftest import Stack


@pytest.fixture(scope="module")
def fresh_secrets() -> Iterator[Stack]:
    process = StackProcess("--log-level", "WARNING", "--secrets-max-age", "0", "--no-vendor-callbacks")
    yield Stack(process.urls, process.output)
    process.stop()


def secret(stack: Stack, name: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(stack.aws("secretsmanager").get_secret_value(SecretId=name)["SecretString"])
    return value


def put_secret(stack: Stack, name: str, value: dict[str, Any]) -> None:
    stack.aws("secretsmanager").put_secret_value(SecretId=name, SecretString=json.dumps(value))


def playment_callback(stack: Stack, key: str | None) -> int:
    headers = {"Content-Type": "application/json", **({"x-playment-key": key} if key is not None else {})}
    body = {"annotations": [{"reference_id": "nobody", "job_id": "j", "status": "PENDING"}]}
    url = f"{stack.urls['api']}/callbacks/playment"
    return requests.post(url, data=json.dumps(body), headers=headers, timeout=30).status_code


def test_playment_keys_missing_wrong_current_previous_and_older(fresh_secrets: Stack) -> None:
    stack = fresh_secrets
    name = stack.urls["playment_secret"]
    k0 = secret(stack, name)["callback_key"]
    assert playment_callback(stack, None) == 401
    assert playment_callback(stack, "wrong") == 401
    assert playment_callback(stack, k0) == 200

    # rotate twice: k0 -> k1 (previous k0) -> k2 (previous k1)
    put_secret(stack, name, {**secret(stack, name), "callback_key": "k1-new-key", "previous_callback_key": k0})
    assert playment_callback(stack, "k1-new-key") == 200
    assert playment_callback(stack, k0) == 200  # the previous key still works during rotation
    put_secret(
        stack, name, {**secret(stack, name), "callback_key": "k2-newer-key", "previous_callback_key": "k1-new-key"}
    )
    assert playment_callback(stack, "k2-newer-key") == 200
    assert playment_callback(stack, "k1-new-key") == 200
    assert playment_callback(stack, k0) == 401  # older than previous: refused


def textking_job(stack: Stack, reference_id: str) -> dict[str, Any]:
    body = {
        "vendor": "textking",
        "reference_id": reference_id,
        "name": reference_id,
        "source_language": "en",
        "target_language": "de",
        "document": {"filename": "a.txt", "text": "Hello."},
    }
    assert stack.call("POST", "/jobs", body).status_code in {201, 202}
    deadline = time.monotonic() + 30
    while (job := stack.call("GET", f"/jobs/{reference_id}").json())["status"] == "QUEUED":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    return job


def textking_callback(stack: Stack, job: dict[str, Any], token: str) -> int:
    form = urlencode(
        {"project_id": job["vendor_refs"]["project_id"], "job_id": job["vendor_refs"]["job_id"], "extra_data": token}
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return requests.post(f"{stack.urls['api']}/callbacks/textking", data=form, headers=headers, timeout=30).status_code


def test_textking_tokens_replayed_forged_and_rotated(fresh_secrets: Stack) -> None:
    stack = fresh_secrets
    name = stack.urls["textking_secret"]
    first, second = textking_job(stack, "auth-doc-1"), textking_job(stack, "auth-doc-2")
    s0 = secret(stack, name)["signing_key"]

    assert textking_callback(stack, first, make_token(s0, "auth-doc-1", "translation-pending")) == 200
    # a token of the first job, replayed with the second job's ids
    assert textking_callback(stack, second, make_token(s0, "auth-doc-1", "translation-pending")) == 401
    assert textking_callback(stack, first, make_token("forged", "auth-doc-1", "translation-pending")) == 401
    assert textking_callback(stack, first, "auth-doc-1~translation-pending") == 401

    # rotate twice: s0 -> s1 (previous s0) -> s2 (previous s1)
    put_secret(stack, name, {**secret(stack, name), "signing_key": "s1-key", "previous_signing_key": s0})
    assert textking_callback(stack, first, make_token(s0, "auth-doc-1", "translation-pending")) == 200
    put_secret(stack, name, {**secret(stack, name), "signing_key": "s2-key", "previous_signing_key": "s1-key"})
    assert textking_callback(stack, first, make_token("s1-key", "auth-doc-1", "translation-pending")) == 200
    assert textking_callback(stack, first, make_token(s0, "auth-doc-1", "translation-pending")) == 401
