"""Least privilege, checked locally: each function's role as the template writes it, its AWS calls
recorded, and each call checked against the role (README "Least privilege, checked locally").

The local stack creates every function's role in moto from the translated template and runs the
function with that role's credentials (local/aws.py), and its moto server refuses what the role
does not allow (local/moto_server.py, iam_enforced). What moto cannot judge (conditions; a resource
it does not work out) is closed by the recorder: a function container asked to
(RECORD_AWS_CALLS_ENV) writes down every AWS operation it calls, with its IAM action and the ARNs
of the resources it names, and `check` evaluates each against the function's statements with
moto's IAM policy evaluator (wildcards, NotAction, explicit deny; a statement with a condition is
refused, not guessed at: the functions' roles have none), and lists the granted actions no call used.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account (local/aws.py)
# A function container given this variable (a folder) records each AWS call it makes there.
RECORD_AWS_CALLS_ENV = "HANDOFF_RECORD_AWS_CALLS"
# The operations whose IAM action is not "<service>:<operation>" (the Service Authorization Reference):
# what moto checks and what the recorder writes down use this one table.
IAM_ACTION_OF_OPERATION = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "s3:HeadObject": "s3:GetObject",
    "s3:ListObjectsV2": "s3:ListBucket",
}
# The operator (the stack itself, its pollers, the tests, the operator tools) signs with the
# local access key; on the local AWS it is the account's administrator.
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def iam_action(service: str, operation: str) -> str:
    """The IAM action an operation of `service` (its signing name, which is its IAM prefix for
    every service here) needs."""
    action = f"{service}:{operation}"
    return IAM_ACTION_OF_OPERATION.get(action, action)


def resource_arns(service: str, params: dict[str, Any], region: str = REGION, account: str = ACCOUNT_ID) -> list[str]:
    """The ARNs of what a call names, as IAM authorizes it (["*"] for a call on no resource)."""
    if service == "dynamodb" and "TableName" in params:
        table = str(params["TableName"])
        arn = table if table.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{table}"
        return [f"{arn}/index/{params['IndexName']}" if params.get("IndexName") else arn]
    if service == "sqs" and "QueueUrl" in params:
        parts = str(params["QueueUrl"]).rstrip("/").split("/")
        return [f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}"]
    if service == "s3" and "Bucket" in params:
        return [f"arn:aws:s3:::{params['Bucket']}" + (f"/{params['Key']}" if "Key" in params else "")]
    if service == "secretsmanager" and "SecretId" in params:
        secret = str(params["SecretId"])
        return [secret if secret.startswith("arn:") else f"arn:aws:secretsmanager:{region}:{account}:secret:{secret}"]
    if service == "events" and "Entries" in params:
        buses = {str(entry.get("EventBusName") or "default") for entry in params["Entries"]}
        return sorted(b if b.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{b}" for b in buses)
    if service == "ssm" and "Name" in params:
        return [f"arn:aws:ssm:{region}:{account}:parameter/{str(params['Name']).lstrip('/')}"]
    return ["*"]


# -- the recorder (in a function container) ------------------------------------------------------------


def record_aws_calls(folder: str, function: str) -> None:
    """From now on, every botocore session made in this process (boto3's default one, and the
    one Powertools' parameters build for themselves) records each call its clients make: one JSON
    line per call in `<folder>/<function>-<pid>.jsonl`. A botocore event hook, registered on each
    session as it is made, so it is there before any client is built from it."""
    import botocore.session

    path = Path(folder) / f"{function}-{os.getpid()}.jsonl"
    lock = threading.Lock()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.signing_name
        line = {
            "function": function,
            "service": service,
            "operation": model.name,
            "action": iam_action(service, model.name),
            "resources": resource_arns(service, params),
        }
        with lock, path.open("a") as out:
            out.write(json.dumps(line) + "\n")

    made = botocore.session.Session.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self.register("before-parameter-build", record, unique_id="handoff-record-aws-calls")

    botocore.session.Session.__init__ = init


def recorded_calls(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]


# -- the check -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """One action one statement of a function's role allows, on its resources."""

    function: str
    action: str
    resources: tuple[str, ...]


@dataclass
class Verdict:
    denied: list[tuple[str, str, str]]  # (function, action, resource) a call needed and the role does not allow
    unused: list[Grant]  # allowed by the role, and no recorded call of the function used it
    calls: int


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(policies: dict[str, list[dict[str, Any]]]) -> list[Grant]:
    """Each action each Allow statement grants, on each of its resources: one Grant apiece, so that a
    resource no call used is reported even when the statement's other resources were used."""
    return [
        Grant(function, action, (str(resource),))
        for function, documents in policies.items()
        for document in documents
        for statement in _listed(document["Statement"])
        if statement["Effect"] == "Allow"
        for action in _listed(statement.get("Action", []))
        for resource in _listed(statement.get("Resource", "*"))
    ]


def check(policies: dict[str, list[dict[str, Any]]], calls: Iterable[dict[str, Any]]) -> Verdict:
    """Each recorded call against its function's policies, as IAM evaluates an identity's policies
    (moto's evaluator, the one its server enforces with: an explicit Deny wins, else an Allow must
    match action and resource, `*` wildcards included); and each granted action that no call of
    that function matched. Raises ValueError for a statement it cannot judge (a Condition, a
    NotResource): the check would otherwise pass what IAM might refuse."""
    from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, PermissionResult

    for function, documents in policies.items():
        for document in documents:
            for statement in _listed(document["Statement"]):
                unjudged = sorted({"Condition", "NotResource", "NotPrincipal"} & set(statement))
                if unjudged:
                    raise ValueError(f"{function}: a statement with {', '.join(unjudged)}: {json.dumps(statement)}")
    evaluators = {function: [IAMPolicy(json.dumps(d)) for d in documents] for function, documents in policies.items()}

    def allowed(function: str, action: str, resource: str) -> bool:
        results = [policy.is_action_permitted(action, resource) for policy in evaluators.get(function, [])]
        return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results

    denied: list[tuple[str, str, str]] = []
    used: list[tuple[str, str, str]] = []
    count = 0
    for call in calls:
        count += 1
        function = call["function"]
        for resource in call["resources"]:
            if not allowed(function, call["action"], resource):
                denied.append((function, call["action"], resource))
            used.append((function, call["action"], resource))
    unused = []
    for grant in grants(policies):
        statement = IAMPolicyStatement({"Effect": "Allow", "Action": grant.action, "Resource": list(grant.resources)})
        if not any(
            function == grant.function and statement.is_action_permitted(action, resource) is PermissionResult.PERMITTED
            for function, action, resource in used
        ):
            unused.append(grant)
    return Verdict(sorted(set(denied)), unused, count)


def main(argv: list[str] | None = None) -> int:
    """`python -m local.iam FOLDER`: the check, on the calls a running local stack recorded into
    FOLDER (`--record-aws-calls FOLDER`) against its roles (read from its state file). Exit 1 when a
    call was not allowed, 2 when there is nothing to check."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m local.iam", description=main.__doc__)
    parser.add_argument("folder", type=Path, help="the folder given to --record-aws-calls")
    parser.add_argument(
        "--state-file",
        type=Path,
        default=Path(__file__).resolve().parent.parent / ".local-stack.json",
        help="the running stack's state file (default: .local-stack.json in the repository)",
    )
    args = parser.parse_args(argv)
    try:
        policies = json.loads(args.state_file.read_text())["function_policies"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"local.iam: cannot read the stack's roles from {args.state_file}: {exc!r}", file=sys.stderr)
        return 2
    calls = recorded_calls(args.folder) if args.folder.is_dir() else []
    if not calls:
        said = f"no recorded calls in {args.folder} (start the stack with --record-aws-calls)"
        print(f"local.iam: {said}", file=sys.stderr)
        return 2
    verdict = check(policies, calls)
    print(f"{verdict.calls} calls checked; {len(verdict.denied)} not allowed by the function's role")
    for function, action, resource in verdict.denied:
        print(f"  NOT ALLOWED  {function}  {action}  {resource}")
    for grant in verdict.unused:
        print(f"  unused       {grant.function}  {grant.action}  {', '.join(grant.resources)}")
    return 1 if verdict.denied else 0


if __name__ == "__main__":
    raise SystemExit(main())
