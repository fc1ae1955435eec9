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

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from local.iam import Grant, check, recorded_calls
from local.process import StackProcess
from tests.integration.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
# A granted action on a resource that the flow above does not use is either removed from template.yaml or
# listed here, for exactly that resource ({LogicalId} for the local stack's physical name), with why the
# function needs it: a grant moved to another resource, or a new one, needs its own reason.
ARN = "arn:aws:{}:us-east-1:123456789012:{}"
NEEDED_THOUGH_NOT_USED_HERE = {
    (
        "CallbackRetryFunction",
        "dynamodb:GetItem",
        ARN.format("dynamodb", "table/{JobsTable}"),
    ): "an archived Playment callback whose result is a URL",
    (
        "CallbackRetryFunction",
        "s3:PutObject",
        "arn:aws:s3:::{ResultsBucket}/deliveries/*",
    ): "a deferred callback's large result or delivery",
    (
        "CallbackRetryFunction",
        "s3:PutObject",
        "arn:aws:s3:::{ResultsBucket}/results/*",
    ): "a deferred callback's large result or delivery",
    (
        "CallbackRetryFunction",
        "secretsmanager:GetSecretValue",
        "{PlaymentSecret}",
    ): "each vendor's key, for the vendor of the callback",
    (
        "CallbackRetryFunction",
        "secretsmanager:GetSecretValue",
        "{ScaleSecret}",
    ): "each vendor's key, for the vendor of the callback",
    (
        "CallbackRetryFunction",
        "secretsmanager:GetSecretValue",
        "{TextkingSecret}",
    ): "each vendor's key, for the vendor of the callback",
    ("CallbackRetryFunction", "secretsmanager:PutSecretValue", "{TextkingSecret}"): "a refreshed TEXTKING token",
    (
        "CallbackRetryFunction",
        "sqs:ChangeMessageVisibility",
        ARN.format("sqs", "{CallbackRetryQueue}"),
    ): "a callback still deferred is retried later",
    (
        "EventPublisherFunction",
        "dynamodb:GetItem",
        ARN.format("dynamodb", "table/{BatchesTable}"),
    ): "the batch of a job that changed",
    (
        "EventPublisherFunction",
        "dynamodb:GetItem",
        ARN.format("dynamodb", "table/{JobsTable}"),
    ): "the batch of a job that changed",
    (
        "EventPublisherFunction",
        "dynamodb:Query",
        ARN.format("dynamodb", "table/{JobsTable}/index/batch_ref-index"),
    ): "a batch's jobs (batch_ref-index)",
    (
        "EventPublisherFunction",
        "dynamodb:UpdateItem",
        ARN.format("dynamodb", "table/{BatchesTable}"),
    ): "a batch's counts and its one `Batch Completed`",
    (
        "EventPublisherFunction",
        "sqs:SendMessage",
        ARN.format("sqs", "{EventsDLQ}"),
    ): "a stream batch never published goes to EventsDLQ",
    (
        "PlaymentCallbackFunction",
        "dynamodb:GetItem",
        ARN.format("dynamodb", "table/{JobsTable}"),
    ): "a result given as a URL: the job is read to fetch it",
    (
        "PlaymentCallbackFunction",
        "sqs:SendMessage",
        ARN.format("sqs", "{CallbackRetryQueue}"),
    ): "a callback that cannot be applied now is deferred",
    (
        "ReconcilerFunction",
        "s3:PutObject",
        "arn:aws:s3:::{ResultsBucket}/deliveries/*",
    ): "a result or translation fetched by the reconciler, too large for the item",
    (
        "ReconcilerFunction",
        "s3:PutObject",
        "arn:aws:s3:::{ResultsBucket}/results/*",
    ): "a result or translation fetched by the reconciler, too large for the item",
    ("ReconcilerFunction", "secretsmanager:PutSecretValue", "{TextkingSecret}"): "a refreshed TEXTKING token",
    (
        "ReconcilerFunction",
        "sqs:SendMessage",
        ARN.format("sqs", "{SubmissionQueue}"),
    ): "a QUEUED job whose queue message was lost is enqueued again",
    (
        "ScaleCallbackFunction",
        "sqs:SendMessage",
        ARN.format("sqs", "{CallbackRetryQueue}"),
    ): "a callback that cannot be applied now is deferred",
    (
        "SubmissionWorkerFunction",
        "s3:GetObject",
        "arn:aws:s3:::{DocumentSourceBucket}/*",
    ): "TEXTKING documents given as s3:// URIs, on a retry",
    ("SubmissionWorkerFunction", "secretsmanager:PutSecretValue", "{TextkingSecret}"): "a refreshed TEXTKING token",
    (
        "SubmissionWorkerFunction",
        "sqs:ChangeMessageVisibility",
        ARN.format("sqs", "{SubmissionQueue}"),
    ): "a vendor answering 429/5xx: the job waits",
    (
        "SubmissionWorkerFunction",
        "ssm:GetParameter",
        ARN.format("ssm", "parameter/{AWS::StackName}/scale-callback-url"),
    ): "callback URLs from SSM on AWS; given directly locally",
    (
        "SubmissionWorkerFunction",
        "ssm:GetParameter",
        ARN.format("ssm", "parameter/{AWS::StackName}/textking-callback-url"),
    ): "callback URLs from SSM on AWS; given directly locally",
    (
        "SubmitJobFunction",
        "dynamodb:DeleteItem",
        ARN.format("dynamodb", "table/{BatchesTable}"),
    ): "a batch whose creation at the vendor failed is removed",
    (
        "SubmitJobFunction",
        "dynamodb:GetItem",
        ARN.format("dynamodb", "table/{BatchesTable}"),
    ): "batches: GET /batches/{batch_ref}",
    (
        "SubmitJobFunction",
        "dynamodb:GetItem",
        ARN.format("dynamodb", "table/{JobsTable}"),
    ): "POST /jobs/{reference_id}/retry, /cancel and /order read the job first",
    (
        "SubmitJobFunction",
        "dynamodb:PutItem",
        ARN.format("dynamodb", "table/{BatchesTable}"),
    ): "batches (POST /batches) as well as jobs",
    (
        "SubmitJobFunction",
        "dynamodb:Query",
        ARN.format("dynamodb", "table/{JobsTable}/index/batch_ref-index"),
    ): "a batch's jobs (batch_ref-index), closing or listing a batch",
    (
        "SubmitJobFunction",
        "dynamodb:UpdateItem",
        ARN.format("dynamodb", "table/{BatchesTable}"),
    ): "batches: closing, counting",
    (
        "SubmitJobFunction",
        "events:PutEvents",
        ARN.format("events", "event-bus/{AWS::StackName}"),
    ): "`Batch Completed` when a batch is closed with every job final",
    (
        "SubmitJobFunction",
        "secretsmanager:PutSecretValue",
        "{TextkingSecret}",
    ): "a refreshed TEXTKING token (README: the refresh grant)",
    (
        "SubmitJobFunction",
        "ssm:GetParameter",
        ARN.format("ssm", "parameter/{AWS::StackName}/scale-callback-url"),
    ): "callback URLs from SSM on AWS; the local stack gives them directly",
    (
        "SubmitJobFunction",
        "ssm:GetParameter",
        ARN.format("ssm", "parameter/{AWS::StackName}/textking-callback-url"),
    ): "callback URLs from SSM on AWS; the local stack gives them directly",
    ("TextkingCallbackFunction", "secretsmanager:PutSecretValue", "{TextkingSecret}"): "a refreshed TEXTKING token",
    (
        "TextkingCallbackFunction",
        "sqs:SendMessage",
        ARN.format("sqs", "{CallbackRetryQueue}"),
    ): "a callback that cannot be applied now is deferred",
    (
        "PlaymentCallbackFunction",
        "s3:PutObject",
        "arn:aws:s3:::{ResultsBucket}/results/playment/*",
    ): "a result too large for the item (results/playment/)",
    (
        "ScaleCallbackFunction",
        "s3:PutObject",
        "arn:aws:s3:::{ResultsBucket}/results/scale/*",
    ): "a result too large for the item (results/scale/)",
    (
        "GetJobFunction",
        "dynamodb:Query",
        ARN.format("dynamodb", "table/{JobsTable}/index/batch_ref-index"),
    ): "GET /jobs?batch_ref= of a batch that exists (listing by index)",
    # Which vendors' jobs the worker and the reconciler meet depends on timing: each key may go unused.
    **{
        (function, "secretsmanager:GetSecretValue", f"{{{vendor}Secret}}"): "each vendor's key, for its jobs"
        for function in ("ReconcilerFunction", "SubmissionWorkerFunction")
        for vendor in ("Playment", "Scale", "Textking")
    },
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
    # a TEXTKING document given as an s3:// URI in the caller's bucket (SubmitJob reads it)
    stack.aws("s3").put_object(Bucket=stack.urls["document_bucket"], Key="docs/lp.txt", Body=b"Hello from S3.")
    jobs.append(
        {
            **jobs[2],
            "reference_id": "lp-doc-s3",
            "document": {"filename": "lp.txt", "s3_uri": f"s3://{stack.urls['document_bucket']}/docs/lp.txt"},
        }
    )
    for job in jobs:
        answer = stack.call("POST", "/jobs", job)
        assert answer.status_code in {201, 202}, answer.text
    bulk = stack.call("POST", "/jobs", {"jobs": [{**jobs[0], "reference_id": "lp-img-2"}]})
    assert bulk.status_code == 202, bulk.text
    waiting = {
        "lp-img-1": "COMPLETED",
        "lp-img-2": "COMPLETED",
        "lp-scale-1": "COMPLETED",
        "lp-doc-1": "DELIVERED",
        "lp-doc-s3": "DELIVERED",
    }
    seen = wait_until(stack, waiting)
    sandbox = stack.urls["textking_sandbox"].removesuffix("/v1")
    accepted = requests.post(f"{sandbox}/_sandbox/job/{seen['lp-doc-1']['vendor_job_id']}/accept", timeout=10)
    assert accepted.status_code == 200, accepted.text
    wait_until(stack, {"lp-doc-1": "COMPLETED"})
    for query in ("status=COMPLETED", "vendor=playment", "batch_ref=lp-none"):  # GetJob's listing indexes
        listed = stack.call("GET", f"/jobs?{query}")
        assert listed.status_code == 200, listed.text
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
    # a Playment job whose callbacks are lost: only the reconciler can finish it (a lookup)
    playment = stack.urls["playment_sandbox"]
    assert requests.post(f"{playment}/_sandbox/knobs", json={"drop_rate": 1}, timeout=10).status_code == 200
    answer = stack.call("POST", "/jobs", {**jobs[0], "reference_id": "lp-img-quiet"})
    assert answer.status_code in {201, 202}, answer.text
    finished = wait_until(stack, {"lp-img-quiet": "COMPLETED"})["lp-img-quiet"]
    assert finished["history"][-1]["source"] == "reconciler", finished["history"]


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
    # and every granted action on every resource is used, or its reason is given above for exactly
    # that action on exactly that resource (a grant moved to another resource needs a new reason)
    named = logical_names(stack)
    unused = sorted({(g.function, g.action, named(r)) for g in verdict.unused for r in g.resources})
    print(f"{verdict.calls} calls checked; granted and not used by this flow:")
    for grant in unused:
        print(f"  {' '.join(grant)}: {NEEDED_THOUGH_NOT_USED_HERE.get(grant, 'NOT JUSTIFIED')}")
    unjustified = [grant for grant in unused if grant not in NEEDED_THOUGH_NOT_USED_HERE]
    assert unjustified == [], "granted, never used, no reason given: remove from template.yaml or justify:\n" + (
        "\n".join(f"  {grant}" for grant in unjustified)
    )

    endpoint = stack.urls["aws_endpoint"]

    # and when anyone who reaches the port asks moto to stop enforcing
    answer = requests.post(f"{endpoint}/moto-api/reset-auth", data=b"1000000", timeout=10)

    # then it is refused, and a function's credentials still reach only what its role allows
    assert answer.status_code == 403, answer.text
    credentials = stack.urls["function_environments"]["GetJobFunction"]
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials["AWS_SESSION_TOKEN"],
    )
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(TableName=stack.urls["jobs_table"], Item={"reference_id": {"S": "lp-forged"}})
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "because no identity-based policy allows the action" in str(refused.value)


