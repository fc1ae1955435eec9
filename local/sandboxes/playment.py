"""The Playment sandbox: Playment's API as REFERENCE.md §1 documents it, one doc generation at a
time, strict where Playment is, with fault knobs.

A sandbox speaks ONE generation (GENERATIONS; REFERENCE.md §1.1, §1.2) and answers only its paths:

    readme   POST /v0/projects/{p}/jobs (`tag`)            POST /v1/project/{p}/batch (singular)
             GET  /v0/projects/{p}/jobs/{j}                GET  /v0/projects/{p}/batch/{b}
             GET  /v0/projects/{p}/details
    docs     POST /v1/projects/{p}/jobs (`work_flow_id`)   POST /v1/projects/{p}/batch (plural)
             GET  /v1/projects/{p}/jobs/{j}                GET  /v1/projects/{p}/batch/{b}
             GET  /v1/projects/{p}/details
    sdk      POST /projectsvc/projects/{p}/jobs (`tag`)    POST /v1/project/{p}/batch (singular)
             GET  /v0/projects/{p}/jobs/{j}                GET  /v0/projects/{p}/batch/{b}
             GET  /v0/projects/{p}/details                 GET  /v0/projects/{p}/stats
    all      GET  /v1/attachments?url=...   302 to a signed URL for a result
             GET  /signed/{j}.json?sig=...  the result file (no key)

Every other path is 404 (a plain-text body, as a router's). A wrong or missing x-api-key is 401
with a plain-text body (the SDK's unauthorized_request; gotcha 10). Every documented error is
HTTP 400 {"error": {"code", "message"}, "success": false} (§1.6):

    resource_error   the project is not this sandbox's project
    FS_0001          a repeated reference_id
    FS_0002/0004     reference_id / data missing
    FS_0005          the generation's routing field missing (`tag` sent to docs, `work_flow_id` to readme)
    FS_00012         priority_weight not an integer 1..9
    GE_0001          malformed JSON; a batch_id that is not a UUID or not a batch of the project
    GE_0002          a batch without a name
    BATCH_CREATION   a batch name the project already has
    FS_0006          an unknown job id
    invalid_request_error  a bad page_token

Batches: the project starts with its default batch ("Default batch", is_default); batch ids are
UUIDs; a job without batch_id goes to the default batch. Project details list every batch with
its counts (jobs, frames, completed), stats (sdk) sum them.

Faults, drawn per job-creation request: `error_rate` (503), `timeout_rate` (no job, the answer
stalls past the client's timeout), `lost_rate` (the job IS created, then the answer stalls: the
client sees a timeout, and its retry meets FS_0001), `latency` (seconds added to every answer).
`fail_next` and `lose_next` make the same faults happen exactly when a test wants them.

With `callback_url` set, every created job is worked on: after `work_seconds` (± half) it is
COMPLETED with a small result (or FAILED, `failed_rate`), sometimes (`pending_rate`) after a
PENDING callback first, and each change is POSTed to the callback URL as JSON
{"annotations": [...]} with the x-playment-key header, through a CallbackSender (drop, duplicate,
reorder faults). A FAILED callback names the job `flu_id`, as Playment's own example does.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from werkzeug import Request, Response

from local.sandboxes.base import LocalSetup, LocalVendor
from local.sandboxes.callbacks import CallbackSender
from local.sandboxes.server import (
    Received,
    admin_answer,
    answer_recorded,
    draw_creation_fault,
    faulted,
    peak_rate,
    stalled,
)

PAGE_SIZE = 100
DEFAULT_BATCH_NAME = "Default batch"
UNAUTHORIZED_BODY = "Unauthorized"  # Playment's 401 is not JSON (REFERENCE.md gotcha 10)


@dataclass(frozen=True)
class Generation:
    """One generation of Playment's documentation, as the sandbox serves it ({p} project, {j} job,
    {b} batch). Written from REFERENCE.md §1.1/§1.2, not from the client's settings, so that a
    client configured wrong meets a sandbox that says so."""

    name: str
    routing_field: str
    create_job: str
    get_job: str
    create_batch: str
    batch_jobs: str
    details: str
    stats: str = ""  # "" where the generation has none
    api_key_header: str = "x-api-key"


GENERATIONS = {
    "readme": Generation(
        name="readme",
        routing_field="tag",
        create_job="/v0/projects/{p}/jobs",
        get_job="/v0/projects/{p}/jobs/{j}",
        create_batch="/v1/project/{p}/batch",
        batch_jobs="/v0/projects/{p}/batch/{b}",
        details="/v0/projects/{p}/details",
    ),
    "docs": Generation(
        name="docs",
        routing_field="work_flow_id",
        create_job="/v1/projects/{p}/jobs",
        get_job="/v1/projects/{p}/jobs/{j}",
        create_batch="/v1/projects/{p}/batch",
        batch_jobs="/v1/projects/{p}/batch/{b}",
        details="/v1/projects/{p}/details",
    ),
    "sdk": Generation(
        name="sdk",
        routing_field="tag",
        create_job="/projectsvc/projects/{p}/jobs",
        get_job="/v0/projects/{p}/jobs/{j}",
        create_batch="/v1/project/{p}/batch",
        batch_jobs="/v0/projects/{p}/batch/{b}",
        details="/v0/projects/{p}/details",
        stats="/v0/projects/{p}/stats",
    ),
}
DEFAULT_GENERATION = "readme"


def _route(template: str) -> str:
    return re.escape(template).replace(r"\{p\}", "([^/]+)").replace(r"\{j\}", "([^/]+)").replace(r"\{b\}", "([^/]+)")


@dataclass
class SandboxBatch:
    id: str  # a UUID
    name: str
    description: str = ""
    is_default: bool = False
    created_at: float = field(default_factory=time.time)


@dataclass
class SandboxJob:
    id: str
    reference_id: str
    project_id: str
    batch_id: str
    tag: str | None
    data: Any
    priority_weight: int
    status: str = "pending"
    result: Any = None
    created_at: float = field(default_factory=time.time)

    @property
    def frames(self) -> int:
        """How many frames the job's data has (an image job: its image URLs)."""
        data = self.data if isinstance(self.data, dict) else {}
        for shape in ("video_data", "sensor_data"):
            frames = data.get(shape, {}).get("frames") if isinstance(data.get(shape), dict) else None
            if isinstance(frames, list):
                return len(frames)
        images = data.get("image_url")
        return len(images) if isinstance(images, list) else 1

    @property
    def annotations(self) -> int:
        """How many annotation objects its result holds (0 until completed)."""
        found = self.result.get("annotations") if isinstance(self.result, dict) else None
        if isinstance(found, dict):
            return sum(len(v) for v in found.values() if isinstance(v, list))
        return len(found) if isinstance(found, list) else 0


