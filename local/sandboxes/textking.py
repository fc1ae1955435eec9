"""The TEXTKING sandbox: TEXTKING's API as its wiki and its PHP client document it, strictly.

Sources: the API wiki (github.com/TextKing/textking-api/wiki: POST-Projects, PUT-Project,
DELETE-Project, POST-Jobs, GET-Job, DELETE-Job, POST-Document, Using-callbacks…, POST-price-info)
and the PHP client's service description (TextKing/textking-api-php src/TextKing/Service/api.json),
summarised in REFERENCE.md §2. What it refuses, call by call (README "TEXTKING sandbox"):

    every call but POST /price-info    401 without the bearer token
    any {projectId}/{jobId}            400 when not a UUID, 404 when unknown
    POST /projects                     400 without a non-empty string name; 201 + Content-Location
    PUT /project                       403 unless prepared; state only running or canceled (else
                                       400); running needs an active job, each with a document (400);
                                       canceled cancels its jobs (each calls back `canceled`)
    GET .../job/{jobId}                the job with words, net_price, currency (its quote) once its
                                       document is uploaded
    DELETE /project, /job, /callback   204; 403 unless the project is prepared
    POST /jobs                         403 unless prepared; 400 for a missing or bad name, language,
                                       quality, topic (not a topic id), briefing or is_active
    POST .../document/{name}           403 unless prepared; 406 for a type TEXTKING does not take;
                                       400 for an empty body
    POST .../callbacks                 400 for a trigger_state not documented or a url not http(s)
    POST /price-info                   public; 400 for bad language codes, 406 for the type
    POST /oauth/token (www host)       the refresh grant (REFERENCE.md §2.1): a form only (else 400
                                       invalid_request); grant_type other than refresh_token 400
                                       unsupported_grant_type; client_id/client_secret not the
                                       app's 401 invalid_client; a refresh_token not the current
                                       one 400 invalid_grant; else 200 {access_token, token_type,
                                       expires_in[, refresh_token when `rotate_refresh_token`]}
                                       (OAuth 2.0's names and error bodies, RFC 6749 §5: TEXTKING
                                       documents neither)

TEXTKING documents statuses only, no error bodies: the sandbox answers each refusal with a one-line
text/plain reason (a client must not depend on it). A bad input is never a 5xx.

A started project's jobs move on by themselves (`progress_seconds` apart) to translation-pending
and translation-delivered, and stop there: completion is the customer's step in TEXTKING's web
app. The control routes do it as a customer would: POST /_sandbox/job/{id}/accept (completed) or
/revision (revision-requested, then delivered again). `auto_accept` accepts every delivery.
The project becomes `finished` once every active job is completed or canceled. Each state sends
the callbacks registered for it: a form-encoded POST of project_id, job_id and extra_data only.

`expire_token()` (or POST /_sandbox/oauth/expire) expires the current access token: every call with
it is a 401 until the refresh grant issues a new one.

Faults: `fail_next` (a call pattern answered once with a status, nothing done), `lose_answer` (a
call pattern done, then answered 504 once: the answer is lost), and CallbackSender's.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode, urlparse

from werkzeug import Request, Response

from local.sandboxes.base import LocalSetup, LocalVendor
from local.sandboxes.callbacks import CallbackSender

TRIGGER_STATES = ("translation-pending", "translation-delivered", "revision-requested", "completed", "canceled")
QUALITIES = ("translation", "translation-and-correction")  # POST-Jobs
PRICE_PER_WORD = {"translation": 0.09, "translation-and-correction": 0.12}  # EUR, the sandbox's own prices
# The topics TEXTKING's wiki shows (Using-the-service, POST-price-info): General, Construction and
# real estate, Technology / Engineering.
TOPICS = {
    "49353ab0-fdbf-4e1c-a063-cdf4aad98782": "General",
    "c68cd090-a5ae-4b5e-b514-f70046177844": "Construction, real estate",
    "8576549a-097f-45b3-8c59-fb3d6a03147d": "Technology / Engineering",
}
# TEXTKING's language list is served by GET /languages/source|target and not documented: the
# sandbox takes these ISO 639-1 codes (any other code is a 400, as a code TEXTKING lacks would be).
LANGUAGES = tuple(
    "ar bg cs da de el en es et fi fr he hr hu it ja ko lt lv nl no pl pt ro ru sk sl sr sv tr uk zh".split()  # noqa: SIM905
)
# POST-Document: docx, doc, xlsx, xls, pptx, idml, rtf, odt, html, txt and xml, by media type.
DOCUMENT_TYPES = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.adobe.indesign-idml-package",
        "application/rtf",
        "text/rtf",
        "application/vnd.oasis.opendocument.text",
        "text/html",
        "text/plain",
        "application/xml",
        "text/xml",
    }
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
API = "https://api.textking.com/v1"  # the host its Content-Location headers name


class Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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
        self,
        *,
        token: str,
        prefix: str = "/v1",
        progress_seconds: float | None = None,
        seed: int | None = None,
        auto_accept: bool = False,
        oauth_path: str = "/oauth/token",
        client_id: str = "sandbox-app",
        client_secret: str = "sandbox-app-secret",  # noqa: S107 (the sandbox app's, known to tests)
        refresh_token: str | None = None,
    ) -> None:
        self.token = token
        self.prefix = prefix
        # The OAuth app and its refresh grant (None: no refresh token was ever issued).
        self.oauth_path = oauth_path
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.rotate_refresh_token = False  # True: each refresh issues a new refresh token too
        self.token_requests: list[dict[str, str]] = []  # each token request's form, as received
        self.progress_seconds = progress_seconds  # None: states change only when a test says so
        self.auto_accept = auto_accept  # True: every delivery is accepted (completed) at once
        self.projects: dict[str, dict[str, Any]] = {}
        # reference_id -> (project id, job id) a project named for it ("... [<reference_id>]") and
        # its job get; such a job, once started, stays translation-pending (no progress, no
        # callback), as `make local SAM_LOCAL=1` holds the events/ samples' jobs
        self.held: dict[str, tuple[str, str]] = {}
        self.jobs: dict[str, SandboxJob] = {}
        self.deleted: list[str] = []  # "project <id>" / "job <id>", in order
        self.calls: list[str] = []  # "METHOD /path" without the prefix, in order
        self.fail_next: dict[str, int] = {}  # call pattern (regex) -> HTTP status to answer once, nothing done
        self.lose_answer: dict[str, int] = {}  # call pattern -> times it is done and answered 504
        self.callbacks = CallbackSender(seed=seed)
        self.send_callbacks = True  # False: jobs still move on, nobody is told
        self._lock = threading.RLock()
        self._timers: list[threading.Timer] = []

    # -- what tests and the demo use ---------------------------------------------------------------

    def set_state(self, job_id: str, state: str, *, notify: bool = False) -> None:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return  # deleted meanwhile
            job.state = state
            self._settle_project(job.project_id)
            notify = notify and self.send_callbacks
            callbacks = [c for c in job.callbacks if c.get("trigger_state") == state] if notify else []
        for callback in callbacks:
            body = urlencode({"project_id": job.project_id, "job_id": job.id, "extra_data": callback["extra_data"]})
            self.callbacks.schedule(
                0.0, callback["url"], body.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
            )

    def accept(self, job_id: str) -> bool:
        """The customer accepts a delivered translation (TEXTKING's web app): completed."""
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.state != "translation-delivered":
                return False
        self.set_state(job_id, "completed", notify=True)
        return True

    def request_revision(self, job_id: str) -> bool:
        """The customer asks for a revision: revision-requested, delivered again after a while."""
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.state != "translation-delivered":
                return False
        self.set_state(job_id, "revision-requested", notify=True)
        if self.progress_seconds is not None:
            self._later(self.progress_seconds, job_id, "translation-delivered")
        return True

    def expire_token(self) -> None:
        """The current access token expires: calls with it are 401 until a refresh."""
        with self._lock:
            self.token = f"expired-{secrets.token_urlsafe(8)}-unknown-to-anyone"

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
        if request.path.startswith("/_sandbox/"):
            return self._control(request)
        if request.path == self.oauth_path:
            with self._lock:
                return self._token(request)
        path = request.path.removeprefix(self.prefix)
        call = f"{request.method} {path}"
        with self._lock:
            self.calls.append(call)
            public = call == "POST /price-info"
            if not public and request.headers.get("Authorization") != f"Bearer {self.token}":
                return _text(401, "the access token is missing, expired or not valid")
            for pattern, status in list(self.fail_next.items()):
                if re.fullmatch(pattern, call):
                    del self.fail_next[pattern]
                    return _text(status, "unavailable")
            lost = next((p for p, n in self.lose_answer.items() if n > 0 and re.fullmatch(p, call)), None)
            try:
                response = self._route(request, path)
            except Refusal as refusal:
                return _text(refusal.status, refusal.reason)
            if lost is not None and response.status_code < 400:
                self.lose_answer[lost] -= 1
                return _text(504, "the answer was lost on its way")  # done, but the client never hears
            return response

    def _route(self, request: Request, path: str) -> Response:
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("POST", r"/projects", self._create_project),
            ("GET", r"/projects", self._list_projects),
            ("GET", r"/project/([^/]+)", self._get_project),
            ("PUT", r"/project/([^/]+)", self._update_project),
            ("DELETE", r"/project/([^/]+)", self._delete_project),
            ("GET", r"/project/([^/]+)/jobs", self._list_jobs),
            ("POST", r"/project/([^/]+)/jobs", self._create_job),
            ("GET", r"/project/([^/]+)/job/([^/]+)", self._get_job),
            ("DELETE", r"/project/([^/]+)/job/([^/]+)", self._delete_job),
            ("POST", r"/project/([^/]+)/job/([^/]+)/document/([^/]+)", self._upload),
            ("GET", r"/project/([^/]+)/job/([^/]+)/document", self._source_document),
            ("GET", r"/project/([^/]+)/job/([^/]+)/callbacks", self._list_callbacks),
            ("POST", r"/project/([^/]+)/job/([^/]+)/callbacks", self._add_callback),
            ("DELETE", r"/project/([^/]+)/job/([^/]+)/callback/([^/]+)", self._delete_callback),
            ("GET", r"/project/([^/]+)/job/([^/]+)/translation", self._translation),
            ("GET", r"/topics", self._topics),
            ("GET", r"/languages/(source|target)", self._languages),
            ("POST", r"/price-info", self._price_info),
        ]
        allowed = False
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match:
                allowed = True
                if method == request.method:
                    return handler(request, *match.groups())
        return _text(405 if allowed else 404, "no such route")

    def _control(self, request: Request) -> Response:
        """The sandbox's own routes (not TEXTKING's): what it holds, and a customer's actions."""
        if request.path == "/_sandbox/jobs":  # what the sandbox holds, for a test in another process
            with self._lock:
                jobs = [{"id": j.id, "project_id": j.project_id, "state": j.state} for j in self.jobs.values()]
            return _json(jobs)
        if request.path == "/_sandbox/oauth/expire" and request.method == "POST":
            self.expire_token()
            return _json({"expired": True})
        match = re.fullmatch(r"/_sandbox/job/([^/]+)/(accept|revision)", request.path)
        if match and request.method == "POST":
            job_id, action = match.groups()
            done = self.accept(job_id) if action == "accept" else self.request_revision(job_id)
            return _json({"done": done}) if done else _text(409, "the job is not translation-delivered")
        return _text(404, "no such route")

    # -- OAuth ---------------------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        """POST /oauth/token, the refresh grant only (the authorization-code grant needs a person
        at a browser: not the sandbox's). Refusals as RFC 6749 §5.2: 400/401 with {"error"}."""
        if request.method != "POST":
            return _text(405, "POST only")
        if request.mimetype != "application/x-www-form-urlencoded":
            return _oauth_error(400, "invalid_request", "the body must be a form")
        form = request.form
        self.token_requests.append({k: form.get(k, "") for k in form})
        if any(len(form.getlist(k)) > 1 for k in form):
            return _oauth_error(400, "invalid_request", "a field is given more than once")
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type", "the sandbox grants refresh_token only")
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return _oauth_error(401, "invalid_client", "client_id or client_secret is not the app's")
        if not form.get("refresh_token") or form.get("refresh_token") != self.refresh_token:
            return _oauth_error(400, "invalid_grant", "the refresh_token is not valid")
        self.token = f"tk-{secrets.token_urlsafe(18)}"
        body: dict[str, Any] = {"access_token": self.token, "token_type": "Bearer", "expires_in": 3600}
        if self.rotate_refresh_token:
            self.refresh_token = f"rt-{secrets.token_urlsafe(18)}"
            body["refresh_token"] = self.refresh_token
        return _json(body, 200, **{"Cache-Control": "no-store"})

    # -- projects ----------------------------------------------------------------------------------

    def _project(self, project_id: str) -> dict[str, Any]:
        if not UUID.fullmatch(project_id):
            raise Refusal(400, "the project id is not a valid UUID")
        project = self.projects.get(project_id)
        if project is None:
            raise Refusal(404, "no such project")
        return project

    def _prepared(self, project_id: str) -> dict[str, Any]:
        project = self._project(project_id)
        if project["state"] != "prepared":
            raise Refusal(403, f"the project is {project['state']}, not prepared")
        return project

    def _create_project(self, request: Request) -> Response:
        body = _object(request)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise Refusal(400, "name is required: a non-empty string")
        held = [ids[0] for reference_id, ids in self.held.items() if name.endswith(f"[{reference_id}]")]
        project: dict[str, Any] = {"id": (held or [str(uuid.uuid4())])[0], "name": name, "state": "prepared"}
        project["due_date"] = body.get("due_date")
        self.projects[project["id"]] = project
        location = f"{API}/project/{project['id']}"
        return _json(project, 201, **{"Location": location, "Content-Location": location})

    def _list_projects(self, request: Request) -> Response:
        """GET /projects?per_page=&page=&state= (REFERENCE.md §2.2): {page, per_page, total, items}."""
        per_page, page = _paging(request)
        state = request.args.get("state")
        if state is not None and state not in {"prepared", "running", "finished", "canceled"}:
            raise Refusal(400, "state is one of prepared, running, finished, canceled")
        projects = [p for p in self.projects.values() if state is None or p["state"] == state]
        return _page(projects, per_page, page)

    def _get_project(self, _: Request, project_id: str) -> Response:
        return _json(self._project(project_id))

    def _update_project(self, request: Request, project_id: str) -> Response:
        project = self._prepared(project_id)
        body = _object(request)
        if "name" in body and (not isinstance(body["name"], str) or not body["name"].strip()):
            raise Refusal(400, "name must be a non-empty string")
        state = body.get("state", "prepared")
        if state not in {"prepared", "running", "canceled"} or ("state" in body and state == "prepared"):
            raise Refusal(400, "state can change from prepared to running or canceled only")
        jobs = [j for j in self.jobs.values() if j.project_id == project_id and j.body.get("is_active", True)]
        if state == "running" and (not jobs or any(j.document is None for j in jobs)):
            raise Refusal(400, "a project starts with at least one active job, each with a document")
        if "name" in body:
            project["name"] = body["name"]
        project["state"] = state
        for job in jobs:
            if state == "running":
                self._start(job)
            elif state == "canceled":
                threading.Timer(0.0, self.set_state, (job.id, "canceled"), {"notify": True}).start()
        location = f"{API}/project/{project_id}"
        return _json(project, 200, **{"Content-Location": location})

    def _delete_project(self, _: Request, project_id: str) -> Response:
        self._prepared(project_id)
        del self.projects[project_id]
        for job_id in [j.id for j in self.jobs.values() if j.project_id == project_id]:
            del self.jobs[job_id]
        self.deleted.append(f"project {project_id}")
        return Response(status=204)

    def _settle_project(self, project_id: str) -> None:
        """A running project is finished once every active job is completed or canceled."""
        project = self.projects.get(project_id)
        jobs = [j for j in self.jobs.values() if j.project_id == project_id and j.body.get("is_active", True)]
        if project and project["state"] == "running" and all(j.state in {"completed", "canceled"} for j in jobs):
            project["state"] = "finished"

    def _start(self, job: SandboxJob) -> None:
        job.state = "translation-pending"
        if self.progress_seconds is None or job.id in {job_id for _, job_id in self.held.values()}:
            return
        # The first state's callback, then delivery progress_seconds later; then it waits on the customer.
        self._later(0.2, job.id, "translation-pending")
        self._later(self.progress_seconds + 0.2, job.id, "translation-delivered")

    def _later(self, delay: float, job_id: str, state: str) -> None:
        timer = threading.Timer(delay, self._arrive, (job_id, state))
        timer.daemon = True
        timer.start()
        self._timers.append(timer)

    def _arrive(self, job_id: str, state: str) -> None:
        self.set_state(job_id, state, notify=True)
        if state == "translation-delivered" and self.auto_accept:
            self.accept(job_id)

    # -- jobs --------------------------------------------------------------------------------------

    def _job(self, project_id: str, job_id: str) -> SandboxJob:
        self._project(project_id)
        if not UUID.fullmatch(job_id):
            raise Refusal(400, "the job id is not a valid UUID")
        job = self.jobs.get(job_id)
        if job is None or job.project_id != project_id:
            raise Refusal(404, "no such job")
        return job

    def _create_job(self, request: Request, project_id: str) -> Response:
        self._prepared(project_id)
        body = _object(request)
        _check_job(body)
        held = [job_id for held_project, job_id in self.held.values() if held_project == project_id]
        job = SandboxJob(id=(held or [str(uuid.uuid4())])[0], project_id=project_id, body=body)
        self.jobs[job.id] = job
        location = f"{API}/project/{project_id}/job/{job.id}"
        return _json(self._job_body(job), 201, **{"Location": location, "Content-Location": location})

    def _job_body(self, job: SandboxJob) -> dict[str, Any]:
        """GET-Job's fields (REFERENCE.md §2.3): words, net_price and currency are TEXTKING's count
        and price, filled in once the document is uploaded (0 before), at the per-word prices
        POST /price-info quotes for the job's quality."""
        words = len(job.document[1].decode("utf-8", "replace").split()) if job.document else 0
        price = round(words * PRICE_PER_WORD.get(str(job.body.get("quality")), 0.0), 2)
        quote = {"words": words, "net_price": price, "currency": "EUR"}
        return {"id": job.id, "state": job.state, "is_active": True, **job.body, **quote}

    def _list_jobs(self, request: Request, project_id: str) -> Response:
        self._project(project_id)
        per_page, page = _paging(request)
        jobs = [self._job_body(j) for j in self.jobs.values() if j.project_id == project_id]
        return _page(jobs, per_page, page)

    def _get_job(self, _: Request, project_id: str, job_id: str) -> Response:
        return _json(self._job_body(self._job(project_id, job_id)))

    def _delete_job(self, _: Request, project_id: str, job_id: str) -> Response:
        self._job(project_id, job_id)
        self._prepared(project_id)
        del self.jobs[job_id]
        self.deleted.append(f"job {job_id}")
        return Response(status=204)

    def _upload(self, request: Request, project_id: str, job_id: str, name: str) -> Response:
        job = self._job(project_id, job_id)
        self._prepared(project_id)
        content_type = request.headers.get("Content-Type", "")
        if content_type.split(";", 1)[0].strip().lower() not in DOCUMENT_TYPES:
            raise Refusal(406, "the posted content type is not supported")
        content = request.get_data()
        if not content or not name.strip():
            raise Refusal(400, "the document is empty or has no name")
        job.document = (name, content, content_type)
        location = f"{API}/project/{project_id}/job/{job_id}/document"
        return Response(status=201, headers={"Content-Location": location})

    def _source_document(self, _: Request, project_id: str, job_id: str) -> Response:
        # REFERENCE.md §2.4: 200 with the document, 404 also when the job has none.
        job = self._job(project_id, job_id)
        if job.document is None:
            raise Refusal(404, "the job has no source document")
        name, content, content_type = job.document
        return Response(
            content,
            status=200,
            content_type=content_type or "application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    def _translation(self, _: Request, project_id: str, job_id: str) -> Response:
        job = self._job(project_id, job_id)
        if job.state not in {"translation-delivered", "completed"}:
            raise Refusal(404, "the job has no translated document")
        stem = (job.document[0] if job.document else "translation").rsplit(".", 1)[0]
        filename = f"{stem}_{job.body.get('target_language', 'xx')}.txt"
        return Response(
            job.translation,
            content_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f"attachment; filename={filename}"},
        )

    # -- callbacks ---------------------------------------------------------------------------------

    def _list_callbacks(self, request: Request, project_id: str, job_id: str) -> Response:
        job = self._job(project_id, job_id)
        per_page, page = _paging(request)
        return _page(job.callbacks, per_page, page)

    def _add_callback(self, request: Request, project_id: str, job_id: str) -> Response:
        job = self._job(project_id, job_id)
        body = _object(request)
        url = body.get("url")
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise Refusal(400, "url must be an absolute http(s) URL")
        if body.get("trigger_state") not in TRIGGER_STATES:
            raise Refusal(400, f"trigger_state is one of {', '.join(TRIGGER_STATES)}")
        if not isinstance(body.get("extra_data", ""), str):
            raise Refusal(400, "extra_data must be a string")
        callback = {"id": str(uuid.uuid4()), "url": url, "trigger_state": body["trigger_state"]}
        callback["extra_data"] = body.get("extra_data", "")
        job.callbacks.append(callback)
        location = f"{API}/project/{project_id}/job/{job_id}/callback/{callback['id']}"
        # TEXTKING answers 200 here (not 201) and echoes extra_data as an object (gotchas 20, 21).
        echoed = {**callback, "extra_data": {"custom_value": callback["extra_data"]}}
        return _json(echoed, 200, **{"Location": location, "Content-Location": location})

    def _delete_callback(self, _: Request, project_id: str, job_id: str, callback_id: str) -> Response:
        job = self._job(project_id, job_id)
        kept = [c for c in job.callbacks if c["id"] != callback_id]
        if len(kept) == len(job.callbacks):
            raise Refusal(404, "no such callback")
        job.callbacks = kept
        return Response(status=204)

    # -- reference data and the public quote -----------------------------------------------------

    def _topics(self, request: Request) -> Response:
        per_page, page = _paging(request)
        return _page([{"id": i, "name": n} for i, n in TOPICS.items()], per_page, page)

    def _languages(self, request: Request, _: str) -> Response:
        per_page, page = _paging(request)
        return _page([{"code": c, "name": c} for c in LANGUAGES], per_page, page)

    def _price_info(self, request: Request) -> Response:
        """POST /price-info?source_language=&target_language=[&topic=]: public (no auth), the
        document as the body; 400 for bad language codes, 406 for an unsupported type."""
        source, target = request.args.get("source_language"), request.args.get("target_language")
        topic = request.args.get("topic")
        if source not in LANGUAGES or target not in LANGUAGES or source == target:
            raise Refusal(400, "invalid language codes")
        if topic is not None and topic not in TOPICS:
            raise Refusal(400, "topic is not a topic id")
        if request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower() not in DOCUMENT_TYPES:
            raise Refusal(406, "the posted content type is not supported")
        words = len(request.get_data().decode("utf-8", "replace").split())
        prices = [
            {"quality": q, "price_per_word": p, "total_price": round(words * p, 2), "currency": "EUR"}
            for q, p in PRICE_PER_WORD.items()
        ]
        body = {"source_language": source, "target_language": target, "topic": topic, "words": words}
        return _json({**body, "prices": prices})


