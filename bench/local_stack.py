"""Figures on the local stack, driven from outside it as a caller and a vendor would be:

- bulk submission: 200 jobs to the Playment sandbox limited to 20 requests/s and answering after
  0.3 s, then 0.8 s (a real vendor's latency), with the template's worker settings (BatchSize,
  WorkerMaxConcurrency) and warm containers: elapsed (POST to the sandbox holding all 200) against
  the limiter's own floor, 200 x 1.1 / 20 = 11 s (it paces at limit / 1.1), the sandbox's 429
  answers and its peak requests in any one second; then once more with cold containers;
- the largest callback: one Playment callback with the documented maximum of annotations (500),
  each completing a seeded job: its answer time beside PlaymentCallback's timeout;
- callback throughput: Playment callbacks/s through the local API from 8 concurrent senders,
  beside the floor, what a callback cannot do without: PutObject of its body and one conditional
  UpdateItem of its job, from 8 threads against the same moto server, bucket and table;
  once as `make local` runs (every event also copied into a local queue, which a subscriber drains)
  and once without that copy (in AWS, EventBridge's delivery does not share a core with DynamoDB).
  The jobs are written SUBMITTED straight into the table (local/seed.py) and nobody else calls back.

The stack runs in a process of its own (moto server, local API, the functions, the sandboxes);
this process sends. Both share this machine's cores (2 here).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "shared"), str(ROOT)]

from local import seed  # noqa: E402
from local.aws import endpoint_client  # noqa: E402
from local.demo import signed_post  # noqa: E402
from local.process import StackProcess  # noqa: E402
from local.sandboxes.server import peak_rate  # noqa: E402
from local.subscriber import EventSubscriber  # noqa: E402

SENDERS = 8


def aws(urls: dict[str, Any], service: str) -> Any:
    return endpoint_client(urls["aws_endpoint"], service)


def sandbox_admin(urls: dict[str, Any], vendor: str) -> str:
    """Where `vendor`'s sandbox takes its /_sandbox/ controls (its API URL without the API's /v1)."""
    return str(urls[f"{vendor}_sandbox"]).removesuffix("/v1")


def sandbox_jobs(urls: dict[str, Any], vendor: str = "playment") -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = requests.get(f"{sandbox_admin(urls, vendor)}/_sandbox/jobs", timeout=30).json()
    return jobs


def submit_bulk(urls: dict[str, Any], prefix: str, count: int) -> float:
    jobs = [
        {"vendor": "playment", "reference_id": f"{prefix}-{n:04d}", "data": {"image_url": f"https://x.example/{n}.jpg"}}
        for n in range(count)
    ]
    started = time.monotonic()
    for start in range(0, count, 500):
        answer = signed_post(f"{urls['api']}/jobs", {"jobs": jobs[start : start + 500]})
        assert answer.status_code == 202, answer.text
    deadline = started + 600
    while len([j for j in sandbox_jobs(urls) if j["reference_id"].startswith(prefix)]) < count:
        assert time.monotonic() < deadline, "the local stack did not submit the jobs in time"
        time.sleep(0.25)
    return time.monotonic() - started


def bulk_at_limit(jobs: int = 200, limit: int = 20, latency: float = 0.3, *, warm: bool = True) -> str:
    """One bulk POST of `jobs` to a fresh stack; elapsed until the sandbox holds them all.

    warm: the functions' containers finished their init before the POST (`--warm-containers eager`):
    on Lambda, SubmissionWorker's concurrent cold starts run side by side on machines of their own,
    here they share 2 cores with everything else (measured apart: the cold line, and bench/cold_start).
    The reconciler is left at the template's minimum silence budget (960 s), as deployed: at the
    local stack's 8 s it would enqueue again every job still waiting its turn at the vendor's rate."""
    from handoff.pacing import HEADROOM

    stack = StackProcess(
        "--log-level",
        "WARNING",
        "--rate",
        f"playment={limit}",
        "--no-vendor-callbacks",
        "--reconcile-after",
        "960",
        "--warm-containers",
        "eager" if warm else "lazy",
        *(() if warm else ("--fresh-containers",)),
    )
    try:
        knobs = requests.post(f"{stack.urls['playment_sandbox']}/_sandbox/knobs", json={"latency": latency}, timeout=30)
        knobs.raise_for_status()
        elapsed = submit_bulk(stack.urls, "bulk", jobs)
        creations = requests.get(f"{stack.urls['playment_sandbox']}/_sandbox/creations", timeout=30).json()
    finally:
        stack.stop()
    floor = jobs * (1 + HEADROOM) / limit
    answers_429 = sum(c["status"] == 429 for c in creations)
    return (
        f"  bulk: {jobs} jobs to the Playment sandbox limited to {limit}/s answering after {latency} s, template's "
        f"worker settings, containers {'warm' if warm else 'cold (5 worker cold starts sharing 2 cores)'}: "
        f"{elapsed:.1f} s against the limiter's {floor:.0f} s floor = {elapsed / floor:.2f}x "
        + ("(target <= 1.2x)" if warm else "(for information)")
        + f"; {answers_429} answers of 429 (target 0); "
        f"peak {peak_rate([c['at'] for c in creations])}/s (limit {limit}) over {len(creations)} requests"
    )


def callback_throughput(jobs: int = 400, *, capture_events: bool = True) -> tuple[float, float, int]:
    """(callbacks/s, floor/s, answers not 200) for `jobs` COMPLETED callbacks. The floor: for each
    job a callback completed, PutObject of a callback's body and one conditional UpdateItem of the
    job, from as many threads, against the same moto server, bucket and table."""
    options = ["--log-level", "WARNING", "--no-vendor-callbacks", "--reconcile-after", "3600"]
    stack = StackProcess(*options, *([] if capture_events else ["--no-event-capture"]))
    subscriber = EventSubscriber(stack.urls["aws_endpoint"], stack.urls["events_queue"]) if capture_events else None
    try:
        urls = stack.urls
        if subscriber is not None:
            subscriber.start()  # a downstream consumer keeps the events queue drained
        ids = seed.submitted_jobs(
            urls["jobs_table"],
            aws(urls, "dynamodb"),
            "playment",
            "cb",
            jobs,
            {"data": {"image_url": "https://x.example/a.jpg"}},
        )
        time.sleep(3)  # the seeded jobs' own events are published before the measurement
        secret = aws(urls, "secretsmanager").get_secret_value(SecretId=urls["playment_secret"])["SecretString"]
        headers = {"Content-Type": "application/json", "x-playment-key": json.loads(secret)["callback_key"]}
        local = threading.local()

        def send(reference_id: str) -> int:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            body = {"annotations": [{"reference_id": reference_id, "job_id": ids[reference_id], "status": "COMPLETED"}]}
            url = f"{urls['api']}/callbacks/playment"
            return int(local.session.post(url, json=body, headers=headers, timeout=30).status_code)

        ordered = sorted(ids)
        with ThreadPoolExecutor(SENDERS) as pool:  # warm: every container started (steady state)
            list(pool.map(send, ordered[: SENDERS * 2]))
        measured = ordered[SENDERS * 2 :]
        started = time.monotonic()
        with ThreadPoolExecutor(SENDERS) as pool:
            statuses = list(pool.map(send, measured))
        callbacks_per_s = len(measured) / (time.monotonic() - started)
        time.sleep(3)  # the callbacks' events are published before the floor is measured

        def floor(reference_id: str) -> None:
            # What a callback cannot do without: archive its body, then one conditional UpdateItem
            # of the job, on the same bucket and table (the table's stream sees this write too).
            if not hasattr(local, "dynamodb"):
                local.dynamodb, local.s3 = aws(urls, "dynamodb"), aws(urls, "s3")
            body = {"annotations": [{"reference_id": reference_id, "job_id": ids[reference_id], "status": "COMPLETED"}]}
            local.s3.put_object(
                Bucket=urls["results_bucket"], Key=f"raw/bench-floor/{reference_id}.json", Body=json.dumps(body)
            )
            local.dynamodb.update_item(
                TableName=urls["jobs_table"],
                Key={"reference_id": {"S": reference_id}},
                UpdateExpression="SET #f = if_not_exists(#f, :zero) + :one",
                ConditionExpression="attribute_exists(reference_id) AND #s = :s",
                ExpressionAttributeNames={"#s": "status", "#f": "bench_floor"},
                ExpressionAttributeValues={":s": {"S": "COMPLETED"}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
            )

        started = time.monotonic()
        with ThreadPoolExecutor(SENDERS) as pool:
            list(pool.map(floor, measured))
        floor_per_s = len(measured) / (time.monotonic() - started)
    finally:
        if subscriber is not None:
            subscriber.stop()
        stack.stop()
    return callbacks_per_s, floor_per_s, sum(s != 200 for s in statuses)


def callback_lines() -> list[str]:
    lines = []
    for capture, label in ((True, "events also copied to a local queue, drained by a subscriber"), (False, "no copy")):
        callbacks, floor, not_ok = callback_throughput(capture_events=capture)
        lines.append(
            f"  callbacks ({label}): {callbacks:.0f}/s through the local API from {SENDERS} senders, beside "
            f"{floor:.0f}/s of PutObject + conditional UpdateItem on the same bucket and table (the floor): "
            f"ratio {callbacks / floor:.2f} "
            f"(target >= 0.7); {not_ok} answers not 200"
        )
    return lines


def largest_callback() -> str:
    """One Playment callback at the documented maximum of annotations, each completing a seeded job."""
    from functions.playment_callback.app import MAX_ANNOTATIONS

    stack = StackProcess("--log-level", "WARNING", "--no-vendor-callbacks", "--reconcile-after", "3600")
    try:
        urls = stack.urls
        ids = seed.submitted_jobs(
            urls["jobs_table"],
            aws(urls, "dynamodb"),
            "playment",
            "big",
            MAX_ANNOTATIONS,
            {"data": {"image_url": "https://x.example/a.jpg"}},
        )
        secret = aws(urls, "secretsmanager").get_secret_value(SecretId=urls["playment_secret"])["SecretString"]
        headers = {"Content-Type": "application/json", "x-playment-key": json.loads(secret)["callback_key"]}
        annotations = [
            {"reference_id": ref, "job_id": job_id, "status": "COMPLETED", "result": {"boxes": [[1, 2, 3, 4]]}}
            for ref, job_id in ids.items()
        ]
        started = time.monotonic()
        answer = requests.post(
            f"{urls['api']}/callbacks/playment", json={"annotations": annotations}, headers=headers, timeout=60
        )
        took = time.monotonic() - started
        counts = answer.json() if answer.status_code == 200 else {}
    finally:
        stack.stop()
    timeout = 15  # PlaymentCallbackFunction's Timeout in template.yaml
    return (
        f"  largest callback: {MAX_ANNOTATIONS} annotations answered {answer.status_code} in {took:.1f} s "
        f"(the function's timeout: {timeout} s; ratio {took / timeout:.2f}); applied {counts.get('applied', 0)}"
    )


def mixed_bulk(playment: int = 300, scale: int = 200, latency: float = 0.3) -> str:
    """One POST of `playment` Playment jobs followed by `scale` Scale tasks, each sandbox at its
    documented limit (20/s, 30/s) answering after `latency` s, containers warm: elapsed until both
    hold all. Floor: the slower vendor's own pace (the two are paced side by side); the sum of the
    two floors is what one vendor's jobs waiting behind the other's would take."""
    from handoff.pacing import HEADROOM

    limits = {"playment": 20, "scale": 30}
    stack = StackProcess(
        "--log-level", "WARNING", *(a for v, n in limits.items() for a in ("--rate", f"{v}={n}")),
        "--no-vendor-callbacks", "--reconcile-after", "960", "--warm-containers", "eager",
    )  # fmt: skip
    example = json.loads(json.loads((ROOT / "events/submit_job/api_post_scale_image.json").read_text())["body"])
    jobs = [
        {"vendor": "playment", "reference_id": f"mix-p{n:04d}", "data": {"image_url": f"https://x.example/{n}.jpg"}}
        for n in range(playment)
    ] + [example | {"reference_id": f"mix-s{n:04d}"} for n in range(scale)]
    try:
        for vendor in limits:
            knobs = {"latency": latency}
            requests.post(
                f"{sandbox_admin(stack.urls, vendor)}/_sandbox/knobs", json=knobs, timeout=30
            ).raise_for_status()
        started = time.monotonic()
        answer = signed_post(f"{stack.urls['api']}/jobs", {"jobs": jobs})
        assert answer.status_code == 202, answer.text
        held: dict[str, float] = {}
        while len(held) < 2:
            assert time.monotonic() < started + 600, "the local stack did not submit the jobs in time"
            for vendor, count in (("playment", playment), ("scale", scale)):
                rows = sandbox_jobs(stack.urls, vendor)
                if vendor not in held and sum(r["reference_id"].startswith("mix-") for r in rows) >= count:
                    held[vendor] = time.monotonic() - started
            time.sleep(0.25)
    finally:
        stack.stop()
    floors = {"playment": playment * (1 + HEADROOM) / 20, "scale": scale * (1 + HEADROOM) / 30}
    elapsed = max(held.values())
    return (
        f"  mixed bulk: {playment} Playment jobs then {scale} Scale tasks in one POST (20/s, 30/s, {latency} s "
        f"latency, warm): all held after {elapsed:.1f} s (Playment {held['playment']:.1f} s, Scale "
        f"{held['scale']:.1f} s) against the slower vendor's floor {max(floors.values()):.1f} s = "
        f"{elapsed / max(floors.values()):.2f}x (one after the other: {sum(floors.values()):.1f} s)"
    )


def main() -> None:
    print("Local stack in its own process, driven from outside (2 cores shared)")
    for latency in (0.3, 0.8):
        print(bulk_at_limit(latency=latency), flush=True)
    print(mixed_bulk(), flush=True)
    print(bulk_at_limit(latency=0.3, warm=False), flush=True)
    print(largest_callback(), flush=True)
    for line in callback_lines():
        print(line, flush=True)


if __name__ == "__main__":
    main()
