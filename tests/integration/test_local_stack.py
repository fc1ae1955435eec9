"""The whole lifecycle for both vendors through the local API, over real HTTP, with the vendors'
faults on (Playment: 503s, lost answers, jobs FAILED; callbacks dropped, doubled, reordered)."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from botocore.credentials import Credentials
from werkzeug.test import EnvironBuilder

from local.api import LocalApi, routes_from_template
from local.aws import ACCESS_KEY_ID
from tests.conftest import sam_cli
from tests.integration.conftest import Stack

TERMINAL = {"COMPLETED", "FAILED", "CANCELED"}


def playment_job(n: int) -> dict[str, Any]:
    return {
        "vendor": "playment",
        "reference_id": f"it-img-{n:02d}",
        "data": {"image_url": f"https://images.example.com/it/{n}.jpg"},
        "tag": "boxes",
    }


def textking_job(n: int) -> dict[str, Any]:
    return {
        "vendor": "textking",
        "reference_id": f"it-doc-{n}",
        "name": f"Integration document {n}",
        "source_language": "en",
        "target_language": "fr",
        "document": {"filename": f"it{n}.txt", "text": f"Document number {n}."},
    }


def wait_for_terminal(
    stack: Stack, references: list[str], timeout: float = 90, settled: frozenset[str] = frozenset(TERMINAL)
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    jobs: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for reference_id in references:
            if jobs.get(reference_id, {}).get("status") not in settled:
                answer = stack.call("GET", f"/jobs/{reference_id}")
                assert answer.status_code == 200, answer.text
                jobs[reference_id] = answer.json()
        if all(j["status"] in settled for j in jobs.values()):
            return jobs
        time.sleep(1)
    stuck = {r: j["status"] for r, j in jobs.items() if j["status"] not in settled}
    raise AssertionError(f"jobs not finished after {timeout} s: {stuck}")


def test_both_vendors_whole_lifecycle_with_faults(stack: Stack) -> None:
    # given 15 Playment jobs in one bulk call and 2 TEXTKING documents one by one
    bulk = stack.call("POST", "/jobs", {"jobs": [playment_job(n) for n in range(15)]})
    assert bulk.status_code == 202, bulk.text
    assert bulk.json()["totals"]["queued"] == 15
    for n in range(2):
        answer = stack.call("POST", "/jobs", textking_job(n))
        assert answer.status_code in {201, 202}, answer.text

    # when the vendors do their work, with faults, and the stack follows
    references = [f"it-img-{n:02d}" for n in range(15)] + ["it-doc-0", "it-doc-1"]
    jobs = wait_for_terminal(stack, references, settled=frozenset(TERMINAL | {"DELIVERED"}))
    # TEXTKING delivers and waits on the customer: both translations are DELIVERED, in S3
    assert [jobs[r]["status"] for r in ("it-doc-0", "it-doc-1")] == ["DELIVERED", "DELIVERED"]
    # when the customer accepts it-doc-0 (TEXTKING's web app; the sandbox's control route)
    sandbox = stack.urls["textking_sandbox"].removesuffix("/v1")
    accepted = requests.post(f"{sandbox}/_sandbox/job/{jobs['it-doc-0']['vendor_job_id']}/accept", timeout=10)
    assert accepted.status_code == 200, accepted.text
    jobs.update(wait_for_terminal(stack, ["it-doc-0"]))

    # then no job is lost: each ends where its vendor says it is, told by callbacks that came in
    # through the custom domain's base path
    assert stack.urls["playment_callback_url"].endswith("/handoff/callbacks/playment")
    assert stack.urls["textking_callback_url"].endswith("/handoff/callbacks/textking")
    sources = {h["source"] for job in jobs.values() for h in job["history"]}
    assert {"playment-callback", "textking-callback"} <= sources
    playment = {j["reference_id"]: j for j in stack.sandbox_jobs("playment")}
    for n in range(15):
        job = jobs[f"it-img-{n:02d}"]
        vendor_failed = playment[job["reference_id"]]["status"] == "failed"
        assert job["status"] == ("FAILED" if vendor_failed else "COMPLETED"), job
        assert job["vendor_job_id"] == playment[job["reference_id"]]["id"]
        if job["status"] == "COMPLETED":
            assert job["result"]["annotations"]["rectangles"][0]["label"] == "car"
    # and no vendor holds a job of ours twice (other tests share this stack: count ours only)
    held = Counter(row["reference_id"] for row in stack.sandbox_jobs("playment"))
    assert {ref: n for ref, n in held.items() if ref.startswith("it-img-")} == {f"it-img-{n:02d}": 1 for n in range(15)}
    documents = [jobs["it-doc-0"], jobs["it-doc-1"]]
    projects = {job["vendor_refs"]["project_id"] for job in documents}
    in_ours = [row for row in stack.sandbox_jobs("textking") if row["project_id"] in projects]
    assert sorted(row["id"] for row in in_ours) == sorted(job["vendor_job_id"] for job in documents)
    # and the translations are in the ResultsBucket
    s3 = stack.aws("s3")
    for reference_id, status in (("it-doc-0", "COMPLETED"), ("it-doc-1", "DELIVERED")):
        job = jobs[reference_id]
        assert job["status"] == status
        bucket, _, key = job["result_ref"].removeprefix("s3://").partition("/")
        assert key == f"deliveries/textking/{reference_id}/{'it' + reference_id[-1]}_fr.txt"
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"Hallo Welt"
    # and every status change happened once (duplicated and reordered callbacks wrote nothing)
    for job in jobs.values():
        statuses = [h["status"] for h in job["history"]]
        assert len(statuses) == len(set(statuses)), (job["reference_id"], statuses)
        assert statuses[0] == "QUEUED"
    # and reached the bus as exactly one `Job Status Changed` event each
    events = wait_for_events(stack, jobs)
    for reference_id, job in jobs.items():
        assert events[reference_id] == [h["status"] for h in job["history"]], reference_id


def wait_for_events(stack: Stack, jobs: dict[str, dict[str, Any]], timeout: float = 15) -> dict[str, list[str]]:
    sqs = stack.aws("sqs")
    received: list[dict[str, Any]] = []
    want = sum(len(j["history"]) for j in jobs.values())
    deadline = time.monotonic() + timeout
    # The stack is shared: other tests' jobs publish on the same bus, so only our jobs' events count.
    while len(received) < want and time.monotonic() < deadline:
        batch = sqs.receive_message(QueueUrl=stack.urls["events_queue"], MaxNumberOfMessages=10).get("Messages", [])
        received += [e for e in (json.loads(m["Body"]) for m in batch) if e["detail"]["reference_id"] in jobs]
        for m in batch:
            sqs.delete_message(QueueUrl=stack.urls["events_queue"], ReceiptHandle=m["ReceiptHandle"])
    events: dict[str, list[str]] = {}
    for event in sorted(received, key=lambda e: (e["detail"]["reference_id"], e["detail"]["version"])):
        events.setdefault(event["detail"]["reference_id"], []).append(event["detail"]["status"])
    return events


def test_the_api_refuses_what_api_gateway_and_the_functions_refuse(stack: Stack) -> None:
    unsigned = stack.call("POST", "/jobs", playment_job(99), sign=False)
    assert unsigned.status_code == 403
    assert unsigned.json() == {
        "error": {"code": "missing_authentication_token", "message": "Missing Authentication Token", "details": []}
    }
    assert stack.call("GET", "/no/such/route").status_code == 403
    other_identity = stack.call("POST", "/jobs", playment_job(99), credentials=Credentials("AKIAOTHER", "secret"))
    assert other_identity.status_code == 403
    assert other_identity.json()["error"]["message"] == "The security token included in the request is invalid."
    wrong_secret = stack.call("GET", "/jobs/it-img-00", credentials=Credentials(ACCESS_KEY_ID, "not-the-secret"))
    assert (wrong_secret.status_code, wrong_secret.json()["error"]["code"]) == (403, "invalid_signature")
    invalid = stack.call("POST", "/jobs", {"vendor": "playment", "reference_id": "x"})
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "invalid_request"
    no_key = stack.call("POST", "/callbacks/playment", {"annotations": []}, sign=False)
    assert no_key.status_code == 401
    assert stack.call("GET", "/jobs/never-submitted").status_code == 404


def test_local_events_have_the_fields_of_sam_local_generate_event(tmp_path: Path) -> None:
    # given SAM CLI's own sample of an API Gateway REST proxy event (it needs no Docker for this)
    sam = sam_cli()
    generated = subprocess.run(
        [str(sam), "local", "generate-event", "apigateway", "aws-proxy", "--method", "POST", "--path", "jobs"],
        capture_output=True,
        text=True,
        check=True,
        env={"SAM_CLI_TELEMETRY": "0", "PATH": str(sam.parent), "HOME": str(tmp_path)},
    )
    reference = json.loads(generated.stdout)

    # when the local API builds the event for the same request
    stage, binary, routes = routes_from_template()
    api = LocalApi(stage, binary, routes)
    route = next(r for r in routes if r.path == "/jobs" and r.method == "POST")
    builder = EnvironBuilder(path=f"/{stage}/jobs", method="POST", data=b"{}", content_type="application/json")
    event = api.event(builder.get_request(), route, "/jobs", {})

    # then it carries every field API Gateway's has, at the top and in requestContext
    assert set(reference) <= set(event)
    assert set(reference["requestContext"]) - {"authorizer"} <= set(event["requestContext"])
    assert Counter(type(event[k]).__name__ for k in ("headers", "multiValueHeaders"))["dict"] == 2
    # and form bodies are base64-encoded, as the template's BinaryMediaTypes ask
    form = EnvironBuilder(
        path=f"/{stage}/callbacks/textking",
        method="POST",
        data=b"a=1",
        content_type="application/x-www-form-urlencoded",
    )
    textking_route = next(r for r in routes if r.path == "/callbacks/textking")
    form_event = api.event(form.get_request(), textking_route, "/callbacks/textking", {})
    assert form_event["isBase64Encoded"] is True
    assert form_event["body"] == "YT0x"


def test_each_function_sees_only_its_own_variables_as_on_lambda(stack: Stack) -> None:
    # the local stack gives each function the template's variables for it, no more: a variable the
    # template forgets on a function fails here as it would on AWS
    environments = stack.urls["function_environments"]
    assert not [v for v in environments["GetJobFunction"] if v.startswith(("PLAYMENT_", "TEXTKING_", "SCALE_"))]
    assert not [v for v in environments["EventPublisherFunction"] if v.startswith(("PLAYMENT_", "SCALE_"))]
    assert not [v for v in environments["ScaleCallbackFunction"] if v.startswith(("PLAYMENT_", "TEXTKING_"))]
    assert "PLAYMENT_PROJECT_ID" in environments["SubmitJobFunction"]
    assert "EVENTS_DLQ_URL" in environments["EventPublisherFunction"]
    assert "EVENTS_DLQ_URL" not in environments["SubmitJobFunction"]


def test_a_batch_end_to_end_create_submit_progress_and_its_one_completed_event(stack: Stack) -> None:
    # given a batch created by POST /batches, idempotent on its batch_ref
    body = {"vendor": "playment", "name": "it-open-batch", "batch_ref": "it-open"}
    created, again = stack.call("POST", "/batches", body), stack.call("POST", "/batches", body)
    assert (created.status_code, again.status_code) == (201, 200), created.text
    assert created.json()["vendor_batch_id"] == again.json()["vendor_batch_id"]
    assert created.json()["state"] == "open"
    # and refused ones that leave nothing behind
    refused = stack.call("POST", "/batches", {"vendor": "textking", "name": "x", "batch_ref": "it-none"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "batches_not_supported")
    assert stack.call("GET", "/batches/it-none").status_code == 404
    taken = stack.call("POST", "/batches", {**body, "batch_ref": "it-other"})  # the vendor's names are unique
    assert (taken.status_code, taken.json()["error"]["details"][0]["vendor_code"]) == (424, "BATCH_CREATION")

    # when a bulk asks for a new batch and its jobs go into it (with the vendor's faults on)
    jobs = [playment_job(n) | {"reference_id": f"it-batch-{n}"} for n in range(5)]
    bulk = stack.call("POST", "/jobs", {"batch": {"name": "it-bulk-batch", "batch_ref": "it-bulk"}, "jobs": jobs})
    assert bulk.status_code == 202, bulk.text
    assert bulk.json()["batch"]["expected_jobs"] == 5  # closed with its jobs
    progress = stack.call("GET", "/batches/it-bulk").json()
    assert progress["jobs"] == 5
    assert progress["state"] in {"closed", "completed"}

    # then every job records its batch, the batch's counts follow them, and Playment holds them in its batch
    finished = wait_for_terminal(stack, [j["reference_id"] for j in jobs])
    assert {j["request"]["batch_ref"] for j in finished.values()} == {"it-bulk"}
    vendor_batch_id = bulk.json()["batch"]["vendor_batch_id"]
    assert {j["request"]["batch_id"] for j in finished.values()} == {vendor_batch_id}
    statuses = Counter(j["status"] for j in finished.values())
    completed = wait_for_batch_completed(stack, "it-bulk")
    assert len(completed) == 1, completed
    detail = completed[0]
    assert (detail["vendor"], detail["vendor_batch_id"], detail["jobs"]) == ("playment", vendor_batch_id, 5)
    assert {s: n for s, n in detail["counts"].items() if n} == dict(statuses)
    final = stack.call("GET", "/batches/it-bulk?vendor=true").json()
    assert final["state"] == "completed"
    assert final["final"] == 5
    assert final["published_at"] is not None
    assert final["vendor_details"]["batch"]["total_jobs"] == 5


def wait_for_batch_completed(stack: Stack, batch_ref: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The `Batch Completed` events of `batch_ref` on the bus, read until it came and a few seconds after."""
    sqs = stack.aws("sqs")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    while time.monotonic() < deadline and (quiet_until is None or time.monotonic() < quiet_until):
        batch = sqs.receive_message(QueueUrl=stack.urls["events_queue"], MaxNumberOfMessages=10).get("Messages", [])
        for message in batch:
            event = json.loads(message["Body"])
            sqs.delete_message(QueueUrl=stack.urls["events_queue"], ReceiptHandle=message["ReceiptHandle"])
            if event["detail-type"] == "Batch Completed" and event["detail"]["batch_ref"] == batch_ref:
                found.append(event["detail"])
                quiet_until = time.monotonic() + 3  # a second one would come within this
        if not batch:
            time.sleep(0.2)
    return found


