"""Shared fixtures: moto in-process AWS with the table built from template.yaml, a Playment fake
as a real HTTP server on 127.0.0.1, Lambda contexts and the sample events."""

from __future__ import annotations

import copy
import functools
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Before any handler module is imported: region, fake credentials, and no X-Ray.
os.environ.update(
    AWS_DEFAULT_REGION="us-east-1",
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    POWERTOOLS_TRACE_DISABLED="true",
    POWERTOOLS_METRICS_NAMESPACE="Handoff",
    POWERTOOLS_SERVICE_NAME="handoff",
    POWERTOOLS_LOG_LEVEL="WARNING",
    JOBS_TABLE_NAME="handoff-jobs",
    PLAYMENT_SECRET_NAME="handoff/playment",
    PLAYMENT_PROJECT_ID="proj-1",
    PLAYMENT_DEFAULT_TAG="default-tag",
    PLAYMENT_BASE_URL="http://127.0.0.1:9",
    RESULTS_BUCKET_NAME="handoff-results",
    TEXTKING_SECRET_NAME="handoff/textking",
    TEXTKING_BASE_URL="http://127.0.0.1:9/v1",
    TEXTKING_CALLBACK_URL="https://handoff.example.com/v1/callbacks/textking",
    TEXTKING_DOCUMENT_BUCKET="handoff-documents",
    VENDOR_CONNECT_TIMEOUT_SECONDS="1",
    VENDOR_READ_TIMEOUT_SECONDS="2",
    RATE_LIMIT_TABLE_NAME="handoff-rate-limits",
    VENDOR_MAX_REQUESTS_PER_SECOND="playment=1000,textking=1000",
    SUBMISSION_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/handoff-submissions",
    SUBMISSION_MAX_RECEIVES="3",
    RETRY_BASE_SECONDS="0",
    RETRY_CAP_SECONDS="0",
    RECONCILE_AFTER_SECONDS="3600",
    CALLBACK_RETRY_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/handoff-callback-retries",
    CALLBACK_RETRY_MAX_RECEIVES="3",
    CALLBACK_RETRY_BASE_SECONDS="0",
    CALLBACK_RETRY_CAP_SECONDS="1",
    EVENT_BUS_NAME="handoff-events",
)
os.environ.pop("AWS_ENDPOINT_URL", None)

import boto3  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from moto import mock_aws  # noqa: E402
from pytest_httpserver import HTTPServer  # noqa: E402

from handoff import settings, vendors  # noqa: E402
from local.moto_s3 import keep_put_object_bodies  # noqa: E402
from local.moto_server import dynamodb_attribute_values_as_given, sqs_without_quadratic_scans  # noqa: E402

keep_put_object_bodies()  # S3 keeps form-typed bodies (local/moto_s3.py), here as on the local stack
sqs_without_quadratic_scans()  # moto's SQS reads the clock cheaply (local/moto_server.py): speed only
dynamodb_attribute_values_as_given()  # moto writes plain attribute values as they are: speed only


