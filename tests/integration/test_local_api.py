"""The local API behaves as API Gateway does wherever a handler could notice: the path and path
parameters as they were on the wire, a custom domain's base-path mapping, repeated headers,
SigV4 verified against the stack's credentials, 413 before any handler runs, and 504 at the
integration timeout while the function runs on. LocalApi in this process, with werkzeug's test
client or a real socket, and small fake functions (the handlers themselves where it matters)."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pytest_httpserver import HTTPServer
from werkzeug.test import Client, TestResponse

from local.api import LocalApi, Route, gateway_responses_from_template, routes_from_template
from local.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from local.runtime import FunctionRuntime, InvocationError
from local.sandboxes.server import BackgroundServer
from local.sigv4 import SigV4Verifier
from tests.conftest import PLAYMENT_CALLBACK_KEY, table_items

STAGE, BINARY, ROUTES = routes_from_template()
RESPONSES = gateway_responses_from_template()
MB = 1024 * 1024


class Recorder:
    """Every function of the template as one fake: records each event, answers 200."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def local_api(recorder: Recorder | None = None, **options: Any) -> LocalApi:
    functions = {r.function: recorder for r in ROUTES} if recorder is not None else None
    return LocalApi(STAGE, BINARY, ROUTES, functions, RESPONSES, **options)