def _check_job(body: dict[str, Any]) -> None:
    """POST-Jobs: name, source_language, target_language, quality required; topic a topic id;
    briefing a string; is_active a boolean."""
    if not isinstance(body.get("name"), str) or not body["name"].strip():
        raise Refusal(400, "name is required: a non-empty string")
    for name in ("source_language", "target_language"):
        if body.get(name) not in LANGUAGES:
            raise Refusal(400, f"{name} is not a language code TEXTKING takes")
    if body["source_language"] == body["target_language"]:
        raise Refusal(400, "source_language and target_language are the same")
    if body.get("quality") not in QUALITIES:
        raise Refusal(400, f"quality is one of {', '.join(QUALITIES)}")
    if "topic" in body and body["topic"] is not None and body["topic"] not in TOPICS:
        raise Refusal(400, "topic is not a topic id")
    if "briefing" in body and body["briefing"] is not None and not isinstance(body["briefing"], str):
        raise Refusal(400, "briefing must be a string")
    if "is_active" in body and not isinstance(body["is_active"], bool):
        raise Refusal(400, "is_active must be a boolean")


def _object(request: Request) -> dict[str, Any]:
    if request.mimetype not in {"application/json", ""}:
        raise Refusal(400, "the body must be JSON (Content-Type: application/json)")
    try:
        body = json.loads(request.get_data() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, "the body must be a JSON object")
    return body


