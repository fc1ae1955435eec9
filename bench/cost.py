"""Cost per million jobs, by service: the request counts measured by bench/requests.py priced at
public AWS prices, beside the same jobs run by a per-job Step Functions standard workflow.

    .venv/bin/python -m bench.cost

The job modelled: a Playment job submitted through the API, accepted at once by 90% of jobs and
after one transient failure (one retry through SubmissionQueue) by 10%; then PENDING and
COMPLETED callbacks, with one duplicate callback for 30% of jobs; four status changes published.
Request counts are measured (warm functions, moto in-process). Lambda durations are assumptions
(named below), as are the shares above: change them here and run again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.requests import Counted, Measured, measure

JOBS = 1_000_000
RETRY_SHARE = 0.10  # jobs that need one retry
DUPLICATE_SHARE = 0.30  # jobs that get one duplicate callback
CALLBACKS = 2  # PENDING, COMPLETED
EVENTS = 4  # QUEUED, SUBMITTED, IN_PROGRESS, COMPLETED
PUBLISH_BATCH = 10  # stream records per EventPublisher invocation (busy stack: up to 100)


# Lambda: arm64, each function's MemorySize as template.yaml sets it. Durations are ASSUMED, not
# measured in AWS: SubmitJob and SubmissionWorker wait on the vendor (~300 ms round trip assumed).
def _memory_gb() -> dict[str, float]:
    from bench.cold_start import memory_sizes

    sizes = memory_sizes()
    callback = max(sizes[f"{name}CallbackFunction"] for name in ("Playment", "Textking", "Scale"))
    return {
        "SubmitJob": sizes["SubmitJobFunction"] / 1024,
        "SubmissionWorker": sizes["SubmissionWorkerFunction"] / 1024,
        "Callback": callback / 1024,
        "EventPublisher": sizes["EventPublisherFunction"] / 1024,
    }


MEMORY_GB = _memory_gb()
DURATION_S = {"SubmitJob": 0.40, "SubmissionWorker": 0.40, "Callback": 0.05, "EventPublisher": 0.10}


@dataclass(frozen=True)
class Price:
    usd: float
    per: int
    source: str


# us-east-1 list prices, as published on these pages (read 2026-11-23 from the stored copies the
# tool library holds; the date after each is the page's own, where it gives one).
PRICES = {
    "apigw_rest": Price(3.50, 1_000_000, "API Gateway REST, first 333M/month: docs.aws.amazon.com whitepaper "
                        "'Best Practices for Designing Amazon API Gateway Private APIs', Table 4"),
    "lambda_request": Price(0.20, 1_000_000, "Lambda requests: cloudchipr.com 'AWS Lambda Pricing', 2024"),
    "lambda_gb_s_arm": Price(0.0000133334, 1, "Lambda Arm duration per GB-s, first 7.5B GB-s: cloudchipr.com, 2024"),
    "ddb_wru": Price(0.625, 1_000_000, "DynamoDB on-demand write request units, after the Nov 2024 cut: "
                     "airbyte.com, 2025-07-21"),
    "sqs": Price(0.40, 1_000_000, "SQS standard requests (64 KB chunks): cloudburn.io, March 2026"),
    "events": Price(1.00, 1_000_000, "EventBridge custom events (64 KB chunks): cloudburn.io, March 2026"),
    "s3_put": Price(0.005, 1_000, "S3 Standard PUT/COPY/POST/LIST requests: cloudkaramchari.com"),
    "sfn_transition": Price(0.025, 1_000, "Step Functions standard transitions: aws.amazon.com/step-functions/pricing"),
}  # fmt: skip


def cost(key: str, quantity: float) -> float:
    price = PRICES[key]
    return quantity * price.usd / price.per


def per_job_requests(measured: Measured) -> dict[str, float]:
    """Requests of each kind per modelled job, from the measured lifecycle rows."""
    rows = {label: counted for label, counted, _ in measured.rows}
    submit, callback, duplicate = rows["submit -> SUBMITTED"], rows["callback COMPLETED"], rows["duplicate callback"]
    retried = rows["submit, 503, one retry -> SUBMITTED"]
    wru_per_write = math.ceil(measured.job_item_bytes / 1024)  # a write is billed on the item's size

    def writes(counted: Counted) -> float:
        # the rate-limit item is tiny (1 WRU); a job write is billed on the job item's size
        rate = sum(n for k, n in counted.calls.items() if k.endswith("(rate)"))
        return (counted.writes() - rate) * wru_per_write + rate

    def count(counted: Counted, prefix: str) -> int:
        return sum(n for k, n in counted.calls.items() if k.startswith(prefix))

    retry_writes = writes(retried) - writes(submit)
    return {
        "wru": writes(submit)
        + CALLBACKS * writes(callback)
        + DUPLICATE_SHARE * writes(duplicate)
        + RETRY_SHARE * retry_writes,
        # SendMessage by SubmitJob, then the event source's ReceiveMessage and DeleteMessage
        "sqs": RETRY_SHARE * (count(retried, "sqs.") + 2),
        "events": EVENTS,  # billed per event, however many PutEvents calls carry them
        "s3_put": (CALLBACKS + DUPLICATE_SHARE) * count(callback, "s3.PutObject"),
        "api_calls": 1 + CALLBACKS + DUPLICATE_SHARE,
        "invocations": 1 + CALLBACKS + DUPLICATE_SHARE + RETRY_SHARE + EVENTS / PUBLISH_BATCH,
        "gb_s": (
            MEMORY_GB["SubmitJob"] * DURATION_S["SubmitJob"]
            + RETRY_SHARE * MEMORY_GB["SubmissionWorker"] * DURATION_S["SubmissionWorker"]
            + (CALLBACKS + DUPLICATE_SHARE) * MEMORY_GB["Callback"] * DURATION_S["Callback"]
            + EVENTS / PUBLISH_BATCH * MEMORY_GB["EventPublisher"] * DURATION_S["EventPublisher"]
        ),
    }


def handoff_costs(per_job: dict[str, float]) -> dict[str, float]:
    return {
        "API Gateway (REST)": cost("apigw_rest", JOBS * per_job["api_calls"]),
        "Lambda requests": cost("lambda_request", JOBS * per_job["invocations"]),
        "Lambda duration": cost("lambda_gb_s_arm", JOBS * per_job["gb_s"]),
        "DynamoDB writes": cost("ddb_wru", JOBS * per_job["wru"]),
        "SQS (retries)": cost("sqs", JOBS * per_job["sqs"]),
        "EventBridge events": cost("events", JOBS * per_job["events"]),
        "S3 archive PUTs": cost("s3_put", JOBS * per_job["s3_put"]),
    }


def step_functions_costs(per_job: dict[str, float]) -> dict[str, float]:
    """The same jobs with a Step Functions standard workflow per job doing the submission and its
    retries: SubmitJob starts an execution instead of trying inline; the workflow runs
    Submit (Task) -> Accepted? (Choice) -> Done (Succeed), and each retry adds Wait -> Submit ->
    Choice. Everything else (API, callbacks, table, events, archive) is as in Handoff, minus SQS."""
    transitions = 3 + RETRY_SHARE * 3
    costs = handoff_costs(per_job)
    costs.pop("SQS (retries)")
    costs["Lambda requests"] = cost("lambda_request", JOBS * (per_job["invocations"] + 1))  # + the Submit task
    costs["Lambda duration"] = cost(
        "lambda_gb_s_arm", JOBS * (per_job["gb_s"] + MEMORY_GB["SubmitJob"] * 0.05)
    )  # SubmitJob only starts it
    costs["Step Functions transitions"] = cost("sfn_transition", JOBS * transitions)
    return costs


def main() -> None:
    measured = measure()
    per_job = per_job_requests(measured)
    ours, theirs = handoff_costs(per_job), step_functions_costs(per_job)
    print(
        f"Cost per {JOBS:,} jobs, us-east-1 list prices (job item {measured.job_item_bytes} bytes = "
        f"{math.ceil(measured.job_item_bytes / 1024)} WRU per write; {per_job['wru']:.2f} WRU per job)"
    )
    print(f"  {'service':28} {'Handoff (SQS retries)':>22} {'Step Functions per job':>24}")
    for service in sorted(set(ours) | set(theirs), key=lambda s: -max(ours.get(s, 0), theirs.get(s, 0))):
        print(f"  {service:28} {_usd(ours.get(service)):>22} {_usd(theirs.get(service)):>24}")
    print(f"  {'total':28} {_usd(sum(ours.values())):>22} {_usd(sum(theirs.values())):>24}")
    print(
        "  Not modelled: CloudWatch Logs/metrics, X-Ray, Secrets Manager (cached 300 s), the reconciler's "
        "schedule, idle SQS long polls, storage."
    )
    print("  Prices:")
    for key, price in PRICES.items():
        print(f"    {key}: ${price.usd:g} per {price.per:,} — {price.source}")


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"


if __name__ == "__main__":
    main()
