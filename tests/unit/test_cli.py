"""The operator CLI (ops/cli.py) without a stack: its arguments, what it prints for people and for
scripts, and its exit codes (1 the API refused, 2 it could not act), on a fake API and queue."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.credentials import Credentials

from ops import cli, launcher, stacks

API = "https://abc123.execute-api.eu-west-1.amazonaws.com/v1"
JOB = {
    "reference_id": "order-1042-img-7",
    "vendor": "playment",
    "status": "FAILED",
    "vendor_job_id": None,
    "vendor_refs": {},
    "batch_ref": "order-1042",
    "attempts": 6,
    "last_error": {"code": "retries_exhausted", "message": "HTTP 503", "retryable": True, "details": []},
    "result": None,
    "result_ref": None,
    "created_at": "2026-11-23T10:15:00.120Z",
    "updated_at": "2026-11-23T10:17:42.031Z",
    "history": [
        {"at": "2026-11-23T10:15:00.120Z", "status": "QUEUED", "source": "submit"},
        {"at": "2026-11-23T10:17:42.031Z", "status": "FAILED", "source": "submit"},
    ],
}


class FakeAnswer:
    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self.text = body if isinstance(body, str) else json.dumps(body)

    def json(self) -> Any:
        return json.loads(self.text)


class FakeHttp:
    """requests.Session's request(), answering from a list and keeping what was asked."""

    def __init__(self, *answers: tuple[int, Any] | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> FakeAnswer:
        self.requests.append({"method": method, "url": url, **kwargs})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return FakeAnswer(*answer)


def deployed_stack(credentials: Any = None, region: str = "eu-west-1") -> stacks.Stack:
    return stacks.Stack(
        "handoff",
        region,
        {"ApiUrl": API},
        lambda service: None,
        region=region,
        credentials=lambda: credentials,
    )


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> FakeHttp:
    """The deployed stack `handoff`, its API answering from `http.answers`."""
    fake = FakeHttp()
    monkeypatch.setattr(stacks, "find", lambda stack, region, path: deployed_stack(Credentials("AKIDEXAMPLE", "s")))
    real = cli.Api

    def api(url: str, credentials: Any, region: str) -> cli.Api:
        return real(url, credentials, region, http=fake, pause=lambda seconds: None)

    monkeypatch.setattr(cli, "Api", api)
    return fake


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


# --- arguments --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["jobs"],
        ["jobs", "show"],
        ["jobs", "list", "--limit", "ten"],
        ["jobs", "frobnicate", "x"],
        ["--local", "--stack", "handoff", "jobs", "list"],
        ["replay"],
        ["redrive", "--rate", "fast"],
        ["events", "tail", "--bogus"],
    ],
)
def test_a_wrong_command_line_is_refused_with_usage_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert "usage: handoff" in capsys.readouterr().err


def test_stack_options_are_taken_before_or_after_the_command(http: FakeHttp, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[Any, ...]] = []
    monkeypatch.setattr(stacks, "find", lambda *a: asked.append(a) or deployed_stack(Credentials("k", "s")))
    http.answers += [(200, {"jobs": [], "next_cursor": None})] * 3

    run("--stack", "handoff-prod", "--region", "eu-west-1", "jobs", "list")
    run("jobs", "list", "--stack", "handoff-prod", "--region", "eu-west-1")
    run("jobs", "list", "--local")

    assert [a[:2] for a in asked] == [
        ("handoff-prod", "eu-west-1"),
        ("handoff-prod", "eu-west-1"),
        ("local", None),
    ]


# --- tables for people, the API's JSON for scripts ---------------------------------------------------


