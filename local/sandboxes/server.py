"""Serving a WSGI app on 127.0.0.1 in a background thread, on a free port."""

from __future__ import annotations

import bisect
import io
import math
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from werkzeug import Request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

# How often the serving loop looks for a shutdown request: stop() waits up to this long.
POLL_SECONDS = 0.05

# The WSGI environ key holding when a request reached this host (time.monotonic()): ArrivalStamped.
ARRIVED = "local.sandbox.arrived"
# Linux's SO_TIMESTAMP (asm-generic; Python names none): the kernel stamps each received packet, and
# recvmsg hands the stamp (struct timeval) over with the bytes. Elsewhere: the time of the read.
_SO_TIMESTAMP = 29 if sys.platform.startswith("linux") else None
_STAMP_SPACE = socket.CMSG_SPACE(16)


def _monotonic_of(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMP and len(data) >= 16:
            seconds, microseconds = struct.unpack("qq", data[:16])
            return time.monotonic() - (time.time() - (seconds + microseconds / 1e6))
    return time.monotonic()


class _StampedSocketIO(socket.SocketIO):
    """A connection's reads, each stamped with when the kernel received its bytes."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock, "rb")
        self.latest = time.monotonic()  # the stamp of the last read
        self.first_since_mark: float | None = None  # the first read's since mark()

    def mark(self) -> None:
        self.first_since_mark = None

    def arrival(self) -> float:
        return self.latest if self.first_since_mark is None else self.first_since_mark

    def readinto(self, buffer: Any) -> int:
        size, ancillary, _, _ = self._sock.recvmsg_into([buffer], _STAMP_SPACE)  # type: ignore[attr-defined]
        self.latest = _monotonic_of(ancillary)
        if self.first_since_mark is None:
            self.first_since_mark = self.latest
        return int(size)


class ArrivalStamped(WSGIRequestHandler):
    """Puts in environ[ARRIVED] when the request's first bytes reached this host, not when a thread
    of this process got round to it. A vendor counts requests (its rate limit) as they arrive at
    its edge, whatever its servers are doing; a sandbox shares its process, and the GIL, with the
    local stack's API and pollers, so a stamp taken in the WSGI app would bunch requests that
    arrived apart whenever the stack is busy (429s that the real vendor would not answer)."""

    def setup(self) -> None:
        if _SO_TIMESTAMP is not None:
            self.request.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMP, 1)
        super().setup()
        self.rfile.close()  # the plain reader setup() made: ours reads the same socket, stamped
        self._stamped = _StampedSocketIO(self.connection)
        self.rfile = io.BufferedReader(self._stamped)

    def handle_one_request(self) -> None:
        self._stamped.mark()  # the next read brings this request (unless it came with the last one)
        super().handle_one_request()

    def make_environ(self) -> Any:
        environ = super().make_environ()
        environ[ARRIVED] = self._stamped.arrival()
        return environ


class BackgroundServer:
    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        request_handler: type[WSGIRequestHandler] | None = None,
    ) -> None:
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=request_handler or ArrivalStamped
        )
        if request_handler is None and _SO_TIMESTAMP is not None:  # stamps from the first packet on
            self._server.socket.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMP, 1)
        self._thread = threading.Thread(target=self._serve, name=f"http-{self.port}", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=POLL_SECONDS)

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Received:
    at: float  # time.monotonic() on arrival
    method: str
    path: str
    status: int | None = None  # None while the answer is still on its way (a stalled answer)
    fault: str | None = None  # the fault drawn: "error", "timeout", "lost", "created_then_503" (None: none)


def answer_recorded(sandbox: Any, environ: dict[str, Any], start_response: Any) -> Any:
    """A request to a vendor sandbox that records what it receives: recorded in `sandbox.received` as it
    arrived at this host (ArrivalStamped), answered by `sandbox._dispatch(request, arrived)`, its
    status and drawn fault recorded, after the vendor's `latency` and the answer's own stall (the
    sandbox's /_sandbox/ controls answer at once)."""
    request = Request(environ)
    arrived = float(environ.get(ARRIVED) or time.monotonic())
    received = Received(arrived, request.method, request.path)
    with sandbox._lock:
        sandbox.received.append(received)
    response = sandbox._dispatch(request, arrived)
    received.status = response.status_code
    received.fault = getattr(response, "fault", None)
    if not request.path.startswith("/_sandbox/"):
        time.sleep(sandbox.latency + getattr(response, "stall", 0.0))
    return response(environ, start_response)


def peak_rate(arrivals: list[float], window: float = 1.0) -> int:
    """The most arrivals within any half-open `window` [t, t + window)."""
    times = sorted(arrivals)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def draw_creation_fault(sandbox: Any) -> str | None:
    """The fault for one job creation (SANDBOX_KNOBS): a test's `fail_next` / `lose_next` first, then
    one draw over `error_rate`, `timeout_rate` and `lost_rate` (None: no fault)."""
    if sandbox.fail_next:
        sandbox.fail_next.popleft()
        return "error"
    if sandbox.lose_next > 0:
        sandbox.lose_next -= 1
        return "lost"
    draw = sandbox._random.random()
    for name, rate in (("error", sandbox.error_rate), ("timeout", sandbox.timeout_rate), ("lost", sandbox.lost_rate)):
        if draw < rate:
            return name
        draw -= rate
    return None


def stalled(response: Any, seconds: float) -> Any:
    """The answer, held back `seconds` after the work is done (the WSGI call sleeps on it)."""
    response.stall = seconds
    return response


def faulted(response: Any, fault: str) -> Any:
    """The answer, marked with the fault drawn for it (what `Received.fault` records)."""
    response.fault = fault
    return response


# The knobs every vendor sandbox has: its own faults, and its callback sender's.
SANDBOX_KNOBS = (
    "rate_limit",
    "error_rate",
    "timeout_rate",
    "lost_rate",
    "latency",
    "stall_seconds",
    "failed_rate",
    "work_seconds",
)
CALLBACK_KNOBS = ("drop_rate", "duplicate_rate", "reorder_seconds")
# A knob named *_rate is a probability, rate_limit is requests per second (1 or more), and every
# other one is seconds, at most an hour (a sandbox sleeps them: a larger value would hold its
# threads past any test, or overflow time.sleep).
MAX_KNOB_SECONDS = 3600


def admin_answer(request: Any, sandbox: Any, jobs: Any) -> Any:
    """A sandbox's /_sandbox/ routes, for a test or demo in another process: what it saw
    (`creations`, and `jobs()` as rows of id, reference_id, status) and its knobs (POST)."""
    import json

    from werkzeug import Response

    if request.path == "/_sandbox/creations":
        rows = [{"at": r.at, "status": r.status, "fault": r.fault} for r in sandbox.creations()]
        return Response(json.dumps(rows), content_type="application/json")
    if request.path == "/_sandbox/jobs":
        return Response(json.dumps(jobs()), content_type="application/json")
    if request.path == "/_sandbox/knobs" and request.method == "POST":
        try:  # JSON whatever the Content-Type says: curl -d sends form's, and the knobs are still meant
            knobs = json.loads(request.get_data() or b"null")
        except ValueError:
            knobs = None
        targets = {name: sandbox for name in SANDBOX_KNOBS if hasattr(sandbox, name)}
        targets |= {name: sandbox.callbacks for name in CALLBACK_KNOBS}
        # A knob this sandbox does not have, or a value that is no number, is refused whole: a
        # test that sets a knob must never run on, believing it set.
        problems = ["the body must be a JSON object of knob: number"] if not isinstance(knobs, dict) else []
        for name, value in (knobs or {}).items() if isinstance(knobs, dict) else ():
            if name not in targets:
                problems.append(f"{name}: not a knob of this sandbox (its knobs: {', '.join(sorted(targets))})")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                problems.append(f"{name}: must be a number (not {json.dumps(value)})")
            elif name.endswith("_rate") and not 0 <= value <= 1:
                problems.append(f"{name}: must be a probability from 0 to 1")
            elif name == "rate_limit" and value < 1:
                problems.append(f"{name}: must be requests per second, 1 or more")
            elif name != "rate_limit" and not name.endswith("_rate") and not 0 <= value <= MAX_KNOB_SECONDS:
                problems.append(f"{name}: must be a number of seconds from 0 to {MAX_KNOB_SECONDS}")
        if problems:
            return Response(json.dumps({"error": problems}), status=400, content_type="application/json")
        for name, value in knobs.items():
            setattr(targets[name], name, float(value))
        return Response(json.dumps({"set": knobs}), content_type="application/json")
    return Response("not found", status=404)
