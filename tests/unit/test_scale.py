"""Scale AI, the third vendor, as a plug-in (handoff/vendors/scale, functions/scale_callback):
submitted to the Scale sandbox (local/sandboxes/scale.py) over real HTTP, followed by its
callbacks, the reconciler, replay and the callback retry path. Scale's variables and secret are
set here: nothing outside Scale's own files knows it exists."""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from pytest_httpserver import HTTPServer

from functions.callback_retry import app as retry_app
from functions.reconciler import app as reconciler_app
from functions.scale_callback import app as callback_app
from functions.submission_worker import app as worker_app
from functions.submit_job import app as submit_app
from handoff import vendors
from handoff.callbacks import Verdict
from handoff.models import JobStatus
from handoff.vendors.base import Rejected
from handoff.vendors.scale import REFERENCE_KEY, ScaleClient, status_update
from local.context import LocalContext
from local.sandboxes.scale import RedeliveringSender, ScaleSandbox
from local.sandboxes.server import BackgroundServer
from local.sqs_poller import SqsPoller
from ops import replay
from tests.conftest import LambdaContext, archived, load_event, queue_depth, reset_function_caches, table_items

SCALE_API_KEY = "live_0123456789abcdef0123456789"
# What events/scale_callback/*.json carry as scale-callback-auth, and the key it replaces.
CALLBACK_KEY = "sample-scale-callback-auth-key"
PREVIOUS_KEY = "previous-scale-callback-auth-key"
CALLBACK_URL = "https://handoff.example.com/v1/callbacks/scale"
REF = "order-1042-scale-7"  # the samples' reference_id and Scale task id
TASK_ID = "6567a1f2c0ffee0012345678"
SAMPLE_RESPONSE = json.loads(load_event("scale_callback/api_completed.json")["body"])["response"]
RETRIES = "handoff-callback-retries"


@pytest.fixture
def scale_stack(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Scale's part of a stack: its secret and its variables (the template's SCALE_*)."""
    boto3.client("secretsmanager").create_secret(
        Name="handoff/scale",
        SecretString=json.dumps(
            {"api_key": SCALE_API_KEY, "callback_auth_key": CALLBACK_KEY, "previous_callback_auth_key": PREVIOUS_KEY}
        ),
    )
    monkeypatch.setenv("SCALE_SECRET_NAME", "handoff/scale")
    monkeypatch.setenv("SCALE_PROJECT", "default-project")
    monkeypatch.setenv("SCALE_CALLBACK_URL", CALLBACK_URL)
    monkeypatch.setenv("VENDOR_MAX_REQUESTS_PER_SECOND", os.environ["VENDOR_MAX_REQUESTS_PER_SECOND"] + ",scale=1000")
    reset_function_caches()
    yield
    reset_function_caches()


@pytest.fixture
def sandbox(scale_stack: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScaleSandbox]:
    """The Scale sandbox on 127.0.0.1; its tasks stay pending until a test finishes them, and it
    calls nobody back (a test hands its callbacks to the function). Stalled answers outlast the
    client's read timeout, shortened to 1 s (long enough for a loaded machine's ordinary answers)."""
    box = ScaleSandbox(api_key=SCALE_API_KEY, rate_limit=1000, stall_seconds=2.0, seed=14)
    box.work_seconds = 3600
    box.send_callbacks = False
    with BackgroundServer(box) as server:
        monkeypatch.setenv("SCALE_BASE_URL", f"{server.url}/v1")
        monkeypatch.setenv("VENDOR_READ_TIMEOUT_SECONDS", "1")
        reset_function_caches()
        yield box
    box.stop()


@pytest.fixture
def submitted(sandbox: ScaleSandbox, context: LambdaContext) -> ScaleSandbox:
    """Given: the sample Scale job, accepted by Scale as the samples' task."""
    sandbox.next_task_ids.append(TASK_ID)
    status, body = submit(context, scale_request())
    assert (status, body["status"], body["vendor_job_id"]) == (201, "SUBMITTED", TASK_ID)
    return sandbox