def test_jobs_are_found_by_status_vendor_and_batch_newest_first_page_by_page(stack: Stack) -> None:
    # given jobs of two vendors, some of them in a batch, driven to their ends by the sandboxes
    jobs = [playment_job(n) | {"reference_id": f"it-list-p{n}"} for n in range(6)]
    jobs += [textking_job(n) | {"reference_id": f"it-list-t{n}"} for n in range(3)]
    assert stack.call("POST", "/jobs", {"jobs": jobs}).status_code == 202
    # (TEXTKING's sandbox stops at DELIVERED: accepting is the customer's)
    finished = wait_for_terminal(stack, [j["reference_id"] for j in jobs], settled=frozenset(TERMINAL | {"DELIVERED"}))
    mine = set(finished)

    # when an operator walks GET /jobs?vendor=playment two jobs a page (signed, as every /jobs route)
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = stack.call("GET", f"/jobs?vendor=playment&limit=2{cursor}")
        assert page.status_code == 200, page.text
        seen += page.json()["jobs"]
        if page.json()["next_cursor"] is None:
            break
        cursor = f"&cursor={page.json()['next_cursor']}"
    completed = stack.call("GET", "/jobs?status=COMPLETED&limit=100").json()["jobs"]

    # then every Playment job of ours is there once, newest first, as GET /jobs/{id} shows it
    ours = [j for j in seen if j["reference_id"] in mine]
    assert sorted(j["reference_id"] for j in ours) == sorted(r for r in mine if r.startswith("it-list-p"))
    assert len({j["reference_id"] for j in seen}) == len(seen)
    assert [(j["updated_at"], j["reference_id"]) for j in seen] == sorted(
        ((j["updated_at"], j["reference_id"]) for j in seen), reverse=True
    )
    for summary in ours:
        assert summary["status"] == finished[summary["reference_id"]]["status"]
        assert summary["vendor"] == "playment"
    # and the status filter gives exactly those of ours that completed
    assert {j["reference_id"] for j in completed} & mine == {
        r for r, j in finished.items() if j["status"] == "COMPLETED"
    }
    # and a filter that is not one is refused with the error body
    refused = stack.call("GET", "/jobs?status=DONE")
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_request")
