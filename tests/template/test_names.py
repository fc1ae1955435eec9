"""Two deploys of the stack in one account and region (make deploy, make deploy ENV=prod, two teams)
name nothing the same: every physical name comes from the stack name or from CloudFormation.

The template is translated as `sam deploy` translates it (local/aws.py), and each resource's
physical name is worked out for a stack name: the name the template gives it, resolved, or, where
it gives none, the one CloudFormation makes up (which starts with the stack name)."""

from __future__ import annotations

from typing import Any

import pytest

from local.aws import translate
from tests.conftest import ROOT

# The property that names a resource of each type, account- and region-wide (None: the name is
# CloudFormation's, or the type has no name of its own to collide with: it lives inside another).
NAME_PROPERTY: dict[str, str | None] = {
    "AWS::ApiGateway::Account": None,  # one per account and region by design (see template.yaml)
    "AWS::ApiGateway::Deployment": None,
    "AWS::ApiGateway::RestApi": "Name",
    "AWS::ApiGateway::Stage": None,  # StageName is unique within its API only
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::IAM::Role": "RoleName",
    "AWS::Lambda::Alias": None,  # AutoPublishAlias: named within its function
    "AWS::Lambda::EventSourceMapping": None,
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::Lambda::Permission": None,
    "AWS::Lambda::Version": None,
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Logs::MetricFilter": None,  # FilterName is unique within its log group only
    "AWS::S3::Bucket": "BucketName",
    "AWS::S3::BucketPolicy": None,
    "AWS::SQS::Queue": "QueueName",
    "AWS::Scheduler::Schedule": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::SSM::Parameter": "Name",
}


def physical_names(template: dict[str, Any], stack: str) -> dict[str, str]:
    """Logical id -> physical name in a stack named `stack` (parameters at their defaults)."""
    resources = template["Resources"]
    parameters = template.get("Parameters", {})
    names: dict[str, str] = {}

    def ref(name: str) -> str:
        if name == "AWS::StackName":
            return stack
        if name.startswith("AWS::"):
            return {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}.get(name, name)
        if name in parameters:
            return str(parameters[name].get("Default", ""))
        return name_of(name)

    def resolve(value: Any) -> str:
        if isinstance(value, str):
            return value
        if "Ref" in value:
            return ref(value["Ref"])
        if "Fn::Sub" in value:
            text = value["Fn::Sub"]
            for part in {p.split("}")[0] for p in text.split("${")[1:]}:
                text = text.replace("${" + part + "}", ref(part.split(".")[0]))
            return str(text)
        if "Fn::Join" in value:
            separator, items = value["Fn::Join"]
            return str(separator).join(resolve(item) for item in items)
        raise AssertionError(f"a physical name this test cannot resolve: {value}")

    def name_of(logical: str) -> str:
        if logical not in names:
            kind = resources[logical]["Type"]
            assert kind in NAME_PROPERTY, f"{logical}: a resource type this test does not know ({kind})"
            prop = NAME_PROPERTY[kind]
            given = resources[logical].get("Properties", {}).get(prop) if prop else None
            # CloudFormation's own names are <stack>-<logical id>-<random> (truncated), unique per stack.
            names[logical] = resolve(given) if given is not None else f"{stack}-{logical}-generated"
        return names[logical]

    for logical, resource in resources.items():
        if NAME_PROPERTY.get(resource["Type"], "") is not None:
            name_of(logical)
    return names


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return translate(ROOT / "template.yaml")


def test_two_stacks_share_no_physical_name(template: dict[str, Any]) -> None:
    first, second = physical_names(template, "handoff"), physical_names(template, "handoff-prod")
    shared = {logical: name for logical, name in first.items() if name in set(second.values())}
    assert not shared, f"named the same in two stacks: {shared}"
    assert len(set(first.values())) == len(first), "two resources of one stack named the same"


def test_the_names_once_fixed_are_now_the_stacks(template: dict[str, Any]) -> None:
    names = physical_names(template, "team-b")
    schedule = next(n for n, r in template["Resources"].items() if r["Type"] == "AWS::Scheduler::Schedule")
    layer = next(n for n, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::LayerVersion")
    assert names["JobsEventBus"] == "team-b"
    assert names[schedule] == "team-b-reconcile"
    assert names[layer] == "team-b-shared"