def _one_request_at_a_time() -> None:
    """AWS applies each request atomically (a conditional write is checked and applied as one);
    moto in-process does not lock, so threads in a test could interleave inside one request.
    Requests to moto are serialised here, so concurrency tests see what the real services do."""
    import threading

    from moto.core.botocore_stubber import BotocoreStubber

    lock = threading.RLock()
    original = BotocoreStubber.__call__

    def atomic(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    BotocoreStubber.__call__ = atomic  # type: ignore[method-assign]


_one_request_at_a_time()


def _one_data_loader() -> None:
    """Every botocore session (moto starts each test with a fresh default session, and Powertools
    builds one per SecretsProvider) would read and parse the same service models and endpoint
    data again; a function does that once per container. Sessions here share one Loader, whose
    cache keeps what it parsed. Only the tests' speed changes: the data is the same."""
    import functools

    import botocore.loaders
    import botocore.session

    botocore.session.create_loader = functools.cache(botocore.loaders.create_loader)  # type: ignore[attr-defined]


_one_data_loader()

PLAYMENT_API_KEY = "pk-test-0123456789"
# The sample events in events/ carry these, so they authenticate against the test secrets.
PLAYMENT_CALLBACK_KEY = "sample-playment-callback-key"
PLAYMENT_PREVIOUS_CALLBACK_KEY = "previous-playment-callback-key"
TEXTKING_ACCESS_TOKEN = "tk-access-token-0123"
TEXTKING_SIGNING_KEY = "sample-textking-signing-key"
TEXTKING_PREVIOUS_SIGNING_KEY = "previous-textking-signing-key"
# The metrics by vendor that operators are promised (README "Observability", the dashboard).
VENDOR_METRICS = frozenset(
    {
        "JobsSubmitted",
        "SubmissionRetried",
        "SubmissionFailed",
        "CallbackApplied",
        "CallbackDuplicate",
        "CallbackUnknown",
        "CallbackRejected",
    }
)


class _CfnLoader(yaml.SafeLoader):
    """Reads template.yaml, keeping intrinsic functions (!Ref, !Sub ...) as {"!Tag": value}."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {f"!{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@functools.cache
def _parsed_template() -> dict[str, Any]:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506 (safe loader subclass)


def load_template() -> dict[str, Any]:
    """template.yaml as data (parsed once per test run; each caller gets its own copy)."""
    return copy.deepcopy(_parsed_template())


def sam_cli() -> Path:
    """SAM CLI, from a venv of its own (it pins boto3 to a release behind the project's): the
    Makefile's .venv-sam, which it names in HANDOFF_SAM; .venv-sam when pytest runs by hand."""
    sam = Path(os.environ.get("HANDOFF_SAM") or ROOT / ".venv-sam" / "bin" / "sam")
    if not sam.is_file():
        pytest.fail(f"SAM CLI is not installed at {sam}: `make .venv-sam/.installed` (or make lint) makes it")
    return sam


def create_jobs_table(client: Any, table_name: str) -> None:
    """Create the table exactly as template.yaml declares it (keys, GSIs, stream)."""
    props = load_template()["Resources"]["JobsTable"]["Properties"]
    client.create_table(
        TableName=table_name,
        BillingMode=props["BillingMode"],
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
        StreamSpecification={"StreamEnabled": True, **props["StreamSpecification"]},
    )


def create_rate_limit_table(client: Any, table_name: str) -> None:
    props = load_template()["Resources"]["RateLimitTable"]["Properties"]
    client.create_table(
        TableName=table_name,
        BillingMode=props["BillingMode"],
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
    )


def create_queue_with_dlq(sqs: Any, name: str, max_receives: int) -> tuple[str, str]:
    """A queue with its dead-letter queue `<name>-dlq`, as the template wires them. Returns (queue, dlq) URLs."""
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}),
        },
    )["QueueUrl"]
    return queue_url, dlq_url


def create_submission_queues(sqs: Any, max_receives: int) -> tuple[str, str]:
    """SubmissionQueue with its dead-letter queue. Returns (queue, dlq) URLs."""
    return create_queue_with_dlq(sqs, "handoff-submissions", max_receives)


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000001"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


def load_event(relative: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / relative).read_text())  # type: ignore[no-any-return]


def reset_function_caches() -> None:
    """Forget what the functions built from settings (submitters, appliers), as a new container would."""
    import sys

    settings.clear_caches()
    vendors.reset()
    for name, module in list(sys.modules.items()):
        if name.startswith("functions.") and name.endswith(".app"):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", "") == name:
                    value.cache_clear()


@functools.cache
def aws_client(service: str) -> Any:
    """One boto3 client per service for the helpers here, made once: moto answers it in every
    test, each with fresh resources. (Tests that watch a client's calls make their own.)"""
    return boto3.client(service)  # type: ignore[call-overload]


