"""AWS requests per job lifecycle, counted with botocore event hooks on the functions' own clients.

Warm functions (secrets already cached, as in a busy stack); moto in-process; the Playment sandbox
as a real HTTP server. Stream reads, SQS receives and deletes are the event source mappings'
(Lambda's) requests, not the functions', and are not counted.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "shared"), str(ROOT)]

from tests.conftest import (  # noqa: E402  (sets the functions' environment, as the tests do)
    PLAYMENT_API_KEY,
    PLAYMENT_CALLBACK_KEY,
    LambdaContext,
    create_jobs_table,
    create_rate_limit_table,
    create_submission_queues,
    load_event,
    reset_function_caches,
    stream_records,
)

JOB_ID_FIELD = "vendor_job_id"
os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # the figures, not one metric line per request
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # nor the sandbox's access log
warnings.filterwarnings("ignore", message="No application metrics to publish")


class Counted:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.failed_writes = 0

    def before(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        service, operation = event_name.split(".")[1:3]
        table = params.get("TableName", "")
        where = "(rate)" if table == os.environ["RATE_LIMIT_TABLE_NAME"] else "(jobs)" if table else ""
        self.calls[f"{service}.{operation}{where}"] += 1

    def after(self, event_name: str, parsed: dict[str, Any], **_: Any) -> None:
        if "Error" in parsed and event_name.split(".")[-1] in {"PutItem", "UpdateItem"}:
            self.failed_writes += 1

    def writes(self) -> int:
        return sum(n for k, n in self.calls.items() if k.split(".")[1].split("(")[0] in {"PutItem", "UpdateItem"})


def function_clients() -> list[Any]:
    clients = []
    for name, module in list(sys.modules.items()):
        if name.startswith("functions.") and name.endswith(".app"):
            clients += [v for v in vars(module).values() if hasattr(v, "meta") and hasattr(v.meta, "events")]
    return clients


@contextmanager
def counting() -> Iterator[Counted]:
    counted = Counted()
    clients = function_clients()
    for client in clients:
        client.meta.events.register("before-parameter-build", counted.before)
        client.meta.events.register("after-call", counted.after)
    try:
        yield counted
    finally:
        for client in clients:
            client.meta.events.unregister("before-parameter-build", counted.before)
            client.meta.events.unregister("after-call", counted.after)


@dataclass
class Measured:
    rows: list[tuple[str, Counted, str]]
    job_item_bytes: int  # the job's item once COMPLETED, sized as DynamoDB sizes items


def item_bytes(value: Any, name: str = "") -> int:
    """An item's size by DynamoDB's rules (attribute names + values; numbers ~ 1 byte per two
    digits + 1; each map or list 3 bytes + 1 per element). Close enough to count write units."""
    size = len(name.encode())
    kind, inner = next(iter(value.items()))
    if kind in {"S", "B"}:
        return size + len(inner.encode() if isinstance(inner, str) else inner)
    if kind == "N":
        return size + len(inner.lstrip("-").replace(".", "")) // 2 + 1
    if kind in {"BOOL", "NULL"}:
        return size + 1
    if kind == "M":
        return size + 3 + sum(item_bytes(v, k) + 1 for k, v in inner.items())
    if kind == "L":
        return size + 3 + sum(item_bytes(v) + 1 for v in inner)
    return size + len(json.dumps(inner))


def measure() -> Measured:
    from functions.event_publisher import app as publisher_app
    from functions.playment_callback import app as callback_app
    from functions.submission_worker import app as worker_app
    from functions.submit_job import app as submit_app
    from local.sandboxes.playment import PlaymentSandbox
    from local.sandboxes.server import BackgroundServer
    from local.sqs_poller import SqsPoller

    context = LambdaContext()
    rows: list[tuple[str, Counted, str]] = []
    sandbox = PlaymentSandbox(api_key=PLAYMENT_API_KEY, project_id="proj-1", rate_limit=1000)
    with BackgroundServer(sandbox) as server, mock_aws():
        sandbox.base_url = server.url
        os.environ.update(PLAYMENT_BASE_URL=server.url, SUBMISSION_MAX_RECEIVES="3")
        create_jobs_table(boto3.client("dynamodb"), os.environ["JOBS_TABLE_NAME"])
        create_rate_limit_table(boto3.client("dynamodb"), os.environ["RATE_LIMIT_TABLE_NAME"])
        queue_url, _ = create_submission_queues(boto3.client("sqs"), 3)
        boto3.client("s3").create_bucket(Bucket=os.environ["RESULTS_BUCKET_NAME"])
        boto3.client("events").create_event_bus(Name=os.environ["EVENT_BUS_NAME"])
        boto3.client("secretsmanager").create_secret(
            Name=os.environ["PLAYMENT_SECRET_NAME"],
            SecretString=json.dumps({"api_key": PLAYMENT_API_KEY, "callback_key": PLAYMENT_CALLBACK_KEY}),
        )
        reset_function_caches()

        def submit(reference_id: str) -> dict[str, Any]:
            request = {**load_event("submit_job/direct_invoke_playment.json"), "reference_id": reference_id}
            answer: dict[str, Any] = submit_app.lambda_handler(request, context)
            return answer

        def callback(reference_id: str, job_id: str, status: str) -> None:
            event = load_event("playment_callback/api_completed.json")
            annotation = {"reference_id": reference_id, "job_id": job_id, "status": status, "result": {"ok": 1}}
            event["body"] = json.dumps({"annotations": [annotation]})
            callback_app.lambda_handler(event, context)

        warm = submit("warm-up")  # the first call of each function reads its secret: not counted
        callback("warm-up", warm[JOB_ID_FIELD], "COMPLETED")
        seen = len(stream_records())

        with counting() as counted:
            job = submit("bench-1")
        rows.append(("submit -> SUBMITTED", counted, "2 writes"))
        with counting() as counted:
            callback("bench-1", job[JOB_ID_FIELD], "COMPLETED")
        rows.append(("callback COMPLETED", counted, "1 write"))
        records = stream_records()[seen:]
        with counting() as counted:
            publisher_app.lambda_handler({"Records": records}, context)
        rows.append((f"publish its {len(records)} status changes", counted, "1 PutEvents per <= 10 events"))
        with counting() as counted:
            callback("bench-1", job[JOB_ID_FIELD], "COMPLETED")
        rows.append(("duplicate callback", counted, "no successful write"))

        sandbox.fail_next.append(503)
        with counting() as counted:
            submit("bench-2")
            SqsPoller(boto3.client("sqs"), queue_url, worker_app.lambda_handler, wait_seconds=0).poll_once()
        rows.append(("submit, 503, one retry -> SUBMITTED", counted, "2 writes + 1 per attempt"))
        item = boto3.client("dynamodb").get_item(
            TableName=os.environ["JOBS_TABLE_NAME"], Key={"reference_id": {"S": "bench-1"}}
        )["Item"]
    return Measured(rows, sum(item_bytes(v, k) for k, v in item.items()))


def main() -> None:
    measured = measure()
    print("AWS requests per lifecycle step (warm functions; floor beside)")
    for label, counted, floor in measured.rows:
        calls = ", ".join(f"{k} x{n}" for k, n in sorted(counted.calls.items()))
        print(f"  {label:38} {calls}")
        print(
            f"  {'':38} writes {counted.writes()} ({counted.failed_writes} refused by their condition); floor: {floor}"
        )


if __name__ == "__main__":
    main()