class PlaymentSandbox:
    def __init__(
        self,
        *,
        api_key: str,
        project_id: str,
        generation: str = DEFAULT_GENERATION,
        api_key_header: str | None = None,
        rate_limit: float = 20.0,
        error_rate: float = 0.0,
        timeout_rate: float = 0.0,
        lost_rate: float = 0.0,
        latency: float = 0.0,
        stall_seconds: float = 3.0,
        seed: int | None = None,
    ) -> None:
        if generation not in GENERATIONS:
            raise ValueError(f"unknown Playment generation {generation!r} (known: {', '.join(GENERATIONS)})")
        self.generation = GENERATIONS[generation]
        self.api_key = api_key
        self.api_key_header = api_key_header or self.generation.api_key_header
        self.project_id = project_id
        self.rate_limit = rate_limit
        self.error_rate = error_rate
        self.timeout_rate = timeout_rate
        self.lost_rate = lost_rate
        self.latency = latency
        self.stall_seconds = stall_seconds
        self.base_url = ""  # set by whoever serves it; result URLs point here
        self.callback_url = ""  # where job updates are POSTed (empty: no callbacks, and no work)
        self.send_callbacks = True  # False: jobs are worked on, but nobody is told (GET shows it)
        self.callback_key = ""  # sent as x-playment-key
        self.work_seconds = 2.0
        self.pending_rate = 0.5
        self.failed_rate = 0.0
        self.callbacks = CallbackSender(seed=seed)
        self.fail_next: deque[int] = deque()  # statuses for the next job creations
        self.lose_next = 0  # the next N job creations succeed but their answers stall
        self.jobs: dict[str, SandboxJob] = {}
        self.by_reference: dict[str, SandboxJob] = {}
        # reference_id -> the job id a job created for it gets; such a job is left pending (not
        # worked on, no callback), as `make local SAM_LOCAL=1` holds the events/ samples' jobs
        self.held: dict[str, str] = {}
        default = SandboxBatch(id=str(uuid.uuid4()), name=DEFAULT_BATCH_NAME, is_default=True)
        self.batches: dict[str, SandboxBatch] = {default.id: default}
        self.default_batch_id = default.id
        self.received: list[Received] = []
        self._creates: list[float] = []  # arrival times of job creations, for the rate limit
        self._lock = threading.RLock()
        self._random = random.Random(seed)  # noqa: S311 (fault injection, not cryptography)
        g = self.generation
        # (method, path pattern, handler's name: looked up per request, so a test may replace one)
        self._routes: list[tuple[str, str, str]] = [
            ("POST", _route(g.create_job), "_create_job"),
            ("POST", _route(g.create_batch), "_create_batch"),
            ("GET", _route(g.get_job), "_get_job"),
            ("GET", _route(g.batch_jobs), "_batch"),
            ("GET", _route(g.details), "_details"),
            *([("GET", _route(g.stats), "_stats")] if g.stats else []),
        ]

    # -- what tests and the demo look at -------------------------------------------------------------

    def creations(self) -> list[Received]:
        """Job-creation requests in the order they arrived (an answer that stalled is logged late)."""
        with self._lock:
            return sorted(
                (r for r in self.received if r.method == "POST" and r.path.endswith("/jobs")), key=lambda r: r.at
            )

    def peak_rate(self, window: float = 1.0) -> int:
        """The most job-creation requests that arrived within any `window` seconds."""
        return peak_rate([r.at for r in self.creations()], window)

    def stop(self) -> None:
        self.callbacks.stop()

    def complete(self, job_id: str, result: Any) -> None:
        with self._lock:
            self.jobs[job_id].status, self.jobs[job_id].result = "completed", result

    def set_status(self, job_id: str, status: str) -> None:
        with self._lock:
            self.jobs[job_id].status = status

    def create_batch(self, name: str, description: str = "") -> SandboxBatch:
        """A new batch of the project (as POST .../batch does). Raises ValueError on a name taken."""
        with self._lock:
            if any(b.name == name for b in self.batches.values()):
                raise ValueError(name)
            batch = SandboxBatch(id=str(uuid.uuid4()), name=name, description=description)
            self.batches[batch.id] = batch
            return batch

    def batch_rows(self) -> list[dict[str, Any]]:
        """Every batch with its counts, as project details lists them (oldest first)."""
        with self._lock:
            jobs = list(self.jobs.values())
            batches = sorted(self.batches.values(), key=lambda b: b.created_at)
        rows = []
        for batch in batches:
            own = [j for j in jobs if j.batch_id == batch.id]
            done = [j for j in own if j.status == "completed"]
            final = [j for j in own if j.status in {"completed", "failed"}]
            rows.append(
                {
                    "id": batch.id,
                    "name": batch.name,
                    "description": batch.description,
                    "is_default": batch.is_default,
                    "total_jobs": len(own),
                    "completed_jobs": len(done),
                    "total_frames": sum(j.frames for j in own),
                    "completed_frames": sum(j.frames for j in done),
                    "annotations": sum(j.annotations for j in done),
                    "created_at": datetime.fromtimestamp(batch.created_at, UTC).isoformat(),
                    "status": "Complete" if own and len(final) == len(own) else "In Progress",
                }
            )
        return rows

    # -- WSGI ------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return answer_recorded(self, environ, start_response)

    def _dispatch(self, request: Request, arrived: float) -> Response:
        if request.path.startswith("/_sandbox/"):
            return self._admin(request)
        signed = re.fullmatch(r"/signed/([^/]+)\.json", request.path)
        if signed and request.method == "GET":
            return self._signed(request, signed.group(1))
        if request.headers.get(self.api_key_header) != self.api_key:
            return Response(UNAUTHORIZED_BODY, status=401, content_type="text/plain")
        if request.path == "/v1/attachments" and request.method == "GET":
            return self._attachment(request, arrived)
        for method, pattern, handler in self._routes:
            match = re.fullmatch(pattern, request.path)
            if match and request.method == method:
                project_id, *rest = match.groups()
                if project_id != self.project_id:
                    return _error(400, "resource_error", "project_id not found")
                answer: Response = getattr(self, handler)(request, arrived, project_id, *rest)
                return answer
        return Response("404 page not found", status=404, content_type="text/plain")

    def _admin(self, request: Request) -> Response:
        """What the sandbox saw, and its knobs, for a test or demo in another process; and its
        batches (GET /_sandbox/batches: project details' rows)."""
        if request.path == "/_sandbox/batches":
            return Response(json.dumps(self.batch_rows()), content_type="application/json")
        return admin_answer(request, self, self._job_rows)

    def _job_rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"id": j.id, "reference_id": j.reference_id, "status": j.status, "batch_id": j.batch_id}
                for j in self.jobs.values()
            ]

    def _create_job(self, request: Request, arrived: float, project_id: str) -> Response:
        with self._lock:
            self._creates.append(arrived)
            recent = len(self._creates) - bisect.bisect_right(self._creates, arrived - 1.0)
            if recent > self.rate_limit:
                return _error(429, "rate_limited", f"more than {self.rate_limit:g} requests per second")
            fault = self._fault()
        if fault == "error":
            return faulted(_error(503, "FS_0000", "internal error, try again after some time"), fault)
        if fault == "timeout":
            return faulted(stalled(_error(504, "api_error", "gateway timeout"), self.stall_seconds), fault)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "GE_0001", "Malformed JSON/Invalid UUID passed")
        if not body.get("reference_id"):
            return _error(400, "FS_0002", "reference_id is missing")
        if not body.get("data"):
            return _error(400, "FS_0004", "Data missing")
        routing_field = self.generation.routing_field
        routing = body.get(routing_field)
        if not isinstance(routing, str) or not routing:
            what = "tag missing" if routing_field == "tag" else "work_flow_id was not provided"
            return _error(400, "FS_0005", what)
        priority = body.get("priority_weight", 5)
        if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 9:
            return _error(400, "FS_00012", "Priority weight is invalid, it must be in the range of 1-9")
        batch_id = body.get("batch_id") or self.default_batch_id
        with self._lock:
            if not _is_uuid(batch_id) or batch_id not in self.batches:
                return _error(400, "GE_0001", "Malformed JSON/Invalid UUID passed: batch_id")
            if body["reference_id"] in self.by_reference:
                return _error(400, "FS_0001", "For each unique FLU/sequence you must use a unique reference_id")
            job = SandboxJob(
                id=self.held.get(str(body["reference_id"])) or str(uuid.uuid4()),
                reference_id=str(body["reference_id"]),
                project_id=project_id,
                batch_id=batch_id,
                tag=routing,
                data=body["data"],
                priority_weight=priority,
            )
            self.jobs[job.id] = job
            self.by_reference[job.reference_id] = job
        if self.callback_url and job.reference_id not in self.held:
            self._work_on(job)
        answer = _ok({"job_id": job.id, "reference_id": job.reference_id, routing_field: job.tag})
        # lost: created, but the answer comes after the client has given up waiting
        return faulted(stalled(answer, self.stall_seconds), fault) if fault == "lost" else answer

    def _create_batch(self, request: Request, arrived: float, project_id: str) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "GE_0001", "Malformed JSON/Invalid UUID passed")
        name, description = body.get("name"), body.get("description", "")
        if not isinstance(name, str) or not name.strip():
            return _error(400, "GE_0002", "Parameter missing: name")
        try:
            batch = self.create_batch(name, description if isinstance(description, str) else "")
        except ValueError:
            return _error(
                400,
                "BATCH_CREATION",
                "pq: duplicate key value violates unique constraint 'batches_project_id_name_unique'",
            )
        return _ok({"batch_id": batch.id})

    def _work_on(self, job: SandboxJob) -> None:
        """Schedule the job's progress and its callbacks (the vendor's annotators at work)."""
        done_in = self.work_seconds * self._random.uniform(0.5, 1.5)
        if self._random.random() < self.pending_rate:
            self._callback(job, "PENDING", done_in / 3)
        failed = self._random.random() < self.failed_rate
        self._callback(job, "FAILED" if failed else "COMPLETED", done_in)

    def _callback(self, job: SandboxJob, status: str, delay: float) -> None:
        annotation: dict[str, Any] = {"reference_id": job.reference_id, "status": status, "tag": job.tag}
        if status == "FAILED":
            annotation["flu_id"] = job.id
            annotation["error"] = {
                "code": "FS_0003",
                "message": "Invalid data passed",
                "meta_data": {"failures": [{"field": "image_url", "type": "INVALID_IMAGE_LINK"}]},
            }
        else:
            annotation["job_id"] = job.id
        if status == "COMPLETED":
            annotation["result"] = {
                "annotations": {"rectangles": [{"label": "car", "coordinates": [0.1, 0.2, 0.3, 0.4]}]}
            }
        timer = threading.Timer(delay, self._set_vendor_status, (job.id, status, annotation.get("result")))
        timer.daemon = True
        timer.start()
        if not self.send_callbacks:
            return
        body = json.dumps({"annotations": [annotation]}).encode()
        headers = {"Content-Type": "application/json", "x-playment-key": self.callback_key}
        self.callbacks.schedule(delay + 0.05, self.callback_url, body, headers)

    def _set_vendor_status(self, job_id: str, status: str, result: Any) -> None:
        with self._lock:
            job = self.jobs[job_id]
            if job.status in {"completed", "failed"}:
                return
            job.status = status.lower()
            if result is not None:
                job.result = result

    def _fault(self) -> str | None:
        return draw_creation_fault(self)

    def _details(self, request: Request, arrived: float, project_id: str) -> Response:
        return _ok({"name": "sandbox", "base": "IMAGE", "batches": self.batch_rows()})

    def _stats(self, request: Request, arrived: float, project_id: str) -> Response:
        rows = self.batch_rows()
        return _ok(
            {
                "name": "sandbox",
                "base": "IMAGE",
                "total_batches": len(rows),
                "completed_batches": sum(1 for r in rows if r["status"] == "Complete"),
                **{
                    k: sum(r[k] for r in rows)
                    for k in ("total_jobs", "completed_jobs", "total_frames", "completed_frames", "annotations")
                },
            }
        )

    def _batch(self, request: Request, arrived: float, project_id: str, batch_id: str) -> Response:
        token = request.args.get("page_token") or "0"
        if not token.isdigit():
            return _error(400, "invalid_request_error", "invalid pageToken")
        start = int(token)
        with self._lock:
            batch = self.batches.get(batch_id) if _is_uuid(batch_id) else None
            if batch is None:
                return _error(400, "GE_0001", "Malformed JSON/Invalid UUID passed: batch_id")
            jobs = [j for j in self.jobs.values() if j.batch_id == batch_id]
        page = jobs[start : start + PAGE_SIZE]
        data: dict[str, Any] = {
            "id": batch.id,
            "project_id": project_id,
            "name": batch.name,
            "jobs": [
                {
                    "id": j.id,
                    "reference_id": j.reference_id,
                    "status": j.status,
                    "frames": j.frames,
                    "annotations": j.annotations,
                    "priority_weight": j.priority_weight,
                    "tag": j.tag,
                    "viewer_url": f"{self.base_url}/viewer/{j.id}",
                }
                for j in page
            ],
        }
        if start + PAGE_SIZE < len(jobs):
            data["next_page_token"] = str(start + PAGE_SIZE)
        return _ok(data)

    def _get_job(self, request: Request, arrived: float, project_id: str, job_id: str) -> Response:
        job = self.jobs.get(job_id)
        if job is None or job.project_id != project_id:
            return _error(400, "FS_0006", "Job Unit not found")
        data = {
            "project_id": job.project_id,
            "reference_id": job.reference_id,
            "job_id": job.id,
            "batch_id": job.batch_id,
            "status": job.status,
            "tag": job.tag,  # in v1 results, tag carries the workflow id (REFERENCE.md gotcha 8)
            "priority_weight": job.priority_weight,
            "result": f"https://playment-results.example/{job.id}.json" if job.status == "completed" else "",
        }
        if self.generation.routing_field == "work_flow_id":
            data["work_flow_id"] = job.tag
        return _ok(data)

    def _attachment(self, request: Request, arrived: float) -> Response:
        match = re.fullmatch(r"https://playment-results\.example/([^/]+)\.json", request.args.get("url", ""))
        if not match or match.group(1) not in self.jobs:
            return _error(400, "invalid_request_error", "unknown attachment")
        job_id = match.group(1)
        return Response(status=302, headers={"Location": f"{self.base_url}/signed/{job_id}.json?sig={_sig(job_id)}"})

    def _signed(self, request: Request, job_id: str) -> Response:
        job = self.jobs.get(job_id)
        if job is None or request.args.get("sig") != _sig(job_id) or request.headers.get(self.api_key_header):
            return Response("AccessDenied", status=403)  # like S3: and the API key must not travel here
        return Response(json.dumps(job.result), content_type="application/json")


