"""The Scale AI sandbox: Scale's task API as REFERENCE.md §6 and the official SDK describe it, with fault knobs.

    POST /v1/task/{type}          basic auth (the API key, empty password); 400 without a project or
                                  an attachment, or with metadata over 10 KB; 409 on a repeated
                                  unique_id, naming the task that holds it; 429 beyond the rate
    GET  /v1/task/{id}            the task; 404 for one it does not hold
    GET  /v1/tasks?unique_id=...  {"docs": [...], "total", "limit", "has_more", "next_token"}
                                  (also filtered by project and status)
    POST /v1/task/{id}/cancel     only while no work has begun on the task (400 after);
                                  clear_unique_id=true frees the unique_id

Every answer of an error is {"status_code", "error"}, as Scale's. Faults, drawn per task creation:
`error_rate` (503, nothing created), `timeout_rate` (nothing created, the answer stalls past the
client's timeout), `lost_rate` (the task IS created, then the answer stalls: the client sees a
timeout, and its retry meets the 409), `latency` (seconds added to every answer). `fail_next`,
`lose_next` and `created_then_503_next` (the task is created, the answer is a 503, as Scale's
"server timeout from request queueing" may be) make them happen exactly when a test wants.

A task with a callback_url is worked on: after `work_seconds` (± half) it is completed with a small
response (or ends in `error`, `failed_rate`) and the task is POSTed to its callback_url as
{"task", "response", "task_id"} with the scale-callback-auth header, through a CallbackSender
(drop, duplicate, reorder faults). Like Scale, a callback answered with anything but a 2xx is sent
again: `callback_retries` times, `callback_retry_seconds` apart (Scale: 20 times over 24 hours).
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import random
import re
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from werkzeug import Request, Response

from local.sandboxes.base import LocalSetup, LocalVendor
from local.sandboxes.callbacks import CallbackSender, Scheduled
from local.sandboxes.server import (
    Received,
    admin_answer,
    answer_recorded,
    draw_creation_fault,
    faulted,
    peak_rate,
    stalled,
)

MAX_METADATA_BYTES = 10_000
PAGE_LIMIT = 100
# Scale's task types, as its SDK lists them (scaleapi/tasks.py TaskType): any other is no route.
TASK_TYPES = frozenset(
    {
        "annotation", "categorization", "comparison", "cuboidannotation", "datacollection", "documentmodel",
        "documenttranscription", "imageannotation", "laneannotation", "lidarannotation", "lidarlinking",
        "lidarsegmentation", "lidartopdown", "lineannotation", "namedentityrecognition", "pointannotation",
        "polygonannotation", "segmentannotation", "transcription", "textcollection", "videoannotation",
        "videoboxannotation", "videoplaybackannotation", "videocuboidannotation", "sensorfusion", "chat",
        "chatexperimental", "chatlite", "multichat", "multistage", "federal2dvideoannotation",
    }
)  # fmt: skip


@dataclass
class SandboxTask:
    id: str
    type: str
    project: str
    unique_id: str | None
    callback_url: str
    params: dict[str, Any]
    metadata: dict[str, Any]
    batch: str | None = None
    status: str = "pending"
    response: Any = None
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    work_begins_at: float = 0.0  # after this, the task can no longer be canceled
    completed_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        task: dict[str, Any] = {
            "task_id": self.id,
            "type": self.type,
            "status": self.status,
            "project": self.project,
            "callback_url": self.callback_url,
            "params": self.params,
            "metadata": self.metadata,
            "instruction": self.params.get("instruction"),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.completed_at or self.created_at),
            "is_test": True,
        }
        if self.unique_id is not None:
            task["unique_id"] = self.unique_id
        if self.batch is not None:
            task["batch"] = self.batch
        if self.response is not None:
            task["response"] = self.response
        if self.error is not None:
            task["error"] = self.error
        if self.completed_at is not None and self.status == "completed":
            task["completed_at"] = _iso(self.completed_at)
        return task


class RedeliveringSender(CallbackSender):
    """Scale's callback delivery: what is not answered with a 2xx is sent again."""

    def __init__(self, *, seed: int | None = None, retries: int = 3, retry_seconds: float = 1.0) -> None:
        self.retries = retries
        self.retry_seconds = retry_seconds
        self.redelivered = 0
        self._attempts: dict[int, int] = {}  # seq -> deliveries so far
        super().__init__(seed=seed)  # starts the sending thread: everything it reads is set above

    def _delivered(self, item: Scheduled, status: int) -> None:
        attempts = self._attempts.pop(item.seq, 0) + 1
        if not 200 <= status < 300 and attempts <= self.retries:
            self._attempts[item.seq] = attempts
            self.redelivered += 1
            again = Scheduled(time.monotonic() + self.retry_seconds, item.seq, item.url, item.body, item.headers)
            heapq.heappush(self._queue, again)