def signed(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    key: str = ACCESS_KEY_ID,
    secret: str = SECRET_ACCESS_KEY,
    region: str = REGION,
    service: str = "execute-api",
    host: str = "localhost",
) -> dict[str, str]:
    """The headers of a request signed as botocore signs it (Content-Type application/json)."""
    request = AWSRequest(method, f"http://{host}{path}", data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    return dict(request.headers)


def call(
    api: LocalApi, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> TestResponse:
    return Client(api).open(path, method=method, data=body, headers=headers or {})


def error(response: TestResponse) -> tuple[int, str, str]:
    body = response.get_json()
    return response.status_code, body["error"]["code"], body["error"]["message"]


# --- raw path and path parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire_id", "delivered"),
    [("order%3A7", "order%3A7"), ("order:7", "order:7"), ("a%2Fb", "a%2Fb"), ("order%253A7", "order%253A7")],
)
def test_path_and_path_parameters_arrive_as_they_were_on_the_wire(
    wire_id: str, delivered: str, recorder: Recorder
) -> None:
    path = f"/{STAGE}/jobs/{wire_id}"

    response = call(local_api(recorder), "GET", path, headers=signed("GET", path))

    assert response.status_code == 200, response.get_data(as_text=True)
    (event,) = recorder.events
    assert event["resource"] == "/jobs/{reference_id}"
    assert event["path"] == f"/jobs/{delivered}"
    assert event["pathParameters"] == {"reference_id": delivered}
    assert event["requestContext"]["path"] == f"/{STAGE}/jobs/{delivered}"


# --- a custom domain's base-path mapping --------------------------------------------------------------


def test_a_base_path_mapping_serves_the_routes_as_a_custom_domain_does(recorder: Recorder) -> None:
    api = local_api(recorder, base_path="handoff")

    via_domain = call(api, "POST", "/handoff/callbacks/playment", b"{}", {"Content-Type": "application/json"})
    via_stage = call(api, "POST", f"/{STAGE}/callbacks/playment", b"{}", {"Content-Type": "application/json"})
    unknown = call(api, "POST", "/other/callbacks/playment", b"{}", {"Content-Type": "application/json"})

    assert (via_domain.status_code, via_stage.status_code) == (200, 200)
    domain, stage = recorder.events
    assert (domain["path"], domain["resource"]) == ("/handoff/callbacks/playment", "/callbacks/playment")
    assert domain["requestContext"]["path"] == "/handoff/callbacks/playment"
    assert domain["requestContext"]["stage"] == STAGE
    assert (stage["path"], stage["requestContext"]["path"]) == ("/callbacks/playment", f"/{STAGE}/callbacks/playment")
    assert error(unknown) == (403, "missing_authentication_token", "Missing Authentication Token")


@pytest.mark.usefixtures("aws")
def test_the_handlers_behind_the_local_api_take_ids_with_colons_and_callbacks_through_a_base_path(
    playment: HTTPServer,
) -> None:
    # given the local API with a base-path mapping, in front of the real handlers
    api = local_api(base_path="handoff")
    playment.expect_request("/v0/projects/proj-1/jobs", method="POST").respond_with_json(
        {"data": {"job_id": "pj-7"}, "success": True}
    )
    job = {
        "vendor": "playment",
        "reference_id": "order:7",
        "data": {"image_url": "https://images.example.com/7.jpg"},
        "tag": "boxes",
    }
    body = json.dumps(job).encode()
    submitted = call(api, "POST", f"/{STAGE}/jobs", body, signed("POST", f"/{STAGE}/jobs", body))
    assert submitted.status_code == 201, submitted.get_data(as_text=True)

    # when the job is read with its id percent-encoded (as a client must) and as it is
    encoded = call(api, "GET", f"/{STAGE}/jobs/order%3A7", headers=signed("GET", f"/{STAGE}/jobs/order%3A7"))
    plain = call(api, "GET", f"/{STAGE}/jobs/order:7", headers=signed("GET", f"/{STAGE}/jobs/order:7"))
    # and Playment calls back through the custom domain
    callback = {"annotations": [{"reference_id": "order:7", "job_id": "pj-7", "status": "COMPLETED", "result": {}}]}
    called_back = call(
        api,
        "POST",
        "/handoff/callbacks/playment",
        json.dumps(callback).encode(),
        {"Content-Type": "application/json", "x-playment-key": PLAYMENT_CALLBACK_KEY},
    )

    # then both reads find the job, and the callback completes it
    assert (encoded.status_code, encoded.get_json()["reference_id"]) == (200, "order:7")
    assert (plain.status_code, plain.get_json()["reference_id"]) == (200, "order:7")
    assert called_back.status_code == 200, called_back.get_data(as_text=True)
    assert called_back.get_json()["applied"] == 1
    assert [j["status"] for j in table_items()] == ["COMPLETED"]


# --- repeated headers --------------------------------------------------------------------------------


def test_a_repeated_header_is_its_last_value_in_headers_and_every_value_in_multi_value_headers(
    recorder: Recorder,
) -> None:
    with BackgroundServer(local_api(recorder), request_handler=LocalApi.request_handler) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.putrequest("POST", f"/{STAGE}/callbacks/playment")
        for name, value in [
            ("Content-Type", "application/json"),
            ("X-Trace", "first"),
            ("X-Trace", "second"),
            ("X-List", "a, b"),
            ("Content-Length", "2"),
        ]:
            connection.putheader(name, value)
        connection.endheaders(b"{}")
        assert connection.getresponse().status == 200
        connection.close()

    (event,) = recorder.events
    assert event["headers"]["X-Trace"] == "second"
    assert event["multiValueHeaders"]["X-Trace"] == ["first", "second"]
    assert event["multiValueHeaders"]["X-List"] == ["a, b"]  # one header with a comma is one value


# --- SigV4 against the stack's credentials -----------------------------------------------------------

PATH = f"/{STAGE}/jobs"
BODY = b'{"vendor": "playment"}'


@pytest.mark.parametrize(
    ("sign", "body", "refusal"),
    [
        (lambda: {}, BODY, (403, "missing_authentication_token", "Missing Authentication Token")),
        (
            lambda: signed("POST", PATH, BODY, key="AKIAOTHERKEY"),
            BODY,
            (403, "access_denied", "The security token included in the request is invalid."),
        ),
        (
            lambda: signed("POST", PATH, BODY, secret="not-the-secret"),
            BODY,
            (403, "invalid_signature", "The request signature"),
        ),
        (
            lambda: signed("POST", PATH, BODY, region="eu-west-1"),
            BODY,
            (403, "invalid_signature", "Credential should be scoped"),
        ),
        (
            lambda: signed("POST", PATH, BODY, service="lambda"),
            BODY,
            (403, "invalid_signature", "Credential should be scoped"),
        ),
        (lambda: signed("POST", PATH, BODY), BODY + b" ", (403, "invalid_signature", "The request signature")),
        (lambda: signed("POST", f"{PATH}/x", BODY), BODY, (403, "invalid_signature", "The request signature")),
        (
            lambda: signed("POST", PATH, BODY, host="other.example"),
            BODY,
            (403, "invalid_signature", "The request signature"),
        ),
        (
            lambda: {"Authorization": "Bearer abc"},
            BODY,
            (403, "gateway_refused", "Authorization header requires 'Credential'"),
        ),
    ],
    ids=[
        "unsigned",
        "another-access-key",
        "wrong-secret",
        "another-region",
        "another-service",
        "body-changed",
        "path-changed",
        "host-changed",
        "not-sigv4",
    ],
)
def test_an_iam_route_verifies_the_signature(
    sign: Callable[[], dict[str, str]], body: bytes, refusal: tuple[int, str, str], recorder: Recorder
) -> None:
    # signed now (not at collection): X-Amz-Date must be within 5 minutes of the request
    response = call(local_api(recorder), "POST", PATH, body, {"Content-Type": "application/json", **sign()})

    status, code, message = error(response)
    assert (status, code) == refusal[:2]
    assert message.startswith(refusal[2])
    assert recorder.events == []  # the function never ran


def test_a_signature_from_the_stack_credentials_gets_through_with_the_caller_identified(recorder: Recorder) -> None:
    response = call(local_api(recorder), "POST", PATH, BODY, signed("POST", PATH, BODY))

    assert response.status_code == 200
    (event,) = recorder.events
    assert event["requestContext"]["identity"]["accessKey"] == ACCESS_KEY_ID


@pytest.mark.parametrize(("offset", "message"), [(360, "Signature expired"), (-360, "Signature not yet current")])
def test_a_signature_more_than_five_minutes_off_the_clock_is_refused(
    offset: float, message: str, recorder: Recorder
) -> None:
    verifier = SigV4Verifier(ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION, clock=lambda: time.time() + offset)
    within = SigV4Verifier(ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION, clock=lambda: time.time() + offset / 2)

    late = call(local_api(recorder, verifier=verifier), "POST", PATH, BODY, signed("POST", PATH, BODY))
    in_time = call(local_api(recorder, verifier=within), "POST", PATH, BODY, signed("POST", PATH, BODY))

    assert error(late)[:2] == (403, "invalid_signature")
    assert error(late)[2].startswith(message)
    assert in_time.status_code == 200


# --- 413 before any handler runs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "status"),
    [
        (10 * MB + 1, 413),  # over API Gateway's 10 MB
        (5 * MB, 413),  # under 10 MB, but base64 in the event: over Lambda's 6 MB
        (4 * MB, 200),  # 5.3 MB once base64-encoded: the function gets it
    ],
)
def test_payloads_over_api_gateway_or_lambda_limits_are_413_before_the_function(
    size: int, status: int, recorder: Recorder
) -> None:
    body = b"x" * size

    response = call(local_api(recorder), "POST", f"/{STAGE}/callbacks/playment", body, {"Content-Type": "text/plain"})

    assert response.status_code == status
    if status == 413:
        assert error(response) == (413, "gateway_refused", "Request Too Long")
        assert recorder.events == []
    else:
        assert len(recorder.events) == 1