def scale_request(reference_id: str = REF, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(load_event("submit_job/direct_invoke_scale.json"))
    body["reference_id"] = reference_id
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def submit(context: LambdaContext, body: Any) -> tuple[int, dict[str, Any]]:
    """POST /jobs as API Gateway delivers it."""
    event = load_event("submit_job/api_post_scale_image.json")
    event["body"] = json.dumps(body)
    response = submit_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def callback(
    context: LambdaContext,
    body: Any = None,
    *,
    sample: str = "api_completed.json",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST /callbacks/scale as Scale sends it (the sample, or `body`), through API Gateway."""
    event = load_event(f"scale_callback/{sample}")
    if body is not None:
        event["body"] = body.decode() if isinstance(body, bytes) else json.dumps(body)
    if headers is not None:
        event["headers"] = {"Content-Type": "application/json", **headers}
        event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    response = callback_app.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def sample_body(**task_changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(load_event("scale_callback/api_completed.json")["body"])
    body["task"].update(task_changes)
    return body


def job(reference_id: str = REF) -> dict[str, Any]:
    return next(i for i in table_items() if i["reference_id"] == reference_id)


def workers_until(done: Callable[[], bool], timeout: float = 30.0) -> None:
    """SubmissionWorker, as Lambda's SQS event source runs it, until `done`."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="handoff-submissions")["QueueUrl"]
    deadline = time.monotonic() + timeout
    with SqsPoller(sqs, url, worker_app.lambda_handler, wait_seconds=0):
        while not done():
            assert time.monotonic() < deadline, "the worker did not get there in time"
            time.sleep(0.05)


def age(reference_id: str, hours: float = 2) -> None:
    """Make a job look quiet: its last write `hours` ago."""
    then = (datetime.now(UTC) - timedelta(hours=hours)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    boto3.client("dynamodb").update_item(
        TableName="handoff-jobs",
        Key={"reference_id": {"S": reference_id}},
        UpdateExpression="SET updated_at = :t",
        ExpressionAttributeValues={":t": {"S": then}},
    )


def scale_client() -> ScaleClient:
    client: ScaleClient = vendors.client_for("scale")  # type: ignore[assignment]
    return client


# --- submitting --------------------------------------------------------------------------------------


def test_scale_is_a_registered_vendor() -> None:
    assert "scale" in vendors.VENDOR_NAMES
    assert vendors.vendor("scale").request_model.model_fields["vendor"].annotation.__args__ == ("scale",)


def test_a_job_is_created_at_scale_with_its_reference_as_unique_id_and_our_callback_url(
    sandbox: ScaleSandbox, context: LambdaContext
) -> None:
    # when the sample request is submitted
    status, body = submit(context, scale_request())

    # then it is SUBMITTED with the id of the task Scale created
    (task,) = sandbox.tasks.values()
    assert (status, body["status"], body["vendor_job_id"]) == (201, "SUBMITTED", task.id)
    assert job()["vendor_refs"] == {"project": "handoff-images", "task_type": "imageannotation"}
    # and Scale was sent the task as given, with Handoff's unique_id, callback_url and reference
    (sent,) = sandbox.bodies
    assert sent == {
        "project": "handoff-images",
        "unique_id": REF,
        "callback_url": CALLBACK_URL,
        "instruction": "Draw a box around each car.",
        "attachment": "https://images.example.com/orders/1042/7.jpg",
        "attachment_type": "image",
        "geometries": {"box": {"objects_to_annotate": ["car"], "min_height": 10, "min_width": 10}},
        "metadata": {"camera": "front", REFERENCE_KEY: REF},
    }
    assert [(r.method, r.path) for r in sandbox.received] == [("POST", "/v1/task/imageannotation")]


def test_the_stacks_project_and_task_type_serve_a_request_that_names_none(
    sandbox: ScaleSandbox, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCALE_TASK_TYPE", "videoannotation")
    reset_function_caches()

    status, _ = submit(context, scale_request(project=None, task_type=None))

    (task,) = sandbox.tasks.values()
    assert (status, task.project, task.type) == (201, "default-project", "videoannotation")


def test_without_a_project_anywhere_the_request_is_refused_before_anything_is_written(
    sandbox: ScaleSandbox, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SCALE_PROJECT")
    reset_function_caches()

    status, body = submit(context, scale_request(project=None))

    assert (status, body["error"]["code"]) == (422, "invalid_request")
    assert [d["field"] for d in body["error"]["details"]] == ["project"]
    assert table_items() == []
    assert sandbox.received == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"metadata": {"notes": "x" * 9_990}}, "metadata"),  # over 10 KB with the reference Handoff adds
        ({"metadata": {REFERENCE_KEY: "someone-else"}}, "metadata"),
        ({"params": {"unique_id": "mine"}}, "params"),
        ({"params": {"callback_url": "https://elsewhere.example"}}, "params"),
        ({"task_type": "image/annotation"}, "task_type"),  # a path segment of Scale's URL
        ({"attachment": "file:///etc/passwd"}, "attachment"),
        ({"unique_id": REF}, "unique_id"),
    ],
)
def test_what_scale_would_refuse_or_handoff_sets_itself_is_422_at_the_edge(
    sandbox: ScaleSandbox, context: LambdaContext, changes: dict[str, Any], field: str
) -> None:
    status, body = submit(context, scale_request(**changes))

    assert (status, body["error"]["code"]) == (422, "invalid_request")
    assert field in {d["field"] for d in body["error"]["details"]}
    assert table_items() == []
    assert sandbox.received == []


def test_metadata_of_exactly_scales_limit_is_taken(sandbox: ScaleSandbox, context: LambdaContext) -> None:
    with_reference = len(json.dumps({"notes": "", REFERENCE_KEY: REF}, separators=(",", ":")))
    status, _ = submit(context, scale_request(metadata={"notes": "x" * (10_000 - with_reference)}))

    assert status == 201
    (task,) = sandbox.tasks.values()
    assert len(json.dumps(task.metadata, separators=(",", ":"))) == 10_000


@pytest.mark.parametrize(("fault", "first_answer"), [("lose_next", 200), ("created_then_503_next", 503)])
def test_a_task_whose_answer_was_lost_is_found_by_unique_id_never_created_twice(
    sandbox: ScaleSandbox, context: LambdaContext, fault: str, first_answer: int
) -> None:
    # given Scale creates the task but its answer never arrives (a stall past the timeout, or a 503)
    setattr(sandbox, fault, 1)
    status, body = submit(context, scale_request())
    assert (status, body["status"]) == (202, "QUEUED")
    assert len(sandbox.tasks) == 1

    # when the worker tries again: Scale refuses the repeated unique_id (409)
    workers_until(lambda: job()["status"] != "QUEUED")

    # then the task is looked up by unique_id and recorded: one task at Scale, the job SUBMITTED
    (task,) = sandbox.tasks.values()
    stored = job()
    assert (stored["status"], stored["vendor_job_id"], stored["last_error"]) == ("SUBMITTED", task.id, None)
    assert [h["status"] for h in stored["history"]] == ["QUEUED", "SUBMITTED"]
    # every creation after the first met the 409 (on a loaded machine a retry may itself time out)
    first, *retries = [r.status for r in sandbox.creations()]
    assert (first, set(retries)) == (first_answer, {409})
    assert stored["attempts"] >= 2
    assert ("GET", "/v1/tasks", 200) in {(r.method, r.path, r.status) for r in sandbox.received}
    assert queue_depth() == 0


@pytest.mark.parametrize(
    "theirs",
    [
        {},
        # another Handoff stack on the same account marks its tasks as we do, but calls back elsewhere
        {"metadata": {"handoff_reference_id": REF}, "callback_url": "https://other-stack.example/callbacks/scale"},
        {"metadata": {"handoff_reference_id": REF}},
    ],
    ids=["unmarked", "another-stack", "marked-without-callback"],
)
def test_a_task_scale_holds_for_someone_else_under_the_same_unique_id_is_never_taken_for_ours(
    sandbox: ScaleSandbox, context: LambdaContext, theirs: dict[str, Any]
) -> None:
    # given another system of the same Scale account created a task with our reference as unique_id
    created = requests.post(
        f"{os.environ['SCALE_BASE_URL']}/task/imageannotation",
        json={"project": "other", "attachment": "https://x.example/a.jpg", "unique_id": REF, **theirs},
        auth=(SCALE_API_KEY, ""),
        timeout=5,
    )
    assert created.status_code == 200

    # when our job is submitted under that reference
    status, body = submit(context, scale_request())

    # then it FAILS with the reason, and the other system's task is not ours
    assert (status, body["error"]["code"]) == (424, "vendor_rejected")
    assert (job()["status"], job()["vendor_job_id"]) == ("FAILED", None)
    assert job()["last_error"]["code"] == "unique_id_in_use"
    assert len(sandbox.tasks) == 1


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (400, "invalid_request", "FAILED"),
        (401, "unauthorized", "FAILED"),
        (402, "not_enabled", "FAILED"),
        (404, "not_found", "FAILED"),
        (408, "http_408", "QUEUED"),
        (429, "too_many_requests", "QUEUED"),
        (500, "internal_error", "QUEUED"),
        (503, "service_unavailable", "QUEUED"),
        (504, "timeout", "QUEUED"),
    ],
)
def test_scales_errors_are_refusals_or_worth_another_try(
    scale_stack: None,
    httpserver: HTTPServer,
    context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    code: str,
    outcome: str,
) -> None:
    monkeypatch.setenv("SCALE_BASE_URL", httpserver.url_for("/v1").rstrip("/"))
    reset_function_caches()
    httpserver.expect_request("/v1/task/imageannotation", method="POST").respond_with_json(
        {"status_code": status, "error": f"Scale says {status}"}, status=status
    )

    submit(context, scale_request())

    stored = job()
    assert (stored["status"], stored["last_error"]["code"]) == (outcome, code)
    assert stored["last_error"]["retryable"] is (outcome == "QUEUED")
    assert f"Scale says {status}" in stored["last_error"]["message"]


