"""Figures on the local stack (moto server, local API, in-process functions, sandboxes):

- callback throughput: Playment callbacks/s through the local API from 8 concurrent senders, beside
  a bare conditional UpdateItem loop from 8 threads against the same moto server (the floor);
- bulk submission: 500 jobs to the Playment sandbox limited to 50 requests/s, elapsed against the
  10 s floor, and the sandbox's 429 answers.

Everything shares this machine's cores (2 here) with moto; the ratios are measured side by side.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "shared"), str(ROOT)]

from local.demo import signed_post  # noqa: E402
from local.stack import LocalStack  # noqa: E402

SENDERS = 8


def wait(condition: Any, timeout: float, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the local stack did not get there in time")
        time.sleep(step)


def submit_bulk(stack: LocalStack, prefix: str, count: int) -> float:
    """POST count jobs in batches of 500; returns when the sandbox holds all of them (elapsed s)."""
    jobs = [
        {"vendor": "playment", "reference_id": f"{prefix}-{n:04d}", "data": {"image_url": f"https://x.example/{n}.jpg"}}
        for n in range(count)
    ]
    started = time.monotonic()
    for start in range(0, count, 500):
        answer = signed_post(f"{stack.api_url}/jobs", {"jobs": jobs[start : start + 500]})
        assert answer.status_code == 202, answer.text
    wait(lambda: sum(1 for r in stack.playment.by_reference if r.startswith(prefix)) >= count, timeout=600)
    return time.monotonic() - started


def bulk_at_limit(jobs: int = 500, limit: int = 50) -> dict[str, float]:
    stack = LocalStack(playment_rate_limit=limit, worker_concurrency=4).start()
    try:
        stack.playment.callback_url = ""  # no vendor progress: this measures submission only
        elapsed = submit_bulk(stack, "bulk", jobs)
        creations = stack.playment.creations()
        return {
            "elapsed": elapsed,
            "floor": jobs / limit,
            "answers_429": sum(c.status == 429 for c in creations),
            "peak": stack.playment.peak_rate(),
            "requests": len(creations),
        }
    finally:
        stack.stop()


def callback_throughput(jobs: int = 400) -> dict[str, float]:
    stack = LocalStack(playment_rate_limit=200, worker_concurrency=4).start()
    try:
        stack.playment.callback_url = ""
        submit_bulk(stack, "cb", jobs)
        ids = {r: j.id for r, j in stack.playment.by_reference.items() if r.startswith("cb")}
        url = f"{stack.api_url}/callbacks/playment"
        headers = {"Content-Type": "application/json", "x-playment-key": stack.playment.callback_key}
        session = threading.local()

        def send(reference_id: str) -> int:
            if not hasattr(session, "s"):
                session.s = requests.Session()
            body = {"annotations": [{"reference_id": reference_id, "job_id": ids[reference_id], "status": "COMPLETED"}]}
            return int(session.s.post(url, json=body, headers=headers, timeout=30).status_code)

        wait(lambda: stack.worker.invocations > 0 and _queue_empty(stack), timeout=120)
        started = time.monotonic()
        with ThreadPoolExecutor(SENDERS) as pool:
            statuses = list(pool.map(send, sorted(ids)))
        callbacks_per_s = len(ids) / (time.monotonic() - started)

        dynamodb = stack.aws.client("dynamodb")
        dynamodb.create_table(
            TableName="bench-floor",
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        clients = threading.local()

        def update(n: int) -> None:
            if not hasattr(clients, "c"):
                clients.c = stack.aws.client("dynamodb")
            clients.c.update_item(
                TableName="bench-floor",
                Key={"k": {"S": f"item-{n}"}},
                UpdateExpression="SET #s = :s, #v = if_not_exists(#v, :zero) + :one",
                ConditionExpression="attribute_not_exists(#s) OR #s <> :s",
                ExpressionAttributeNames={"#s": "status", "#v": "version"},
                ExpressionAttributeValues={":s": {"S": "COMPLETED"}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
            )

        started = time.monotonic()
        with ThreadPoolExecutor(SENDERS) as pool:
            list(pool.map(update, range(len(ids))))
        updates_per_s = len(ids) / (time.monotonic() - started)
        return {
            "callbacks_per_s": callbacks_per_s,
            "updates_per_s": updates_per_s,
            "ratio": callbacks_per_s / updates_per_s,
            "non_200": sum(s != 200 for s in statuses),
            "median_status": statistics.median(statuses),
        }
    finally:
        stack.stop()


def _queue_empty(stack: LocalStack) -> bool:
    attributes = stack.aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.environment["SUBMISSION_QUEUE_URL"], AttributeNames=["All"]
    )["Attributes"]
    return sum(int(v) for k, v in attributes.items() if k.startswith("ApproximateNumberOfMessages")) == 0


def main() -> None:
    """Each measurement in a process of its own: a local stack is one per process."""
    import json
    import subprocess

    def run(section: str) -> dict[str, float]:
        done = subprocess.run(
            [sys.executable, "-m", "bench.local_stack", section], cwd=ROOT, capture_output=True, text=True, check=True
        )
        figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        return figures

    print("Local stack (one process: moto server, local API, functions, sandboxes; 2 cores)")
    bulk = run("bulk")
    print(
        f"  bulk: 500 jobs to the Playment sandbox limited to 50/s: {bulk['elapsed']:.1f} s against the "
        f"{bulk['floor']:.0f} s floor = {bulk['elapsed'] / bulk['floor']:.2f}x (target <= 1.2x); "
        f"{bulk['answers_429']:.0f} answers of 429; peak {bulk['peak']:.0f}/s; {bulk['requests']:.0f} requests"
    )
    throughput = run("callbacks")
    print(
        f"  callbacks: {throughput['callbacks_per_s']:.0f}/s through the local API from {SENDERS} senders, "
        f"beside {throughput['updates_per_s']:.0f} bare conditional UpdateItems/s (the floor): "
        f"ratio {throughput['ratio']:.2f} (target >= 0.7); {throughput['non_200']:.0f} answers not 200"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        import json

        print(json.dumps(bulk_at_limit() if sys.argv[1] == "bulk" else callback_throughput()))
    else:
        main()
