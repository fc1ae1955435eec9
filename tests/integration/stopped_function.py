"""Run one function on one event in this process, and end the process right after a given state
write, before the handler returns: what a Lambda timeout or an out-of-memory kill does.

    python -m tests.integration.stopped_function MODULE create|transition STATUS [SECONDS_LEFT] < event.json

SECONDS_LEFT: what the invocation's context says it has left (default 120).

The environment must be the function's (the local stack's `function_environment`). The process
exits with STOPPED when it was stopped, or prints the handler's answer as JSON and exits 0.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STOPPED = 137  # the exit status of a killed process


def stop_after(method: str, status: str) -> None:
    """Make DynamoJobStore.<method> end the process once it has written a job in `status`."""
    from handoff.store import DynamoJobStore

    original = getattr(DynamoJobStore, method)

    def write_then_stop(self: Any, *args: Any, **kwargs: Any) -> Any:
        outcome = original(self, *args, **kwargs)
        written = outcome.created if method == "create" else outcome.applied
        if written and outcome.job is not None and outcome.job.status.value == status:
            sys.stdout.flush()
            os._exit(STOPPED)  # no finally, no return: the process is simply gone
        return outcome

    setattr(DynamoJobStore, method, write_then_stop)


def main(argv: list[str]) -> int:
    module, method, status, *left = argv
    for entry in (str(ROOT / "shared"), str(ROOT)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from local.context import LocalContext

    stop_after(method, status)
    handler = importlib.import_module(module).lambda_handler
    context = LocalContext(module, timeout_seconds=float(left[0])) if left else LocalContext(module)
    answer = handler(json.load(sys.stdin), context)
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