def test_the_api_key_goes_as_basic_auth_and_a_wrong_one_fails_the_job(
    sandbox: ScaleSandbox, context: LambdaContext
) -> None:
    sandbox.api_key = "another-key"

    status, body = submit(context, scale_request())

    assert (status, body["job"]["status"], body["job"]["last_error"]["code"]) == (424, "FAILED", "unauthorized")
    assert sandbox.tasks == {}


# --- callbacks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending", JobStatus.SUBMITTED),
        ("completed", JobStatus.COMPLETED),
        ("canceled", JobStatus.CANCELED),
        ("deleted", JobStatus.CANCELED),
        ("error", JobStatus.FAILED),
        ("COMPLETED", JobStatus.COMPLETED),
    ],
)
def test_scales_statuses_on_the_job_machine(status: str, expected: JobStatus) -> None:
    update = status_update(status)
    assert update is not None
    assert update.status is expected
    assert status_update("in_review") is None


# api_completed_custom_domain.json: the same callback through a custom domain's base-path mapping
@pytest.mark.usefixtures("submitted")
@pytest.mark.parametrize("sample", ["api_completed.json", "api_completed_custom_domain.json"])
def test_a_completed_callback_completes_the_job_with_scales_response(context: LambdaContext, sample: str) -> None:
    status, body = callback(context, sample=sample)

    assert (status, body) == (200, {"applied": 1, "duplicate": 0, "unknown": 0, "invalid": 0, "deferred": 0})
    stored = job()
    assert (stored["status"], stored["result"], stored["result_ref"]) == ("COMPLETED", SAMPLE_RESPONSE, None)
    assert stored["history"][-1]["source"] == "scale-callback"
    (raw,) = archived("raw/scale/").values()
    assert raw == load_event("scale_callback/api_completed.json")["body"].encode()