def test_jobs_list_is_an_aligned_table_newest_first_as_the_api_gave_it(http: FakeHttp) -> None:
    http.answers.append(
        (
            200,
            {
                "jobs": [
                    {**JOB, "reference_id": "a-much-longer-reference-id", "vendor_job_id": "vj-1"},
                    {**JOB, "vendor": "scale", "status": "QUEUED"},
                ],
                "next_cursor": "abc",
            },
        )
    )

    code, out, err = run("jobs", "list", "--vendor", "playment", "--status", "FAILED", "--limit", "2")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["REFERENCE_ID", "VENDOR", "STATUS", "UPDATED_AT", "VENDOR_JOB_ID"]
    assert lines[1].split() == ["a-much-longer-reference-id", "playment", "FAILED", JOB["updated_at"], "vj-1"]
    assert lines[2].split() == ["order-1042-img-7", "scale", "QUEUED", JOB["updated_at"], "-"]
    assert len({line.index(" playment") if " playment" in line else line.index(" scale") for line in lines[1:]}) == 1
    assert lines[0].index("VENDOR ") == lines[1].index("playment")
    assert err == "more jobs: --all, or --cursor abc\n"  # the hint goes to stderr: stdout stays the table
    (asked,) = http.requests
    assert asked["url"] == f"{API}/jobs?status=FAILED&vendor=playment&limit=2"


def test_jobs_list_json_is_the_apis_document_as_is(http: FakeHttp) -> None:
    page = {"jobs": [JOB], "next_cursor": "abc"}
    http.answers.append((200, page))

    code, out, err = run("jobs", "list", "--json")

    assert (code, json.loads(out), err) == (0, page, "")


def test_jobs_list_all_follows_the_cursor_with_the_same_filters_into_one_document(http: FakeHttp) -> None:
    http.answers += [
        (200, {"jobs": [{**JOB, "reference_id": "j-1"}], "next_cursor": "c1"}),
        (200, {"jobs": [], "next_cursor": "c2"}),  # a page may be empty and still go on
        (200, {"jobs": [{**JOB, "reference_id": "j-2"}], "next_cursor": None}),
    ]

    code, out, _ = run("jobs", "list", "--batch", "order-1042", "--all", "--json")

    assert code == 0
    assert [j["reference_id"] for j in json.loads(out)["jobs"]] == ["j-1", "j-2"]
    assert [r["url"].split("?")[1] for r in http.requests] == [
        "batch=order-1042",
        "batch=order-1042&cursor=c1",
        "batch=order-1042&cursor=c2",
    ]


def test_an_empty_listing_says_so(http: FakeHttp) -> None:
    http.answers.append((200, {"jobs": [], "next_cursor": None}))
    assert run("jobs", "list")[:2] == (0, "no jobs\n")


def test_jobs_show_is_the_job_then_its_history(http: FakeHttp) -> None:
    http.answers.append((200, JOB))

    code, out, _ = run("jobs", "show", "order-1042-img-7")

    assert code == 0
    head, history = out.split("\n\n")
    said = dict(line.split(None, 1) for line in head.splitlines())
    assert said["status"] == "FAILED"
    assert said["last_error"] == "retries_exhausted: HTTP 503"
    assert "vendor_job_id" not in said  # nothing to say: left out
    assert len({line.index(value) for line, value in zip(head.splitlines(), said.values(), strict=True)}) == 1
    assert history.splitlines()[0].split() == ["AT", "STATUS", "SOURCE"]
    assert history.splitlines()[2].split() == [JOB["updated_at"], "FAILED", "submit"]