def _paging(request: Request) -> tuple[int, int]:
    try:
        per_page, page = int(request.args.get("per_page", 100)), int(request.args.get("page", 1))
    except ValueError:
        raise Refusal(400, "per_page and page are integers") from None
    if not 1 <= per_page <= 100 or page < 1:
        raise Refusal(400, "per_page is 1-100, page at least 1")
    return per_page, page


def _page(items: list[Any], per_page: int, page: int) -> Response:
    chunk = items[(page - 1) * per_page : page * per_page]
    return _json({"page": page, "per_page": per_page, "total": len(items), "items": chunk})


def _json(body: Any, status: int = 200, **headers: str) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8", headers=headers)


def _oauth_error(status: int, error: str, description: str) -> Response:
    return _json({"error": error, "error_description": description}, status)


def _text(status: int, reason: str) -> Response:
    return Response(reason, status=status, content_type="text/plain; charset=utf-8")


class LocalTextking(LocalVendor):
    """TEXTKING on the local stack: started projects move on `work_seconds / 2` apart to
    translation-delivered and call back to whatever URLs Handoff registered on each job (so
    connect() has nothing to do). Delivered translations wait on the customer: in the demo,
    the first stays DELIVERED and the others are accepted through the control route, as a
    customer would in TEXTKING's web app."""

    name = "textking"
    title = "TEXTKING"
    secret_logical_id = "TextkingSecret"  # noqa: S105 (a resource name, not a secret)
    prefix = "/v1"
    texts = ("Quarterly report: revenue grew.", "Release notes for version 2.", "Privacy policy, short form.")
    left_delivered = ("demo-doc-1",)  # the demo leaves these waiting on the customer
    sample_keys: ClassVar[Mapping[str, str]] = {"signing_key": "sample-textking-signing-key"}
    sample_ids: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "doc-2026-11-001": ("bc141454-5949-401b-9c05-7591ee2f5624", "be2bdb76-afe4-4291-bb33-5f3e4019a05e")
    }

    def __init__(self, setup: LocalSetup) -> None:
        super().__init__(setup)
        self.token = secrets.token_urlsafe(24)
        # With a refresh grant, so that the stack's refresh on a 401 runs here too
        # (POST /_sandbox/oauth/expire expires the access token).
        self.sandbox = TextkingSandbox(
            token=self.token,
            prefix=self.prefix,
            progress_seconds=setup.work_seconds / 2,
            refresh_token=secrets.token_urlsafe(24),
        )
        self.accepted: set[str] = set()
        self.keys: dict[str, str] = {}  # the secret's keys fixed here (play_samples)

    @property
    def url(self) -> str:
        return f"{super().url}{self.prefix}"

    def parameters(self) -> dict[str, str]:
        assert self.server is not None
        return {
            "TextkingBaseUrl": self.url,
            "TextkingOrderingEnabled": "true",  # the sandbox bills nobody
            "TextkingOAuthTokenUrl": f"{self.server.url}{self.sandbox.oauth_path}",
        }

    def secret(self, current: Mapping[str, str]) -> dict[str, str]:
        # the callback signing keys the stack made stay
        return {
            **current,
            "access_token": self.token,
            "refresh_token": str(self.sandbox.refresh_token),
            "client_id": self.sandbox.client_id,
            "client_secret": self.sandbox.client_secret,
            **self.keys,
        }

    def play_samples(self) -> None:
        self.keys = dict(self.sample_keys)
        self.sandbox.held = {reference_id: (ids[0], ids[1]) for reference_id, ids in self.sample_ids.items()}

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

    def expected_status(self, reference_id: str) -> str:
        return "DELIVERED" if reference_id in self.left_delivered else "COMPLETED"

    def demo_step(self, jobs: Mapping[str, Mapping[str, Any]]) -> None:
        """The customer accepts each delivered translation but the ones left delivered: a POST
        to the sandbox's control route, as TEXTKING's web app would be used."""
        import requests

        assert self.server is not None
        for reference_id, job in jobs.items():
            vendor_job_id = job.get("vendor_job_id")
            if (
                job.get("vendor") != self.name
                or job.get("status") != "DELIVERED"
                or reference_id in self.left_delivered
                or reference_id in self.accepted
                or not vendor_job_id
            ):
                continue
            answer = requests.post(f"{self.server.url}/_sandbox/job/{vendor_job_id}/accept", timeout=5)
            if answer.status_code == 200:
                self.accepted.add(reference_id)

    def demo_complete(self) -> bool:
        return len(self.sandbox.jobs) == len(self.texts)

    def summary(self) -> str:
        delivered = len(self.texts) - len(self.accepted)
        return (
            f"{len(self.sandbox.jobs)} jobs for {len(self.texts)} documents; "
            f"{len(self.accepted)} accepted by the customer, {delivered} left delivered"
        )


LOCAL_VENDOR = LocalTextking