@pytest.mark.usefixtures("submitted")
def test_a_response_too_large_for_the_item_is_kept_in_s3(context: LambdaContext) -> None:
    big = {"annotations": [{"label": "car", "points": list(range(20_000))}]}
    body = sample_body(response=big)
    body["response"] = big

    status, answer = callback(context, body)

    assert (status, answer["applied"]) == (200, 1)
    stored = job()
    assert (stored["status"], stored["result"]) == ("COMPLETED", None)
    key = stored["result_ref"].removeprefix(f"s3://{os.environ['RESULTS_BUCKET_NAME']}/")
    assert key.startswith(f"results/scale/{REF}/")
    assert json.loads(archived(key)[key]) == big


@pytest.mark.usefixtures("submitted")
def test_an_error_callback_fails_the_job_with_scales_message(context: LambdaContext) -> None:
    status, body = callback(context, sample="api_error.json")

    assert (status, body["applied"]) == (200, 1)
    stored = job()
    assert stored["status"] == "FAILED"
    assert stored["last_error"] == {
        "code": "task_error",
        "message": "The attachment could not be downloaded: HTTP 403 from images.example.com",
        "retryable": False,
        "details": [],
    }


@pytest.mark.usefixtures("submitted")
def test_a_canceled_task_cancels_the_job(context: LambdaContext) -> None:
    status, body = callback(context, sample_body(status="canceled"))

    assert (status, body["applied"]) == (200, 1)
    assert (job()["status"], job()["result"]) == ("CANCELED", None)


