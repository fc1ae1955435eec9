"""Local AWS: moto as a server process on 127.0.0.1, with the stack built from template.yaml itself.

The SAM template is translated offline (aws-sam-translator, as `sam deploy` would) and the plain
CloudFormation is created as a stack in moto, so tables, indexes, queues, the dead-letter wiring
and the bucket are exactly what deploys. What moto cannot build is left out and stood in for here
(../shared/notes/local-aws.md §3): API Gateway and Lambda (the local API and pollers run the
handlers), the schedule, alarms and log groups; the functions' roles are created from the
template's own policies and enforced (_roles, enforce_iam; README "Least privilege, checked
locally"); secrets (moto creates an
empty row) are created with freshly generated keys; TTL is switched on by hand.
The functions' environment is the template's own, with its !Ref/!Sub resolved against the stack.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
# The local stack's one identity: every function and client uses it, moto takes it, and the local
# API verifies SigV4 signatures on IAM routes against it (local/sigv4.py).
ACCESS_KEY_ID = "local"
SECRET_ACCESS_KEY = "local"  # noqa: S105 (a fixed local credential, as moto wants any)
ACCOUNT_ID = "123456789012"  # moto's default account
# Resource types moto builds faithfully from CloudFormation; the rest is stood in for (see above).
BUILT_BY_MOTO = frozenset(
    {
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::S3::Bucket",
        "AWS::Events::EventBus",
    }
)


def endpoint_client(endpoint: str, service: str) -> Any:
    """A boto3 client of `service` against the local stack's moto server (any credentials do)."""
    factory: Any = boto3.client  # any service by name (the typed overloads want a literal)
    return factory(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def translate(template_path: Path) -> dict[str, Any]:
    """The SAM template as plain CloudFormation, translated offline: a copy of its own for each
    caller, translated once per process for the same text (the stack and its option checks both
    need it). Raises what reading, parsing or SAM's translator raise."""
    return copy.deepcopy(_translated(template_path.read_text()))


@functools.lru_cache(maxsize=4)
def _translated(text: str) -> dict[str, Any]:
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    from local.cfn_yaml import yaml_parse

    class OfflinePolicies(ManagedPolicyLoader):
        def __init__(self) -> None:  # no IAM call: the template names no managed policy
            pass

        def load(self) -> dict[str, str]:
            return {}

    sam = yaml_parse(text)
    for resource in sam["Resources"].values():  # as `sam package` would have rewritten them
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://local-artifacts/function.zip"
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = "s3://local-artifacts/layer.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    return dict(transform(sam, {}, OfflinePolicies()))


_NO_VALUE = object()  # AWS::NoValue: the list item or property is left out


class LocalAws:
    def __init__(
        self, parameters: dict[str, str], *, stack_name: str = "handoff-local", roles_template: Path | None = None
    ) -> None:
        self.parameters = parameters
        # where the functions' roles come from: template.yaml, or a copy of it with a permission
        # changed (tests/integration/test_least_privilege.py shows a removed one refused)
        self.roles_template = roles_template
        self.stack_name = stack_name
        self.endpoint = ""
        self.resources: dict[str, str] = {}  # logical id -> physical id
        self.environment: dict[str, str] = {}  # every function's variables together (the stack's own use)
        self.function_environments: dict[str, dict[str, str]] = {}  # logical id -> that function's own
        self.secret_values: dict[str, dict[str, str]] = {}
        # logical id -> the inline policies of that function's role, resolved against the stack
        self.function_policies: dict[str, list[dict[str, Any]]] = {}
        # logical id -> AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN of its role
        self.function_credentials: dict[str, dict[str, str]] = {}
        self.outputs: dict[str, str] = {}  # the template's Outputs, as far as they resolve here
        self.template_outputs: list[str] = []  # the names of all of them
        self._server: Any = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._queue_urls: dict[str, str] = {}

    def client(self, service: str) -> Any:
        """The admin's client of `service` on this stack's moto server, made once (boto3 clients are
        thread-safe; setting up a stack asks for one about 60 times)."""
        key = (self.endpoint, service)
        if key not in self._clients:
            self._clients[key] = endpoint_client(self.endpoint, service)
        return self._clients[key]

    def start(self) -> LocalAws:
        port = free_port()
        # moto in a process of its own (local/moto_server.py): it answers every AWS call of every
        # function and poller, and sharing one interpreter (one core) with the local API and the
        # pollers made it the stack's bottleneck (bench/local_stack.py).
        self._server = subprocess.Popen(  # noqa: S603 (moto's own server module)
            [sys.executable, "-m", "local.moto_server", str(port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # one line per AWS call is no log to follow
            # Not in the terminal's process group: Ctrl-C stops the stack, which stops this server
            # last (stop()); were it interrupted first, the stack's last calls would fail noisily.
            # It ends by itself when the stack is gone (local/moto_server.py exit_with_parent).
            start_new_session=True,
        )
        self.endpoint = f"http://127.0.0.1:{port}"
        self._wait_until_listening(port)
        template = translate(ROOT / "template.yaml")
        self._create_stack(template)
        self._stand_in(template)
        self.function_environments = self._function_environments(template)
        self._roles(translate(self.roles_template) if self.roles_template else template)
        self.outputs = self._outputs(template)
        self.template_outputs = list(template.get("Outputs", {}))
        self.environment = {k: v for env in self.function_environments.values() for k, v in env.items()}
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.terminate()
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
            self._server = None

    def _wait_until_listening(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._server.poll() is not None:
                raise RuntimeError(f"the moto server exited with {self._server.returncode} before it listened")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"the moto server did not listen on port {port} within {timeout:.0f} s"
                    ) from None
                time.sleep(0.05)

    # -- the stack ------------------------------------------------------------------------------------

    def _create_stack(self, template: dict[str, Any]) -> None:
        kept = {k: v for k, v in template["Resources"].items() if v["Type"] in BUILT_BY_MOTO}
        body = {k: v for k, v in template.items() if k not in {"Resources", "Outputs"}}
        body["Resources"] = kept
        cloudformation = self.client("cloudformation")
        cloudformation.create_stack(
            StackName=self.stack_name,
            TemplateBody=json.dumps(body),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in self.parameters.items()],
        )
        stack = cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise RuntimeError(f"local stack: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
        listing = cloudformation.list_stack_resources(StackName=self.stack_name)["StackResourceSummaries"]
        self.resources = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in listing if r["LogicalResourceId"]}

    def _stand_in(self, template: dict[str, Any]) -> None:
        """What moto does not build from the template, made here from the template's own words."""
        resources = template["Resources"]
        dynamodb = self.client("dynamodb")
        for logical, resource in resources.items():
            ttl = (
                resource["Properties"].get("TimeToLiveSpecification")
                if resource["Type"] == "AWS::DynamoDB::Table"
                else None
            )
            if ttl and ttl.get("Enabled"):
                dynamodb.update_time_to_live(
                    TableName=self.resources[logical],
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
                )
        events = self.client("events")
        for logical, resource in resources.items():
            if resource["Type"] == "AWS::Events::EventBus":  # moto reports no physical id for a bus
                name = str(self._resolve(resource["Properties"]["Name"], template))
                if name not in {b["Name"] for b in events.list_event_buses()["EventBuses"]}:
                    events.create_event_bus(Name=name)
                self.resources[logical] = name
        secretsmanager = self.client("secretsmanager")
        for logical, resource in resources.items():
            if resource["Type"] != "AWS::SecretsManager::Secret":
                continue
            generate = resource["Properties"]["GenerateSecretString"]
            value = json.loads(generate["SecretStringTemplate"])
            value[generate["GenerateStringKey"]] = secrets.token_urlsafe(36)
            name = f"{self.stack_name}/{logical}"
            created = secretsmanager.create_secret(Name=name, SecretString=json.dumps(value))
            self.resources[logical] = created["ARN"]  # what !Ref of a secret gives on AWS
            self.secret_values[logical] = value

    def _roles(self, template: dict[str, Any]) -> None:
        """Each function's role as the template writes it (its inline policies, the translator's
        expansion of the SAM policies included), created in moto with the ARNs of this stack, and
        credentials of that role for the function (STS AssumeRole). The managed policies SAM adds
        (logs, X-Ray, reading the event source) are Lambda's own needs: the local pollers read the
        queues and the stream as the operator, and nothing is logged to CloudWatch."""
        iam, sts = self.client("iam"), self.client("sts")
        for logical, resource in template["Resources"].items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            role_name = resource["Properties"]["Role"]["Fn::GetAtt"][0]
            role = template["Resources"][role_name]["Properties"]
            iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(role["AssumeRolePolicyDocument"]))
            documents = []
            for policy in role.get("Policies", []):
                # moto takes no document without a Version; IAM's default (2008-10-17) only differs
                # in policy variables, which these policies do not use
                document = {"Version": "2012-10-17", **self.resolve_policy(policy["PolicyDocument"], template)}
                iam.put_role_policy(
                    RoleName=role_name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(document)
                )
                documents.append(document)
            credentials = sts.assume_role(
                RoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{role_name}", RoleSessionName=logical, DurationSeconds=43200
            )["Credentials"]
            self.function_policies[logical] = documents
            self.function_credentials[logical] = {
                "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                "AWS_SESSION_TOKEN": credentials["SessionToken"],
            }

    def enforce_iam(self) -> None:
        """From now on moto refuses any call the caller's policies do not allow (the local access
        key is the administrator: local/moto_server.py iam_enforced)."""
        import requests

        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()

    def resolve_policy(self, value: Any, template: dict[str, Any]) -> Any:
        """A policy document with its intrinsics (Ref, GetAtt, Sub, If and its Conditions,
        AWS::NoValue) resolved against the local stack."""
        if isinstance(value, list):
            items = [self.resolve_policy(item, template) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if value == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        if "Fn::If" in value:
            condition, yes, no = value["Fn::If"]
            return self.resolve_policy(yes if self._condition(condition, template) else no, template)
        if len(value) == 1 and next(iter(value)) in {"Ref", "Fn::GetAtt", "Fn::Sub"}:
            resolved = self._resolve(value, template)
            if resolved is None:
                raise ValueError(f"a policy names what the local stack cannot resolve: {value}")
            return resolved
        return {key: self.resolve_policy(item, template) for key, item in value.items()}

    def _condition(self, name: str, template: dict[str, Any]) -> bool:
        def evaluate(expression: Any) -> Any:
            if isinstance(expression, dict):
                (function, argument), *_ = expression.items()
                if function == "Fn::Equals":
                    return evaluate(argument[0]) == evaluate(argument[1])
                if function == "Fn::Not":
                    return not evaluate(argument[0])
                if function == "Fn::And":
                    return all(evaluate(a) for a in argument)
                if function == "Fn::Or":
                    return any(evaluate(a) for a in argument)
                if function == "Condition":
                    return self._condition(argument, template)
                return self._resolve(expression, template)
            return expression

        return bool(evaluate(template["Conditions"][name]))

    def queue_url(self, logical: str) -> str:
        """The URL of the stack's queue with logical id `logical`."""
        if logical not in self._queue_urls:
            name = self.resources[logical].rsplit("/", 1)[-1]  # moto's physical id of a queue is its URL
            self._queue_urls[logical] = str(self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])
        return self._queue_urls[logical]

    def put_secret(self, logical: str, value: dict[str, str]) -> None:
        self.client("secretsmanager").put_secret_value(SecretId=self.resources[logical], SecretString=json.dumps(value))
        self.secret_values[logical] = value

    # -- the functions' environment -------------------------------------------------------------------

    def _function_environments(self, template: dict[str, Any]) -> dict[str, dict[str, str]]:
        """Each function's variables as the template gives them (Globals merged by the translator),
        resolved against the stack: a function sees only its own, as on Lambda."""
        environments: dict[str, dict[str, str]] = {}
        for logical, resource in template["Resources"].items():
            if resource["Type"] == "AWS::Lambda::Function":
                variables = resource["Properties"].get("Environment", {}).get("Variables", {})
                resolved = {name: self._resolve(value, template) for name, value in variables.items()}
                environments[logical] = {name: value for name, value in resolved.items() if value is not None}
        return environments

    def _outputs(self, template: dict[str, Any]) -> dict[str, str]:
        """The template's Outputs resolved against the local stack, so that an operator tool reads
        the local stack as it reads a deployed one's CloudFormation outputs: names, queue URLs and
        ARNs, and each function's local ARN (the local Lambda Invoke API takes it, local/lambda_api.py).
        What names something not built here (the API, an SSM parameter, a condition) is left out."""
        found = {}
        for name, output in template.get("Outputs", {}).items():
            value = self._resolve(output.get("Value"), template)
            if value is not None:
                found[name] = value
        return found

    def _resolve(self, value: Any, template: dict[str, Any]) -> str | None:
        """A !Ref / !Sub value against the local stack (None: it names something not built here)."""
        if isinstance(value, str):
            return value
        if "Ref" in value:
            return self._ref(value["Ref"], template)
        if "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            return self._attribute(logical, attribute, template)
        if "Fn::Sub" in value:
            text = value["Fn::Sub"]
            for name in {p.split("}")[0] for p in text.split("${")[1:]}:
                logical, _, attribute = name.partition(".")
                replacement = self._attribute(logical, attribute, template) if attribute else self._ref(name, template)
                if replacement is None:
                    return None
                text = text.replace("${" + name + "}", replacement)
            return str(text)
        return None

    def _attribute(self, logical: str, attribute: str, template: dict[str, Any]) -> str | None:
        kind = template["Resources"].get(logical, {}).get("Type")
        if attribute != "Arn" or kind is None:
            return None
        if kind == "AWS::Lambda::Function":  # run by the local stack, named by its logical id
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{logical}"
        if kind == "AWS::SQS::Queue" and logical in self.resources:
            attributes = self.client("sqs").get_queue_attributes(
                QueueUrl=self.queue_url(logical), AttributeNames=["QueueArn"]
            )
            return str(attributes["Attributes"]["QueueArn"])
        if kind == "AWS::DynamoDB::Table" and logical in self.resources:
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{self.resources[logical]}"
        if kind == "AWS::S3::Bucket" and logical in self.resources:
            return f"arn:aws:s3:::{self.resources[logical]}"
        if kind == "AWS::Events::EventBus" and logical in self.resources:
            return f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{self.resources[logical]}"
        return None

    def _ref(self, name: str, template: dict[str, Any]) -> str | None:
        if name == "AWS::StackName":
            return self.stack_name
        if name == "AWS::Region":
            return REGION
        if name == "AWS::Partition":
            return "aws"
        if name == "AWS::AccountId":
            return ACCOUNT_ID
        if name in template.get("Parameters", {}):
            return self.parameters.get(name, str(template["Parameters"][name].get("Default", "")))
        resource = template["Resources"].get(name, {})
        if resource.get("Type") == "AWS::Lambda::Alias":  # AutoPublishAlias: its ARN, of a function run here
            function = resource["Properties"]["FunctionName"]["Ref"]  # run here, named by its logical id
            return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function}:{resource['Properties']['Name']}"
        if name in self.resources:
            physical = self.resources[name]
            if template["Resources"][name]["Type"] == "AWS::SQS::Queue":
                return self.queue_url(name)
            return physical
        return None