@pytest.fixture
def aws() -> Iterator[None]:
    """moto in-process: the jobs table (from template.yaml) and the Playment secret."""
    with mock_aws():
        create_jobs_table(aws_client("dynamodb"), os.environ["JOBS_TABLE_NAME"])
        create_rate_limit_table(aws_client("dynamodb"), os.environ["RATE_LIMIT_TABLE_NAME"])
        queue_url, _ = create_submission_queues(aws_client("sqs"), int(os.environ["SUBMISSION_MAX_RECEIVES"]))
        assert queue_url == os.environ["SUBMISSION_QUEUE_URL"]
        retry_url, _ = create_queue_with_dlq(
            aws_client("sqs"), "handoff-callback-retries", int(os.environ["CALLBACK_RETRY_MAX_RECEIVES"])
        )
        assert retry_url == os.environ["CALLBACK_RETRY_QUEUE_URL"]
        secrets = aws_client("secretsmanager")
        secrets.create_secret(
            Name=os.environ["PLAYMENT_SECRET_NAME"],
            SecretString=json.dumps(
                {
                    "api_key": PLAYMENT_API_KEY,
                    "callback_key": PLAYMENT_CALLBACK_KEY,
                    "previous_callback_key": PLAYMENT_PREVIOUS_CALLBACK_KEY,
                }
            ),
        )
        secrets.create_secret(
            Name=os.environ["TEXTKING_SECRET_NAME"],
            SecretString=json.dumps(
                {
                    "access_token": TEXTKING_ACCESS_TOKEN,
                    "signing_key": TEXTKING_SIGNING_KEY,
                    "previous_signing_key": TEXTKING_PREVIOUS_SIGNING_KEY,
                }
            ),
        )
        aws_client("s3").create_bucket(Bucket=os.environ["RESULTS_BUCKET_NAME"])
        aws_client("s3").create_bucket(Bucket=os.environ["TEXTKING_DOCUMENT_BUCKET"])
        reset_function_caches()
        yield
        reset_function_caches()


@pytest.fixture
def playment(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HTTPServer]:
    """The Playment fake: a real HTTP server on 127.0.0.1 that the code reaches over the network
    (one server for the session: its log starts empty in every test)."""
    httpserver.clear_log()
    monkeypatch.setenv("PLAYMENT_BASE_URL", httpserver.url_for("/").rstrip("/"))
    reset_function_caches()
    yield httpserver
    httpserver.clear()


