"""Least privilege, checked locally (README "Least privilege, checked locally").

The local stack runs each function with its own role's credentials and its moto server refuses what
the role does not allow; on top of that every function's AWS calls are recorded here and each is
evaluated against that function's policies by moto's IAM policy evaluator (local/iam.py check),
which also lists the granted actions no call used. A flow that makes every function
run once drives it: three vendors' jobs, a bulk one for the worker, the callbacks the sandboxes
send, a customer's acceptance, a deferred callback applied again, a read, the reconciler's rounds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.iam import Grant, check, recorded_calls
from local.process import StackProcess
from tests.integration.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
# A granted action the flow above does not use is either removed from template.yaml or listed here,
# with why the function needs it: (function, action) -> the reason.
NEEDED_THOUGH_NOT_USED_HERE = {
    ("SubmitJobFunction", "ssm:GetParameter"): "callback URLs from SSM on AWS; the local stack gives them directly",
    ("SubmissionWorkerFunction", "ssm:GetParameter"): "callback URLs from SSM on AWS; given directly locally",
    ("SubmitJobFunction", "s3:GetObject"): "TEXTKING documents given as s3:// URIs (DocumentSourceBucket)",
    ("SubmissionWorkerFunction", "s3:GetObject"): "TEXTKING documents given as s3:// URIs, on a retry",
    ("SubmitJobFunction", "secretsmanager:PutSecretValue"): "a refreshed TEXTKING token (README: the refresh grant)",
    ("SubmissionWorkerFunction", "secretsmanager:PutSecretValue"): "a refreshed TEXTKING token",
    ("ReconcilerFunction", "secretsmanager:PutSecretValue"): "a refreshed TEXTKING token",
    ("TextkingCallbackFunction", "secretsmanager:PutSecretValue"): "a refreshed TEXTKING token",
    ("CallbackRetryFunction", "secretsmanager:PutSecretValue"): "a refreshed TEXTKING token",
    ("SubmitJobFunction", "dynamodb:DeleteItem"): "a batch whose creation at the vendor failed is removed",
    ("SubmitJobFunction", "events:PutEvents"): "`Batch Completed` when a batch is closed with every job final",
    ("SubmitJobFunction", "dynamodb:PutItem"): "batches (POST /batches) as well as jobs",
    ("SubmitJobFunction", "dynamodb:UpdateItem"): "batches: closing, counting",
    ("SubmitJobFunction", "dynamodb:GetItem"): "batches: GET /batches/{batch_ref}",
    ("GetJobFunction", "dynamodb:Query"): "GET /jobs?status=, ?vendor=, ?batch_ref= (listing by index)",
    ("ReconcilerFunction", "s3:PutObject"): "a result or translation fetched by the reconciler, too large for the item",
    ("ReconcilerFunction", "sqs:SendMessage"): "a QUEUED job whose queue message was lost is enqueued again",
    ("ReconcilerFunction", "dynamodb:Query"): "the cleanup index (cleanup_due-index)",
    (
        "ReconcilerFunction",
        "secretsmanager:GetSecretValue",
    ): "each vendor's key, when it has a quiet job of that vendor",
    ("CallbackRetryFunction", "s3:PutObject"): "a deferred callback's large result or delivery",
    ("CallbackRetryFunction", "sqs:ChangeMessageVisibility"): "a callback still deferred is retried later",
    ("CallbackRetryFunction", "secretsmanager:GetSecretValue"): "each vendor's key, for the vendor of the callback",
    ("SubmissionWorkerFunction", "sqs:ChangeMessageVisibility"): "a vendor answering 429/5xx: the job waits",
    ("SubmissionWorkerFunction", "secretsmanager:GetSecretValue"): "each vendor's key, for the vendors of its jobs",
    ("PlaymentCallbackFunction", "sqs:SendMessage"): "a callback that cannot be applied now is deferred",
    ("TextkingCallbackFunction", "sqs:SendMessage"): "a callback that cannot be applied now is deferred",
    ("ScaleCallbackFunction", "sqs:SendMessage"): "a callback that cannot be applied now is deferred",
    ("PlaymentCallbackFunction", "s3:PutObject"): "a result too large for the item (results/playment/)",
    ("ScaleCallbackFunction", "s3:PutObject"): "a result too large for the item (results/scale/)",
    ("PlaymentCallbackFunction", "dynamodb:GetItem"): "a result given as a URL: the job is read to fetch it",
    ("CallbackRetryFunction", "dynamodb:GetItem"): "an archived Playment callback whose result is a URL",
    ("SubmitJobFunction", "dynamodb:Query"): "a batch's jobs (batch_ref-index), closing or listing a batch",
    ("EventPublisherFunction", "sqs:SendMessage"): "a stream batch never published goes to EventsDLQ",
    ("EventPublisherFunction", "dynamodb:UpdateItem"): "a batch's counts and its one `Batch Completed`",
    ("EventPublisherFunction", "dynamodb:GetItem"): "the batch of a job that changed",
    ("EventPublisherFunction", "dynamodb:Query"): "a batch's jobs (batch_ref-index)",
}


def every_function_once(stack: Stack) -> None:
    """Each function runs at least once: SubmitJob (three vendors, a bulk), SubmissionWorker (the
    bulk's job), the three callback functions (the sandboxes call back; the customer accepts the
    TEXTKING translation), EventPublisher (every change), GetJob, CallbackRetry (an archived
    callback applied again) and the Reconciler (its schedule)."""
    jobs = [
        {"vendor": "playment", "reference_id": "lp-img-1", "data": {"image_url": "https://example.com/1.jpg"}},
        {"vendor": "scale", "reference_id": "lp-scale-1", "project": "p", "attachment": "https://example.com/2.jpg"},
        {
            "vendor": "textking",
            "reference_id": "lp-doc-1",
            "name": "Least privilege",
            "source_language": "en",
            "target_language": "de",
            "document": {"filename": "lp.txt", "text": "Hello."},
        },
    ]
    for job in jobs:
        answer = stack.call("POST", "/jobs", job)
        assert answer.status_code in {201, 202}, answer.text
    bulk = stack.call("POST", "/jobs", {"jobs": [{**jobs[0], "reference_id": "lp-img-2"}]})
    assert bulk.status_code == 202, bulk.text
    waiting = {"lp-img-1": "COMPLETED", "lp-img-2": "COMPLETED", "lp-scale-1": "COMPLETED", "lp-doc-1": "DELIVERED"}
    seen = wait_until(stack, waiting)
    sandbox = stack.urls["textking_sandbox"].removesuffix("/v1")
    accepted = requests.post(f"{sandbox}/_sandbox/job/{seen['lp-doc-1']['vendor_job_id']}/accept", timeout=10)
    assert accepted.status_code == 200, accepted.text
    wait_until(stack, {"lp-doc-1": "COMPLETED"})
    # a Playment callback the sandbox sent, archived, applied again as CallbackRetry applies one
    s3, sqs = stack.aws("s3"), stack.aws("sqs")
    archived = s3.list_objects_v2(Bucket=stack.urls["results_bucket"], Prefix="raw/playment/")["Contents"][0]["Key"]
    sqs.send_message(
        QueueUrl=stack.urls["callback_retry_queue"],
        MessageBody=json.dumps({"vendor": "playment", "archive_key": archived}),
    )
    deadline = time.monotonic() + 20
    while queued(sqs, stack.urls["callback_retry_queue"]):
        assert time.monotonic() < deadline, "the callback retry was not applied"
        time.sleep(0.5)


def queued(sqs: Any, url: str) -> int:
    """Messages in the queue, visible or being worked on."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def wait_until(stack: Stack, statuses: dict[str, str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    jobs: dict[str, dict[str, Any]] = {}
    while True:
        for reference_id in statuses:
            answer = stack.call("GET", f"/jobs/{reference_id}")
            assert answer.status_code == 200, answer.text
            jobs[reference_id] = answer.json()
        if all(jobs[r]["status"] == s for r, s in statuses.items()):
            return jobs
        assert time.monotonic() < deadline, {r: j["status"] for r, j in jobs.items()}
        time.sleep(0.5)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    folder = tmp_path_factory.mktemp("aws-calls")
    process = StackProcess("--record-aws-calls", str(folder), "--reconcile-after", "1", "--log-level", "WARNING")
    stack = Stack(process.urls, process.output)
    try:
        every_function_once(stack)
        time.sleep(6)  # a reconciler round after all that (every 5 s)
        yield stack, folder
    finally:
        process.stop()


