"""Functions run the way Lambda runs them: each in processes of its own.

A FunctionRuntime is one function. Each invocation goes to an idle "container" (a process that
imported the handler module once and is then reused warm); when all are busy and fewer than
`concurrency` exist, another one starts (a cold start); beyond that the invocation waits, as
Lambda throttles a function at its concurrency. Containers share nothing but the environment,
so module-level state (clients, caches, the logger's keys) is per container, as in Lambda, and
the functions use every core instead of one interpreter's.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import queue
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class InvocationError(RuntimeError):
    """The handler raised (Lambda reports a function error)."""


def _container(connection: Connection, module: str, handler: str, environment: dict[str, str], name: str,
               timeout: float) -> None:  # fmt: skip
    os.environ.update(environment)
    for entry in (str(ROOT / "shared"), str(ROOT)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from local.context import LocalContext

    function = getattr(importlib.import_module(module), handler)
    while True:
        event = connection.recv()
        if event is None:
            return
        try:
            connection.send(("ok", function(event, LocalContext(name, timeout))))
        except Exception:
            connection.send(("error", traceback.format_exc(limit=5)))


class FunctionRuntime:
    def __init__(
        self, name: str, module: str, handler: str, environment: dict[str, str], *, timeout: float, concurrency: int
    ) -> None:
        self.name = name
        self.module = module
        self.handler = handler
        self.environment = environment
        self.timeout = timeout
        self.concurrency = concurrency
        self._idle: queue.Queue[tuple[Any, Connection]] = queue.Queue()
        self._all: list[tuple[Any, Connection]] = []
        self._lock = threading.Lock()
        self._context = multiprocessing.get_context("spawn")

    def invoke(self, event: dict[str, Any]) -> Any:
        container = self._take()
        process, connection = container
        try:
            connection.send(event)
            if not connection.poll(self.timeout + 5):
                raise InvocationError(f"{self.name} timed out after {self.timeout} s")
            outcome, value = connection.recv()
        except (EOFError, OSError) as exc:
            process.kill()
            with self._lock:
                self._all.remove(container)
            raise InvocationError(f"{self.name}: the container died") from exc
        self._idle.put(container)
        if outcome == "error":
            raise InvocationError(f"{self.name} raised:\n{value}")
        return value

    def __call__(self, event: dict[str, Any], context: Any = None) -> Any:
        return self.invoke(event)

    def stop(self) -> None:
        with self._lock:
            containers, self._all = self._all, []
        for process, connection in containers:
            with contextlib.suppress(OSError):  # already gone
                connection.send(None)
            process.join(timeout=5)
            if process.is_alive():
                process.kill()

    def _take(self) -> tuple[Any, Connection]:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if len(self._all) < self.concurrency:
                ours, theirs = self._context.Pipe()
                process = self._context.Process(
                    target=_container,
                    args=(theirs, self.module, self.handler, self.environment, self.name, self.timeout),
                    name=f"{self.name}-container",
                    daemon=True,
                )
                process.start()
                self._all.append((process, ours))
                return process, ours
        return self._idle.get()