class ScaleSandbox:
    def __init__(
        self,
        *,
        api_key: str,
        rate_limit: float = 30.0,
        error_rate: float = 0.0,
        timeout_rate: float = 0.0,
        lost_rate: float = 0.0,
        latency: float = 0.0,
        stall_seconds: float = 3.0,
        seed: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.error_rate = error_rate
        self.timeout_rate = timeout_rate
        self.lost_rate = lost_rate
        self.latency = latency
        self.stall_seconds = stall_seconds
        self.callback_auth_key = ""  # sent as scale-callback-auth
        self.send_callbacks = True  # False: tasks are worked on, nobody is told
        self.work_seconds = 2.0
        self.failed_rate = 0.0
        self.callbacks = RedeliveringSender(seed=seed)
        self.fail_next: deque[int] = deque()  # statuses for the next task creations
        self.lose_next = 0  # the next N task creations succeed but their answers stall
        self.created_then_503_next = 0  # the next N task creations succeed but are answered 503
        self.next_task_ids: deque[str] = deque()  # ids for the next tasks (a test's sample ids)
        # unique_id -> the task id a task created for it gets; such a task is left pending (not
        # worked on, cancelable, no callback), as `make local SAM_LOCAL=1` holds the events/ samples'
        self.held: dict[str, str] = {}
        self.tasks: dict[str, SandboxTask] = {}
        self.by_unique_id: dict[str, SandboxTask] = {}
        self.received: list[Received] = []
        self.bodies: list[dict[str, Any]] = []  # every task-creation body, as sent
        self._creates: list[float] = []  # arrival times of task creations, for the rate limit
        self._timers: list[threading.Timer] = []  # the tasks' work, cut short by stop()
        self._lock = threading.RLock()
        self._random = random.Random(seed)  # noqa: S311 (fault injection, not cryptography)

    # -- what tests and the demo look at -------------------------------------------------------------

    def creations(self) -> list[Received]:
        """Task-creation requests in the order they arrived (an answer that stalled is logged late)."""
        with self._lock:
            return sorted(
                (r for r in self.received if r.method == "POST" and re.fullmatch(r"/v1/task/[a-z0-9]+", r.path)),
                key=lambda r: r.at,
            )

    def peak_rate(self, window: float = 1.0) -> int:
        """The most task-creation requests that arrived within any `window` seconds."""
        return peak_rate([r.at for r in self.creations()], window)

    def stop(self) -> None:
        with self._lock:
            for timer in self._timers:
                timer.cancel()
        self.callbacks.stop()

    def complete(self, task_id: str, response: Any) -> None:
        """Complete a task now, without a callback (one that was lost)."""
        with self._lock:
            task = self.tasks[task_id]
            task.status, task.response, task.completed_at = "completed", response, time.time()

    def set_status(self, task_id: str, status: str) -> None:
        with self._lock:
            self.tasks[task_id].status = status

    # -- WSGI ------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return answer_recorded(self, environ, start_response)

    def _dispatch(self, request: Request, arrived: float) -> Response:
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("POST", r"/v1/task/([a-z0-9]+)", self._create_task),
            ("POST", r"/v1/task/([^/]+)/cancel", self._cancel),
            ("GET", r"/v1/task/([^/]+)", self._get_task),
            ("GET", r"/v1/tasks", self._list_tasks),
        ]
        if request.path.startswith("/_sandbox/"):
            return self._admin(request)
        auth = request.authorization
        if auth is None or auth.type != "basic" or auth.username != self.api_key:
            return _error(401, "Please provide a valid API key.")
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, request.path)
            if match and request.method == method:
                return handler(request, arrived, *match.groups())
        return _error(404, "Not found")

    def _admin(self, request: Request) -> Response:
        """What the sandbox saw, and its knobs, for a test or demo in another process."""
        return admin_answer(request, self, self._job_rows)

    def _job_rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"id": t.id, "reference_id": t.unique_id, "status": t.status} for t in self.tasks.values()]

    def _create_task(self, request: Request, arrived: float, task_type: str) -> Response:
        if task_type not in TASK_TYPES:
            return _error(404, f"No task type {task_type!r}: see the API reference for the task types")
        with self._lock:
            self._creates.append(arrived)
            recent = len(self._creates) - bisect.bisect_right(self._creates, arrived - 1.0)
            if recent > self.rate_limit:
                return _error(429, f"Too many requests: more than {self.rate_limit:g} per second")
            fault = self._fault()
        if fault == "error":
            return faulted(_error(503, "Server timeout from request queueing, try again later"), fault)
        if fault == "timeout":
            return faulted(stalled(_error(504, "Server timeout, try again later"), self.stall_seconds), fault)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object")
        with self._lock:
            self.bodies.append(body)
        refused = _refusal(body)
        if refused:
            return _error(400, refused)
        unique_id = body.get("unique_id")
        with self._lock:
            if isinstance(unique_id, str) and unique_id in self.by_unique_id:
                held = self.by_unique_id[unique_id]
                return _error(409, f"The unique_id ({unique_id}) is already used for a different task ({held.id}).")
            now = time.time()
            task = SandboxTask(
                id=self._task_id(unique_id),
                type=task_type,
                project=str(body["project"]),
                unique_id=unique_id if isinstance(unique_id, str) and unique_id else None,
                callback_url=str(body.get("callback_url") or ""),
                params={k: v for k, v in body.items() if k not in {"project", "unique_id", "callback_url", "metadata"}},
                metadata=dict(body.get("metadata") or {}),
                batch=body.get("batch"),
                created_at=now,
            )
            self.tasks[task.id] = task
            if task.unique_id is not None:
                self.by_unique_id[task.unique_id] = task
        if task.unique_id is not None and task.unique_id in self.held:
            task.work_begins_at = math.inf  # held: work never begins, so it stays cancelable
        else:
            self._work_on(task)
        answer = Response(json.dumps(task.as_json()), content_type="application/json")
        if fault == "lost":  # created, but the answer comes after the client has given up waiting
            return faulted(stalled(answer, self.stall_seconds), fault)
        if fault == "created_then_503":
            return faulted(_error(503, "Server timeout from request queueing, try again later"), fault)
        return answer

    def _task_id(self, unique_id: Any) -> str:
        if isinstance(unique_id, str) and unique_id in self.held:
            return self.held[unique_id]
        return self.next_task_ids.popleft() if self.next_task_ids else uuid.uuid4().hex[:24]

    def _work_on(self, task: SandboxTask) -> None:
        """The task's progress: work begins, then it completes (or errors) and its callback goes out."""
        done_in = self.work_seconds * self._random.uniform(0.5, 1.5)
        task.work_begins_at = task.created_at + done_in / 3
        failed = self._random.random() < self.failed_rate
        timer = threading.Timer(done_in, self._finish, (task.id, failed))
        timer.daemon = True
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _finish(self, task_id: str, failed: bool) -> None:
        with self._lock:
            task = self.tasks[task_id]
            if task.status != "pending":  # canceled meanwhile, or finished by a test
                return
            task.completed_at = time.time()
            if failed:
                task.status, task.error = "error", "The attachment could not be downloaded."
            else:
                task.status = "completed"
                task.response = {
                    "annotations": [
                        {"uuid": str(uuid.uuid4()), "type": "box", "label": "car", "left": 12, "top": 8, "width": 30}
                    ],
                    "global_attributes": {},
                }
            body = self.callback_body(task_id)
        if task.callback_url and self.send_callbacks:
            headers = {"Content-Type": "application/json", "scale-callback-auth": self.callback_auth_key}
            self.callbacks.schedule(0.05, task.callback_url, body, headers)

    def callback_body(self, task_id: str) -> bytes:
        """The callback Scale sends for the task as it stands: {"task", "response", "task_id"}."""
        with self._lock:
            task = self.tasks[task_id]
            body: dict[str, Any] = {"task": task.as_json(), "task_id": task.id}
            if task.response is not None:
                body["response"] = task.response
            return json.dumps(body).encode()

    def _fault(self) -> str | None:
        if self.created_then_503_next > 0 and not self.fail_next and self.lose_next <= 0:
            self.created_then_503_next -= 1
            return "created_then_503"
        return draw_creation_fault(self)

    def _get_task(self, request: Request, arrived: float, task_id: str) -> Response:
        with self._lock:
            task = self.tasks.get(task_id)
            if task is None:
                return _error(404, f"No task with id {task_id}")
            return Response(json.dumps(task.as_json()), content_type="application/json")

    def _list_tasks(self, request: Request, arrived: float) -> Response:
        try:
            limit = int(request.args.get("limit") or PAGE_LIMIT)
            start = int(request.args.get("next_token") or 0)
        except ValueError:
            return _error(400, "limit and next_token must be numbers")
        if not 1 <= limit <= PAGE_LIMIT or start < 0:
            return _error(400, f"limit must be 1..{PAGE_LIMIT} and next_token a token this API gave")
        # a parameter given several times (the SDK sends a list of unique_ids so) matches any of them
        filters = ("unique_id", "project", "status", "batch")
        wanted = {k: set(request.args.getlist(k)) for k in filters if k in request.args}
        with self._lock:
            found = [
                t.as_json()
                for t in self.tasks.values()
                if all(t.as_json().get(k) in values for k, values in wanted.items())
            ]
        page = found[start : start + limit]
        more = start + limit < len(found)
        body = {
            "docs": page,
            "total": len(found),
            "limit": limit,
            "offset": start,
            "has_more": more,
            "next_token": str(start + limit) if more else None,
        }
        return Response(json.dumps(body), content_type="application/json")

    def _cancel(self, request: Request, arrived: float, task_id: str) -> Response:
        with self._lock:
            task = self.tasks.get(task_id)
            if task is None:
                return _error(404, f"No task with id {task_id}")
            if task.status != "pending":
                return _error(400, f"Task {task_id} is {task.status} and cannot be canceled.")
            if time.time() >= task.work_begins_at:
                return _error(400, f"Work on task {task_id} has begun; it can no longer be canceled.")
            task.status, task.completed_at = "canceled", time.time()
            if request.args.get("clear_unique_id") == "true" and task.unique_id is not None:
                self.by_unique_id.pop(task.unique_id, None)
                task.unique_id = None
            return Response(json.dumps(task.as_json()), content_type="application/json")