# --- the integration timeout -----------------------------------------------------------------------------


def test_a_function_past_the_integration_timeout_is_504_and_runs_on_to_its_end() -> None:
    finished = threading.Event()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        time.sleep(0.6)
        finished.set()
        return {"statusCode": 200, "body": "{}"}

    api = LocalApi(STAGE, BINARY, ROUTES, {r.function: slow for r in ROUTES}, RESPONSES, integration_timeout=0.2)
    started = time.monotonic()

    response = call(api, "POST", f"/{STAGE}/callbacks/playment", b"{}", {"Content-Type": "application/json"})

    assert error(response) == (504, "gateway_error", "Endpoint request timed out")
    assert time.monotonic() - started < 0.6
    assert not finished.is_set()
    assert finished.wait(5), "the function was stopped at the timeout"


@pytest.fixture
def slow_runtime() -> Iterator[FunctionRuntime]:
    runtime = FunctionRuntime("Slow", "tests.integration.slow_function", "handler", {}, timeout=10, concurrency=1)
    yield runtime
    runtime.stop()


def test_after_a_504_the_container_finishes_and_returns_to_its_pool(slow_runtime: FunctionRuntime) -> None:
    # given a function with one container, warm (a caller with time to wait: the cold start is slow)
    route = Route("GET", "/slow", "Slow", "tests.integration.slow_function", "handler", timeout=10, iam=False)
    patient = LocalApi(STAGE, BINARY, [route], {"Slow": slow_runtime}, RESPONSES, integration_timeout=10)
    assert call(patient, "GET", f"/{STAGE}/slow").status_code == 200

    # when an invocation outlasts the integration timeout
    api = LocalApi(STAGE, BINARY, [route], {"Slow": slow_runtime}, RESPONSES, integration_timeout=0.5)
    timed_out = call(api, "GET", f"/{STAGE}/slow?sleep=1.5")

    # then the caller has 504, and the one container, once done, takes the next invocation
    assert timed_out.status_code == 504
    answered = call(patient, "GET", f"/{STAGE}/slow")
    assert answered.status_code == 200
    assert json.loads(answered.get_data())["invocations"] == 3  # the same container ran all three


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_an_invocation_past_its_timeout_is_ended_at_its_deadline_as_lambda_ends_it(warm: bool) -> None:
    # given a function with a 1 s timeout, its one container warm or not yet started
    runtime = FunctionRuntime("Slow", "tests.integration.slow_function", "handler", {}, timeout=1, concurrency=1)
    try:
        if warm:
            runtime.warm(1)

        # when an invocation would take 3 s
        started = time.monotonic()
        with pytest.raises(InvocationError) as timed_out:
            runtime.invoke({"queryStringParameters": {"sleep": "3"}})

        # then it is ended soon after its context's 1 s (not let run to its end), and its container goes
        assert time.monotonic() - started < 2.8
        assert timed_out.value.error == {
            "errorMessage": "Task timed out after 1.00 seconds",
            "errorType": "Sandbox.Timedout",
        }
        assert runtime._all == []
    finally:
        runtime.stop()


