"""The local stack in a process of its own, reached over real HTTP only (as a vendor or a caller
would), with the demo's faults switched on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, endpoint_client
from local.process import StackProcess


class Stack:
    def __init__(self, urls: dict[str, str], output: list[str]) -> None:
        self.urls = urls
        self.output = output  # the stack's log lines so far

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        sign: bool = True,
        credentials: Credentials | None = None,
    ) -> requests.Response:
        """A request to the local API, signed with the stack's credentials (or `credentials`)."""
        url = self.urls["api"] + path
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        if sign:
            request = AWSRequest(method, url, data=data, headers=headers)
            signer = credentials or Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
            SigV4Auth(signer, "execute-api", REGION).add_auth(request)
            headers = dict(request.headers)
        return requests.request(method, url, data=data, headers=headers, timeout=30)

    def aws(self, service: str) -> Any:
        return endpoint_client(self.urls["aws_endpoint"], service)

    def sandbox_jobs(self, vendor: str) -> list[dict[str, Any]]:
        base = (
            self.urls["playment_sandbox"] if vendor == "playment" else self.urls["textking_sandbox"].removesuffix("/v1")
        )
        jobs: list[dict[str, Any]] = requests.get(f"{base}/_sandbox/jobs", timeout=10).json()
        return jobs


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    # The vendors call back through a custom domain's base-path mapping, as PublicCallbackBaseUrl
    # has them do in a deployment: /handoff/callbacks/... (callers keep the execute-api URL).
    process = StackProcess("--faults", "--log-level", "INFO", "--base-path", "handoff")
    yield Stack(process.urls, process.output)
    process.stop()