@pytest.mark.usefixtures("submitted")
@pytest.mark.parametrize(
    "headers",
    [
        {"scale-callback-auth": "not-the-key"},
        {"scale-callback-auth": CALLBACK_KEY + " "},
        {"scale-callback-auth": ""},
        {},
        {"x-playment-key": CALLBACK_KEY},
    ],
)
def test_a_callback_without_the_auth_key_is_401_and_nothing_is_kept(
    context: LambdaContext, headers: dict[str, str]
) -> None:
    status, body = callback(context, headers=headers)

    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert job()["status"] == "SUBMITTED"
    assert archived("raw/scale/") == {}


@pytest.mark.usefixtures("submitted")
def test_the_previous_key_still_authenticates_during_a_rotation(context: LambdaContext) -> None:
    status, body = callback(context, headers={"Scale-Callback-Auth": PREVIOUS_KEY})

    assert (status, body["applied"]) == (200, 1)
    assert job()["status"] == "COMPLETED"


@pytest.mark.usefixtures("submitted")
def test_scales_retried_callbacks_are_duplicates_answered_200_that_write_nothing(context: LambdaContext) -> None:
    callback(context)
    before = job()

    answers = [callback(context) for _ in range(3)]

    assert answers == [(200, {"applied": 0, "duplicate": 1, "unknown": 0, "invalid": 0, "deferred": 0})] * 3
    assert job() == before
    assert [h["status"] for h in job()["history"]] == ["QUEUED", "SUBMITTED", "COMPLETED"]
    assert len(archived("raw/scale/")) == 4  # each one kept as received


@pytest.mark.usefixtures("submitted")
def test_a_callback_for_another_task_is_invalid_and_changes_nothing(context: LambdaContext) -> None:
    body = sample_body(task_id="ffffffffffffffffffffffff")
    body["task_id"] = "ffffffffffffffffffffffff"

    status, answer = callback(context, body)

    assert (status, answer["invalid"], answer["applied"]) == (200, 1, 0)
    assert (job()["status"], job()["vendor_job_id"]) == ("SUBMITTED", TASK_ID)


@pytest.mark.usefixtures("submitted")
def test_a_callback_whose_two_task_ids_disagree_is_invalid(context: LambdaContext) -> None:
    body = sample_body()
    body["task_id"] = "ffffffffffffffffffffffff"

    status, answer = callback(context, body)

    assert (status, answer["invalid"]) == (200, 1)
    assert job()["status"] == "SUBMITTED"


@pytest.mark.usefixtures("submitted")
def test_a_task_that_names_no_job_here_is_unknown_and_kept(context: LambdaContext) -> None:
    body = sample_body(unique_id="somebody-elses-task", metadata={})

    status, answer = callback(context, body)

    assert (status, answer["unknown"]) == (200, 1)
    assert job()["status"] == "SUBMITTED"
    assert len(archived("raw/scale/")) == 1


@pytest.mark.usefixtures("submitted")
def test_a_task_whose_unique_id_scale_cleared_is_known_by_its_metadata(context: LambdaContext) -> None:
    body = sample_body(unique_id=None)

    status, answer = callback(context, body)

    assert (status, answer["applied"]) == (200, 1)
    assert job()["status"] == "COMPLETED"