class LocalPlayment(LocalVendor):
    """Playment on the local stack: jobs take `work_seconds`, callbacks to the local API."""

    name = "playment"
    title = "Playment"
    secret_logical_id = "PlaymentSecret"  # noqa: S105 (a resource name, not a secret)
    default_rate = 20.0
    demo_bulk = True  # the demo's Playment jobs go in one bulk POST
    project_id = "local-project"
    # which generation of Playment's docs the sandbox speaks and the stack's parameters follow
    options: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "generation": (DEFAULT_GENERATION, *(g for g in GENERATIONS if g != DEFAULT_GENERATION))
    }

    sample_keys: ClassVar[Mapping[str, str]] = {"callback_key": "sample-playment-callback-key"}
    sample_ids: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "order-1042-img-7": ("3f3e8675-ca69-46d7-aa34-96f90fcbb732",)
    }

    def __init__(self, setup: LocalSetup) -> None:
        super().__init__(setup)
        self.api_key, self.callback_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        faults = setup.faults
        self.generation = self.option("generation")
        self.sandbox = PlaymentSandbox(
            api_key=self.api_key,
            project_id=self.project_id,
            generation=self.generation,
            **self.creation_faults(),
        )
        self.sandbox.work_seconds = setup.work_seconds
        self.sandbox.failed_rate = faults.failed_rate

    def served(self, url: str) -> None:
        self.sandbox.base_url = url  # result URLs point here

    def parameters(self) -> dict[str, str]:
        return {
            "PlaymentProjectId": self.project_id,
            "PlaymentApiGeneration": self.generation,  # paths, routing field and header follow it
            "PlaymentBaseUrl": self.url,
            "PlaymentDefaultTag": "local-tag",
            "PlaymentMaxRequestsPerSecond": f"{self.rate_limit:g}",
        }

    def play_samples(self) -> None:
        self.callback_key = self.sample_keys["callback_key"]
        self.sandbox.held = {reference_id: ids[0] for reference_id, ids in self.sample_ids.items()}

    def secret(self, current: Mapping[str, str]) -> dict[str, str]:
        return {"api_key": self.api_key, "callback_key": self.callback_key}

    def connect(self, callback_url: str) -> None:
        self.sandbox.callback_url, self.sandbox.callback_key = callback_url, self.callback_key

    def silence(self) -> None:
        self.sandbox.send_callbacks = False  # the jobs still move on (GET, the batch listing)

    def demo_jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = [
            {
                "vendor": "playment",
                "reference_id": f"demo-img-{n:02d}",
                "data": {"image_url": f"https://images.example.com/demo/{n:02d}.jpg", "metadata": {"camera": "front"}},
                "tag": "bounding-boxes",
            }
            for n in range(1, 20)
        ]
        frames = [
            {"frame_id": f"frame{n:03d}", "src": f"https://video.example.com/demo/{n:03d}.jpg"} for n in range(1, 9)
        ]
        jobs.append(
            {
                "vendor": "playment",
                "reference_id": "demo-video-01",
                "data": {"video_data": {"frames": frames}},
                "tag": "tracking",
            }
        )
        return jobs

    def demo_batch(self) -> dict[str, Any] | None:
        return {"name": "demo-week-47", "description": "the demo's images and video", "batch_ref": "demo-batch"}

    def expected_status(self, reference_id: str) -> str:
        job = self.sandbox.by_reference.get(reference_id)
        return "FAILED" if job is not None and job.status == "failed" else "COMPLETED"

    def doubled(self) -> list[str]:
        counts = Counter(job.reference_id for job in self.sandbox.jobs.values())
        return [reference for reference, n in counts.items() if n > 1]

    def demo_complete(self) -> bool:
        return len(self.sandbox.jobs) == len(self.demo_jobs())

    def summary(self) -> str:
        statuses = Counter(c.status for c in self.sandbox.creations())
        return (
            f"{self.generation} API, {sum(statuses.values())} job creations for {len(self.sandbox.jobs)} jobs "
            f"({statuses.get(503, 0)} answered 503, {statuses.get(400, 0)} FS_0001 after a lost answer)"
        )


LOCAL_VENDOR = LocalPlayment


def main() -> None:
    """Serve a sandbox in its own process:
    python -m local.sandboxes.playment API_KEY PROJECT_ID [RATE [GENERATION]]."""
    import logging
    import sys

    from local.sandboxes.server import BackgroundServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on the caller's terminal
    api_key, project_id = sys.argv[1], sys.argv[2]
    box = PlaymentSandbox(
        api_key=api_key,
        project_id=project_id,
        rate_limit=float(sys.argv[3]) if len(sys.argv) > 3 else 20,
        generation=sys.argv[4] if len(sys.argv) > 4 else DEFAULT_GENERATION,
    )
    server = BackgroundServer(box)
    box.base_url = server.url
    server.start()
    print(server.url, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
    server.stop()


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def _sig(job_id: str) -> str:
    return hashlib.sha256(f"signed:{job_id}".encode()).hexdigest()[:16]


def _ok(data: Any) -> Response:
    return Response(json.dumps({"data": data, "success": True}), content_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    body = {"error": {"code": code, "message": message}, "success": False}
    return Response(json.dumps(body), status=status, content_type="application/json")


if __name__ == "__main__":
    main()
