"""The local stack in a process of its own, reached over real HTTP only (as a vendor or a caller
would), with the demo's faults switched on."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import ROOT


class Stack:
    def __init__(self, urls: dict[str, str], output: list[str]) -> None:
        self.urls = urls
        self.output = output  # the stack's log lines so far

    def call(self, method: str, path: str, body: Any = None, *, sign: bool = True) -> requests.Response:
        url = self.urls["api"] + path
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        if sign:
            request = AWSRequest(method, url, data=data, headers=headers)
            SigV4Auth(Credentials("local", "local"), "execute-api", "us-east-1").add_auth(request)
            headers = dict(request.headers)
        return requests.request(method, url, data=data, headers=headers, timeout=30)

    def aws(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.urls["aws_endpoint"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def sandbox_jobs(self, vendor: str) -> list[dict[str, Any]]:
        base = (
            self.urls["playment_sandbox"] if vendor == "playment" else self.urls["textking_sandbox"].removesuffix("/v1")
        )
        jobs: list[dict[str, Any]] = requests.get(f"{base}/_sandbox/jobs", timeout=10).json()
        return jobs


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.stack",
            "--faults",
            "--ready-json",
            "--until-stdin-closes",
            "--log-level",
            "INFO",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    output: list[str] = []
    ready = ""
    for line in process.stdout:
        output.append(line)
        if line.startswith("{") and '"api"' in line:
            ready = line
            break
    assert ready, "the local stack did not start:\n" + "".join(output[-30:])

    def drain() -> None:  # keep reading, or a full pipe would stall the stack
        assert process.stdout is not None
        output.extend(process.stdout)

    threading.Thread(target=drain, daemon=True).start()
    yield Stack(json.loads(ready), output)
    process.stdin.close()
    process.wait(timeout=30)
