"""Retry-path figures: vendor requests per job when the vendor fails 30% of requests transiently,
and the peak outbound rate against the configured limit during a 500-job bulk submission.

    .venv/bin/python -m bench.retry_path

AWS is moto in-process; Playment is the sandbox (local/sandboxes/playment.py) in its own process,
so its arrival times are not skewed by this process; the worker runs under the Lambda-like poller.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import boto3
import requests
from moto import mock_aws

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "shared"), str(ROOT)]
os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # the figures, not one metric line per job
warnings.filterwarnings("ignore", message="No application metrics to publish")

from tests.conftest import (  # noqa: E402  (sets the functions' environment, as the tests do)
    PLAYMENT_API_KEY,
    create_jobs_table,
    create_rate_limit_table,
    create_submission_queues,
    reset_function_caches,
)


def sandbox(rate_limit: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "local.sandboxes.playment", PLAYMENT_API_KEY, "proj-1", str(rate_limit)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def run(jobs: int, *, rate_limit: float, error_rate: float, workers: int) -> dict[str, float]:
    from functions.submission_worker import app as worker_app
    from functions.submit_job import app as submit_app
    from local.context import LocalContext
    from local.sandboxes.server import peak_rate
    from local.sqs_poller import SqsPoller

    process, url = sandbox(rate_limit)
    try:
        with mock_aws():
            os.environ.update(
                PLAYMENT_BASE_URL=url,
                VENDOR_MAX_REQUESTS_PER_SECOND=f"playment={rate_limit:g}",
                SUBMISSION_MAX_RECEIVES="10",
                RETRY_BASE_SECONDS="0",
                RETRY_CAP_SECONDS="1",
            )
            boto3.client("secretsmanager").create_secret(
                Name=os.environ["PLAYMENT_SECRET_NAME"], SecretString=json.dumps({"api_key": PLAYMENT_API_KEY})
            )
            create_jobs_table(boto3.client("dynamodb"), os.environ["JOBS_TABLE_NAME"])
            create_rate_limit_table(boto3.client("dynamodb"), os.environ["RATE_LIMIT_TABLE_NAME"])
            queue_url, _ = create_submission_queues(boto3.client("sqs"), 10)
            os.environ["SUBMISSION_QUEUE_URL"] = queue_url
            reset_function_caches()
            requests.post(f"{url}/_sandbox/knobs", json={"error_rate": error_rate}, timeout=5)
            body = {
                "jobs": [
                    {
                        "vendor": "playment",
                        "reference_id": f"bench-{n:04d}",
                        "data": {"image_url": f"https://images.example.com/{n}.jpg"},
                        "tag": "boxes",
                    }
                    for n in range(jobs)
                ]
            }
            started = time.monotonic()
            answer = submit_app.lambda_handler(body, LocalContext("SubmitJob", 29))
            if "totals" not in answer:
                raise RuntimeError(f"bulk submission refused: {answer}")
            sqs = boto3.client("sqs")
            poller = SqsPoller(
                sqs, queue_url, worker_app.lambda_handler, concurrency=workers, batch_size=10, wait_seconds=0
            )
            with poller:
                while True:
                    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
                    if sum(int(attributes[k]) for k in attributes if k.startswith("ApproximateNumberOfMessages")) == 0:
                        break
                    time.sleep(0.1)
            elapsed = time.monotonic() - started
            items = boto3.client("dynamodb").scan(TableName=os.environ["JOBS_TABLE_NAME"])["Items"]
            statuses = [i["status"]["S"] for i in items]
        creations = requests.get(f"{url}/_sandbox/creations", timeout=5).json()
        vendor_jobs = requests.get(f"{url}/_sandbox/jobs", timeout=5).json()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)
    return {
        "jobs": jobs,
        "submitted": statuses.count("SUBMITTED"),
        "failed": statuses.count("FAILED"),
        "still_queued": statuses.count("QUEUED"),
        "vendor_jobs": len(vendor_jobs),
        "distinct_references": len({j["reference_id"] for j in vendor_jobs}),
        "requests": len(creations),
        "requests_per_job": len(creations) / jobs,
        "answers_429": sum(c["status"] == 429 for c in creations),
        "peak_per_second": peak_rate([c["at"] for c in creations]),
        "limit": rate_limit,
        "elapsed_s": elapsed,
    }


def main() -> None:
    print("retry path (moto in-process, Playment sandbox in its own process, 4 worker threads)")
    flaky = run(300, rate_limit=1000, error_rate=0.3, workers=4)
    print(
        f"  30% transient 503s, 300 jobs: {flaky['requests']} creation requests = "
        f"{flaky['requests_per_job']:.2f} per job (1/0.7 = 1.43 expected); "
        f"{flaky['submitted']} SUBMITTED, {flaky['failed']} FAILED, {flaky['still_queued']} still QUEUED; "
        f"{flaky['vendor_jobs']} vendor jobs for {flaky['distinct_references']} references"
    )
    paced = run(500, rate_limit=25, error_rate=0.0, workers=4)
    print(
        f"  500-job bulk at a 25/s limit: peak {paced['peak_per_second']} per second, "
        f"{paced['answers_429']} answers of 429, {paced['submitted']} SUBMITTED in {paced['elapsed_s']:.1f} s "
        f"(floor at 25/s: 20.0 s)"
    )


if __name__ == "__main__":
    main()