def test_an_id_is_one_percent_encoded_path_segment_and_every_request_is_signed(http: FakeHttp) -> None:
    http.answers.append((202, {**JOB, "status": "QUEUED"}))

    code, out, _ = run("jobs", "retry", "order:7/a b", "--json")

    assert code == 0
    assert json.loads(out)["status"] == "QUEUED"
    (asked,) = http.requests
    assert (asked["method"], asked["url"]) == ("POST", f"{API}/jobs/order%3A7%2Fa%20b/retry")
    authorization = asked["headers"]["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert asked["timeout"] == (cli.CONNECT_TIMEOUT, cli.READ_TIMEOUT)


@pytest.mark.parametrize("action", ["cancel", "order"])
def test_cancel_and_order_post_to_their_routes(http: FakeHttp, action: str) -> None:
    http.answers.append((200, {**JOB, "status": "CANCELED"}))
    assert run("jobs", action, "doc-1")[0] == 0
    assert http.requests[0]["url"] == f"{API}/jobs/doc-1/{action}"


def test_batches_show_with_the_vendors_word(http: FakeHttp) -> None:
    batch = {
        "batch_ref": "order-1042",
        "vendor": "playment",
        "name": "week-47",
        "state": "closed",
        "expected_jobs": 3,
        "jobs": 3,
        "final": 1,
        "counts": {"SUBMITTED": 2, "COMPLETED": 1},
        "created_at": "2026-11-23T10:15:00.120Z",
        "updated_at": "2026-11-23T10:15:00.120Z",
        "version": 2,
        "vendor_details": {"total_jobs": 3},
    }
    http.answers.append((200, batch))

    code, out, _ = run("batches", "show", "order-1042", "--vendor")

    assert code == 0
    assert http.requests[0]["url"] == f"{API}/batches/order-1042?vendor=true"
    said = dict(line.split(None, 1) for line in out.splitlines())
    assert said["jobs"] == "3 of 3 expected"
    assert said["counts"] == "COMPLETED 1, SUBMITTED 2"
    assert said["vendor_details"] == '{"total_jobs": 3}'


# --- errors: 1 the API refused, 2 the CLI could not act -------------------------------------------------


def test_an_api_error_is_one_line_with_its_details_under_it_and_exit_1(http: FakeHttp) -> None:
    refusal = {
        "error": {
            "code": "not_cancellable",
            "message": "Playment has no cancel",
            "details": [{"vendor_code": None, "status": "SUBMITTED"}],
        }
    }
    http.answers.append((409, refusal))

    code, out, err = run("jobs", "cancel", "order-1042-img-7")

    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "handoff: not_cancellable: Playment has no cancel",
        "  vendor_code: -, status: SUBMITTED",
    ]


def test_an_invalid_field_is_named_and_json_mode_also_prints_the_error_body(http: FakeHttp) -> None:
    refusal = {
        "error": {
            "code": "invalid_request",
            "message": "1 invalid field(s)",
            "details": [{"field": "limit", "message": "Input should be less than or equal to 100", "type": "x"}],
        }
    }
    http.answers.append((422, refusal))

    code, out, err = run("jobs", "list", "--limit", "500", "--json")

    assert code == 1
    assert json.loads(out) == refusal
    assert err.splitlines() == [
        "handoff: invalid_request: 1 invalid field(s)",
        "  limit: Input should be less than or equal to 100",
    ]


def test_an_answer_that_is_not_handoffs_is_its_status_and_text(http: FakeHttp) -> None:
    http.answers.append((413, "<html><body>Request\n Too Large</body></html>"))
    code, _, err = run("jobs", "order", "doc-1")
    assert (code, err) == (1, "handoff: HTTP 413: <html><body>Request Too Large</body></html>\n")


def test_a_get_is_asked_again_while_the_stack_is_busy_a_post_is_not(http: FakeHttp) -> None:
    throttled = (429, {"error": {"code": "throttled", "message": "Too Many Requests", "details": []}})
    http.answers += [throttled, (503, "busy"), (200, JOB), throttled]

    assert run("jobs", "show", "order-1042-img-7")[0] == 0
    code, _, err = run("jobs", "retry", "order-1042-img-7")

    assert [r["method"] for r in http.requests] == ["GET", "GET", "GET", "POST"]
    assert (code, err) == (1, "handoff: throttled: Too Many Requests\n")


def test_no_connection_is_one_line_and_exit_2(http: FakeHttp) -> None:
    http.answers += [requests.exceptions.ConnectionError("refused")] * cli.GET_ATTEMPTS

    code, out, err = run("jobs", "show", "x")

    assert (code, out) == (2, "")
    assert err.splitlines() == [err.strip()]
    assert err.startswith(f"handoff: cannot connect to the API at {API} (ConnectionError): is the stack running")


def test_a_timeout_is_one_line_and_exit_2(http: FakeHttp) -> None:
    http.answers.append(requests.exceptions.ReadTimeout("slow"))
    code, _, err = run("jobs", "cancel", "x")
    assert (code, err) == (2, "handoff: the API at " + API + " did not answer within 35 s: try again\n")