@pytest.mark.usefixtures("submitted")
@pytest.mark.parametrize("body", [{"task_id": TASK_ID}, {"task": "done"}, [1, 2], "null"])
def test_a_body_that_is_no_scale_callback_is_400_and_nothing_is_kept(context: LambdaContext, body: Any) -> None:
    status, answer = callback(context, body)

    assert (status, answer["error"]["code"]) == (400, "invalid_callback")
    assert archived("raw/scale/") == {}


@pytest.mark.usefixtures("submitted")
def test_an_empty_callback_is_400_missing_body_as_on_every_route(context: LambdaContext) -> None:
    status, answer = callback(context, b"")

    assert (status, answer["error"]["code"]) == (400, "missing_body")
    assert archived("raw/scale/") == {}


def test_a_callback_that_beats_the_submitted_write_still_lands(sandbox: ScaleSandbox, context: LambdaContext) -> None:
    # given Scale created the task but its answer was lost: the job is still QUEUED here
    sandbox.next_task_ids.append(TASK_ID)
    sandbox.lose_next = 1
    assert submit(context, scale_request())[1]["status"] == "QUEUED"

    # when its completed callback arrives
    status, body = callback(context)

    # then it lands, with Scale's task id; the retry that follows finds the job already done
    assert (status, body["applied"]) == (200, 1)
    assert (job()["status"], job()["vendor_job_id"]) == ("COMPLETED", TASK_ID)
    workers_until(lambda: queue_depth() == 0)
    assert (job()["status"], len(sandbox.tasks)) == ("COMPLETED", 1)


# --- the reconciler, replay, the retry path, cancel ----------------------------------------------------


def test_a_task_completed_without_a_callback_is_found_by_the_reconciler(
    sandbox: ScaleSandbox, context: LambdaContext
) -> None:
    # given a SUBMITTED job whose task Scale completed, but whose callback never came
    submit(context, scale_request())
    task_id = job()["vendor_job_id"]
    sandbox.complete(task_id, {"annotations": [{"label": "car"}]})
    age(REF)

    # when the reconciler runs
    report = reconciler_app.lambda_handler(
        load_event("reconciler/scheduled.json"), LocalContext("Reconciler", timeout_seconds=300)
    )

    # then it read the task at Scale and the job is COMPLETED with Scale's response
    assert report["advanced"] == 1
    stored = job()
    assert (stored["status"], stored["result"]) == ("COMPLETED", {"annotations": [{"label": "car"}]})
    assert stored["history"][-1]["source"] == "reconciler"
    assert ("GET", f"/v1/task/{task_id}") in {(r.method, r.path) for r in sandbox.received}


def test_a_callback_that_came_before_its_job_is_applied_when_replayed(
    sandbox: ScaleSandbox, context: LambdaContext
) -> None:
    # given a completed callback that arrived while its job was unknown here: archived, not applied
    assert callback(context)[1]["unknown"] == 1
    ((key, body),) = archived("raw/scale/").items()
    # and the job submitted since
    sandbox.next_task_ids.append(TASK_ID)
    submit(context, scale_request())

    # when `make replay` hands the archived body to the callback function, with the stack's key
    event = replay.build_event(replay.vendor_of(key), body, {"callback_auth_key": CALLBACK_KEY})
    answer = callback_app.lambda_handler(event, context)

    # then it is applied as a live callback would have been, and once more is a duplicate
    assert (answer["statusCode"], json.loads(answer["body"])["applied"]) == (200, 1)
    assert (job()["status"], job()["result"]) == ("COMPLETED", SAMPLE_RESPONSE)
    assert json.loads(callback_app.lambda_handler(event, context)["body"])["duplicate"] == 1


def test_replay_takes_the_callback_key_from_the_scale_secret() -> None:
    event = replay.build_event("scale", b'{"task": {}}', {"callback_auth_key": "k-1"})
    assert event["headers"]["scale-callback-auth"] == "k-1"
    assert event["resource"] == "/callbacks/scale"
    with pytest.raises(replay.ReplayError):
        replay.build_event("scale", b"{}", {})


