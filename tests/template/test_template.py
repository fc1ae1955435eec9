"""template.yaml: lint-clean, builds, and every function has a handler and sample events that match it."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from handoff.vendors import VENDORS
from tests.conftest import ROOT, VENDOR_METRICS, load_template, sam_cli

BIN = Path(sys.executable).parent


def functions() -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in load_template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def folder(props: dict[str, Any]) -> str:
    return Path(props["CodeUri"]).name


def tool_env() -> dict[str, str]:
    """sam runs from its own venv; the layer's Makefile it runs finds this venv's python3 and pip first."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "SAM_CLI_TELEMETRY": "0"}


def test_cfn_lint_is_clean() -> None:
    result = subprocess.run([BIN / "cfn-lint", "template.yaml"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(functions()))
def test_function_has_an_importable_handler(name: str) -> None:
    props = functions()[name]
    module_name, attribute = props["Handler"].rsplit(".", 1)
    module = importlib.import_module(f"functions.{folder(props)}.{module_name}")
    assert callable(getattr(module, attribute))
    assert not (ROOT / props["CodeUri"] / "requirements.txt").exists(), "dependencies belong in the shared layer"


@pytest.mark.parametrize("name", sorted(functions()))
def test_function_has_sample_events_matching_its_routes(name: str) -> None:
    props = functions()[name]
    samples = sorted((ROOT / "events" / folder(props)).glob("*.json"))
    assert samples, f"events/{folder(props)}/ has no sample event"
    routes = {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
        for e in props.get("Events", {}).values()
        if e["Type"] == "Api"
    }
    for sample in samples:
        event = json.loads(sample.read_text())
        if "httpMethod" in event:
            assert (event["httpMethod"], event["resource"]) in routes, f"{sample.name} is not a route of {name}"
            assert event["requestContext"]["resourcePath"] == event["resource"]


def test_direct_invoke_samples_are_valid_submit_requests() -> None:
    from pydantic import TypeAdapter

    from handoff.models import CreateBatchRequest
    from handoff.vendors import BulkSubmitRequest, SubmitBody, parse_submit_request

    body: TypeAdapter[Any] = TypeAdapter(SubmitBody)
    folder = ROOT / "events" / "submit_job"
    samples = [json.loads(p.read_text()) for p in folder.glob("direct_invoke*.json")]
    samples += [
        {"action": {"/jobs": "submit", "/batches": "create_batch"}.get(event["resource"], "other")}
        | json.loads(event["body"])
        for event in (json.loads(p.read_text()) for p in folder.glob("api_post*.json"))
        if event["body"]
    ]
    checked: Counter[str] = Counter()
    for sample in samples:
        action = sample.pop("action", "submit")
        checked[action] += 1
        if action == "create_batch":
            CreateBatchRequest.model_validate(sample)
        elif action == "submit":
            parsed = body.validate_python(sample)
            for job in parsed.jobs if isinstance(parsed, BulkSubmitRequest) else []:
                parse_submit_request(job)
    assert checked["submit"] > 5
    assert checked["create_batch"] == 2


def test_routes_under_jobs_require_iam() -> None:
    api = load_template()["Resources"]["HandoffApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    for props in functions().values():
        for event in props.get("Events", {}).values():
            if event["Type"] == "Api" and event["Properties"]["Path"].startswith(("/jobs", "/batches")):
                assert "Auth" not in event["Properties"], "a /jobs or /batches route must not override IAM auth"


def test_every_listing_index_is_sorted_by_updated_at_holds_a_summary_and_get_job_may_query_only_them() -> None:
    from handoff.store import LISTING_INDEXES, SUMMARY_FIELDS

    # given the table's indexes and GetJob's policy as template.yaml declares them
    resources = load_template()["Resources"]
    indexes = {i["IndexName"]: i for i in resources["JobsTable"]["Properties"]["GlobalSecondaryIndexes"]}
    statements = [s for p in functions()["GetJobFunction"]["Policies"] for s in p["Statement"]]

    # then each index GET /jobs reads is partitioned on its key, sorted by updated_at and holds
    # every field of a JobSummary (a missing one would come back empty, not as an error)
    for key, name in LISTING_INDEXES.items():
        index = indexes[name]
        keys = {k["KeyType"]: k["AttributeName"] for k in index["KeySchema"]}
        assert keys == {"HASH": key, "RANGE": "updated_at"}, name
        held = set(index["Projection"].get("NonKeyAttributes", [])) | set(keys.values()) | {"reference_id"}
        assert set(SUMMARY_FIELDS) <= held, f"{name} lacks {set(SUMMARY_FIELDS) - held}"
    # and GetJob reads the table's items and queries those indexes, nothing else
    allowed = {
        (s["Action"], str(r))
        for s in statements
        for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    }
    assert {a for a, _ in allowed} == {"dynamodb:GetItem", "dynamodb:Query"}
    queried = sorted(r for a, r in allowed if a == "dynamodb:Query")
    assert queried == sorted(f"{{'!Sub': '${{JobsTable.Arn}}/index/{n}'}}" for n in LISTING_INDEXES.values())


def test_cancel_and_order_are_iam_routes_of_submit_job_with_no_new_permission() -> None:
    # given the template's SubmitJobFunction
    props = functions()["SubmitJobFunction"]
    routes = {
        (e["Properties"]["Method"], e["Properties"]["Path"]): e["Properties"]
        for e in props["Events"].values()
        if e["Type"] == "Api"
    }
    # then both routes are its own, under the API's default authorizer (AWS_IAM), none overridden
    for action in ("cancel", "order"):
        route = routes[("POST", f"/jobs/{{reference_id}}/{action}")]
        assert route["RestApiId"] == {"!Ref": "HandoffApi"}
        assert "Auth" not in route
    # and its role writes only the JobsTable items it already wrote (one conditional UpdateItem each)
    statements = [s for policy in props["Policies"] for s in policy["Statement"] if isinstance(s, dict)]
    table = [s for s in statements if s.get("Resource") == {"!GetAtt": "JobsTable.Arn"}]
    assert table == [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem"],
            "Resource": {"!GetAtt": "JobsTable.Arn"},
        }
    ]


LAYER_PYTHON = "3.13"  # the functions' runtime (template.yaml), for which the layer is compiled


def layer_python() -> str | None:
    """The python3.13 the layer's build compiles bytecode with (shared/Makefile), if one runs here."""
    found = shutil.which(f"python{LAYER_PYTHON}", path=tool_env()["PATH"])
    if found is None:
        return None
    probe = subprocess.run(
        [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True, check=False
    )
    return found if probe.returncode == 0 and probe.stdout.strip() == LAYER_PYTHON else None


def sam_build(build_dir: Path, cache_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sam_cli(), "build", "--build-dir", str(build_dir), "--cache-dir", str(cache_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**tool_env(), **env},
        timeout=900,
        check=False,
    )


def assert_ships_bytecode(layer: Path) -> None:
    """Every module of the layer has a .pyc for python3.13 whose hash is never checked, so no cold
    start compiles it nor stats its source."""
    sources = list(layer.rglob("*.py"))
    assert len(sources) > 100
    missing = [p for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.cpython-313.pyc").exists()]
    assert missing == [], f"{len(missing)} modules without bytecode, e.g. {missing[:3]}"
    for source in (layer / "handoff" / "store.py", layer / "botocore" / "session.py"):
        pyc = (source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc").read_bytes()
        assert int.from_bytes(pyc[4:8], "little") == 0b01, f"{source}: not an unchecked-hash .pyc"


@pytest.mark.build
def test_sam_build_builds_the_layer_for_arm64_with_bytecode_and_every_function(tmp_path: Path) -> None:
    build_dir = tmp_path / "build"
    result = sam_build(build_dir, tmp_path / "cache")
    if layer_python() is None:
        # No python3.13 here: the build refuses loudly, and says what to do, rather than ship a
        # layer whose every cold start compiles it. Then the rest is checked without bytecode.
        assert result.returncode != 0
        assert "must be compiled by Python 3.13" in result.stdout + result.stderr
        assert "HANDOFF_NO_BYTECODE=1" in result.stdout + result.stderr
        result = sam_build(build_dir, tmp_path / "cache", HANDOFF_NO_BYTECODE="1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    layer = build_dir / "SharedLayer" / "python"
    assert (layer / "handoff" / "store.py").exists()
    assert list(layer.glob("pydantic_core/*aarch64*.so")), "pydantic_core must be the linux/arm64 build"
    assert (layer / "aws_lambda_powertools").is_dir()
    # botocore comes in with the tracer; boto3 must come with it, not from the runtime beside it
    assert (layer / "botocore").is_dir() == (layer / "boto3").is_dir()
    if layer_python() is not None:
        assert_ships_bytecode(layer)
    else:
        assert not list(layer.rglob("*.pyc")), "HANDOFF_NO_BYTECODE=1 ships no bytecode (none of the host's)"
    for name, _props in functions().items():
        assert (build_dir / name / "app.py").exists(), name
    shutil.rmtree(build_dir, ignore_errors=True)


def test_submit_jobs_claim_on_a_job_it_writes_outlives_the_function_only_just() -> None:
    from handoff.submission import INLINE_LEASE_SECONDS

    # a SubmitJob that dies after writing the job leaves it leased: never past the function's end
    timeout = functions()["SubmitJobFunction"].get("Timeout") or load_template()["Globals"]["Function"]["Timeout"]
    assert timeout < INLINE_LEASE_SECONDS <= timeout + 5


def test_the_retry_path_reports_partial_batch_failures_dead_letters_and_alarms() -> None:
    resources = load_template()["Resources"]
    worker = resources["SubmissionWorkerFunction"]["Properties"]
    source = worker["Events"]["Queue"]["Properties"]
    # without ReportBatchItemFailures Lambda would treat the worker's failed records as done
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["ScalingConfig"]["MaximumConcurrency"] == {"!Ref": "WorkerMaxConcurrency"}
    queue = resources["SubmissionQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"!GetAtt": "SubmissionDLQ.Arn"}
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"!Ref": "SubmissionMaxReceives"}
    # a message must not reappear while a worker still holds it, nor its job's lease outlive it
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]
    assert int(worker["Environment"]["Variables"]["SUBMISSION_LEASE_SECONDS"]) > worker["Timeout"]
    alarms = {name for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"SubmissionDLQAlarm", "SubmissionWorkerErrorsAlarm", "ReconcilerErrorsAlarm"} <= alarms


def test_events_come_from_the_stream_with_partial_failures_and_nothing_dropped() -> None:
    resources = load_template()["Resources"]
    stream = resources["EventPublisherFunction"]["Properties"]["Events"]["Stream"]["Properties"]
    assert stream["Stream"] == {"!GetAtt": "JobsTable.StreamArn"}
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # a batch that keeps failing ends in a queue, not in the void
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {"!GetAtt": "EventsDLQ.Arn"}
    assert resources["JobsTable"]["Properties"]["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert resources["JobsEventBus"]["Properties"]["Name"] == {"!Ref": "AWS::StackName"}


def test_the_dashboard_shows_the_metrics_the_code_emits_and_the_queues() -> None:
    import re

    body = load_template()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["!Sub"]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    metrics = {m[1] for w in widgets for m in w["properties"]["metrics"]}
    emitted = VENDOR_METRICS
    assert emitted | {"ApproximateNumberOfMessagesVisible", "Duration", "Errors"} <= metrics
    code = "".join(
        p.read_text() for p in [*ROOT.glob("functions/*/app.py"), *(ROOT / "shared" / "handoff").rglob("*.py")]
    )
    assert all(f'"{name}"' in code for name in emitted), "a dashboard metric the code never emits"


def test_every_alarm_on_a_handoff_metric_watches_one_the_code_emits_with_its_dimensions() -> None:
    resources = load_template()["Resources"]
    template = load_template()
    namespace = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    service = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    code = "".join(p.read_text() for p in (ROOT / "shared" / "handoff").rglob("*.py"))
    alarms = {
        name: r["Properties"]
        for name, r in resources.items()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == namespace
    }
    assert {"TextkingAuthFailedAlarm", "TextkingOrphanLeftAlarm"} <= set(alarms)
    for name, alarm in alarms.items():
        metric = alarm["MetricName"]
        dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
        # counted by handoff.observability.count(name, vendor): dimensions vendor and service
        assert f'count("{metric}", ' in code, f"{name}: the code never counts {metric}"
        assert set(dimensions) == {"vendor", "service"}, f"{name}: EMF metrics carry vendor and service"
        assert dimensions["service"] == service
        assert dimensions["vendor"] in VENDORS


def test_every_dead_letter_queue_has_an_alarm_and_a_source() -> None:
    resources = load_template()["Resources"]
    queues = {name for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    dead_letter_targets = {
        r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["!GetAtt"].split(".")[0]
        for name, r in resources.items()
        if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r["Properties"]
    }
    on_failure = {"EventsDLQ"}
    alarmed = {
        d["Value"]["!GetAtt"].split(".")[0]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == "AWS/SQS"
        for d in r["Properties"]["Dimensions"]
    }
    dlqs = {q for q in queues if q.endswith("DLQ")}
    assert dlqs == dead_letter_targets | on_failure  # every DLQ receives something
    assert dlqs <= alarmed  # and nothing lands in one unnoticed


def test_deferred_callbacks_are_applied_again_from_a_queue_with_a_dead_letter_queue() -> None:
    resources = load_template()["Resources"]
    retry = resources["CallbackRetryFunction"]["Properties"]
    source = retry["Events"]["Queue"]["Properties"]
    assert source["Queue"] == {"!GetAtt": "CallbackRetryQueue.Arn"}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = resources["CallbackRetryQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"!GetAtt": "CallbackRetryDLQ.Arn"}
    assert queue["VisibilityTimeout"] >= 6 * retry["Timeout"]
    for name in ("PlaymentCallbackFunction", "TextkingCallbackFunction"):
        statements = resources[name]["Properties"]["Policies"][0]["Statement"]
        assert any(
            s["Action"] == "sqs:SendMessage" and s["Resource"] == {"!GetAtt": "CallbackRetryQueue.Arn"}
            for s in statements
        ), f"{name} cannot keep a deferred callback"


def test_callback_routes_are_throttled_on_their_own_above_the_vendors_rates() -> None:
    template = load_template()
    parameters = template["Parameters"]
    settings = template["Resources"]["HandoffApi"]["Properties"]["MethodSettings"]
    by_path = {s["ResourcePath"]: s for s in settings}
    for route in ("/~1callbacks~1playment", "/~1callbacks~1textking"):
        rate = by_path[route]["ThrottlingRateLimit"]["!Ref"]
        burst = by_path[route]["ThrottlingBurstLimit"]["!Ref"]
        # Playment never resends a callback refused with 429; it documents 20 job creations/s
        assert parameters[rate]["MinValue"] >= 20
        assert parameters[rate]["Default"] > parameters["ApiThrottlingRateLimit"]["Default"]
        assert parameters[burst]["Default"] >= parameters[rate]["Default"]


def test_the_lookup_refused_alarm_counts_the_line_the_reconciler_writes() -> None:
    resources = load_template()["Resources"]
    pattern = resources["ReconcileLookupRefusedMetricFilter"]["Properties"]["FilterPattern"]
    message = pattern.split('"')[1]
    assert f'"{message}"' in (ROOT / "shared" / "handoff" / "reconcile.py").read_text()
    assert (
        resources["ReconcileLookupRefusedAlarm"]["Properties"]["MetricName"]
        == (resources["ReconcileLookupRefusedMetricFilter"]["Properties"]["MetricTransformations"][0]["MetricName"])
    )
    # a namespace of the stack's own: a second stack's refused lookups do not raise this stack's alarm
    namespace = resources["ReconcileLookupRefusedAlarm"]["Properties"]["Namespace"]
    assert (
        namespace
        == resources["ReconcileLookupRefusedMetricFilter"]["Properties"]["MetricTransformations"][0]["MetricNamespace"]
    )
    assert "${AWS::StackName}" in namespace["!Sub"]


# What holds jobs, results or keys: a `sam delete` (or a replacing update) must leave it in place.
MUST_SURVIVE = {
    "JobsTable",
    "BatchesTable",
    "ResultsBucket",
    "PlaymentSecret",
    "TextkingSecret",
    "ScaleSecret",
    "SubmissionDLQ",
    "CallbackRetryDLQ",
    "EventsDLQ",
}


def test_what_holds_jobs_or_keys_survives_a_delete_and_readme_says_what_is_left() -> None:
    resources = load_template()["Resources"]
    for name in MUST_SURVIVE:
        assert resources[name].get("DeletionPolicy") == "Retain", f"{name} is deleted with the stack"
        assert resources[name].get("UpdateReplacePolicy") == "Retain", f"{name} is deleted when replaced"
    secrets = {name for name, r in resources.items() if r["Type"] == "AWS::SecretsManager::Secret"}
    assert secrets <= MUST_SURVIVE, "a vendor secret that is not kept"
    kept = {name for name, r in resources.items() if r.get("DeletionPolicy") == "Retain"}
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Removing the stack", 1)[1].split("\n#", 1)[0]
    named = {name for name in resources if f"`{name}`" in section.split("A stack deployed again", 1)[0]}
    assert named == kept, f"README lists as kept {sorted(named)}, the template keeps {sorted(kept)}"
    assert all(name in section.split("```bash", 1)[1] for name in kept), "a kept resource README does not remove"


def pins(requirements: Path) -> dict[str, str]:
    """{normalised name: version} of a requirements file's `name[extras]==version` lines."""
    found = {}
    for line in requirements.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, version = requirement.split("==")
            found[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version
    return found


def test_the_layer_ships_the_versions_the_tests_run_with() -> None:
    # the layer's pins are those of the venv the tests run in (a boto3 or pydantic raised in one and
    # not the other would ship a pair no test has run)
    layer, tested = pins(ROOT / "shared" / "requirements.txt"), pins(ROOT / "requirements.txt")
    assert {"boto3", "botocore", "pydantic"} <= set(layer)
    assert {name: version for name, version in layer.items() if tested.get(name) != version} == {}


def test_the_template_reader_gives_intrinsics_in_their_long_form_as_sam_cli_does() -> None:
    # local/cfn_yaml.py stands in for samcli.yamlhelper.yaml_parse (SAM CLI has a venv of its own)
    from local.cfn_yaml import yaml_parse

    text = "A: !GetAtt T.Arn\nB: !Ref P\nC: !Sub ['x-${y}', {y: !Ref Q}]\nD: !If [C, 1, 2]\nV: 2012-10-17\n"
    assert yaml_parse(text) == {
        "A": {"Fn::GetAtt": ["T", "Arn"]},
        "B": {"Ref": "P"},
        "C": {"Fn::Sub": ["x-${y}", {"y": {"Ref": "Q"}}]},
        "D": {"Fn::If": ["C", 1, 2]},
        "V": "2012-10-17",
    }
    assert yaml_parse('{"A": {"Ref": "P"}}') == {"A": {"Ref": "P"}}


def test_aws_endpoint_url_is_declared_for_every_function_and_empty_so_botocore_ignores_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Declared only so that `sam local --env-vars` (which sets declared variables only) can point
    # boto3 at the local stack's moto server (README "sam local"); deployed, it is empty ...
    variables = load_template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["AWS_ENDPOINT_URL"] == ""
    functions = [r for r in load_template()["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    assert not [
        f for f in functions if "AWS_ENDPOINT_URL" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    # ... and botocore takes an empty AWS_ENDPOINT_URL as none (configprovider's `if endpoint_url:`)
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
    assert client.meta.endpoint_url == "https://dynamodb.us-east-1.amazonaws.com"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    client = boto3.session.Session(region_name="us-east-1").client("dynamodb")
    assert client.meta.endpoint_url == "http://127.0.0.1:4566"


def test_snapstart_is_a_parameter_off_by_default_and_every_trigger_invokes_the_published_alias() -> None:
    from local.aws import translate

    # given the template as SAM translates it
    sam = load_template()
    template = translate(ROOT / "template.yaml")
    resources = template["Resources"]
    functions = [name for name, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]

    # then SnapStart is a choice, off unless asked for, applied to every function's published versions
    parameter = sam["Parameters"]["SnapStart"]
    assert (parameter["Default"], sorted(parameter["AllowedValues"])) == ("None", ["None", "PublishedVersions"])
    for name in functions:
        assert resources[name]["Properties"]["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
        assert resources[f"{name}Aliaslive"]["Type"] == "AWS::Lambda::Alias"
    # and every trigger invokes the alias (a restored snapshot), never the unpublished $LATEST
    targets = []
    for resource in resources.values():
        properties = resource["Properties"]
        if resource["Type"] in ("AWS::Lambda::EventSourceMapping", "AWS::Lambda::Permission"):
            targets.append(properties["FunctionName"])
        if resource["Type"] == "AWS::Scheduler::Schedule":
            targets.append(properties["Target"]["Arn"])
    assert len(targets) >= len(functions)
    assert all(list(t) == ["Ref"] and t["Ref"].endswith("Aliaslive") for t in targets), targets
    integrations = re.findall(r"functions/\$\{(\w+)", json.dumps(resources["HandoffApi"]["Properties"]["Body"]))
    assert integrations
    assert all(i.endswith("Aliaslive") for i in integrations), integrations
    # and a direct caller is given the alias too, of every function the outputs name
    arns = {name: output["Value"] for name, output in sam["Outputs"].items() if name.endswith("FunctionArn")}
    assert "SubmitJobFunctionArn" in arns
    assert arns == {name: {"!Ref": f"{name.removesuffix('Arn')}Aliaslive"} for name in arns}
