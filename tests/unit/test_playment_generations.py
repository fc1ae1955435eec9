"""Playment as documented, one doc generation at a time (REFERENCE.md §1.1, §1.2, §1.6): the sandbox
refuses what Playment refuses, the client configured for a generation speaks it, and a deployment
configured for another generation (or another project) fails loudly instead of passing."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from functions.submit_job import app as submit_app
from handoff import settings, vendors
from handoff.vendors.base import Rejected
from handoff.vendors.playment import PlaymentClient, PlaymentSettings, PlaymentSubmitRequest, playment_settings
from local.sandboxes.playment import GENERATIONS, PlaymentSandbox
from local.sandboxes.server import BackgroundServer
from tests.conftest import PLAYMENT_API_KEY, PLAYMENT_GENERATIONS, LambdaContext, load_event, reset_function_caches
from tests.fakes.vendors import playment_client


@contextmanager
def served(generation: str) -> Iterator[tuple[PlaymentSandbox, str]]:
    """A sandbox speaking `generation` on 127.0.0.1, and its URL."""
    box = PlaymentSandbox(api_key=PLAYMENT_API_KEY, project_id="proj-1", generation=generation, rate_limit=1000)
    with BackgroundServer(box) as server:
        box.base_url = server.url
        yield box, server.url
    box.stop()


@pytest.fixture(params=PLAYMENT_GENERATIONS)
def vendor(request: pytest.FixtureRequest) -> Iterator[tuple[PlaymentSandbox, str]]:
    """A sandbox speaking each generation in turn, reached over plain HTTP."""
    with served(request.param) as box_and_url:
        yield box_and_url


def post(url: str, body: Any, key: str | None = PLAYMENT_API_KEY) -> requests.Response:
    return requests.post(url, json=body, headers={"x-api-key": key} if key else {}, timeout=5)


def job_body(box: PlaymentSandbox, **changes: Any) -> dict[str, Any]:
    body = {
        "reference_id": f"ref-{uuid.uuid4().hex[:8]}",
        "data": {"image_url": "https://images.example.com/1.jpg"},
        box.generation.routing_field: "bounding-boxes",
        "priority_weight": 5,
    }
    return {k: v for k, v in (body | changes).items() if v is not None}


def create_url(box: PlaymentSandbox, url: str, project: str = "proj-1") -> str:
    return url + box.generation.create_job.format(p=project)


# --- the sandbox: its own paths, and Playment's refusals ---------------------------------------------


def test_each_generation_answers_only_its_own_paths(vendor: tuple[PlaymentSandbox, str]) -> None:
    box, url = vendor
    own = box.generation
    for other in GENERATIONS.values():
        # when a job is created on each generation's path, as that generation's docs say
        answer = post(url + other.create_job.format(p="proj-1"), job_body(box))
        # then only the sandbox's own generation takes it; any other path is a plain 404
        if other.create_job == own.create_job:
            assert answer.status_code == 200, answer.text
            assert answer.json()["data"][own.routing_field] == "bounding-boxes"
        else:
            assert (answer.status_code, answer.headers["Content-Type"].split(";")[0]) == (404, "text/plain")
        batch = post(url + other.create_batch.format(p="proj-1"), {"name": f"b-{other.name}"})
        assert batch.status_code == (200 if other.create_batch == own.create_batch else 404)
    stats = requests.get(url + "/v0/projects/proj-1/stats", headers={"x-api-key": PLAYMENT_API_KEY}, timeout=5)
    assert stats.status_code == (200 if own.stats else 404)  # the SDK's project summary only


@pytest.mark.parametrize("generation", ["readme", "docs"])
@pytest.mark.parametrize(
    ("changes", "project", "code"),
    [
        ({}, "other-project", "resource_error"),
        ({"batch_id": "72c888f6-b365-4f27-ad57"}, "proj-1", "GE_0001"),  # not a UUID
        ({"batch_id": "72c888f6-b365-4f27-ad57-d7841da2de0c"}, "proj-1", "GE_0001"),  # no such batch
        ({"priority_weight": 10}, "proj-1", "FS_00012"),  # 1..10 on one page, 1..9 enforced
        ({"priority_weight": 0}, "proj-1", "FS_00012"),
        ({"priority_weight": "5"}, "proj-1", "FS_00012"),
        ({"priority_weight": True}, "proj-1", "FS_00012"),
        ({"routing": None}, "proj-1", "FS_0005"),  # no routing field at all
        ({"wrong_routing": True}, "proj-1", "FS_0005"),  # the other generation's field
        ({"reference_id": None}, "proj-1", "FS_0002"),
        ({"data": None}, "proj-1", "FS_0004"),
    ],
)
def test_the_sandbox_refuses_what_playment_refuses_with_400_and_the_documented_body(
    generation: str, changes: dict[str, Any], project: str, code: str
) -> None:
    with served(generation) as (box, url):
        body = job_body(box, **{k: v for k, v in changes.items() if k not in {"routing", "wrong_routing"}})
        if "routing" in changes or "wrong_routing" in changes:
            value = body.pop(box.generation.routing_field)
            if "wrong_routing" in changes:
                body["work_flow_id" if box.generation.routing_field == "tag" else "tag"] = value

        answer = post(create_url(box, url, project), body)

        assert answer.status_code == 400
        assert answer.json() == {
            "error": {"code": code, "message": answer.json()["error"]["message"]},
            "success": False,
        }
        assert answer.json()["error"]["message"]
        assert box.jobs == {}


def test_a_repeated_reference_id_is_fs_0001_and_a_wrong_or_missing_key_is_401_without_json(
    vendor: tuple[PlaymentSandbox, str],
) -> None:
    box, url = vendor
    body = job_body(box)
    assert post(create_url(box, url), body).status_code == 200
    again = post(create_url(box, url), body)
    assert (again.status_code, again.json()["error"]["code"]) == (400, "FS_0001")
    for key in ("not-the-key", None):
        refused = post(create_url(box, url), job_body(box), key=key)
        assert refused.status_code == 401
        with pytest.raises(requests.JSONDecodeError):
            refused.json()  # as the SDK expects: no JSON body
    assert len(box.jobs) == 1


# --- the client on each generation -------------------------------------------------------------------


def client_for(url: str, generation: str, **env: str) -> PlaymentClient:
    values = {
        "PLAYMENT_SECRET_NAME": "s",
        "PLAYMENT_BASE_URL": url,
        "PLAYMENT_PROJECT_ID": "proj-1",
        "PLAYMENT_DEFAULT_TAG": "bounding-boxes",
        "PLAYMENT_API_GENERATION": generation,
        **env,
    }
    configured = settings.env_settings(PlaymentSettings, values)
    assert isinstance(configured, PlaymentSettings)
    return PlaymentClient(configured, lambda: PLAYMENT_API_KEY, playment_client().timeouts)


def submit_request(reference_id: str, **changes: Any) -> PlaymentSubmitRequest:
    body = copy.deepcopy(load_event("submit_job/direct_invoke_playment.json")) | {"reference_id": reference_id}
    return PlaymentSubmitRequest.model_validate(body | changes)


def test_batches_are_created_listed_and_counted_on_each_generations_own_paths(
    vendor: tuple[PlaymentSandbox, str],
) -> None:
    box, url = vendor
    client = client_for(url, box.generation.name)

    # when a batch is created and a job submitted into it
    batch_id = client.create_batch("november", "night drives")
    accepted = client.create_job(submit_request("in-batch", batch_id=batch_id))

    # then the batch is a UUID, holds the job, and the project lists it beside its default batch
    assert uuid.UUID(batch_id)
    assert box.jobs[accepted.vendor_job_id].batch_id == batch_id
    details = client.project_details()
    rows = {row["name"]: row for row in details["batches"]}
    assert rows["november"]["id"] == batch_id
    assert (rows["november"]["total_jobs"], rows["november"]["total_frames"], rows["november"]["is_default"]) == (
        1,
        1,
        False,
    )
    assert rows["Default batch"]["is_default"] is True
    assert client.default_batch_id("proj-1") == rows["Default batch"]["id"]
    # and a second batch of that name is refused, permanently, with Playment's code
    with pytest.raises(Rejected) as refused:
        client.create_batch("november")
    assert refused.value.code == "BATCH_CREATION"
    # and the job is found through the batch listing (what a lost answer's FS_0001 needs)
    found = client.find(submit_request("in-batch", batch_id=batch_id), None)  # type: ignore[arg-type]
    assert found is not None
    assert found.vendor_job_id == accepted.vendor_job_id
    # and looked up on the generation's own GET job path
    assert client.get_job(accepted.vendor_job_id).reference_id == "in-batch"
    if box.generation.stats:
        stats = requests.get(
            url + box.generation.stats.format(p="proj-1"), headers={"x-api-key": PLAYMENT_API_KEY}, timeout=5
        ).json()["data"]
        assert (stats["total_batches"], stats["total_jobs"]) == (2, 1)


@pytest.mark.parametrize(
    ("client_generation", "env", "code"),
    [
        ("readme", {}, "http_404"),  # v0 paths against a v1 Playment
        ("sdk", {}, "http_404"),
        ("docs", {"PLAYMENT_ROUTING_FIELD": "tag"}, "FS_0005"),  # v1 paths, but the v0 routing field
        ("docs", {"PLAYMENT_PROJECT_ID": "proj-2"}, "resource_error"),  # another project
        ("docs", {"PLAYMENT_CREATE_JOB_PATH": "/v1/project/{project_id}/jobs"}, "http_404"),  # singular
    ],
)
def test_a_client_configured_for_another_generation_or_project_is_refused_permanently_saying_why(
    client_generation: str, env: dict[str, str], code: str
) -> None:
    with served("docs") as (box, url):
        client = client_for(url, client_generation, **env)

        with pytest.raises(Rejected) as refused:
            client.create_job(submit_request("mismatched"))

        assert refused.value.code == code
        assert not refused.value.retryable
        hint = {"http_404": "PLAYMENT_API_GENERATION", "FS_0005": "PLAYMENT_ROUTING_FIELD"}.get(
            code, "PLAYMENT_PROJECT_ID"
        )
        assert hint in refused.value.message
        assert box.jobs == {}


# --- a deployment configured for the wrong generation ------------------------------------------------


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("playment_generation", ["docs"])
def test_submit_job_configured_for_readme_against_a_docs_playment_fails_the_job_with_the_vendors_answer(
    sandbox: PlaymentSandbox, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given Playment speaks the v1 docs, but the stack was deployed for the readme generation
    monkeypatch.setenv("PLAYMENT_API_GENERATION", "readme")
    reset_function_caches()
    request = copy.deepcopy(load_event("submit_job/direct_invoke_playment.json"))

    # when a job is submitted
    answer = submit_app.lambda_handler(request, context)

    # then it is refused at once, FAILED with a code and message that say what is wrong (not QUEUED forever)
    assert answer["error"]["code"] == "vendor_rejected"
    job = answer["job"]
    assert job["status"] == "FAILED"
    assert job["last_error"]["code"] == "http_404"
    assert "PLAYMENT_API_GENERATION" in job["last_error"]["message"]
    assert sandbox.jobs == {}


def test_an_unknown_generation_stops_the_function_at_cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYMENT_API_GENERATION", "v2")
    reset_function_caches()
    try:
        with pytest.raises(settings.ConfigurationError, match="PLAYMENT_API_GENERATION"):
            vendors.check_configured()  # what every function runs at import
    finally:
        monkeypatch.delenv("PLAYMENT_API_GENERATION")
        reset_function_caches()


@pytest.mark.parametrize("generation", PLAYMENT_GENERATIONS)
def test_the_generation_sets_coherent_defaults_and_each_path_variable_overrides(
    monkeypatch: pytest.MonkeyPatch, generation: str
) -> None:
    monkeypatch.setenv("PLAYMENT_API_GENERATION", generation)
    monkeypatch.setenv("PLAYMENT_GET_JOB_PATH", "/v9/projects/{project_id}/jobs/{job_id}")
    reset_function_caches()
    try:
        configured = playment_settings()
        served_by = GENERATIONS[generation]  # the sandbox's reading of the same docs
        assert configured.create_job_path.replace("{project_id}", "{p}") == served_by.create_job
        assert configured.create_batch_path.replace("{project_id}", "{p}") == served_by.create_batch
        assert configured.routing_field == served_by.routing_field
        assert configured.api_key_header == served_by.api_key_header
        assert configured.get_job_path == "/v9/projects/{project_id}/jobs/{job_id}"  # overridden
    finally:
        reset_function_caches()