@pytest.fixture
def textking(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The TEXTKING fake on the same HTTP server, under /tk/v1."""
    from tests.fakes.textking import TextkingFake

    monkeypatch.setenv("TEXTKING_BASE_URL", httpserver.url_for("/tk/v1").rstrip("/"))
    monkeypatch.setenv("TEXTKING_OAUTH_TOKEN_URL", httpserver.url_for("/tk/oauth/token"))
    reset_function_caches()
    fake = TextkingFake(httpserver, token=TEXTKING_ACCESS_TOKEN, prefix="/tk/v1", oauth_path="/tk/oauth/token")
    yield fake
    fake.stop()
    httpserver.clear()


# Every generation of Playment's docs the sandbox speaks (local/sandboxes/playment.py GENERATIONS):
# `@pytest.mark.parametrize("playment_generation", PLAYMENT_GENERATIONS)` runs a test on each, the
# sandbox and the functions' PLAYMENT_API_GENERATION matching.
PLAYMENT_GENERATIONS = ("readme", "docs", "sdk")


@pytest.fixture
def playment_generation() -> str:
    """The generation the `sandbox` speaks and the functions are configured for (parametrize to change)."""
    return "readme"


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch, playment_generation: str) -> Iterator[Any]:
    """The Playment sandbox (local/sandboxes) as a real HTTP server on 127.0.0.1, speaking
    `playment_generation` as the functions are configured to; answers that stall (lost responses)
    outlast the client's read timeout, shortened here to 0.5 s."""
    from local.sandboxes.playment import PlaymentSandbox
    from local.sandboxes.server import BackgroundServer

    box = PlaymentSandbox(
        api_key=PLAYMENT_API_KEY,
        project_id="proj-1",
        generation=playment_generation,
        rate_limit=1000,
        stall_seconds=1.2,
    )
    with BackgroundServer(box) as server:
        box.base_url = server.url
        monkeypatch.setenv("PLAYMENT_BASE_URL", server.url)
        monkeypatch.setenv("PLAYMENT_API_GENERATION", playment_generation)
        monkeypatch.setenv("VENDOR_READ_TIMEOUT_SECONDS", "0.5")
        reset_function_caches()
        yield box
    box.stop()
    reset_function_caches()


def archived(prefix: str = "") -> dict[str, bytes]:
    """Every object in the ResultsBucket under `prefix`, by key."""
    s3 = aws_client("s3")
    bucket = os.environ["RESULTS_BUCKET_NAME"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def queued_messages(queue_name: str = "handoff-submissions") -> list[dict[str, Any]]:
    """Bodies of the messages waiting in a queue (received with visibility 0, so left in place)."""
    sqs = aws_client("sqs")
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    bodies: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(100):
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh and len(seen) >= int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
        ):
            break
        for m in fresh:
            seen.add(m["MessageId"])
            bodies.append(json.loads(m["Body"]))
    return bodies


def queue_depth(queue_name: str = "handoff-submissions") -> int:
    """Messages in a queue, visible or in flight."""
    sqs = aws_client("sqs")
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[n]) for n in names)


def stream_records() -> list[dict[str, Any]]:
    """Every record of the JobsTable stream so far, shaped as Lambda hands them to a function."""
    dynamodb, streams = aws_client("dynamodb"), aws_client("dynamodbstreams")
    arn = dynamodb.describe_table(TableName=os.environ["JOBS_TABLE_NAME"])["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += [{**r, "eventSourceARN": arn} for r in streams.get_records(ShardIterator=iterator)["Records"]]
    return records


def table_items() -> list[dict[str, Any]]:
    from handoff.store import item_to_job

    items = aws_client("dynamodb").scan(TableName=os.environ["JOBS_TABLE_NAME"])["Items"]
    return [item_to_job(i).model_dump(mode="json") for i in items]


# --- running side by side (make test: pytest-xdist, --dist loadfile --no-loadscope-reorder) ------------

# Each file runs whole on one worker (its module-scoped stack started once), and the workers take the
# files in collection order, two at a time (xdist keeps a second file queued on each worker). The
# files that take longest start first, so that the workers finish together instead of one running a
# long file alone at the end (longest-first scheduling); a file that mostly waits (local_stack: leases,
# reconciles) is third, so that the first three are not all storms. Paths from tests/, by measured wall
# time alone; every other file follows in its usual order.
LONGEST_FIRST = (
    "integration/test_schemathesis.py",
    "integration/test_scale_reliability.py",
    "integration/test_local_stack.py",
    "integration/test_callback_storm.py",
    "unit/test_submission_worker.py",
    "integration/test_cli.py",
    "integration/test_vendor_faults.py",
    "integration/test_least_privilege.py",
    "integration/test_crash_safety.py",
    "integration/test_bad_input.py",
    "integration/test_sam_local.py",
    "integration/test_cancel_order_local.py",
    "integration/test_playment_generations.py",
    "unit/test_scale.py",
    "unit/test_edges.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    tests = ROOT / "tests"

    def place(item: pytest.Item) -> int:
        return rank.get(item.path.relative_to(tests).as_posix(), len(rank))

    items.sort(key=place)  # stable: each file keeps its own order


def emitted_metrics(capfd: Any) -> list[str]:
    """The names of the metrics the functions printed (CloudWatch EMF lines), in order."""
    sys.stdout.flush()
    names = []
    for line in capfd.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
                names += [m["Name"] for m in directive["Metrics"]]
    return names
