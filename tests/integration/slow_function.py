"""A function for the local API's integration-timeout test: it sleeps `?sleep=` seconds, then
answers with how many invocations its container has run (module state is per container)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

INVOCATIONS = 0


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global INVOCATIONS  # per-container state is what the test observes
    INVOCATIONS += 1
    time.sleep(float((event.get("queryStringParameters") or {}).get("sleep", 0)))
    return {"statusCode": 200, "body": json.dumps({"pid": os.getpid(), "invocations": INVOCATIONS})}
