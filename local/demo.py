"""make demo: the whole product on the local stack, with the vendors misbehaving.

Submits 20 Playment jobs (19 images and a video) in one bulk POST, 3 TEXTKING documents and 4 Scale
AI tasks one by one, over real HTTP to the local API, with the sandboxes' faults on (Playment and
Scale: 20% 503s, 5% lost answers, 10% of jobs FAILED by the vendor; every vendor: 10% of callbacks
dropped, 20% duplicated, reordered). Shows progress while the jobs move, then a table of every job
and the totals. Exits 1 if any job ends in a wrong state or any vendor holds a reference twice.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from local.stack import Faults, LocalStack

TERMINAL = {"COMPLETED", "FAILED", "CANCELED"}
SCALE_TASKS = 4
EXPECTED = 20 + 3 + SCALE_TASKS  # Playment, TEXTKING, Scale
CREDENTIALS = Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)  # the local API verifies signatures against these


def signed_post(url: str, body: Any) -> requests.Response:
    """POST with a SigV4 signature, as a caller with execute-api:Invoke would send it."""
    data = json.dumps(body)
    request = AWSRequest("POST", url, data=data, headers={"Content-Type": "application/json"})
    SigV4Auth(CREDENTIALS, "execute-api", REGION).add_auth(request)
    return requests.post(url, data=data, headers=dict(request.headers), timeout=30)


def playment_jobs() -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = [
        {
            "vendor": "playment",
            "reference_id": f"demo-img-{n:02d}",
            "data": {"image_url": f"https://images.example.com/demo/{n:02d}.jpg", "metadata": {"camera": "front"}},
            "tag": "bounding-boxes",
        }
        for n in range(1, 20)
    ]
    frames = [{"frame_id": f"frame{n:03d}", "src": f"https://video.example.com/demo/{n:03d}.jpg"} for n in range(1, 9)]
    jobs.append(
        {
            "vendor": "playment",
            "reference_id": "demo-video-01",
            "data": {"video_data": {"frames": frames}},
            "tag": "tracking",
        }
    )
    return jobs


def textking_jobs() -> list[dict[str, Any]]:
    texts = ["Quarterly report: revenue grew.", "Release notes for version 2.", "Privacy policy, short form."]
    return [
        {
            "vendor": "textking",
            "reference_id": f"demo-doc-{n}",
            "name": f"Demo document {n}",
            "source_language": "en",
            "target_language": "de",
            "document": {"filename": f"doc{n}.txt", "text": text},
        }
        for n, text in enumerate(texts, start=1)
    ]


def scale_jobs() -> list[dict[str, Any]]:
    return [
        {
            "vendor": "scale",
            "reference_id": f"demo-scale-{n:02d}",
            "task_type": "imageannotation",
            "instruction": "Draw a box around each car.",
            "attachment": f"https://images.example.com/demo/scale-{n:02d}.jpg",
            "attachment_type": "image",
            "params": {"geometries": {"box": {"objects_to_annotate": ["car"]}}},
            "metadata": {"camera": "rear"},
        }
        for n in range(1, SCALE_TASKS + 1)
    ]


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


def expected_status(stack: LocalStack, job: dict[str, Any]) -> str:
    if job["vendor"] == "playment":
        vendor_job = stack.playment.by_reference.get(job["reference_id"])
        return "FAILED" if vendor_job is not None and vendor_job.status == "failed" else "COMPLETED"
    if job["vendor"] == "scale":
        task = stack.scale.by_unique_id.get(job["reference_id"])
        return "FAILED" if task is not None and task.status == "error" else "COMPLETED"
    return "COMPLETED"


def main() -> int:
    started = time.monotonic()
    print("Starting the local stack (moto, local API, worker, reconciler, Playment, TEXTKING and Scale sandboxes)...")
    stack = LocalStack(faults=Faults.demo()).start()
    try:
        for name, value in stack.describe().items():
            print(f"  {name:22} {value}")
        print(
            "\nFaults: Playment and Scale 20% 503 / 5% lost answers / 10% jobs FAILED;"
            " callbacks 10% dropped, 20% doubled, reordered"
        )
        bulk = signed_post(f"{stack.api_url}/jobs", {"jobs": playment_jobs()})
        print(f"\nPOST /jobs with 20 Playment jobs -> {bulk.status_code} {bulk.json()['totals']}")
        for job in textking_jobs():
            answer = signed_post(f"{stack.api_url}/jobs", job)
            print(f"POST /jobs {job['reference_id']} (TEXTKING) -> {answer.status_code} {answer.json().get('status')}")
        for job in scale_jobs():
            answer = signed_post(f"{stack.api_url}/jobs", job)
            print(f"POST /jobs {job['reference_id']} (Scale) -> {answer.status_code} {answer.json().get('status')}")
        expected = EXPECTED
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
                last = line
            if len(jobs) == expected and all(j["status"] in TERMINAL for j in jobs.values()):
                break
            time.sleep(1)
        return report(stack, jobs_in_table(stack), time.monotonic() - started)
    finally:
        stack.stop()


def report(stack: LocalStack, jobs: dict[str, dict[str, Any]], elapsed: float) -> int:
    wrong = []
    print(f"\n{'reference_id':16} {'vendor':9} {'status':10} {'attempts':>8}  result")
    for reference_id, job in sorted(jobs.items()):
        want = expected_status(stack, job)
        location = job["result_ref"] or (
            f"inline ({len(json.dumps(job['result']))} bytes)" if job["result"] is not None else "-"
        )
        if job["status"] == "FAILED" and job["last_error"]:
            location = f"vendor error {job['last_error']['code']}"
        mark = "" if job["status"] == want else f"   <-- expected {want}"
        if mark:
            wrong.append(reference_id)
        print(f"{reference_id:16} {job['vendor']:9} {job['status']:10} {job['attempts']:>8}  {location}{mark}")
    doubled = [r for r, n in Counter(j.reference_id for j in stack.playment.jobs.values()).items() if n > 1]
    doubled += [str(r) for r, n in Counter(t.unique_id for t in stack.scale.tasks.values()).items() if n > 1]
    creations = stack.playment.creations()
    statuses = Counter(c.status for c in creations)
    scale_statuses = Counter(c.status for c in stack.scale.creations())
    senders = (stack.playment.callbacks, stack.textking.callbacks, stack.scale.callbacks)
    callbacks = Counter(s for sender in senders for _, s in sender.sent)
    advanced = sum(run.get("advanced", 0) for run in stack.reconciler_runs)
    print(
        f"\nTotals: {len(jobs)} jobs: "
        + ", ".join(f"{n} {s}" for s, n in sorted(Counter(j["status"] for j in jobs.values()).items()))
        + f"; {elapsed:.0f} s"
    )
    print(
        f"Playment: {len(creations)} job creations for {len(stack.playment.jobs)} jobs "
        f"({statuses.get(503, 0)} answered 503, {statuses.get(400, 0)} FS_0001 after a lost answer); "
        f"TEXTKING: {len(stack.textking.jobs)} jobs for 3 documents; "
        f"Scale: {sum(scale_statuses.values())} task creations for {len(stack.scale.tasks)} tasks "
        f"({scale_statuses.get(503, 0)} answered 503, {scale_statuses.get(409, 0)} 409 after a lost answer)"
    )
    answers = ", ".join(f"{n}x {s}" for s, n in sorted(callbacks.items()))
    print(
        f"Callbacks: {sum(callbacks.values())} delivered ({answers}), "
        f"{sum(sender.dropped for sender in senders)} dropped; "
        f"the reconciler brought {advanced} job(s) up to date"
    )
    time.sleep(2)  # the last status changes reach the bus
    events: dict[str, list[str]] = {}
    for event in sorted(stack.job_events(), key=lambda e: e["detail"]["version"]):
        events.setdefault(event["detail"]["reference_id"], []).append(event["detail"]["status"])
    unmatched = [r for r, j in jobs.items() if events.get(r) != [h["status"] for h in j["history"]]]
    print(
        f"Events: {sum(map(len, events.values()))} `Job Status Changed` on the bus; "
        f"one per status change for {len(jobs) - len(unmatched)} of {len(jobs)} jobs"
    )
    missing = EXPECTED - len(jobs)
    if (
        wrong
        or doubled
        or missing
        or unmatched
        or len(stack.textking.jobs) != 3
        or len(stack.scale.tasks) != SCALE_TASKS
    ):
        print(
            f"\nFAILED: wrong state {wrong}, doubled at a vendor {doubled}, missing {missing}, events off {unmatched}",
            file=sys.stderr,
        )
        return 1
    print("\nOK: every job in the right state, one vendor job per reference_id, one event per status change.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