def test_eager_containers_finish_their_init_before_the_first_invocation() -> None:
    # given a function whose init (its module import) takes a noticeable time, warmed eagerly
    runtime = FunctionRuntime("Slow", "tests.integration.slow_function", "handler", {}, timeout=10, concurrency=3)
    try:
        assert runtime.warm(2) == 2

        # when two invocations arrive at once
        started = time.time()
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: runtime.invoke({"queryStringParameters": {"sleep": "0.3"}}), range(2)))

        # then each ran in a container of its own whose init was over before they came (no third one)
        bodies = [json.loads(answer["body"]) for answer in answers]
        assert sorted(body["invocations"] for body in bodies) == [1, 1]
        assert len({body["pid"] for body in bodies}) == 2
        assert all(body["loaded_at"] < started for body in bodies)
        assert len(runtime._all) == 2
    finally:
        runtime.stop()


def test_warming_a_stopped_function_is_refused() -> None:
    runtime = FunctionRuntime("Slow", "tests.integration.slow_function", "handler", {}, timeout=10, concurrency=1)
    runtime.stop()
    with pytest.raises(InvocationError, match="stopped"):
        runtime.warm(1)


VARIABLES = ("HANDOFF_TEST_SET_LATER", "HANDOFF_TEST_REMOVED_LATER", "OWN", "PATH")


