"""Who knocked: the API's access log, the callback routes' own throttling, and the alarm on 401s.

The stage is read from the translated template (as `sam deploy` makes it). An access log line is
rendered from the template's format as API Gateway fills it in, and the alarm's metric filter is
applied to such lines with the subset of CloudWatch's JSON filter syntax the template uses."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from local.aws import translate
from tests.conftest import ROOT, load_template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return translate(ROOT / "template.yaml")


def stage(template: dict[str, Any]) -> dict[str, Any]:
    (found,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage"]
    return found


def access_log_line(template: dict[str, Any], **context: str) -> dict[str, Any]:
    """The line API Gateway writes for a request with these $context values ("-" for the rest)."""
    text = stage(template)["AccessLogSetting"]["Format"]
    quoted = {"error.messageString": json.dumps(context.pop("error.messageString", "-"))}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return quoted[name] if name in quoted else context.get(name, "-")

    return dict(json.loads(re.sub(r"\$context\.([A-Za-z.]+)", value, text)))


def matches(pattern: str, line: dict[str, Any]) -> bool:
    """CloudWatch Logs' JSON filter pattern `{ ($.a = "x") && ($.b = "y*") }` applied to a line."""
    body = pattern.strip()
    assert body.startswith("{"), pattern
    assert body.endswith("}"), pattern
    terms = [t.strip().strip("()").strip() for t in body[1:-1].split("&&")]
    for term in terms:
        found = re.fullmatch(r'\$\.([A-Za-z]+) = "([^"]*)"', term)
        assert found, f"a filter term this test does not read: {term}"
        field, wanted = found.groups()
        have = str(line.get(field, ""))
        ok = have.startswith(wanted[:-1]) if wanted.endswith("*") else have == wanted
        if not ok:
            return False
    return True


def test_every_request_is_logged_as_json_with_who_what_answer_and_time(template: dict[str, Any]) -> None:
    setting = stage(template)["AccessLogSetting"]
    group = setting["DestinationArn"]["Fn::GetAtt"][0]
    assert template["Resources"][group]["Type"] == "AWS::Logs::LogGroup"
    assert template["Resources"][group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    line = access_log_line(
        template,
        requestId="c0ffee",
        **{"identity.sourceIp": "203.0.113.9", "identity.userArn": "arn:aws:iam::123456789012:user/ops"},
        httpMethod="POST",
        resourcePath="/jobs",
        status="403",
        responseLatency="12",
        **{"error.messageString": 'The request signature we calculated does not match "the" signature'},
    )
    assert line["requestId"] == "c0ffee"
    assert line["sourceIp"] == "203.0.113.9"
    assert line["userArn"] == "arn:aws:iam::123456789012:user/ops"
    assert (line["httpMethod"], line["resourcePath"], line["status"], line["responseLatency"]) == (
        "POST",
        "/jobs",
        "403",
        "12",
    )
    assert "signature" in line["error"]
    # the account lets API Gateway write logs before the stage (through the log group) is made
    assert template["Resources"][group]["DependsOn"] == "ApiGatewayAccount"
    account = template["Resources"]["ApiGatewayAccount"]["Properties"]
    assert account["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayLogsRole", "Arn"]}


def test_each_callback_route_has_throttling_of_its_own(template: dict[str, Any]) -> None:
    routes = [
        event["Properties"]
        for resource in load_template()["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "Api"
    ]
    # the routes open without IAM: the callbacks, which check the vendor's key themselves
    public = {(r["Method"].upper(), r["Path"]) for r in routes if r.get("Auth", {}).get("Authorizer") == "NONE"}
    assert public == {("POST", f"/callbacks/{v}") for v in ("playment", "textking", "scale")}
    settings = {(s["HttpMethod"], s["ResourcePath"]) for s in stage(template)["MethodSettings"]}
    by_route = {(s["HttpMethod"], s["ResourcePath"]): s for s in stage(template)["MethodSettings"]}
    for method, path in public:
        key = (method, "/" + path.replace("/", "~1"))  # API Gateway's escaping of a resource path
        assert key in settings, f"{method} {path} has only the API-wide throttling"
        assert by_route[key]["ThrottlingRateLimit"] == {"Ref": "CallbackThrottlingRateLimit"}
        assert by_route[key]["ThrottlingBurstLimit"] == {"Ref": "CallbackThrottlingBurstLimit"}


def test_a_burst_of_401s_on_a_callback_route_raises_the_alarm(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    metric_filter = resources["CallbackUnauthorizedMetricFilter"]["Properties"]
    assert metric_filter["LogGroupName"] == {
        "Ref": stage(template)["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]
    }
    pattern = metric_filter["FilterPattern"]

    def line(path: str, status: str) -> dict[str, Any]:
        return access_log_line(template, resourcePath=path, status=status, httpMethod="POST")

    for vendor in ("playment", "textking", "scale"):
        assert matches(pattern, line(f"/callbacks/{vendor}", "401"))
        assert not matches(pattern, line(f"/callbacks/{vendor}", "200"))
    assert not matches(pattern, line("/jobs", "401"))
    assert not matches(pattern, line("/jobs", "403"))
    # the callback functions answer a wrong key with 401 (the status the filter counts)
    for vendor in ("playment", "textking", "scale"):
        assert "401" in (ROOT / "functions" / f"{vendor}_callback" / "app.py").read_text()
    (transformation,) = metric_filter["MetricTransformations"]
    alarm = resources["CallbackUnauthorizedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        transformation["MetricNamespace"],
        transformation["MetricName"],
    )
    # a namespace of the stack's own: another stack's 401s do not raise this alarm
    assert "${AWS::StackName}" in alarm["Namespace"]["Fn::Sub"]
    assert alarm["Statistic"] == "Sum"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
