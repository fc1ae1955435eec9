"""make demo: the whole product on the local stack, with the vendors misbehaving.

Submits each vendor's demo jobs (local/sandboxes/: in one bulk POST for a vendor that says so,
into a new batch when the vendor gives one, else one by one) over real HTTP to the local API,
with the sandboxes' faults on (20% 503s, 5% lost answers, 10% of jobs failed by the vendor, where
a sandbox has those knobs; every vendor: 10% of callbacks dropped, 20% duplicated, reordered).
Shows progress while the jobs move (and each batch's, from GET /batches/{batch_ref}), then a
table of every job, the totals, and each batch's `Batch Completed` event. Exits 1 if any job
ends in a wrong state, any vendor holds a reference twice, or a batch has not exactly one event.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from typing import Any

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from local.stack import Faults, LocalStack, vendor_option, vendor_options_help

TERMINAL = {"COMPLETED", "FAILED", "CANCELED"}
CREDENTIALS = Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)  # the local API verifies signatures against these


def signed_post(url: str, body: Any) -> requests.Response:
    """POST with a SigV4 signature, as a caller with execute-api:Invoke would send it."""
    data = json.dumps(body)
    request = AWSRequest("POST", url, data=data, headers={"Content-Type": "application/json"})
    SigV4Auth(CREDENTIALS, "execute-api", REGION).add_auth(request)
    return requests.post(url, data=data, headers=dict(request.headers), timeout=30)


def signed_get(url: str) -> requests.Response:
    request = AWSRequest("GET", url)
    SigV4Auth(CREDENTIALS, "execute-api", REGION).add_auth(request)
    return requests.get(url, headers=dict(request.headers), timeout=30)


def batch_line(stack: LocalStack, batch_ref: str) -> str:
    """One line of a batch's progress, as GET /batches/{batch_ref} answers it."""
    progress = signed_get(f"{stack.api_url}/batches/{batch_ref}").json()
    counts = "  ".join(f"{s} {n}" for s, n in progress["counts"].items() if n)
    return f"batch {batch_ref}: {progress['state']}, {progress['final']}/{progress['expected_jobs']} final ({counts})"


def jobs_in_table(stack: LocalStack) -> dict[str, dict[str, Any]]:
    from handoff.store import item_to_job

    dynamodb = stack.aws.client("dynamodb")
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": stack.environment["JOBS_TABLE_NAME"]}
    while True:
        page = dynamodb.scan(**request)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return {j.reference_id: j.model_dump(mode="json") for j in map(item_to_job, items)}


