"""What `make local SAM_LOCAL=1` builds on (local/samples.py), without a stack: the samples carry the
keys and ids each vendor's sandbox holds for them, the env-vars file's values, the forwarder that
serves a 127.0.0.1 server at the container address, and the sandboxes holding the samples' jobs."""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from handoff.vendors.textking import verify_token
from local.samples import (
    Forwarder,
    container_host,
    env_vars,
    for_containers,
    load_event,
    loopback_ports,
    sample_events,
    seed_requests,
)
from local.sandboxes.base import LocalSetup, local_vendors
from local.sandboxes.playment import LocalPlayment
from local.sandboxes.scale import LocalScale
from local.sandboxes.server import BackgroundServer
from local.sandboxes.textking import LocalTextking


def callback_samples(vendor: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sample_events() if p.parent.name == f"{vendor}_callback"]


def test_each_vendors_callback_samples_carry_the_keys_and_ids_its_sandbox_holds_for_them() -> None:
    for event in callback_samples("playment"):
        assert event["headers"]["x-playment-key"] == LocalPlayment.sample_keys["callback_key"]
        (annotation,) = json.loads(event["body"])["annotations"]
        job_id = annotation.get("job_id") or annotation.get("flu_id")
        assert LocalPlayment.sample_ids[annotation["reference_id"]] == (job_id,)
    for event in callback_samples("scale"):
        assert event["headers"]["scale-callback-auth"] == LocalScale.sample_keys["callback_auth_key"]
        task = json.loads(event["body"])["task"]
        assert LocalScale.sample_ids[task["unique_id"]] == (task["task_id"],)
    for event in callback_samples("textking"):
        import base64

        body = base64.b64decode(event["body"]).decode() if event.get("isBase64Encoded") else event["body"]
        form = {k: v[0] for k, v in parse_qs(body).items()}
        verified = verify_token(form["extra_data"], [LocalTextking.sample_keys["signing_key"]])
        assert verified is not None
        assert LocalTextking.sample_ids[verified[0]] == (form["project_id"], form["job_id"])
    # every vendor with callback samples says what they carry
    assert all(kind.sample_keys and kind.sample_ids for kind in local_vendors().values())


def test_the_seeded_requests_are_the_jobs_the_samples_name() -> None:
    requests = seed_requests(sorted(local_vendors()))
    seeded = {r.get("reference_id") for r in requests}
    seeded |= {job["reference_id"] for r in requests for job in r.get("jobs", [])}
    assert "order:1042:img-7" in seeded
    for kind in local_vendors().values():
        assert set(kind.sample_ids) <= seeded
    worker = load_event("submission_worker/sqs_batch.json")
    assert {json.loads(r["body"])["reference_id"] for r in worker["Records"]} <= seeded
    assert load_event("get_job/api_get.json")["pathParameters"]["reference_id"] in seeded


def test_the_env_vars_are_the_declared_ones_with_the_local_values_at_the_container_address() -> None:
    declared = {
        "F": {
            "AWS_ENDPOINT_URL": "",
            "RECONCILE_AFTER_SECONDS": "60",
            "SCALE_CALLBACK_URL_PARAMETER": "/handoff-local/scale-callback-url",
            "Q": "http://127.0.0.1:4000/123/q",
        }
    }
    local = {
        "F": {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:4000",
            "RECONCILE_AFTER_SECONDS": "8",
            "SCALE_CALLBACK_URL": "http://127.0.0.1:5000/v1/callbacks/scale",
            "Q": "http://127.0.0.1:4000/123/q",
            "AWS_ACCESS_KEY_ID": "local",
        }
    }
    assert env_vars(declared, local, "http://127.0.0.1:4000", "172.17.0.1") == {
        "F": {
            "AWS_ENDPOINT_URL": "http://172.17.0.1:4000",
            "RECONCILE_AFTER_SECONDS": "8",
            "SCALE_CALLBACK_URL_PARAMETER": "/handoff-local/scale-callback-url",
            "Q": "http://172.17.0.1:4000/123/q",
        }
    }
    assert loopback_ports({"a": "http://127.0.0.1:4000/x", "b": "http://127.0.0.1:81", "c": "x"}) == {4000, 81}
    assert for_containers("http://127.0.0.1:9/v1", "10.0.0.1") == "http://10.0.0.1:9/v1"
    assert container_host("10.1.2.3")[0] == "10.1.2.3"


def test_the_forwarder_serves_a_loopback_server_at_another_address() -> None:
    with BackgroundServer(lambda environ, start: [start("200 OK", []), b"hello"][1:]) as server:
        forwarder = Forwarder("127.0.0.2", server.port).start()
        try:
            assert requests.get(f"http://127.0.0.2:{server.port}/", timeout=5).text == "hello"
        finally:
            forwarder.stop()
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.2", server.port), timeout=2):
            pass


@pytest.mark.parametrize("kind", [LocalPlayment, LocalScale, LocalTextking], ids=lambda k: k.name)
def test_a_sandbox_playing_the_samples_holds_their_jobs_with_their_ids(kind: Any) -> None:
    vendor = kind(LocalSetup(work_seconds=0.2)).start()
    try:
        vendor.play_samples()
        secret = vendor.secret({"signing_key": "made-by-the-stack"})
        assert kind.sample_keys.items() <= secret.items()
        vendor.connect("http://127.0.0.1:9/callbacks")
        sandbox = vendor.sandbox
        assert sandbox.held
        (reference_id, ids), *_ = kind.sample_ids.items()
        if kind is LocalPlayment:
            answer = requests.post(
                f"{vendor.url}/v0/projects/{vendor.project_id}/jobs",
                json={"reference_id": reference_id, "data": {"image_url": "https://x.example/a.jpg"}, "tag": "t"},
                headers={"x-api-key": vendor.api_key},
                timeout=5,
            )
            assert answer.json()["data"]["job_id"] == ids[0]
            assert sandbox.jobs[ids[0]].status == "pending"
        elif kind is LocalScale:
            answer = requests.post(
                f"{vendor.url}/task/imageannotation",
                json={"project": "p", "unique_id": reference_id, "attachment": "https://x.example/a.jpg"},
                auth=(vendor.api_key, ""),
                timeout=5,
            )
            assert answer.json()["task_id"] == ids[0], answer.text
            assert sandbox.tasks[ids[0]].status == "pending"
        else:
            headers = {"Authorization": f"Bearer {vendor.token}"}
            project = requests.post(
                f"{vendor.url}/projects", json={"name": f"Handoff [{reference_id}]"}, headers=headers, timeout=5
            )
            assert project.json()["id"] == ids[0]
    finally:
        vendor.stop()