def logical_names(stack: Stack) -> Any:
    """An ARN with the local stack's physical names written as {LogicalId} (as the template names
    them), so that a reason given for a grant holds for that resource only, on any local stack."""
    physical: dict[str, str] = {stack.urls["document_bucket"]: "{DocumentSourceBucket}"}
    for logical, value in stack.urls["resources"].items():
        name = value.rsplit("/", 1)[-1] if value.startswith("http") else value  # a queue's id is its URL
        physical[name] = f"{{{logical}}}"
    physical[stack.urls["stack_name"]] = "{AWS::StackName}"  # names derived from it (the bus's is it)

    def named(arn: str) -> str:
        for name in sorted(physical, key=len, reverse=True):
            arn = arn.replace(name, physical[name])
        return arn

    return named


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
        assert any(line.startswith("[ERROR] GetJobFunction") for line in stack.output) or any(
            '"function_name":"GetJobFunction"' in line for line in refused
        )
        assert "dynamodb:GetItem" in refused[0]
        assert table in refused[0]
        # and the check finds the missing permission from the recorded calls, naming all three
        verdict = check(policies, recorded_calls(folder))
        assert ("GetJobFunction", "dynamodb:GetItem", table) in verdict.denied
    finally:
        process.stop()


def test_unused_grants_are_reported_per_action_and_resource() -> None:
    # given a role granting two actions on two prefixes, of which a call uses one action on one prefix
    statement = {
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject"],
        "Resource": ["arn:aws:s3:::b/raw/*", "arn:aws:s3:::b/results/*"],
    }
    calls = [{"function": "F", "action": "s3:GetObject", "resources": ["arn:aws:s3:::b/raw/k"]}]

    # when checked
    verdict = check({"F": [{"Statement": [statement]}]}, calls)

    # then the call is allowed, and each other action on each resource is reported unused
    assert verdict.denied == []
    assert verdict.unused == [
        Grant("F", "s3:GetObject", ("arn:aws:s3:::b/results/*",)),
        Grant("F", "s3:PutObject", ("arn:aws:s3:::b/raw/*",)),
        Grant("F", "s3:PutObject", ("arn:aws:s3:::b/results/*",)),
    ]


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