@pytest.mark.parametrize("preload", [True, False], ids=["forked-from-preloaded-server", "fresh-interpreter"])
def test_a_container_inherits_what_the_invoker_has_when_it_starts(
    preload: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # given a container server already running (started by an earlier function), then the invoker's
    # environment, directory and output changed
    monkeypatch.setenv("HANDOFF_TEST_REMOVED_LATER", "earlier")
    earlier = FunctionRuntime("Earlier", "tests.integration.echo_function", "handler", {}, timeout=10, concurrency=1)
    try:
        earlier.invoke({"say": "before", "variables": []})
    finally:
        earlier.stop()
    monkeypatch.setenv("HANDOFF_TEST_SET_LATER", "later")
    monkeypatch.delenv("HANDOFF_TEST_REMOVED_LATER")
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()

    # when a new function's container starts and runs
    runtime = FunctionRuntime(
        "Echo", "tests.integration.echo_function", "handler", {"OWN": "own"}, timeout=10, concurrency=1,
        preload=preload,
    )  # fmt: skip
    try:
        answer = runtime.invoke({"say": "hello", "variables": [*VARIABLES]})
    finally:
        runtime.stop()

    # then it has the invoker's variables as they are now, its own on top, the invoker's directory,
    # and its output goes where the invoker's goes now; only a forked one found the libraries loaded
    assert answer["variables"] == {
        "HANDOFF_TEST_SET_LATER": "later", "HANDOFF_TEST_REMOVED_LATER": None, "OWN": "own", "PATH": os.environ["PATH"]
    }  # fmt: skip
    # and a local stack's function (inherit_environment=False) has only its own and the host's basics
    monkeypatch.setenv("POWERTOOLS_DEV", "true")
    own_only = FunctionRuntime(
        "Echo", "tests.integration.echo_function", "handler", {"OWN": "own"}, timeout=10, concurrency=1,
        preload=preload, inherit_environment=False, memory_mb=1024,
    )  # fmt: skip
    try:
        answer = own_only.invoke({"say": "again", "variables": [*VARIABLES, "POWERTOOLS_DEV"]})
    finally:
        own_only.stop()
    assert answer["variables"] == {
        "HANDOFF_TEST_SET_LATER": None, "HANDOFF_TEST_REMOVED_LATER": None, "OWN": "own", "PATH": os.environ["PATH"],
        "POWERTOOLS_DEV": None,
    }  # fmt: skip
    assert answer["memory_mb"] == 1024
    assert answer["directory"] == str(tmp_path)
    assert "echo-function says hello" in capfd.readouterr().out
    assert answer["imported_before_me"] == (["boto3", "pydantic", "requests"] if preload else [])


def test_a_function_whose_init_raises_is_refused_when_warmed_with_its_own_line() -> None:
    # given a function whose module raises when imported
    runtime = FunctionRuntime("Failing", "tests.integration.failing_init_function", "handler", {}, timeout=10,
                              concurrency=1)  # fmt: skip
    try:
        # when its containers are warmed (a stack started with --warm-containers eager)
        with pytest.raises(InvocationError) as raised:
            runtime.warm(1)
        # then the warm-up fails, saying why and where: the module's own line, under importlib's frames
        assert raised.value.error["errorMessage"] == "this function's init fails on purpose"
        assert 'failing_init_function.py", line 5' in str(raised.value)
        # and an invocation is answered with that error, as Lambda answers a function whose init raised
        with pytest.raises(InvocationError) as invoked:
            runtime.invoke({})
        assert invoked.value.error["errorType"] == "RuntimeError"
    finally:
        runtime.stop()


def test_a_stack_whose_eager_warm_up_is_refused_does_not_start_and_leaves_nothing_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a stack to be warmed eagerly, one of whose functions' init raises
    from local.stack import LocalStack

    warm = FunctionRuntime.warm

    def refused(runtime: FunctionRuntime, count: int, timeout: float = 120.0) -> int:
        if runtime.name == "GetJobFunction":
            raise InvocationError("GetJobFunction: its init raised:\nRuntimeError: on purpose")
        return warm(runtime, count, timeout)

    monkeypatch.setattr(FunctionRuntime, "warm", refused)
    stack = LocalStack(warm_containers="eager")

    # when it starts (in this process, which it gives the stack's variables: they go with the test)
    saved = dict(os.environ)
    try:
        with pytest.raises(InvocationError, match="GetJobFunction: its init raised"):
            stack.start()
    finally:
        os.environ.clear()
        os.environ.update(saved)

    # then what it had started is stopped: its moto server, its sandboxes, every function's containers
    for url in [stack.aws.endpoint, *(vendor.url for vendor in stack.vendors.values())]:
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)
    assert all(not runtime._all for runtime in stack.functions.values())