def _refusal(body: dict[str, Any]) -> str | None:
    """What Scale refuses with a 400 in a task creation (None: nothing)."""
    if not isinstance(body.get("project"), str) or not body["project"]:
        return "Please specify a project for this task."
    if not body.get("attachment") and not body.get("attachments"):
        return "Please provide an attachment for this task."
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return "metadata must be an object"
    if len(json.dumps(metadata or {}, separators=(",", ":"), ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
        return "metadata is limited to 10KB"
    return None


class LocalScale(LocalVendor):
    """Scale on the local stack: tasks take `work_seconds`, callbacks to each task's callback_url."""

    name = "scale"
    title = "Scale"
    secret_logical_id = "ScaleSecret"  # noqa: S105 (a resource name, not a secret)
    default_rate = 30.0
    demo_tasks = 4
    sample_keys: ClassVar[Mapping[str, str]] = {"callback_auth_key": "sample-scale-callback-auth-key"}
    sample_ids: ClassVar[Mapping[str, tuple[str, ...]]] = {"order-1042-scale-7": ("6567a1f2c0ffee0012345678",)}

    def __init__(self, setup: LocalSetup) -> None:
        super().__init__(setup)
        self.api_key, self.callback_auth_key = f"test_{secrets.token_hex(16)}", secrets.token_urlsafe(24)
        faults = setup.faults
        self.sandbox = ScaleSandbox(
            api_key=self.api_key,
            **self.creation_faults(),
        )
        self.sandbox.work_seconds = setup.work_seconds
        self.sandbox.failed_rate = faults.failed_rate
        self.sandbox.callback_auth_key = self.callback_auth_key

    @property
    def url(self) -> str:
        return f"{super().url}/v1"

    def parameters(self) -> dict[str, str]:
        return {
            "ScaleBaseUrl": self.url,
            "ScaleProject": "local-project",
            "ScaleMaxRequestsPerSecond": f"{self.rate_limit:g}",
        }

    def play_samples(self) -> None:
        self.callback_auth_key = self.sandbox.callback_auth_key = self.sample_keys["callback_auth_key"]
        self.sandbox.held = {reference_id: ids[0] for reference_id, ids in self.sample_ids.items()}

    def secret(self, current: Mapping[str, str]) -> dict[str, str]:
        return {"api_key": self.api_key, "callback_auth_key": self.callback_auth_key}

    def connect(self, callback_url: str) -> None:
        """Nothing to do: Scale calls back to each task's callback_url, which Handoff sends."""

    def silence(self) -> None:
        self.sandbox.send_callbacks = False

    def demo_jobs(self) -> list[dict[str, Any]]:
        return [
            {
                "vendor": "scale",
                "reference_id": f"demo-scale-{n:02d}",
                "task_type": "imageannotation",
                "instruction": "Draw a box around each car.",
                "attachment": f"https://images.example.com/demo/scale-{n:02d}.jpg",
                "attachment_type": "image",
                "params": {"geometries": {"box": {"objects_to_annotate": ["car"]}}},
                "metadata": {"camera": "rear"},
            }
            for n in range(1, self.demo_tasks + 1)
        ]

    def expected_status(self, reference_id: str) -> str:
        task = self.sandbox.by_unique_id.get(reference_id)
        return "FAILED" if task is not None and task.status == "error" else "COMPLETED"

    def doubled(self) -> list[str]:
        counts = Counter(task.unique_id for task in self.sandbox.tasks.values())
        return [str(unique_id) for unique_id, n in counts.items() if n > 1]

    def demo_complete(self) -> bool:
        return len(self.sandbox.tasks) == self.demo_tasks

    def summary(self) -> str:
        statuses = Counter(c.status for c in self.sandbox.creations())
        return (
            f"{sum(statuses.values())} task creations for {len(self.sandbox.tasks)} tasks "
            f"({statuses.get(503, 0)} answered 503, {statuses.get(409, 0)} 409 after a lost answer)"
        )


LOCAL_VENDOR = LocalScale


def main() -> None:
    """Serve a sandbox in its own process: python -m local.sandboxes.scale API_KEY [RATE]."""
    import logging
    import sys

    from local.sandboxes.server import BackgroundServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on the caller's terminal
    box = ScaleSandbox(api_key=sys.argv[1], rate_limit=float(sys.argv[2]) if len(sys.argv) > 2 else 30)
    server = BackgroundServer(box)
    server.start()
    print(server.url, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
    server.stop()


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, message: str) -> Response:
    return Response(
        json.dumps({"status_code": status, "error": message}), status=status, content_type="application/json"
    )


if __name__ == "__main__":
    main()