def settled(stack: LocalStack, job: dict[str, Any]) -> bool:
    """Final, or where the demo means it to stay (a delivered result waiting on the customer)."""
    return job["status"] in TERMINAL or job["status"] == stack.vendors[job["vendor"]].expected_status(
        job["reference_id"]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--option", action="append", default=[], type=vendor_option, help=vendor_options_help())
    args = parser.parse_args(argv)
    vendor_options: dict[str, dict[str, str]] = {}
    for vendor, name, value in args.option:
        vendor_options.setdefault(vendor, {})[name] = value
    # The demo prints its own progress: no access-log line per request between them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    started = time.monotonic()
    print("Starting the local stack (moto, local API, worker, reconciler, a sandbox per vendor)...")
    stack = LocalStack(faults=Faults.demo(), vendor_options=vendor_options).start()
    try:
        for name, value in stack.describe().items():
            print(f"  {name:22} {value}")
        print(
            "\nFaults: 20% 503 / 5% lost answers / 10% jobs failed by the vendor (where a sandbox has them);"
            " callbacks 10% dropped, 20% doubled, reordered"
        )
        print()
        batches: list[str] = []
        for vendor in stack.vendors.values():
            submissions = vendor.demo_jobs()
            if vendor.demo_bulk:
                batch = vendor.demo_batch()
                body: dict[str, Any] = {"jobs": submissions} | ({"batch": batch} if batch else {})
                bulk = signed_post(f"{stack.api_url}/jobs", body)
                totals = bulk.json()["totals"]
                print(f"POST /jobs with {len(submissions)} {vendor.title} jobs -> {bulk.status_code} {totals}")
                if batch:
                    made = bulk.json()["batch"]
                    batches.append(made["batch_ref"])
                    print(
                        f"  into batch {made['batch_ref']} ({vendor.title} batch_id {made['vendor_batch_id']}),"
                        f" closed with {made['expected_jobs']} jobs"
                    )
                continue
            for job in submissions:
                answer = signed_post(f"{stack.api_url}/jobs", job)
                print(
                    f"POST /jobs {job['reference_id']} ({vendor.title}) -> "
                    f"{answer.status_code} {answer.json().get('status')}"
                )
        expected = sum(len(vendor.demo_jobs()) for vendor in stack.vendors.values())
        deadline = time.monotonic() + 120
        last = ""
        while time.monotonic() < deadline:
            jobs = jobs_in_table(stack)
            counts = Counter(j["status"] for j in jobs.values())
            line = "  ".join(
                f"{s} {counts[s]}"
                for s in ("QUEUED", "SUBMITTED", "IN_PROGRESS", "DELIVERED", "COMPLETED", "FAILED")
                if counts[s]
            )
            if line != last:
                print(f"[{time.monotonic() - started:5.1f}s] {line}")
                for batch_ref in batches:
                    print(f"         {batch_line(stack, batch_ref)}")
                last = line
            for vendor in stack.vendors.values():
                vendor.demo_step(jobs)
            if len(jobs) == expected and all(settled(stack, j) for j in jobs.values()):
                break
            time.sleep(1)
        return report(stack, jobs_in_table(stack), expected, time.monotonic() - started, batches)
    finally:
        stack.stop()


def report(
    stack: LocalStack, jobs: dict[str, dict[str, Any]], expected: int, elapsed: float, batches: list[str]
) -> int:
    wrong = []
    print(f"\n{'reference_id':16} {'vendor':9} {'status':10} {'attempts':>8}  result")
    for reference_id, job in sorted(jobs.items()):
        want = stack.vendors[job["vendor"]].expected_status(reference_id)
        location = job["result_ref"] or (
            f"inline ({len(json.dumps(job['result']))} bytes)" if job["result"] is not None else "-"
        )
        if job["status"] == "FAILED" and job["last_error"]:
            location = f"vendor error {job['last_error']['code']}"
        mark = "" if job["status"] == want else f"   <-- expected {want}"
        if mark:
            wrong.append(reference_id)
        print(f"{reference_id:16} {job['vendor']:9} {job['status']:10} {job['attempts']:>8}  {location}{mark}")
    doubled = [reference for vendor in stack.vendors.values() for reference in vendor.doubled()]
    incomplete = [name for name, vendor in stack.vendors.items() if not vendor.demo_complete()]
    senders = [vendor.sandbox.callbacks for vendor in stack.vendors.values()]
    callbacks = Counter(s for sender in senders for _, s in sender.sent)
    advanced = sum(run.get("advanced", 0) for run in stack.reconciler_runs)
    print(
        f"\nTotals: {len(jobs)} jobs: "
        + ", ".join(f"{n} {s}" for s, n in sorted(Counter(j["status"] for j in jobs.values()).items()))
        + f"; {elapsed:.0f} s"
    )
    print("; ".join(f"{vendor.title}: {vendor.summary()}" for vendor in stack.vendors.values()))
    answers = ", ".join(f"{n}x {s}" for s, n in sorted(callbacks.items()))
    print(
        f"Callbacks: {sum(callbacks.values())} delivered ({answers}), "
        f"{sum(sender.dropped for sender in senders)} dropped; "
        f"the reconciler brought {advanced} job(s) up to date"
    )
    time.sleep(2)  # the last status changes reach the bus
    on_bus = stack.job_events()
    events: dict[str, list[str]] = {}
    job_changes = [e for e in on_bus if e["detail-type"] == "Job Status Changed"]
    for event in sorted(job_changes, key=lambda e: e["detail"]["version"]):
        events.setdefault(event["detail"]["reference_id"], []).append(event["detail"]["status"])
    completed = [e["detail"] for e in on_bus if e["detail-type"] == "Batch Completed"]
    unmatched: list[str] = []
    for batch_ref in batches:
        print(batch_line(stack, batch_ref))
        mine = [c for c in completed if c["batch_ref"] == batch_ref]
        for detail in mine:
            print(f"`Batch Completed` on the bus: {json.dumps(detail)}")
        if len(mine) != 1:
            unmatched.append(f"batch {batch_ref}: {len(mine)} Batch Completed events")
    unmatched += [r for r, j in jobs.items() if events.get(r) != [h["status"] for h in j["history"]]]
    print(
        f"Events: {sum(map(len, events.values()))} `Job Status Changed` on the bus; "
        f"one per status change for {len(jobs) - len([u for u in unmatched if u in jobs])} of {len(jobs)} jobs"
    )
    missing = expected - len(jobs)
    if wrong or doubled or missing or unmatched or incomplete:
        print(
            f"\nFAILED: wrong state {wrong}, doubled at a vendor {doubled}, missing {missing}, "
            f"events off {unmatched}, vendors without a job per request {incomplete}",
            file=sys.stderr,
        )
        return 1
    print(
        "\nOK: every job in the right state, one vendor job per reference_id, one event per status change,"
        " one `Batch Completed` per batch."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
