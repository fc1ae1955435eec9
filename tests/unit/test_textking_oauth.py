"""TEXTKING's OAuth refresh grant (issue 21 part 6): a 401 with a refresh_token in the secret
refreshes once, stores the new token(s) and retries the call; without one, a 401 is an auth failure
as before. Against the sandbox's token endpoint, which is as strict as the rest of it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.conftest import (
    TEXTKING_ACCESS_TOKEN,
    TEXTKING_PREVIOUS_SIGNING_KEY,
    TEXTKING_SIGNING_KEY,
    LambdaContext,
    aws_client,
    emitted_metrics,
    reset_function_caches,
)
from tests.fakes.textking import TextkingFake
from tests.unit.test_textking import request, submit

pytestmark = pytest.mark.usefixtures("aws")

SECRET = "handoff/textking"
REFRESH_TOKEN = "rt-initial-0123"


def stored_secret() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(aws_client("secretsmanager").get_secret_value(SecretId=SECRET)["SecretString"])
    return value


def put_secret(**fields: str) -> None:
    base = {
        "access_token": TEXTKING_ACCESS_TOKEN,
        "signing_key": TEXTKING_SIGNING_KEY,
        "previous_signing_key": TEXTKING_PREVIOUS_SIGNING_KEY,
    }
    aws_client("secretsmanager").put_secret_value(SecretId=SECRET, SecretString=json.dumps(base | fields))


@pytest.fixture
def refreshable(textking: TextkingFake) -> TextkingFake:
    """Given: the secret holds a refresh grant the sandbox knows, and the access token has expired."""
    textking.refresh_token = REFRESH_TOKEN
    put_secret(refresh_token=REFRESH_TOKEN, client_id=textking.client_id, client_secret=textking.client_secret)
    reset_function_caches()
    textking.expire_token()
    return textking


def test_a_401_refreshes_once_stores_the_new_token_and_retries_the_call(
    refreshable: TextkingFake, context: LambdaContext
) -> None:
    status, body = submit(context, request())

    # then the job is submitted, after one refresh grant with the app's credentials
    assert status == 201
    assert body["status"] == "SUBMITTED"
    assert refreshable.token_requests == [
        {
            "grant_type": "refresh_token",
            "client_id": refreshable.client_id,
            "client_secret": refreshable.client_secret,
            "refresh_token": REFRESH_TOKEN,
        }
    ]
    # the refused call was sent again, once: one project
    assert refreshable.calls[:2] == ["POST /projects", "POST /projects"]
    assert len(refreshable.projects) == 1
    # and the secret holds the new access token (the refresh token unchanged: not rotated)
    secret = stored_secret()
    assert secret["access_token"] == refreshable.token != TEXTKING_ACCESS_TOKEN
    assert secret["refresh_token"] == REFRESH_TOKEN
    assert secret["signing_key"] == TEXTKING_SIGNING_KEY  # the rest of the secret kept
    assert int(secret["access_token_expires_at"]) > 0


def test_a_rotated_refresh_token_is_stored_too(refreshable: TextkingFake, context: LambdaContext) -> None:
    refreshable.rotate_refresh_token = True

    status, _ = submit(context, request())

    assert status == 201
    secret = stored_secret()
    assert secret["refresh_token"] == refreshable.refresh_token != REFRESH_TOKEN
    assert secret["access_token"] == refreshable.token


def test_a_token_refreshed_by_another_function_is_used_without_a_second_refresh(
    textking: TextkingFake, context: LambdaContext
) -> None:
    # given this container has the secret cached, with a refresh grant
    textking.refresh_token = REFRESH_TOKEN
    put_secret(refresh_token=REFRESH_TOKEN, client_id=textking.client_id, client_secret=textking.client_secret)
    reset_function_caches()
    assert submit(context, request(reference_id="warm-the-cache"))[0] == 201
    # and another function has since refreshed: TEXTKING and the secret hold a new token
    textking.token = "tk-refreshed-elsewhere"
    put_secret(
        access_token="tk-refreshed-elsewhere",
        refresh_token=REFRESH_TOKEN,
        client_id=textking.client_id,
        client_secret=textking.client_secret,
    )

    status, _ = submit(context, request())

    # then the new token is read past the cache and used: no refresh grant at all
    assert status == 201
    assert textking.token_requests == []
    assert stored_secret()["access_token"] == "tk-refreshed-elsewhere"


@pytest.mark.parametrize(
    ("secret_change", "said"),
    [
        ({"refresh_token": "rt-revoked"}, "invalid_grant"),
        ({"client_secret": "not-the-apps"}, "invalid_client"),
    ],
    ids=["revoked-refresh-token", "wrong-client-secret"],
)
def test_a_refused_refresh_is_an_auth_failure_without_a_loop(
    secret_change: dict[str, str],
    said: str,
    refreshable: TextkingFake,
    context: LambdaContext,
    capfd: pytest.CaptureFixture[str],
) -> None:
    fields = {
        "refresh_token": REFRESH_TOKEN,
        "client_id": refreshable.client_id,
        "client_secret": refreshable.client_secret,
    }
    put_secret(**(fields | secret_change))
    reset_function_caches()
    capfd.readouterr()

    status, body = submit(context, request())

    # then the job FAILED at once with a clear auth error, after exactly one refresh grant
    assert status == 424
    assert body["job"]["last_error"]["code"] == "refresh_refused"
    assert said in body["job"]["last_error"]["message"]
    assert len(refreshable.token_requests) == 1
    # one call only, refused, never sent again: the project's creation, or (an attempt that first
    # missed its rate slot on a loaded machine resumes by reading) the listing that looks for it
    assert refreshable.calls in (["POST /projects"], ["GET /projects"])
    assert refreshable.projects == {}
    assert "TextkingAuthFailed" in emitted_metrics(capfd)
    assert stored_secret()["access_token"] == TEXTKING_ACCESS_TOKEN  # nothing stored


def test_without_a_refresh_token_a_401_is_an_auth_failure_as_before(
    textking: TextkingFake, context: LambdaContext, capfd: pytest.CaptureFixture[str]
) -> None:
    # given the documented default: a long-lived offline_access token, which TEXTKING now refuses
    textking.expire_token()
    capfd.readouterr()

    status, body = submit(context, request())

    assert status == 424
    assert body["job"]["last_error"]["code"] == "http_401"
    assert textking.token_requests == []
    assert "TextkingAuthFailed" in emitted_metrics(capfd)


# --- the sandbox's token endpoint ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("send", "status", "error"),
    [
        ({"json": {"grant_type": "refresh_token"}}, 400, "invalid_request"),
        ({"data": {"grant_type": "password", "client_id": "sandbox-app"}}, 400, "unsupported_grant_type"),
        (
            {"data": {"grant_type": "refresh_token", "client_id": "x", "client_secret": "y", "refresh_token": "rt"}},
            401,
            "invalid_client",
        ),
        (
            {
                "data": {
                    "grant_type": "refresh_token",
                    "client_id": "sandbox-app",
                    "client_secret": "sandbox-app-secret",
                    "refresh_token": "not-it",
                }
            },
            400,
            "invalid_grant",
        ),
        ({"data": {"grant_type": "refresh_token", "client_id": "sandbox-app"}}, 401, "invalid_client"),
        ({"data": "grant_type=refresh_token&grant_type=refresh_token"}, 400, "invalid_request"),
    ],
    ids=["json-body", "other-grant", "bad-client", "bad-refresh-token", "no-client-secret", "repeated-field"],
)
def test_the_sandbox_token_endpoint_refuses_bad_input_with_oauth_errors_never_a_5xx(
    send: dict[str, Any], status: int, error: str, textking: TextkingFake
) -> None:
    textking.refresh_token = REFRESH_TOKEN
    token_url = textking_token_url()
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if isinstance(send.get("data"), str) else {}

    answer = requests.post(token_url, timeout=5, headers=headers, **send)

    assert (answer.status_code, answer.json()["error"]) == (status, error)
    assert textking.token == TEXTKING_ACCESS_TOKEN  # no token issued


def textking_token_url() -> str:
    import os

    return os.environ["TEXTKING_OAUTH_TOKEN_URL"]