def test_no_local_stack_is_one_line_and_exit_2(tmp_path: Path) -> None:
    code, out, err = run("jobs", "list", "--local", "--local-state", str(tmp_path / "none.json"))

    assert (code, out) == (2, "")
    assert err.splitlines() == [err.strip()]
    assert err.startswith("handoff: no local stack is running (")
    assert "give --stack <a deployed stack>" in err  # in the CLI's terms, not make's STACK=


def test_no_credentials_for_a_deployed_stack_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stacks, "find", lambda *a: deployed_stack(credentials=None))
    code, _, err = run("jobs", "show", "x")
    assert (code, err) == (
        2,
        "handoff: no AWS credentials: configure them (aws configure, AWS_PROFILE), or use --local\n",
    )


def test_a_stack_without_an_api_url_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = deployed_stack(Credentials("k", "s"))
    stack.outputs.clear()
    monkeypatch.setattr(stacks, "find", lambda *a: stack)
    code, _, err = run("batches", "show", "b")
    assert code == 2
    assert err == "handoff: stack 'handoff' has no output ApiUrl: is it a Handoff stack of this version?\n"


def test_anything_unexpected_is_one_line_never_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> stacks.Stack:
        raise KeyError("Outputs")

    monkeypatch.setattr(stacks, "find", broken)
    code, _, err = run("jobs", "list")
    assert (code, err) == (2, "handoff: failed (KeyError: 'Outputs')\n")


# --- events tail ----------------------------------------------------------------------------------------


