"""The TEXTKING sandbox: TEXTKING's API as REFERENCE.md §2 documents it.

Bearer auth; projects (listed; prepared -> running), jobs (new), one document per job (a second upload
overwrites), callbacks registered per job and trigger state (answered 200 with extra_data echoed
as an object, gotchas 20-21), translation download with Content-Disposition, and 403 once a
project is no longer `prepared`. Once a project is started, its jobs move on by themselves
(`progress_seconds` apart): translation-pending -> translation-delivered -> completed, and each
state sends the callbacks registered for it: a form-encoded POST of project_id, job_id and
extra_data only. Faults: `fail_next` (a call pattern answered once with a status), and the
callback faults of CallbackSender.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from werkzeug import Request, Response

from local.sandboxes.base import LocalSetup, LocalVendor
from local.sandboxes.callbacks import CallbackSender

PROGRESSION = ("translation-pending", "translation-delivered", "completed")


@dataclass
class SandboxJob:
    id: str
    project_id: str
    body: dict[str, Any]
    state: str = "new"
    document: tuple[str, bytes, str] | None = None
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    translation: bytes = b"Hallo Welt"


class TextkingSandbox:
    def __init__(
        self, *, token: str, prefix: str = "/v1", progress_seconds: float | None = None, seed: int | None = None
    ) -> None:
        self.token = token
        self.prefix = prefix
        self.progress_seconds = progress_seconds  # None: states change only when a test says so
        self.projects: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, SandboxJob] = {}
        self.calls: list[str] = []  # "METHOD /path" without the prefix, in order
        self.fail_next: dict[str, int] = {}  # call pattern (regex) -> HTTP status to answer once
        self.callbacks = CallbackSender(seed=seed)
        self.send_callbacks = True  # False: jobs still move on, nobody is told
        self._lock = threading.RLock()
        self._timers: list[threading.Timer] = []

    # -- what tests and the demo use ---------------------------------------------------------------

    def set_state(self, job_id: str, state: str, *, notify: bool = False) -> None:
        with self._lock:
            job = self.jobs[job_id]
            job.state = state
            notify = notify and self.send_callbacks
            callbacks = [c for c in job.callbacks if c.get("trigger_state") == state] if notify else []
        for callback in callbacks:
            body = urlencode({"project_id": job.project_id, "job_id": job.id, "extra_data": callback["extra_data"]})
            self.callbacks.schedule(
                0.0, callback["url"], body.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
            )

    def only_job(self) -> SandboxJob:
        (job,) = self.jobs.values()
        return job

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self.callbacks.stop()

    # -- WSGI -----------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.handle(Request(environ))(environ, start_response)

    def handle(self, request: Request) -> Response:
        if request.path == "/_sandbox/jobs":  # what the sandbox holds, for a test in another process
            with self._lock:
                jobs = [{"id": j.id, "project_id": j.project_id, "state": j.state} for j in self.jobs.values()]
            return self._json(jobs)
        path = request.path.removeprefix(self.prefix)
        call = f"{request.method} {path}"
        with self._lock:
            self.calls.append(call)
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return Response("", status=401)
            for pattern, status in list(self.fail_next.items()):
                if re.fullmatch(pattern, call):
                    del self.fail_next[pattern]
                    return Response("unavailable", status=status)
            routes: list[tuple[str, str, Callable[..., Response]]] = [
                ("POST", r"/projects", self._create_project),
                ("GET", r"/projects", self._list_projects),
                ("GET", r"/project/([^/]+)", self._get_project),
                ("PUT", r"/project/([^/]+)", self._update_project),
                ("POST", r"/project/([^/]+)/jobs", self._create_job),
                ("GET", r"/project/([^/]+)/job/([^/]+)", self._get_job),
                ("POST", r"/project/([^/]+)/job/([^/]+)/document/([^/]+)", self._upload),
                ("GET", r"/project/([^/]+)/job/([^/]+)/document", self._source_document),
                ("GET", r"/project/([^/]+)/job/([^/]+)/callbacks", self._list_callbacks),
                ("POST", r"/project/([^/]+)/job/([^/]+)/callbacks", self._add_callback),
                ("GET", r"/project/([^/]+)/job/([^/]+)/translation", self._translation),
            ]
            for method, pattern, handler in routes:
                match = re.fullmatch(pattern, path)
                if match and method == request.method:
                    return handler(request, *match.groups())
        return Response("", status=404)

    @staticmethod
    def _json(body: Any, status: int = 200, **headers: str) -> Response:
        return Response(
            json.dumps(body), status=status, content_type="application/json; charset=utf-8", headers=headers
        )

    def _create_project(self, request: Request) -> Response:
        project = {"id": str(uuid.uuid4()), "name": request.get_json()["name"], "state": "prepared"}
        self.projects[project["id"]] = project
        return self._json(project, 201, **{"Content-Location": f"https://api.textking.com/v1/project/{project['id']}"})

    def _list_projects(self, request: Request) -> Response:
        """GET /projects?per_page=&page= (REFERENCE.md §2.2): {page, per_page, total, items}."""
        try:
            per_page, page = int(request.args.get("per_page", 100)), int(request.args.get("page", 1))
        except ValueError:
            return Response("", status=400)
        if not 1 <= per_page <= 100 or page < 1:
            return Response("", status=400)
        projects = list(self.projects.values())
        items = projects[(page - 1) * per_page : page * per_page]
        return self._json({"page": page, "per_page": per_page, "total": len(projects), "items": items})

    def _get_project(self, _: Request, project_id: str) -> Response:
        return self._json(self.projects[project_id]) if project_id in self.projects else Response("", status=404)

    def _update_project(self, request: Request, project_id: str) -> Response:
        project = self.projects.get(project_id)
        if project is None:
            return Response("", status=404)
        if project["state"] != "prepared":
            return Response("", status=403)
        project["state"] = request.get_json().get("state", project["state"])
        if project["state"] == "running":
            for job in self.jobs.values():
                if job.project_id == project_id:
                    self._start(job)
        return self._json(project)

    def _start(self, job: SandboxJob) -> None:
        job.state = PROGRESSION[0]
        if self.progress_seconds is None:
            return
        # The first state's callback, then each next state, progress_seconds apart.
        for step, state in enumerate(PROGRESSION):
            timer = threading.Timer(
                step * self.progress_seconds + 0.2, self.set_state, (job.id, state), {"notify": True}
            )
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    def _create_job(self, request: Request, project_id: str) -> Response:
        project = self.projects.get(project_id)
        if project is None:
            return Response("", status=404)
        if project["state"] != "prepared":
            return Response("", status=403)
        job = SandboxJob(id=str(uuid.uuid4()), project_id=project_id, body=request.get_json())
        self.jobs[job.id] = job
        return self._json({"id": job.id, "state": job.state, **job.body}, 201)

    def _job(self, project_id: str, job_id: str) -> SandboxJob | None:
        job = self.jobs.get(job_id)
        return job if job and job.project_id == project_id else None

    def _get_job(self, _: Request, project_id: str, job_id: str) -> Response:
        job = self._job(project_id, job_id)
        return self._json({"id": job.id, "state": job.state, **job.body}) if job else Response("", status=404)

    def _upload(self, request: Request, project_id: str, job_id: str, name: str) -> Response:
        job = self._job(project_id, job_id)
        if job is None:
            return Response("", status=404)
        job.document = (name, request.get_data(), request.headers.get("Content-Type", ""))
        return Response("", status=201)

    def _source_document(self, _: Request, project_id: str, job_id: str) -> Response:
        # REFERENCE.md §2.4: 200 with the document, 404 also when the job has none.
        job = self._job(project_id, job_id)
        if job is None or job.document is None:
            return Response("", status=404)
        name, content, content_type = job.document
        return Response(
            content,
            status=200,
            content_type=content_type or "application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    def _list_callbacks(self, _: Request, project_id: str, job_id: str) -> Response:
        job = self._job(project_id, job_id)
        if job is None:
            return Response("", status=404)
        return self._json({"page": 1, "per_page": 100, "total": len(job.callbacks), "items": job.callbacks})

    def _add_callback(self, request: Request, project_id: str, job_id: str) -> Response:
        job = self._job(project_id, job_id)
        if job is None:
            return Response("", status=404)
        callback = {"id": str(uuid.uuid4()), **request.get_json()}
        job.callbacks.append(callback)
        # TEXTKING answers 200 here (not 201) and echoes extra_data as an object (gotchas 20, 21).
        return self._json({**callback, "extra_data": {"custom_value": callback.get("extra_data")}}, 200)

    def _translation(self, _: Request, project_id: str, job_id: str) -> Response:
        job = self._job(project_id, job_id)
        if job is None or job.state not in {"translation-delivered", "completed"}:
            return Response("", status=404)
        stem = (job.document[0] if job.document else "translation").rsplit(".", 1)[0]
        filename = f"{stem}_{job.body.get('target_language', 'xx')}.txt"
        return Response(
            job.translation,
            content_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f"attachment; filename={filename}"},
        )


class LocalTextking(LocalVendor):
    """TEXTKING on the local stack: started projects move on `work_seconds / 2` apart and call
    back to whatever URLs Handoff registered on each job (so connect() has nothing to do)."""

    name = "textking"
    title = "TEXTKING"
    secret_logical_id = "TextkingSecret"  # noqa: S105 (a resource name, not a secret)
    prefix = "/v1"
    texts = ("Quarterly report: revenue grew.", "Release notes for version 2.", "Privacy policy, short form.")

    def __init__(self, setup: LocalSetup) -> None:
        super().__init__(setup)
        self.token = secrets.token_urlsafe(24)
        self.sandbox = TextkingSandbox(token=self.token, prefix=self.prefix, progress_seconds=setup.work_seconds / 2)

    @property
    def url(self) -> str:
        return f"{super().url}{self.prefix}"

    def parameters(self) -> dict[str, str]:
        return {"TextkingBaseUrl": self.url, "TextkingOrderingEnabled": "true"}  # the sandbox bills nobody

    def secret(self, current: Mapping[str, str]) -> dict[str, str]:
        return {**current, "access_token": self.token}  # the callback signing keys the stack made stay

    def connect(self, callback_url: str) -> None:
        """Nothing to do: Handoff registers its callback URL on each TEXTKING job."""

    def silence(self) -> None:
        self.sandbox.send_callbacks = False

    def demo_jobs(self) -> list[dict[str, Any]]:
        return [
            {
                "vendor": "textking",
                "reference_id": f"demo-doc-{n}",
                "name": f"Demo document {n}",
                "source_language": "en",
                "target_language": "de",
                "document": {"filename": f"doc{n}.txt", "text": text},
            }
            for n, text in enumerate(self.texts, start=1)
        ]

    def demo_complete(self) -> bool:
        return len(self.sandbox.jobs) == len(self.texts)

    def summary(self) -> str:
        return f"{len(self.sandbox.jobs)} jobs for {len(self.texts)} documents"


LOCAL_VENDOR = LocalTextking
