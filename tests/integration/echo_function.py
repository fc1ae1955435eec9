"""A function for the runtime's inheritance test: it prints a line and answers with what its
container inherited (a variable, the working directory) and which of the preloaded libraries it
found already imported when its own module was."""

from __future__ import annotations

import os
import sys
from typing import Any

IMPORTED_BEFORE_ME = sorted(name for name in ("boto3", "pydantic", "requests") if name in sys.modules)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    print(f"echo-function says {event['say']}", flush=True)
    return {
        "variables": {name: os.environ.get(name) for name in event["variables"]},
        "directory": os.getcwd(),
        "imported_before_me": IMPORTED_BEFORE_ME,
        "memory_mb": context.memory_limit_in_mb,
    }