class FakeQueue:
    """SQS receive/delete/change-visibility on a list of events (visibility is not modelled)."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.messages = [
            {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": json.dumps(e)} for i, e in enumerate(events)
        ]
        self.deleted: list[str] = []
        self.released: list[str] = []
        self.received = 0

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        batch = self.messages[self.received : self.received + kwargs["MaxNumberOfMessages"]]
        self.received += len(batch)
        return {"Messages": batch}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> None:
        self.deleted += [e["ReceiptHandle"] for e in Entries]

    @staticmethod
    def interrupted(**kwargs: Any) -> dict[str, Any]:
        raise KeyboardInterrupt  # Ctrl-C while the tail waits

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> None:
        self.released += [e["ReceiptHandle"] for e in Entries]


def event(reference_id: str, status: str, previous: str | None, at: str, version: int) -> dict[str, Any]:
    return {
        "source": "handoff",
        "detail-type": "Job Status Changed",
        "detail": {
            "reference_id": reference_id,
            "vendor": "playment",
            "status": status,
            "previous_status": previous,
            "at": at,
            "version": version,
        },
    }


def local_stack(queue: FakeQueue, events_queue: str = "http://127.0.0.1:1/q/local-job-events") -> stacks.Stack:
    return stacks.Stack(
        "local", "http://127.0.0.1:2/v1", {}, lambda service: queue, {"events_queue": events_queue}, "us-east-1"
    )


def test_events_tail_prints_one_jobs_events_in_order_and_leaves_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    queue = FakeQueue(
        [
            event("img-1", "SUBMITTED", "QUEUED", "2026-11-23T10:15:00.480Z", 2),
            event("img-2", "QUEUED", None, "2026-11-23T10:15:00.200Z", 1),
            event("img-1", "QUEUED", None, "2026-11-23T10:15:00.120Z", 1),
            *[event(f"other-{i}", "QUEUED", None, "2026-11-23T10:16:00.000Z", 1) for i in range(12)],
            event("img-1", "COMPLETED", "SUBMITTED", "2026-11-23T10:17:00.000Z", 3),
        ]
    )
    monkeypatch.setattr(stacks, "find", lambda *a: local_stack(queue))

    code, out, _ = run("events", "tail", "--reference-id", "img-1")

    assert code == 0
    assert [line.split()[-3:] for line in out.splitlines()] == [
        ["(new)", "->", "QUEUED"],
        ["QUEUED", "->", "SUBMITTED"],
        ["SUBMITTED", "->", "COMPLETED"],
    ]
    assert out.splitlines()[0].split()[:5] == ["2026-11-23T10:15:00.120Z", "Job", "Status", "Changed", "img-1"]
    assert sorted(queue.deleted) == ["r0", "r15", "r2"]  # taken: this job's
    assert len(queue.released) == 13  # handed back at once: the others'


def test_events_tail_json_is_one_event_per_line_as_the_bus_delivered_it(monkeypatch: pytest.MonkeyPatch) -> None:
    events = [event("img-1", "QUEUED", None, "2026-11-23T10:15:00.120Z", 1)]
    monkeypatch.setattr(stacks, "find", lambda *a: local_stack(FakeQueue(events)))

    code, out, _ = run("events", "tail", "--json")

    assert (code, [json.loads(line) for line in out.splitlines()]) == (0, events)


def test_events_tail_of_nothing_says_so_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stacks, "find", lambda *a: local_stack(FakeQueue([])))
    code, out, err = run("events", "tail")
    assert (code, out) == (0, "")
    assert err.startswith("no events on the local events queue")


def test_events_tail_is_local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stacks, "find", lambda *a: pytest.fail("no stack is looked for"))
    code, _, err = run("events", "tail", "--stack", "handoff-prod")
    assert code == 2
    assert err.startswith("handoff: `events tail` reads the local stack's events queue only; a deployed stack's")
    assert err.count("\n") == 1


def test_events_tail_without_event_capture_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stacks, "find", lambda *a: local_stack(FakeQueue([]), events_queue=""))
    code, _, err = run("events", "tail")
    assert (code, err.count("\n")) == (2, 1)
    assert "--no-event-capture" in err


# --- the operator tools, through the CLI -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "tool", "expected"),
    [
        (["replay", "raw/playment/x.json"], "replay", ["--key=raw/playment/x.json"]),
        (["--local", "replay", "--", "-odd"], "replay", ["--stack=local", "--key=-odd"]),
        (["redrive", "--rate", "5", "--stack", "h"], "redrive", ["--stack=h", "--rate=5"]),
        (["preflight", "--region", "eu-west-1"], "preflight", ["--region=eu-west-1"]),
    ],
)
def test_replay_redrive_and_preflight_run_the_tools_with_their_exit_codes(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], tool: str, expected: list[str]
) -> None:
    import importlib

    module = importlib.import_module(f"ops.{tool}")
    given: list[list[str]] = []
    monkeypatch.setattr(module, "main", lambda argv, out: given.append(argv) or 1)

    assert run(*argv)[0] == 1  # the tool's own code (preflight: a check FAILED)
    (tool_argv,) = given
    assert [a for a in tool_argv if not a.startswith("--local-state=")] == expected


# --- the launcher `make install` writes -------------------------------------------------------------------


def test_the_launcher_runs_this_checkouts_cli_from_anywhere(tmp_path: Path) -> None:
    import sys

    path = tmp_path / "venv" / "bin" / "handoff"
    launcher.write(path, sys.executable)
    # a folder where the operator stands that holds an `ops` package of its own
    (tmp_path / "elsewhere" / "ops").mkdir(parents=True)
    (tmp_path / "elsewhere" / "ops" / "__init__.py").write_text("raise SystemExit('the wrong ops')")
    (tmp_path / "elsewhere" / "ops" / "cli.py").write_text("raise SystemExit('the wrong ops')")

    done = subprocess.run(
        [str(path), "jobs", "list", "--local", "--local-state", str(tmp_path / "none.json")],
        cwd=tmp_path / "elsewhere",
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )

    assert os.access(path, os.X_OK)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("handoff: no local stack is running"), done.stderr


def test_events_tail_follow_prints_events_as_they_come_until_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    queue = FakeQueue([event("img-1", "QUEUED", None, "2026-11-23T10:15:00.120Z", 1)])
    receives = iter([queue.receive_message, lambda **kw: {"Messages": []}, FakeQueue.interrupted])
    monkeypatch.setattr(queue, "receive_message", lambda **kw: next(receives)(**kw))
    monkeypatch.setattr(stacks, "find", lambda *a: local_stack(queue))

    code, out, _ = run("events", "tail", "--follow")

    assert code == 0
    assert out.splitlines()[0].split()[-3:] == ["(new)", "->", "QUEUED"]
    assert queue.deleted == ["r0"]  # taken as soon as it was shown, before the next wait
