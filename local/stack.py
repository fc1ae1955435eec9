"""The Docker-free local stack: `make local` (serves until Ctrl-C), and what `make demo` and the
integration tests run against.

    moto server (127.0.0.1)      the stack's tables, queues and bucket, created from template.yaml
                                 (a process of its own: local/moto_server.py)
    local API (127.0.0.1)        the template's routes -> the handlers, as API Gateway would call them
    SubmissionQueue poller       -> SubmissionWorker, as Lambda's SQS event source would
    CallbackRetryQueue poller    -> CallbackRetry (deferred callbacks applied again from the archive)
    JobsTable stream poller      -> EventPublisher -> the bus; a rule copies every event into a
                                    local queue (`events_queue`) so they can be seen
    schedule                     -> Reconciler, every `reconcile_every` seconds
    a sandbox per vendor         the vendor's API, calling back to the local API
                                 (every local/sandboxes/ module with a LOCAL_VENDOR)

The local API, pollers and sandboxes run in this process; every function runs in processes of
its own (local/runtime.py: warm "containers", at most the function's concurrency), with the
environment this process resolves from the template.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Where `make local` says it is running (its URLs, its functions' environments, its pid), so that
# operator tools find it (`make preflight` with no STACK, or STACK=local); removed when it stops.
STATE_FILE = ROOT / ".local-stack.json"
# The stack's DocumentSourceBucket: where a caller puts documents named by s3:// URI.
DOCUMENT_BUCKET = "handoff-local-documents"
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")  # each function's own
# Metrics output is off locally (POWERTOOLS_METRICS_DISABLED); Powertools still warns on each flush.
warnings.filterwarnings("ignore", message="No application metrics to publish")
for entry in (str(ROOT / "shared"), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from local.api import LocalApi, gateway_responses_from_template, routes_from_template  # noqa: E402
from local.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, LocalAws, free_port  # noqa: E402
from local.iam import RECORD_AWS_CALLS_ENV  # noqa: E402
from local.lambda_api import LambdaInvokeApi  # noqa: E402
from local.runtime import FunctionRuntime, InvocationError  # noqa: E402
from local.sandboxes.base import Faults, LocalSetup, LocalVendor, local_vendors  # noqa: E402
from local.sandboxes.base import vendor_option as checked_vendor_option  # noqa: E402
from local.sandboxes.server import BackgroundServer  # noqa: E402
from local.sqs_poller import SqsPoller  # noqa: E402
from local.stream_poller import EventSourceMapping, StreamPoller  # noqa: E402


def template_aliases(template: Path = ROOT / "template.yaml") -> frozenset[str]:
    """The aliases template.yaml publishes its functions under (AutoPublishAlias: Globals or a function's)."""
    from local.cfn_yaml import yaml_parse

    sam = yaml_parse(template.read_text())
    found = {sam.get("Globals", {}).get("Function", {}).get("AutoPublishAlias")}
    found |= {
        r["Properties"].get("AutoPublishAlias")
        for r in sam["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
    }
    return frozenset(a for a in found if isinstance(a, str))


def stream_mapping(template: Path, function: str, queue_url: Callable[[str], str]) -> EventSourceMapping:
    """The settings of `function`'s DynamoDB event (its only one) in the SAM template."""
    from local.cfn_yaml import yaml_parse

    events = yaml_parse(template.read_text())["Resources"][function]["Properties"].get("Events", {})
    (properties,) = [event["Properties"] for event in events.values() if event["Type"] == "DynamoDB"]
    return EventSourceMapping.from_sam_event(properties, queue_url)


def worker_settings(template: Path) -> tuple[int, int]:
    """(BatchSize, MaximumConcurrency) of SubmissionWorkerFunction's queue event, as deployed with
    the template's defaults: the local stack's worker runs as the deployed one would."""
    from local.cfn_yaml import yaml_parse

    sam = yaml_parse(template.read_text())
    events = sam["Resources"]["SubmissionWorkerFunction"]["Properties"]["Events"]
    (properties,) = [event["Properties"] for event in events.values() if event["Type"] == "SQS"]
    concurrency = properties["ScalingConfig"]["MaximumConcurrency"]
    if isinstance(concurrency, dict):  # !Ref WorkerMaxConcurrency
        concurrency = sam["Parameters"][concurrency["Ref"]]["Default"]
    return int(properties["BatchSize"]), int(concurrency)


@dataclass
class LocalStack:
    faults: Faults = field(default_factory=Faults)
    rate_limits: dict[str, float] = field(default_factory=dict)  # vendor -> its sandbox's (and the stack's) limit
    # vendor -> {option: value}: the vendors' own options (LocalVendor.options), e.g. an API version
    vendor_options: dict[str, dict[str, str]] = field(default_factory=dict)
    work_seconds: float = 3.0  # how long the sandboxes' vendors take over a job
    reconcile_every: float = 5.0
    reconcile_after: int = 8  # seconds of silence before the reconciler looks a job up
    worker_concurrency: int | None = None  # None: the template's WorkerMaxConcurrency
    worker_batch_size: int | None = None  # None: the template's BatchSize
    api_concurrency: int = 4  # containers per HTTP function
    secrets_max_age: int = 300  # the template's default; 0 makes a rotated key count at once
    log_level: str = "WARNING"
    capture_events: bool = True  # the rule that copies events into `events_queue` (see _capture_events)
    # "eager": every function's containers run their init before the stack says it is ready (one each;
    # SubmissionWorker as many as its concurrency), as `sam local start-api --warm-containers EAGER`;
    # "lazy": each container starts on the invocation that needs it (a cold start, as on Lambda).
    warm_containers: str = "lazy"
    # True: every container starts as a fresh interpreter (a cold start that re-imports boto3 and the
    # rest, as long as Lambda's); False (default): forked from a server that imported them once
    # (local/runtime.py PRELOADED), a cold start that pays only for the function's own module.
    fresh_containers: bool = False
    # A custom domain's base-path mapping on the local API ("" none): the vendors then call back to
    # http://127.0.0.1:PORT/<base_path>/callbacks/..., as a deployment with PublicCallbackBaseUrl.
    base_path: str = ""
    # `--for-containers` (`make local SAM_LOCAL=1`, local/samples.py): the address sam local's
    # containers reach this host at ("" off); moto and the sandboxes are served there too, the
    # stack holds what the events/ samples name, and `env_vars_file` gets sam local's --env-vars.
    container_host: str = ""
    env_vars_file: Path | None = None
    # IAM enforced by the moto server on the functions' calls (each runs with its role's credentials)
    enforce_iam: bool = True
    # a folder: every function container records each AWS call it makes there (local/iam.py)
    record_aws_calls: Path | None = None
    roles_template: Path | None = None  # the functions' roles from this copy of template.yaml (tests)

    def start(self) -> LocalStack:
        batch_size, concurrency = worker_settings(ROOT / "template.yaml")
        self.worker_batch_size = self.worker_batch_size or batch_size
        self.worker_concurrency = self.worker_concurrency or concurrency
        setup = LocalSetup(
            faults=self.faults,
            work_seconds=self.work_seconds,
            rate_limits=self.rate_limits,
            options=self.vendor_options,
        )
        self.vendors: dict[str, LocalVendor] = {name: kind(setup).start() for name, kind in local_vendors().items()}
        api_port = free_port()
        stage, binary_media_types, routes = routes_from_template()
        self.api_url = f"http://127.0.0.1:{api_port}/{stage}"
        # Where vendors call back: the execute-api URL, or the custom domain's base path.
        base = self.base_path.strip("/")
        self.callback_base_url = f"http://127.0.0.1:{api_port}/{base}" if base else self.api_url

        parameters = {k: v for vendor in self.vendors.values() for k, v in vendor.parameters().items()}
        self.aws = LocalAws(
            {
                **parameters,
                "RetryBaseSeconds": "1",
                "RetryCapSeconds": "4",
                "SubmissionMaxReceives": "6",
                "CallbackRetryBaseSeconds": "1",
                "CallbackRetryCapSeconds": "4",
                "VendorConnectTimeoutSeconds": "1",
                "VendorReadTimeoutSeconds": "2",
                "LogLevel": self.log_level,
                "SecretsMaxAgeSeconds": str(self.secrets_max_age),
                "DocumentSourceBucket": DOCUMENT_BUCKET,
            },
            roles_template=self.roles_template,
        ).start()
        self.aws.client("s3").create_bucket(Bucket=DOCUMENT_BUCKET)  # the caller's bucket: not in the template
        if self.container_host:  # the samples' callback keys, and their jobs held where they expect them
            for vendor in self.vendors.values():
                vendor.play_samples()
        for name, vendor in self.vendors.items():
            logical = vendor.secret_logical_id
            self.aws.put_secret(logical, vendor.secret(self.aws.secret_values.get(logical, {})))
            vendor.connect(f"{self.callback_base_url}/callbacks/{name}")

        common = {
            "AWS_ENDPOINT_URL": self.aws.endpoint,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        # Each function gets its own variables only, as on Lambda, changed where the local stack
        # differs from AWS (below), so a variable the template forgets on a function fails here too.
        if self.record_aws_calls is not None:  # each function container writes down its AWS calls (local/iam.py)
            common[RECORD_AWS_CALLS_ENV] = str(self.record_aws_calls)
        # ... and runs with its own role's credentials, which the moto server holds it to once
        # enforcement is on (local/aws.py _roles, enforce_iam); the stack itself, its pollers and
        # the sandboxes keep the local key, the operator's.
        self.function_environments = {
            logical: {**self._local(own), **common, **self.aws.function_credentials[logical]}
            for logical, own in self.aws.function_environments.items()
        }
        # Not with --for-containers: sam local gives its containers the host's credentials (its
        # --env-vars sets only the variables a function declares), never a role's, so they would be
        # refused as an unknown key. IAM is proven on the local stack's own functions instead.
        if self.enforce_iam and not self.container_host:
            self.aws.enforce_iam()
        environment = {
            k: v for env in self.function_environments.values() for k, v in env.items() if k not in CREDENTIALS
        }
        environment |= common
        os.environ.update(environment)
        self.environment = environment

        # Every function runs in processes of its own, as Lambda runs it (local/runtime.py).
        self.functions = self._functions(self.function_environments)
        if self.warm_containers == "eager":
            # Before any poller starts: the first invocations then find their containers warm.
            # A container that cannot finish its init raises here: the stack does not start.
            try:
                with ThreadPoolExecutor(max_workers=len(self.functions)) as pool:
                    list(pool.map(lambda item: item[1].warm(_eager_containers(*item)), self.functions.items()))
            except InvocationError:
                self.stop()  # nothing of a stack that does not start stays behind
                raise
        self.api = LocalApi(
            stage, binary_media_types, routes, self.functions, gateway_responses_from_template(), base_path=base
        )
        self.api_server = BackgroundServer(self.api, port=api_port, request_handler=LocalApi.request_handler).start()
        # The Lambda Invoke API, as `sam local start-lambda` serves it: direct invokes of any function.
        self.lambda_server = BackgroundServer(
            LambdaInvokeApi(
                {name: runtime.invoke for name, runtime in self.functions.items()}, aliases=template_aliases()
            )
        ).start()
        self.lambda_endpoint = self.lambda_server.url

        self.events_queue = self._capture_events(environment["EVENT_BUS_NAME"]) if self.capture_events else ""
        stream_arn = self.aws.client("dynamodb").describe_table(TableName=environment["JOBS_TABLE_NAME"])["Table"][
            "LatestStreamArn"
        ]
        # As the template's mapping says: batches, bisection, retries, the OnFailure queue (EventsDLQ).
        self.stream = StreamPoller(
            self.aws.client("dynamodbstreams"),
            stream_arn,
            self.functions["EventPublisherFunction"],
            mapping=stream_mapping(ROOT / "template.yaml", "EventPublisherFunction", self.aws.queue_url),
            sqs=self.aws.client("sqs"),
            timeout_seconds=self.functions["EventPublisherFunction"].timeout,
        ).start()
        self.worker = SqsPoller(
            self.aws.client("sqs"),
            environment["SUBMISSION_QUEUE_URL"],
            self.functions["SubmissionWorkerFunction"],
            function_name="SubmissionWorkerFunction",
            concurrency=self.worker_concurrency,
            batch_size=self.worker_batch_size,
            wait_seconds=1,
        )
        self.worker.start()
        self.callback_retry = SqsPoller(
            self.aws.client("sqs"),
            environment["CALLBACK_RETRY_QUEUE_URL"],
            self.functions["CallbackRetryFunction"],
            function_name="CallbackRetryFunction",
            concurrency=1,
            wait_seconds=1,
        )
        self.callback_retry.start()
        self._stop = threading.Event()
        self.reconciler_runs: list[dict[str, int]] = []

        def reconcile() -> None:
            while not self._stop.wait(self.reconcile_every):
                try:
                    self.reconciler_runs.append(self.functions["ReconcilerFunction"].invoke({}))
                except Exception as exc:  # the schedule keeps going, as EventBridge Scheduler would
                    if self._stop.is_set():
                        return
                    print(f"[reconciler] run failed: {type(exc).__name__}: {exc}", file=sys.stderr)

        self._reconciler = threading.Thread(target=reconcile, name="reconciler-schedule", daemon=True)
        self._reconciler.start()
        self.forwarders: list[Any] = []
        self.sam_local: list[str] = []  # what --for-containers did, for the announcement
        if self.container_host:
            self._for_containers()
        return self

    def _for_containers(self) -> None:
        """sam local's containers use this stack: served at `container_host`, holding what the
        events/ samples name, and the env-vars file written (local/samples.py)."""
        from local import samples

        host = self.container_host
        declared = self.aws.function_environments
        variables = samples.env_vars(declared, self.function_environments, self.aws.endpoint, host)
        if host != samples.LOOPBACK:
            local_urls = {k: v for env in declared.values() for k, v in env.items()} | {"moto": self.aws.endpoint}
            local_urls |= {name: vendor.url for name, vendor in self.vendors.items()}
            local_urls |= {k: v for env in self.function_environments.values() for k, v in env.items()}
            self.forwarders = [
                samples.Forwarder(host, port).start() for port in sorted(samples.loopback_ports(local_urls))
            ]
            for vendor in self.vendors.values():  # URLs a vendor hands out (e.g. result URLs) too
                assert vendor.server is not None
                vendor.served(samples.for_containers(vendor.server.url, host))
        self.sam_local = samples.seed(
            self.aws,
            self.functions["SubmitJobFunction"].invoke,
            {name: f"{self.callback_base_url}/callbacks/{name}" for name in self.vendors},
            declared,
            self.environment["JOBS_TABLE_NAME"],
            self.environment["RESULTS_BUCKET_NAME"],
        )
        if self.env_vars_file is not None:
            samples.write_env_vars(self.env_vars_file, variables)
            self.sam_local.append(f"env-vars file for sam local --env-vars: {self.env_vars_file}")

    def _local(self, own: dict[str, str]) -> dict[str, str]:
        """A function's variables on the local stack: callback URLs known here (no SSM), and the
        reconciler's silence budgets in seconds (the template's minimum suits AWS, not a demo)."""
        env = dict(own)
        for name in [n for n in env if n.endswith("_CALLBACK_URL_PARAMETER")]:
            del env[name]
            vendor = name.removesuffix("_CALLBACK_URL_PARAMETER")
            env[f"{vendor}_CALLBACK_URL"] = f"{self.callback_base_url}/callbacks/{vendor.lower()}"
        if "RECONCILE_AFTER_SECONDS" in env:
            env["RECONCILE_AFTER_SECONDS"] = str(self.reconcile_after)
        if "RECONCILE_DELIVERED_AFTER_SECONDS" in env:
            env["RECONCILE_DELIVERED_AFTER_SECONDS"] = str(self.reconcile_after)
        if "RECONCILE_AFTER_SECONDS_BY_VENDOR" in env:
            env["RECONCILE_AFTER_SECONDS_BY_VENDOR"] = ",".join(
                f"{budget.split('=')[0]}={self.reconcile_after}"
                for budget in env["RECONCILE_AFTER_SECONDS_BY_VENDOR"].split(",")
            )
        return env

    def _functions(self, environments: dict[str, dict[str, str]]) -> dict[str, FunctionRuntime]:
        from local.cfn_yaml import yaml_parse

        sam = yaml_parse((ROOT / "template.yaml").read_text())
        default_timeout = sam.get("Globals", {}).get("Function", {}).get("Timeout", 3)
        default_memory = sam.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
        concurrency = {
            "SubmissionWorkerFunction": self.worker_concurrency or worker_settings(ROOT / "template.yaml")[1],
            "ReconcilerFunction": 1,
            "CallbackRetryFunction": 1,
        }
        runtimes = {}
        for name, resource in sam["Resources"].items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            props = resource["Properties"]
            module, handler = props["Handler"].rsplit(".", 1)
            runtimes[name] = FunctionRuntime(
                name,
                ".".join((*Path(props["CodeUri"]).parts, module)),
                handler,
                environments[name],
                timeout=float(props.get("Timeout", default_timeout)),
                concurrency=concurrency.get(name, self.api_concurrency),
                preload=not self.fresh_containers,
                # as on Lambda: the template's variables for this function (and the host's PATH,
                # HOME, locale: local/runtime.py HOST_BASICS), never the stack's or another function's
                inherit_environment=False,
                memory_mb=int(props.get("MemorySize", default_memory)),
            )
        return runtimes

    def _capture_events(self, bus: str) -> str:
        """A rule on the stack's bus that copies every Handoff event into a local queue (a stand-in
        for a downstream subscriber; not part of the template)."""
        sqs, events = self.aws.client("sqs"), self.aws.client("events")
        url = str(sqs.create_queue(QueueName="local-job-events")["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="local-all-job-events", EventBusName=bus, EventPattern=json.dumps({"source": ["handoff"]}))
        events.put_targets(Rule="local-all-job-events", EventBusName=bus, Targets=[{"Id": "local-queue", "Arn": arn}])
        return url

    def job_events(self) -> list[dict[str, Any]]:
        """Every event the bus delivered to the local queue so far (taken off the queue)."""
        if not self.events_queue:
            raise RuntimeError("the stack was started without event capture (--no-event-capture)")
        sqs = self.aws.client("sqs")
        found: list[dict[str, Any]] = []
        while batch := sqs.receive_message(QueueUrl=self.events_queue, MaxNumberOfMessages=10).get("Messages", []):
            found += [json.loads(m["Body"]) for m in batch]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
            sqs.delete_message_batch(QueueUrl=self.events_queue, Entries=entries)
        return found

    def stop(self) -> None:
        for stopping in self._started("_stop"):  # the reconciler's schedule, once started
            stopping.set()
        # The functions first: an invocation in flight ends now (as Lambda drops a sandbox), so the
        # pollers waiting on one are free at once and no poller starts another container. Each
        # group is stopped side by side: Ctrl-C stops the stack in about a second.
        _all_at_once([runtime.stop for runtime in self.functions.values()])
        # The SQS pollers are not waited for: each is in a long poll of up to a second, after which
        # it sees the stop and ends (its functions are stopped: it can invoke nothing).
        for poller in self._started("worker", "callback_retry"):
            poller.stop(wait=False)
        for part in self._started("stream"):
            part.stop()
        for vendor in self.vendors.values():
            vendor.stop()
        for forwarder in getattr(self, "forwarders", []):
            forwarder.stop()
        for part in self._started("api_server", "lambda_server"):
            part.stop()
        self.aws.stop()

    def _started(self, *names: str) -> list[Any]:
        """Those of the stack's parts `names` that exist: a stack whose start failed part way (an
        eager warm-up refused) is stopped as far as it got."""
        return [getattr(self, name) for name in names if hasattr(self, name)]

    def describe(self) -> dict[str, Any]:
        urls: dict[str, Any] = {"api": self.api_url}
        urls |= {f"{name}_callback_url": f"{self.callback_base_url}/callbacks/{name}" for name in self.vendors}
        urls |= {f"{name}_sandbox": vendor.url for name, vendor in self.vendors.items()}
        urls |= {  # the vendors' own options on this stack (e.g. which API version a sandbox speaks)
            f"{name}_{option}": vendor.option(option)
            for name, vendor in self.vendors.items()
            for option in vendor.options
        }
        urls |= {
            "aws_endpoint": self.aws.endpoint,
            "lambda_endpoint": self.lambda_endpoint,
            "jobs_table": self.environment["JOBS_TABLE_NAME"],
            "results_bucket": self.environment["RESULTS_BUCKET_NAME"],
            "document_bucket": DOCUMENT_BUCKET,
            "submission_queue": self.environment["SUBMISSION_QUEUE_URL"],
            "callback_retry_queue": self.environment["CALLBACK_RETRY_QUEUE_URL"],
            "event_bus": self.environment["EVENT_BUS_NAME"],
            "events_queue": self.events_queue,
        }
        urls |= {f"{name}_secret": self.aws.resources[v.secret_logical_id] for name, v in self.vendors.items()}
        if self.container_host:
            urls["container_host"] = self.container_host
            urls["env_vars_file"] = str(self.env_vars_file or "")
        return urls

    def outputs(self) -> dict[str, str]:
        """The stack's outputs as a deployment's CloudFormation has them (same keys), for operator
        tools: what moto built, each function's local ARN, the API and callback URLs served here."""
        outputs = dict(self.aws.outputs)
        outputs["ApiUrl"] = self.api_url
        for name in self.aws.template_outputs:
            vendor = name.removesuffix("CallbackUrl").lower()
            if name.endswith("CallbackUrl") and vendor in self.vendors:
                outputs[name] = f"{self.callback_base_url}/callbacks/{vendor}"
        return outputs


def _eager_containers(name: str, runtime: FunctionRuntime) -> int:
    """Containers `--warm-containers eager` starts: one per function (sam local's EAGER), and for
    SubmissionWorker as many as its concurrency, since a bulk keeps every one of them busy at once."""
    return runtime.concurrency if name == "SubmissionWorkerFunction" else 1


def _all_at_once(stops: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=stop, daemon=True) for stop in stops]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def log_levels(template: Path = ROOT / "template.yaml") -> list[str]:
    """The template's LogLevel AllowedValues: what a function's Logger is given."""
    from local.cfn_yaml import yaml_parse

    return list(yaml_parse(template.read_text())["Parameters"]["LogLevel"]["AllowedValues"])


# The longest a number of seconds may be here: a year. Datetime arithmetic with more (a secret's
# cache expiry, the reconciler's cut-off) overflows in every function, every time.
MAX_SECONDS = 365 * 24 * 3600


def at_least(minimum: int, maximum: int = MAX_SECONDS) -> Callable[[str], int]:
    """An argparse type: a whole number from `minimum` to `maximum` (refused at start, not by
    every function later)."""

    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be from {minimum} to {maximum}")
        return value

    return whole_number


def rate_limit(text: str) -> tuple[str, float]:
    """`--rate VENDOR=N`: a sandbox's requests/s, and the stack's (the template's
    <Vendor>MaxRequestsPerSecond, whose MinValue is 1)."""
    name, _, value = text.partition("=")
    if name not in local_vendors():
        raise argparse.ArgumentTypeError(f"no sandbox for vendor {name!r} (known: {', '.join(local_vendors())})")
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected VENDOR=N, N requests per second") from None
    if not math.isfinite(rate) or rate < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: N must be a number of requests per second, 1 or more")
    return name, rate


def vendor_option(text: str) -> tuple[str, str, str]:
    """`--option VENDOR.NAME=VALUE`: one of a vendor sandbox's options (LocalVendor.options)."""
    try:
        return checked_vendor_option(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def vendor_options_help() -> str:
    offered = [
        f"{name}.{option}={'|'.join(values)}"
        for name, kind in local_vendors().items()
        for option, values in kind.options.items()
    ]
    return "a vendor's own option (repeatable; the first value is the default): " + (", ".join(offered) or "none")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Handoff's local stack until Ctrl-C (or until stdin closes).")
    parser.add_argument("--faults", action="store_true", help="switch the demo's faults on")
    parser.add_argument("--ready-json", action="store_true", help="print one JSON line when ready (for tests)")
    parser.add_argument("--until-stdin-closes", action="store_true")
    parser.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=log_levels(), help="the functions' POWERTOOLS_LOG_LEVEL"
    )
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="VENDOR=N",
        type=rate_limit,
        help="a vendor sandbox's limit in requests/s, and the stack's (repeatable; default: each sandbox's own)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="VENDOR.NAME=VALUE",
        type=vendor_option,
        help=vendor_options_help(),
    )
    parser.add_argument(
        "--workers",
        type=at_least(1, 1000),  # the template's WorkerMaxConcurrency MaxValue
        default=None,
        help="concurrent SubmissionWorker invocations (default: the template's WorkerMaxConcurrency)",
    )
    parser.add_argument(
        "--warm-containers",
        choices=("eager", "lazy"),
        default="lazy",
        help="eager: every function's containers finish their init before the stack is ready (SubmissionWorker "
        "as many as its concurrency), as sam local's --warm-containers EAGER; lazy (default): cold starts "
        "on first use",
    )
    parser.add_argument(
        "--fresh-containers",
        action="store_true",
        help="each container starts as a fresh interpreter, importing everything itself (a cold start as long "
        "as a fresh import); default: forked from a server that imported the libraries every function uses",
    )
    parser.add_argument(
        "--no-vendor-callbacks", action="store_true", help="no vendor sandbox calls back (jobs still move on)"
    )
    parser.add_argument(
        "--secrets-max-age", type=at_least(0), default=300, help="seconds a function caches a secret (0: no caching)"
    )
    parser.add_argument(
        "--reconcile-after",
        type=at_least(1),
        default=8,
        help="seconds of silence before the reconciler looks a job up",
    )
    parser.add_argument(
        "--base-path",
        default="",
        help="serve the API also as a custom domain's base-path mapping, /<base-path>/<route> (no stage), "
        "and have the vendors call back there",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help=f"where to say the stack is running, for operator tools (default: {STATE_FILE.name} in the "
        "repository, except with --ready-json)",
    )
    parser.add_argument(
        "--no-event-capture",
        action="store_true",
        help="no rule copying the bus's events into events_queue (less work for moto; nothing to drain)",
    )
    parser.add_argument(
        "--for-containers",
        nargs="?",
        const="docker0",
        default="",
        metavar="ADDRESS",
        help="for sam local (make local SAM_LOCAL=1): serve moto and the sandboxes also at ADDRESS (default: "
        "docker0's address), hold what the events/ samples name, write the --env-vars file",
    )
    parser.add_argument(
        "--env-vars-file",
        type=Path,
        default=None,
        help="where --for-containers writes sam local's --env-vars file (default: .sam-local-env.json here)",
    )
    parser.add_argument(
        "--no-enforce-iam",
        action="store_true",
        help="moto allows every call (the functions still run with their roles' credentials)",
    )
    parser.add_argument(
        "--record-aws-calls",
        type=_nonempty_path,
        default=None,
        metavar="FOLDER",
        help="every function writes down each AWS call it makes (service, operation, IAM action, resource "
        "ARNs) into FOLDER, one JSON line per call (local/iam.py; the least-privilege check reads them)",
    )
    parser.add_argument(
        "--roles-template",
        type=Path,
        default=None,
        metavar="PATH",
        help="take the functions' IAM roles from this copy of template.yaml (to see a missing permission refused)",
    )
    args = parser.parse_args(argv)
    if args.record_aws_calls is not None:
        folder = args.record_aws_calls
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            parser.error(f"--record-aws-calls {str(folder)!r}: not a folder this stack can write to (create it first)")
    if args.roles_template is not None:
        problem = _roles_template_problem(args.roles_template)
        if problem:
            parser.error(f"--roles-template {str(args.roles_template)!r}: {problem}")
    vendor_options: dict[str, dict[str, str]] = {}
    for vendor, name, value in args.option:
        vendor_options.setdefault(vendor, {})[name] = value
    # SIGTERM (`kill <pid>`) stops the stack as Ctrl-C does: everything it started goes with it.
    signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C too, even when started in the background by a shell (which hands SIGINT over ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _local_network_and_no_profile()
    stack: LocalStack | None = None
    state_file = args.state_file or (None if args.ready_json else STATE_FILE)
    try:
        stack = LocalStack(
            faults=Faults.demo() if args.faults else Faults(),
            log_level=args.log_level,
            rate_limits=dict(args.rate),
            vendor_options=vendor_options,
            worker_concurrency=args.workers,
            secrets_max_age=args.secrets_max_age,
            reconcile_after=args.reconcile_after,
            capture_events=not args.no_event_capture,
            warm_containers=args.warm_containers,
            fresh_containers=args.fresh_containers,
            base_path=args.base_path,
            enforce_iam=not args.no_enforce_iam,
            record_aws_calls=args.record_aws_calls,
            roles_template=args.roles_template,
            **_for_containers(args),
        ).start()
        if args.no_vendor_callbacks:
            for vendor in stack.vendors.values():
                vendor.silence()
        announce(stack, args, state_file)
        if args.until_stdin_closes:
            sys.stdin.read()
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    except InvocationError as exc:  # --warm-containers eager: a function's init raised
        print(f"error: the stack did not start: {exc}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C (or SIGTERM) does not interrupt the stop: it takes a second or two.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if state_file is not None:
            _forget(state_file)
        if stack is not None:
            stack.stop()
    return 0


def _local_network_and_no_profile() -> None:
    """The stack's AWS is its own moto server, with fixed keys: a shell's AWS_PROFILE (one that
    does not exist here, say) must not reach the SAM translator's session. And everything local is
    at 127.0.0.1: never through the shell's proxy, for the stack and for the functions, which keep
    the proxy variables (local/runtime.py HOST_BASICS) to reach a real vendor."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    for name in ("NO_PROXY", "no_proxy"):
        kept = [host for host in os.environ.get(name, "").split(",") if host.strip()]
        os.environ[name] = ",".join(dict.fromkeys([*kept, "127.0.0.1", "localhost"]))


def _roles_template_problem(path: Path) -> str:
    """Why `path` cannot give the functions' roles ("" when it can): it must be a SAM template that
    translates, with every function template.yaml has."""
    from local.aws import translate

    try:
        translated = translate(path)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    except Exception as exc:  # YAML, a template that is no mapping, SAM's own refusal: said in one line
        return f"not a template SAM can translate: {first_line(str(exc)) or type(exc).__name__}"
    ours = translate(ROOT / "template.yaml")
    functions = {k for k, v in ours["Resources"].items() if v["Type"] == "AWS::Lambda::Function"}
    missing = sorted(functions - set(translated.get("Resources", {})))
    return f"it has no {', '.join(missing)} (a copy of template.yaml is expected)" if missing else ""


def _nonempty_path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (the current folder would be taken silently)")
    return Path(text)


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _for_containers(args: argparse.Namespace) -> dict[str, Any]:
    """LocalStack's container_host and env_vars_file from --for-containers and --env-vars-file."""
    if not args.for_containers:
        return {}
    from local.samples import ENV_VARS_FILE, container_host

    host, note = container_host(args.for_containers)
    print(f"sam local: {note}", file=sys.stderr, flush=True)
    return {"container_host": host, "env_vars_file": args.env_vars_file or ENV_VARS_FILE}


def announce(stack: LocalStack, args: argparse.Namespace, state_file: Path | None) -> None:
    """Say where the stack listens: on stdout, and in the state file for operator tools."""
    urls = stack.describe()
    # Each function's environment too: a test or an operator tool can run a function in a process
    # of its own (and stop it), as `make preflight` runs SubmitJob's checks.
    state = {
        **urls,
        "outputs": stack.outputs(),
        "function_environments": stack.function_environments,
        "function_policies": stack.aws.function_policies,  # each role's inline policies, as created in moto
        "resources": stack.aws.resources,  # logical id -> physical id, as CloudFormation's stack resources
        "stack_name": stack.aws.stack_name,
        "pid": os.getpid(),
    }
    if state_file is not None:
        state_file.write_text(json.dumps(state))
    if args.ready_json:
        print(json.dumps(state), flush=True)
    else:
        width = max(map(len, urls))
        print("Handoff local stack (no Docker, no AWS account):")
        for name, value in urls.items():
            print(f"  {name.ljust(width)}  {value}")
        print(
            f"Routes under /jobs and /batches need SigV4 signed with access key {ACCESS_KEY_ID!r}, secret "
            f"{SECRET_ACCESS_KEY!r}, region {REGION}, service execute-api; see README 'Local stack'."
        )
        for line in stack.sam_local:
            print(f"sam local: {line}")
        if stack.sam_local:
            print("sam local: README 'sam local' has the commands (sam local invoke -e events/..., start-api).")
        if args.no_vendor_callbacks:
            print("No vendor sandbox calls back: send the callbacks yourself (README 'Poking at it by hand').")
        if args.no_enforce_iam or stack.container_host:
            print("IAM: not enforced; every function's call is allowed (README 'Least privilege, checked locally').")
        else:
            roles = args.roles_template or "template.yaml"
            print(f"IAM: enforced, each function with its own role from {roles} (a refused call logs AccessDenied).")
        if args.record_aws_calls is not None:
            print(f"IAM: every function's AWS calls are written to {args.record_aws_calls}/ (local/iam.py check).")
        if state_file is not None:
            print(
                f"Operator tools find this stack through {state_file}: .venv/bin/handoff (jobs list, jobs show, "
                "events tail, ...), make preflight, replay, redrive."
            )
        print("Function logs follow (JSON, one line per event, reference_id on each). Ctrl-C stops.", flush=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _forget(state_file: Path) -> None:
    """Remove the state file if it still names this process (another stack may have taken it over)."""
    try:
        if json.loads(state_file.read_text()).get("pid") == os.getpid():
            state_file.unlink()
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
