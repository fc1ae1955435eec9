"""A function for the local API's integration-timeout test: it sleeps `?sleep=` seconds, then
answers with how many invocations its container has run (module state is per container) and when
the container imported it."""

from __future__ import annotations

import json
import os
import time
from typing import Any

INVOCATIONS = 0
LOADED_AT = time.time()  # when this container ran its init (the eager-warming test compares it)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global INVOCATIONS  # per-container state is what the test observes
    INVOCATIONS += 1
    time.sleep(float((event.get("queryStringParameters") or {}).get("sleep", 0)))
    body = {"pid": os.getpid(), "invocations": INVOCATIONS, "loaded_at": LOADED_AT}
    return {"statusCode": 200, "body": json.dumps(body)}
