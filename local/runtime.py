"""Functions run the way Lambda runs them: each in processes of its own.

A FunctionRuntime is one function. Each invocation goes to an idle "container" (a process that
imported the handler module once and is then reused warm); when all are busy and fewer than
`concurrency` exist, another one starts (a cold start); beyond that the invocation waits, as
Lambda throttles a function at its concurrency. Containers share nothing but the environment,
so module-level state (clients, caches, the logger's keys) is per container, as in Lambda, and
the functions use every core instead of one interpreter's.

Containers are forked from one server process (multiprocessing's forkserver) that has imported the
third-party packages every function imports (PRELOADED: boto3, pydantic, requests, Powertools, the
X-Ray SDK) and nothing of Handoff's, so a cold start here pays for the function's own module (the
layer's `handoff` package, its settings read, its clients built) and not ~0.5 s of CPU re-importing
the same libraries in every container. None of them reads a function's variables when imported
(the server has no function's environment), and each container gets, as a spawned process would,
the invoker's environment, working directory, stdout and stderr as they are when it starts.
`preload=False` starts each container as a fresh interpreter instead (spawn): a cold start as
long as a fresh import, for measuring one (bench).
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
import warnings
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Imported once by the container server, before any function's variables exist (see above).
PRELOADED = (
    "boto3",
    "botocore.session",
    "botocore.client",
    "pydantic",
    "requests",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.tracing",
    "aws_lambda_powertools.utilities.parser",
    "aws_xray_sdk.core",
    "local.context",
    "local.iam",
)
# An invocation is ended this long after its context's deadline (the pipe between the stack and the
# container is all it allows for), and a cold container's init gets this long on top of the timeout.
KILL_MARGIN_SECONDS = 0.5
COLD_INIT_ALLOWANCE_SECONDS = 5.0
STOP_GRACE_SECONDS = 0.5  # how long stop() lets containers end by themselves before it ends them


class InvocationError(RuntimeError):
    """The handler raised, timed out or its container died (Lambda reports a function error).
    `error` is the body Lambda's Invoke API answers for it: errorMessage, errorType, stackTrace."""

    def __init__(self, message: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error = error or {"errorMessage": message, "errorType": "Runtime.Unknown", "stackTrace": []}


# What a container keeps of the invoker's environment when it is not to inherit it whole (the local
# stack's functions: each sees the template's variables for it and these, as a Lambda sees its own
# and the runtime's basics; never the host's AWS_*, POWERTOOLS_* or another function's). The proxy
# and CA-bundle variables are the host's network: a function reaching a real vendor from behind a
# company proxy needs them, as every other process on that host does.
HOST_BASICS = frozenset(
    {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    | {"REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE"}
)


def _error_of(exc: BaseException) -> tuple[dict[str, Any], str]:
    """Lambda's error body for `exc` (errorMessage, errorType, stackTrace) and its whole traceback:
    an init error's own line is the deepest, under the import machinery's frames."""
    frames = traceback.format_tb(exc.__traceback__)
    error = {"errorMessage": str(exc), "errorType": type(exc).__name__, "stackTrace": frames}
    return error, "".join(traceback.format_exception(exc))


class _Invoker:
    """What a process spawned by the invoker would inherit from it: its environment (whole, or
    only HOST_BASICS), working directory, stdout and stderr as they are now (a forked container's
    server has its own)."""

    def __init__(self, inherit_environment: bool = True) -> None:
        self.environment = (
            dict(os.environ) if inherit_environment else {k: v for k, v in os.environ.items() if k in HOST_BASICS}
        )
        self.directory = os.getcwd()

    def __reduce__(self) -> tuple[Any, ...]:
        from multiprocessing.reduction import DupFd

        return (_Invoker._inherited, (self.environment, self.directory, DupFd(1), DupFd(2)))

    @staticmethod
    def _inherited(environment: dict[str, str], directory: str, stdout: Any, stderr: Any) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, wrapped in ((1, stdout), (2, stderr)):
            duplicate = wrapped.detach()
            if duplicate != fd:  # spawned: the very descriptor, inherited under its own number
                os.dup2(duplicate, fd)
                os.close(duplicate)
        os.environ.clear()
        os.environ.update(environment)
        os.chdir(directory)


def _container(connection: Connection, invoker: None, module: str, handler: str, environment: dict[str, str],
               name: str, timeout: float, logs_to_stderr: bool = False, log_errors: bool = True,
               memory_mb: int = 512) -> None:  # fmt: skip
    # `invoker` (an _Invoker) took effect when this process unpickled it: the invoker's
    # environment, directory and output are this container's before anything below runs.
    if logs_to_stderr:  # an operator tool's stdout is its report: the function's log lines go to stderr
        sys.stdout.flush()
        os.dup2(2, 1)
    # Ctrl-C reaches the whole process group: the stack stops its containers itself (stop()), so a
    # container ignores SIGINT instead of dying mid-invocation with a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Metrics output is off locally (POWERTOOLS_METRICS_DISABLED); Powertools still warns on each flush.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    os.environ.update(environment)
    for entry in (str(ROOT / "shared"), str(ROOT)):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    from local.context import LocalContext
    from local.iam import RECORD_AWS_CALLS_ENV, record_aws_calls

    if os.environ.get(RECORD_AWS_CALLS_ENV):  # before the handler's module builds any client
        record_aws_calls(os.environ[RECORD_AWS_CALLS_ENV], name)

    try:
        function = getattr(importlib.import_module(module), handler)
    except Exception as exc:
        # Lambda answers every invocation of a function whose init raised with that error (its
        # type and message); the container stays to say so instead of dying with a traceback.
        failed_init: Exception | None = exc
    else:
        failed_init = None
    try:  # init is over (FunctionRuntime.warm waits for this, and refuses a failed one; invoke passes over it)
        connection.send(("ready", None if failed_init is None else _error_of(failed_init)))
    except (EOFError, OSError):
        return
    while True:
        try:
            kind, event = connection.recv()
        except (EOFError, OSError):  # the stack is gone (killed): nothing more will come
            return
        if kind == "stop":
            return
        try:
            if failed_init is not None:
                raise failed_init
            connection.send(("ok", function(event, LocalContext(name, timeout, memory_mb))))
        except Exception as exc:
            error, text = _error_of(exc)
            # As Lambda's runtime logs an unhandled error, whoever invoked (a poller, the API, an
            # Event invoke): a function refused by IAM, say, is never silent. (Not for an operator
            # tool that reports the error itself, in one line: log_errors=False.)
            if log_errors:
                said = f"[ERROR] {name}: {error['errorType']}: {error['errorMessage']}"
                print(f"{said}\n{text}", file=sys.stderr, flush=True)
            try:
                connection.send(("error", (text, error)))
            except (EOFError, OSError):
                return


def _context(preload: bool) -> Any:
    """Where containers come from: forked from the preloaded server, or spawned fresh."""
    if not preload:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The server is one per process, started by the first container: the list is read then.
    context.set_forkserver_preload(list(PRELOADED))
    return context


class FunctionRuntime:
    def __init__(
        self,
        name: str,
        module: str,
        handler: str,
        environment: dict[str, str],
        *,
        timeout: float,
        concurrency: int,
        logs_to_stderr: bool = False,
        log_errors: bool = True,
        preload: bool = True,
        inherit_environment: bool = True,
        memory_mb: int = 512,
    ) -> None:
        # inherit_environment=False: the container gets `environment` and HOST_BASICS only (the
        # local stack); True: the invoker's whole environment under it (an operator tool, whose
        # function needs the operator's AWS profile). memory_mb: the context's memory_limit_in_mb.
        self.inherit_environment = inherit_environment
        self.memory_mb = memory_mb
        self.logs_to_stderr = logs_to_stderr
        self.log_errors = log_errors  # False: the caller reports a function's error itself
        self.name = name
        self.module = module
        self.handler = handler
        self.environment = environment
        self.timeout = timeout
        self.concurrency = concurrency
        self._idle: queue.Queue[tuple[Any, Connection]] = queue.Queue()
        self._all: list[tuple[Any, Connection]] = []
        self._lock = threading.Lock()
        self._context = _context(preload)
        self._closed = False  # stopped: no container starts any more

    def invoke(self, event: dict[str, Any]) -> Any:
        container, cold = self._take()
        _, connection = container
        try:
            connection.send(("invoke", event))  # an event may be anything JSON, null included
            # The container's context counts the timeout from when it takes the event, after its
            # init: a warm one at once, a cold one once it says it is ready (below). It is ended
            # KILL_MARGIN_SECONDS after that deadline, as Lambda ends an invocation at its deadline
            # (SubmitJob's claim on a job it wrote outlasts that deadline by a second: submission.py).
            deadline = time.monotonic() + self.timeout + (COLD_INIT_ALLOWANCE_SECONDS if cold else KILL_MARGIN_SECONDS)
            outcome: str = "ready"
            value: Any = None
            while outcome == "ready":  # a container not warmed says so once, when its init is over
                # (an init that raised is answered below, as every invocation of it is)
                if not connection.poll(max(0.0, deadline - time.monotonic())):
                    # Lambda stops a function at its timeout and the sandbox goes: so does the
                    # container (kept, it would hold a slot of the concurrency and answer late).
                    self._discard(container)
                    message = f"Task timed out after {self.timeout:.2f} seconds"
                    print(f"[ERROR] {self.name}: {message}", file=sys.stderr, flush=True)  # as Lambda logs it
                    raise InvocationError(
                        f"{self.name}: {message}", {"errorMessage": message, "errorType": "Sandbox.Timedout"}
                    )
                outcome, value = connection.recv()
                if outcome == "ready":  # its init is over: its context's time runs from now
                    deadline = time.monotonic() + self.timeout + KILL_MARGIN_SECONDS
        except (EOFError, OSError) as exc:
            self._discard(container)
            message = f"{self.name}: the container died"
            if not self._closed:  # stopping the stack ends its containers: that is no error to report
                print(f"[ERROR] {message}", file=sys.stderr, flush=True)
            raise InvocationError(message, {"errorMessage": message, "errorType": "Runtime.ExitError"}) from exc
        self._idle.put(container)
        if outcome == "error":
            text, error = value
            raise InvocationError(f"{self.name} raised:\n{text}", error)
        return value

    def _discard(self, container: tuple[Any, Connection]) -> None:
        container[0].kill()
        with self._lock:
            if container in self._all:
                self._all.remove(container)

    def __call__(self, event: dict[str, Any], context: Any = None) -> Any:
        return self.invoke(event)

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            containers, self._all = self._all, []
        for _, connection in containers:
            with contextlib.suppress(OSError):  # already gone
                connection.send(("stop", None))
        # An idle container ends by itself; one still running an invocation (or still importing its
        # handler) is not waited for: stopping the stack is Ctrl-C, at once, as Lambda drops a sandbox.
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process, _ in containers:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        for process, _ in containers:
            if process.is_alive():
                process.kill()
        for process, _ in containers:
            process.join(timeout=5)

    def warm(self, count: int, timeout: float = 120.0) -> int:
        """Start containers until `count` exist (at most the concurrency), each running its init
        (the handler module's import) now, and wait until they have: `sam local start-api
        --warm-containers EAGER`. Returns how many containers are ready. Raises InvocationError
        when the runtime is stopped or a container does not finish its init within `timeout` s."""
        started: list[tuple[Any, Connection]] = []
        with self._lock:
            if self._closed:
                raise InvocationError(f"{self.name}: stopped", {"errorMessage": "stopped", "errorType": "Stopped"})
            while len(self._all) < min(count, self.concurrency):
                started.append(self._start())
        deadline = time.monotonic() + timeout
        for container in started:
            _, connection = container
            failed: Any = None
            try:
                ready = connection.poll(max(0.0, deadline - time.monotonic()))
                if ready:
                    kind, failed = connection.recv()
                    ready = kind == "ready"
            except (EOFError, OSError):
                ready = False
            if not ready:
                self._discard(container)
                raise InvocationError(f"{self.name}: a container did not finish its init in {timeout:.0f} s")
            if failed is not None:  # as Lambda: the function's init raised, so no invocation of it can run
                self._discard(container)
                error, text = failed
                raise InvocationError(f"{self.name}: its init raised:\n{text}", error)
            self._idle.put(container)
        return len(self._all)

    def _take(self) -> tuple[tuple[Any, Connection], bool]:
        """A container for one invocation, and whether it is cold (new: its init still to run)."""
        try:
            return self._idle.get_nowait(), False
        except queue.Empty:
            pass
        with self._lock:
            if self._closed:
                raise InvocationError(f"{self.name}: stopped", {"errorMessage": "stopped", "errorType": "Stopped"})
            if len(self._all) < self.concurrency:
                return self._start(), True
        return self._idle.get(), False

    def _start(self) -> tuple[Any, Connection]:
        """A new container (a cold start), counted in `_all`; the caller holds the lock."""
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_container,
            args=(
                theirs,
                _Invoker(self.inherit_environment),
                self.module,
                self.handler,
                self.environment,
                self.name,
                self.timeout,
                self.logs_to_stderr,
                self.log_errors,
                self.memory_mb,
            ),
            name=f"{self.name}-container",
            daemon=True,
        )
        process.start()
        self._all.append((process, ours))
        return process, ours