def test_every_call_each_function_makes_is_allowed_by_its_role(run: tuple[Stack, Path]) -> None:
    # given every function run at least once with its role's credentials, each AWS call recorded
    stack, folder = run
    policies = stack.urls["function_policies"]
    calls = recorded_calls(folder)
    assert {call["function"] for call in calls} == set(policies), "a function never ran"

    # when each call is evaluated against its function's policies
    verdict = check(policies, calls)

    # then none needed what the role does not allow, and moto refused none either
    assert verdict.denied == [], "\n".join(f"{f}: {a} on {r}" for f, a, r in verdict.denied)
    assert not [line for line in stack.output if "AccessDenied" in line]
    unused = sorted({(g.function, g.action) for g in verdict.unused})
    print(f"{verdict.calls} calls checked; granted and not used by this flow:")
    for function, action in unused:
        print(f"  {function} {action}: {NEEDED_THOUGH_NOT_USED_HERE.get((function, action), 'NOT JUSTIFIED')}")
    # and every granted action is used, or its reason is given above
    unjustified = [pair for pair in unused if pair not in NEEDED_THOUGH_NOT_USED_HERE]
    assert unjustified == [], (
        f"granted, never used, no reason given: remove from template.yaml or justify: {unjustified}"
    )


def test_a_permission_removed_from_the_template_is_refused_and_found(tmp_path: Path) -> None:
    # given template.yaml with GetJob's dynamodb:GetItem taken out (a copy; the roles come from it)
    template = (ROOT / "template.yaml").read_text()
    granted = "".join(
        f"{line}\n"
        for line in (
            "            - Effect: Allow",
            "              Action: dynamodb:GetItem",
            "              Resource: !GetAtt JobsTable.Arn",
        )
    )
    start = template.index("\n  GetJobFunction:")
    at = template.index(granted, start)
    assert at < template.index("\n  GetJobLogGroup:", start), "the statement is GetJob's own"
    copy = tmp_path / "template.yaml"
    copy.write_text(template[:at] + template[at + len(granted) :])
    folder = tmp_path / "calls"
    folder.mkdir()
    process = StackProcess("--roles-template", str(copy), "--record-aws-calls", str(folder), "--log-level", "INFO")
    try:
        stack = Stack(process.urls, process.output)

        # when a job is read
        answer = stack.call("GET", "/jobs/any-job")

        # then the local AWS refuses GetJob's call (the function answers its internal error), and
        # its log says what was refused
        assert answer.status_code == 500, answer.text
        assert answer.json()["error"]["code"] == "internal_error"
        policies = stack.urls["function_policies"]
        table = f"arn:aws:dynamodb:us-east-1:123456789012:table/{stack.urls['jobs_table']}"
        time.sleep(0.2)
        refused = [line for line in stack.output if "AccessDeniedException" in line]
        assert refused, "".join(stack.output[-20:])
        assert "dynamodb:GetItem" in refused[0]
        assert table in refused[0]
        # and the check finds the missing permission from the recorded calls, naming all three
        verdict = check(policies, recorded_calls(folder))
        assert ("GetJobFunction", "dynamodb:GetItem", table) in verdict.denied
    finally:
        process.stop()