@pytest.mark.usefixtures("submitted")
def test_a_callback_the_table_refuses_is_answered_200_and_applied_by_callback_retry(
    context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the table refuses the next state write (an outage)
    store = callback_app.intake().applier.store
    real = store.transition
    refused: list[str] = []

    def transition(*args: Any, **kwargs: Any) -> Any:
        if not refused:
            refused.append("throttled")
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "transition", transition)

    # when the completed callback arrives
    status, body = callback(context)

    # then Scale gets its 200, the body is archived and its key queued for CallbackRetry
    assert (status, body["deferred"], refused) == (200, 1, ["throttled"])
    assert job()["status"] == "SUBMITTED"
    assert queue_depth(RETRIES) == 1

    # when CallbackRetry runs, the archived body is applied and the message is gone
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=RETRIES)["QueueUrl"]
    handed = SqsPoller(
        sqs, url, retry_app.lambda_handler, function_name="CallbackRetryFunction", wait_seconds=0
    ).poll_once()
    assert handed == 1
    assert (job()["status"], job()["result"]) == ("COMPLETED", SAMPLE_RESPONSE)
    assert queue_depth(RETRIES) == 0


def test_a_task_is_canceled_while_no_work_has_begun_and_not_after(
    sandbox: ScaleSandbox, context: LambdaContext
) -> None:
    submit(context, scale_request())
    submit(context, scale_request("order-1042-scale-8"))
    store = callback_app.intake().applier.store
    first, second = store.get(REF), store.get("order-1042-scale-8")
    assert first is not None
    assert second is not None

    # when the first is canceled before work began, it is canceled at Scale and here
    seen = scale_client().cancel(first)
    assert seen is not None
    assert callback_app.intake().applier.apply(seen, source="operator") is Verdict.APPLIED
    assert (job()["status"], sandbox.tasks[first.vendor_job_id or ""].status) == ("CANCELED", "canceled")
    assert ("POST", f"/v1/task/{first.vendor_job_id}/cancel") in {(r.method, r.path) for r in sandbox.received}

    # and the second, on which work has begun, Scale refuses to cancel
    sandbox.tasks[second.vendor_job_id or ""].work_begins_at = time.time() - 1
    with pytest.raises(Rejected) as refused:
        scale_client().cancel(second)
    assert refused.value.code == "not_cancellable"
    assert sandbox.tasks[second.vendor_job_id or ""].status == "pending"


def test_cancel_with_clear_unique_id_frees_the_reference_at_scale(
    sandbox: ScaleSandbox, context: LambdaContext
) -> None:
    submit(context, scale_request())
    stored = callback_app.intake().applier.store.get(REF)
    assert stored is not None

    scale_client().cancel(stored, clear_unique_id=True)

    assert sandbox.by_unique_id == {}
    assert scale_client().find(vendors.parse_submit_request(scale_request()), stored) is None


# --- the sandbox behaves as Scale does ------------------------------------------------------------------


def test_the_sandbox_sends_a_callback_again_until_it_is_answered_with_a_2xx(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/cb", method="POST").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/cb", method="POST").respond_with_data("gone", status=404)
    httpserver.expect_ordered_request("/cb", method="POST").respond_with_json({"applied": 1})
    sender = RedeliveringSender(retries=3, retry_seconds=0.05)
    try:
        sender.schedule(0, httpserver.url_for("/cb"), b"{}", {"Content-Type": "application/json"})
        deadline = time.monotonic() + 5
        while len(sender.sent) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sender.stop()
    assert [status for _, status in sender.sent] == [503, 404, 200]
    assert sender.redelivered == 2


