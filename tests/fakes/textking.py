"""The TEXTKING sandbox (local/sandboxes/textking.py) mounted on the tests' HTTP server under a
prefix: the same contract the local stack serves, with states changed by the tests themselves."""

from __future__ import annotations

import re

from pytest_httpserver import HTTPServer

from local.sandboxes.textking import SandboxJob, TextkingSandbox

FakeJob = SandboxJob


class TextkingFake(TextkingSandbox):
    def __init__(self, server: HTTPServer, *, token: str, prefix: str, oauth_path: str) -> None:
        super().__init__(token=token, prefix=prefix, progress_seconds=None, oauth_path=oauth_path)
        server.expect_request(re.compile(f"^{re.escape(prefix)}/.*")).respond_with_handler(self.handle)
        server.expect_request(oauth_path).respond_with_handler(self.handle)