def test_unused_grants_are_reported_per_statement() -> None:
    # given a role granting two actions, of which a call uses one
    policies = {
        "F": [
            {
                "Statement": [
                    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::b/*"}
                ]
            }
        ]
    }
    calls = [{"function": "F", "action": "s3:GetObject", "resources": ["arn:aws:s3:::b/k"]}]

    # when checked
    verdict = check(policies, calls)

    # then the call is allowed and the other action is reported unused
    assert verdict.denied == []
    assert verdict.unused == [Grant("F", "s3:PutObject", ("arn:aws:s3:::b/*",))]


def test_a_call_outside_the_roles_resources_or_under_an_explicit_deny_is_refused() -> None:
    # given a role allowing one table's items, wildcard included, and denying one of its indexes
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/jobs"
    policies = {
        "F": [
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "dynamodb:*Item", "Resource": [table, f"{table}/index/*"]},
                    {"Effect": "Deny", "Action": "dynamodb:GetItem", "Resource": f"{table}/index/secret"},
                ]
            }
        ]
    }
    calls = [
        {"function": "F", "action": "dynamodb:GetItem", "resources": [table]},
        {"function": "F", "action": "dynamodb:GetItem", "resources": [f"{table}/index/secret"]},
        {"function": "F", "action": "dynamodb:GetItem", "resources": [f"{table}-other"]},
        {"function": "F", "action": "dynamodb:Query", "resources": [table]},
        {"function": "G", "action": "dynamodb:GetItem", "resources": [table]},
    ]

    # when checked
    verdict = check(policies, calls)

    # then only the first is allowed: the denied index, another table, another action, another function are not
    assert verdict.denied == sorted(
        [
            ("F", "dynamodb:GetItem", f"{table}/index/secret"),
            ("F", "dynamodb:GetItem", f"{table}-other"),
            ("F", "dynamodb:Query", table),
            ("G", "dynamodb:GetItem", table),
        ]
    )


def test_a_statement_the_evaluator_cannot_judge_is_refused_not_guessed() -> None:
    # given a role whose statement carries a Condition
    statement = {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1"}},
    }

    # when checked, then the check says it cannot judge it
    with pytest.raises(ValueError, match="Condition"):
        check({"F": [{"Statement": [statement]}]}, [])