def test_the_sandbox_works_on_a_task_and_calls_back_as_scale(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/callbacks/scale", method="POST").respond_with_json({"applied": 1})
    box = ScaleSandbox(api_key="k", seed=1)
    box.work_seconds, box.callback_auth_key = 0.05, "cb-key"
    with BackgroundServer(box) as server:
        created = requests.post(
            f"{server.url}/v1/task/imageannotation",
            json={
                "project": "p",
                "attachment": "https://x.example/a.jpg",
                "unique_id": "u-1",
                "callback_url": httpserver.url_for("/callbacks/scale"),
            },
            auth=("k", ""),
            timeout=5,
        ).json()
        deadline = time.monotonic() + 5
        while not box.callbacks.sent and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = requests.post(f"{server.url}/v1/task/imageannotation", json={}, auth=("k", ""), timeout=5)
        repeated = requests.post(
            f"{server.url}/v1/task/imageannotation",
            json={"project": "p", "attachment": "https://x.example/a.jpg", "unique_id": "u-1"},
            auth=("k", ""),
            timeout=5,
        )
        unauthorized = requests.get(f"{server.url}/v1/task/{created['task_id']}", auth=("nope", ""), timeout=5)
    box.stop()
    ((request, _),) = httpserver.log
    assert request.headers["scale-callback-auth"] == "cb-key"
    sent = request.get_json()
    assert (sent["task_id"], sent["task"]["status"], sent["task"]["unique_id"]) == (
        created["task_id"],
        "completed",
        "u-1",
    )
    assert sent["response"] == sent["task"]["response"]
    assert (refused.status_code, refused.json()["status_code"]) == (400, 400)
    assert repeated.status_code == 409
    assert created["task_id"] in repeated.json()["error"]
    assert unauthorized.status_code == 401


def test_the_sandbox_refuses_what_scale_refuses() -> None:
    import requests

    from local.sandboxes.scale import ScaleSandbox
    from local.sandboxes.server import BackgroundServer

    box = ScaleSandbox(api_key="live_key")
    server = BackgroundServer(box).start()
    try:
        auth = ("live_key", "")
        # a task type Scale does not have (the SDK's TaskType list): no such route
        answer = requests.post(f"{server.url}/v1/task/nosuchtype", json={"project": "p"}, auth=auth, timeout=5)
        assert answer.status_code == 404
        assert set(answer.json()) == {"status_code", "error"}
        # a listing page outside 1..100, or a token it never gave
        for query in ("limit=0", "limit=101", "next_token=-3", "limit=-5"):
            answer = requests.get(f"{server.url}/v1/tasks?{query}", auth=auth, timeout=5)
            assert answer.status_code == 400, query
        # several unique_ids (as the SDK sends a list) match any of them
        for unique_id in ("u-1", "u-2"):
            created = requests.post(
                f"{server.url}/v1/task/imageannotation",
                json={"project": "p", "unique_id": unique_id, "attachment": "https://a.example.com/1.jpg"},
                auth=auth,
                timeout=5,
            )
            assert created.status_code == 200, created.text
        listing = requests.get(f"{server.url}/v1/tasks?unique_id=u-1&unique_id=u-2", auth=auth, timeout=5).json()
        assert sorted(d["unique_id"] for d in listing["docs"]) == ["u-1", "u-2"]
    finally:
        server.stop()
        box.stop()


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        ('{"m": NaN, "code": "bad_input"}', b'"m":NaN'),
        ('["a", "b"]', b'["a","b"]'),
        ("5", b"5"),
        (json.dumps("e" * 60_000), b"e" * 60_000),
    ],
    ids=["nan", "a-list", "a-number", "a-long-string"],
)
@pytest.mark.usefixtures("submitted")
def test_scales_error_is_kept_whole_whatever_its_shape_or_size(error: str, kept: bytes, context: LambdaContext) -> None:
    # given the error sample with Scale's `error` in another shape
    body = json.loads(load_event("scale_callback/api_error.json")["body"])
    body["task"]["error"] = "__ERROR__"
    raw = json.dumps(body).replace('"__ERROR__"', error)

    status, counts = callback(context, raw.encode())

    # then the job is FAILED, readable, and Scale's error is kept as Scale wrote it (inline or in S3)
    assert (status, counts["applied"]) == (200, 1)
    stored = job()
    assert stored["status"] == "FAILED"
    details = stored["last_error"]["details"]
    if details and "details_ref" in details[0]:
        key = details[0]["details_ref"].removeprefix("s3://handoff-results/")
        assert kept in archived(key)[key]
    else:
        assert kept.decode() in json.dumps(details, separators=(",", ":"))
