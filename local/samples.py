"""`make local SAM_LOCAL=1` (`python -m local.stack --for-containers`): the local stack as `sam local
invoke` / `sam local start-api` use it, from Docker containers.

    env-vars file     for `--env-vars`: per function logical id, exactly the variables template.yaml
                      declares for it (sam local sets no other), with the local stack's values:
                      its real table, queue, bucket, secret and SSM parameter names, vendor base
                      URLs and AWS_ENDPOINT_URL at an address a container reaches (docker0's; the
                      template declares AWS_ENDPOINT_URL empty, which botocore takes as unset)
    container address moto and the vendor sandboxes listen on 127.0.0.1; a container reaches the
                      host only at docker0's address, so they are served there too (Forwarder)
    the samples       every events/ sample names jobs, keys and archived callbacks; the stack is
                      made to hold them: the vendor secrets' callback keys are the samples' (each
                      sandbox's `sample_keys`), the samples' jobs are submitted through SubmitJob
                      itself (its own events/submit_job samples) and the vendors give them the
                      samples' ids and leave them in progress (`sample_ids`), the batch the samples
                      name is created, and the archived callback the CallbackRetry sample names is
                      put where it says

So every events/ sample gives a meaningful answer under sam local (README "sam local").
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
# Where `make local SAM_LOCAL=1` writes the env-vars file (not in git).
ENV_VARS_FILE = ROOT / ".sam-local-env.json"
LOOPBACK = "127.0.0.1"

# The SubmitJob samples run at start, in order: the jobs and the batch the other samples name.
# Each vendor's direct_invoke_<vendor> submits the job its callback samples are about (the vendor
# holds it in progress, LocalVendor.sample_ids); direct_invoke_create_batch the batch the batch
# samples name; direct_invoke_bulk the jobs the SubmissionWorker sample names.
BATCH_EVENTS = ("submit_job/direct_invoke_create_batch.json", "submit_job/direct_invoke_bulk.json")
# The percent-encoded samples (get_job/api_get_encoded_id.json, submit_job/api_post_retry_encoded_id.json)
# name the id this sample names: seeded as the request of the sample whose id is this one with "-" for ":".
COLON_ID_EVENT = "submit_job/direct_invoke_retry_colon_id.json"
# The CallbackRetry sample re-applies an archived callback: its vendor's api_completed sample's body.
RETRY_EVENT = "callback_retry/sqs_batch.json"


def seed_events(vendors: list[str]) -> list[str]:
    """The SubmitJob samples the stack runs at start, in order (BATCH_EVENTS last)."""
    return [f"submit_job/direct_invoke_{vendor}.json" for vendor in vendors] + list(BATCH_EVENTS)


def seed_requests(vendors: list[str]) -> list[dict[str, Any]]:
    """The requests SubmitJob is given at start: seed_events', then the colon id's."""
    requests = [load_event(name) for name in seed_events(vendors)]
    colon_id = str(load_event(COLON_ID_EVENT)["reference_id"])
    (like,) = [r for r in requests if r.get("reference_id") == colon_id.replace(":", "-")]
    return [*requests, {**copy.deepcopy(like), "reference_id": colon_id}]


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def sample_events() -> list[Path]:
    return sorted(EVENTS.glob("*/*.json"))


# -- the address containers reach ----------------------------------------------------------------------


def interface_address(name: str) -> str | None:
    """The IPv4 address of network interface `name` (None: no such interface, or no address)."""
    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            answer = fcntl.ioctl(probe.fileno(), siocgifaddr, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


def container_host(choice: str) -> tuple[str, str]:
    """(address, note): `choice` "docker0" is docker0's address if it has one, else 127.0.0.1 (then
    only a container on the host's network, `sam local ... --docker-network host`, reaches it)."""
    if choice != "docker0":
        return choice, f"containers reach the stack at {choice}"
    found = interface_address("docker0")
    if found is None:
        return LOOPBACK, "no docker0 interface: the env-vars file names 127.0.0.1 (then: --docker-network host)"
    return found, f"containers reach the stack at docker0's address {found}"


class Forwarder:
    """Serves `host`:`port` as 127.0.0.1:`port` (the same port on another address): a listener on
    docker0 in front of a server that listens on 127.0.0.1 only."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._listener = socket.create_server((host, port))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"forward-{host}:{port}", daemon=True)

    def start(self) -> Forwarder:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection((LOOPBACK, self.port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, target), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=2)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


def for_containers(url: str, host: str) -> str:
    """`url` with the local address 127.0.0.1 replaced by `host`."""
    return url.replace(f"//{LOOPBACK}:", f"//{host}:")


def loopback_ports(values: Mapping[str, str]) -> set[int]:
    """The ports of the http://127.0.0.1:PORT URLs in `values`."""
    ports = set()
    for value in values.values():
        for part in value.split(f"http://{LOOPBACK}:")[1:]:
            digits = part.split("/", 1)[0]
            if digits.isdigit():
                ports.add(int(digits))
    return ports


# -- the env-vars file ---------------------------------------------------------------------------------


def env_vars(
    declared: Mapping[str, Mapping[str, str]], local: Mapping[str, Mapping[str, str]], endpoint: str, host: str
) -> dict[str, dict[str, str]]:
    """Per function: the variables the template declares for it (`declared`, resolved against the
    local stack), valued as the local stack runs the function (`local`) where it has the same
    variable, AWS_ENDPOINT_URL the moto server's, every 127.0.0.1 URL at `host`."""
    found: dict[str, dict[str, str]] = {}
    for function, variables in declared.items():
        own = local.get(function, {})
        values = {name: own.get(name, value) for name, value in variables.items()}
        if "AWS_ENDPOINT_URL" in values:
            values["AWS_ENDPOINT_URL"] = endpoint
        found[function] = {name: for_containers(value, host) for name, value in values.items()}
    return found


def write_env_vars(path: Path, variables: Mapping[str, Mapping[str, str]]) -> None:
    path.write_text(json.dumps(variables, indent=2, sort_keys=True) + "\n")


# -- what the samples name -----------------------------------------------------------------------------


def seed(
    aws: Any,
    submit: Callable[[dict[str, Any]], Any],
    callback_urls: Mapping[str, str],
    declared: Mapping[str, Mapping[str, str]],
    jobs_table: str,
    results_bucket: str,
) -> list[str]:
    """Make the local stack hold what the samples name (see the module's docstring). `submit`
    invokes SubmitJob; `callback_urls`: vendor -> its callback URL on the local API. Returns one
    line per thing done, for the stack's announcement."""
    done = []
    # The callback URL parameters the functions read (SSM: sam local cannot set *_CALLBACK_URL).
    ssm = aws.client("ssm")
    for variables in declared.values():
        for name, value in variables.items():
            if name.endswith("_CALLBACK_URL_PARAMETER"):
                vendor = name.removesuffix("_CALLBACK_URL_PARAMETER").lower()
                ssm.put_parameter(Name=value, Value=callback_urls[vendor], Type="String", Overwrite=True)
    requests = seed_requests(sorted(callback_urls))
    for request in requests:
        answer = submit(request)
        code = answer.get("error", {}).get("code") if isinstance(answer, dict) else None
        if code:
            raise RuntimeError(f"seeding the samples: SubmitJob refused {json.dumps(request)[:120]}: {answer}")
    expected = [r["reference_id"] for r in requests if "reference_id" in r]
    expected += [job["reference_id"] for r in requests for job in r.get("jobs", [])]
    _wait_submitted(aws.client("dynamodb"), jobs_table, expected)
    done.append(f"jobs the samples name: {', '.join(expected)}")
    batches = [load_event(name).get("batch_ref") for name in BATCH_EVENTS]
    done.append(f"batch the samples name: {', '.join(b for b in batches if b)}")

    message = json.loads(load_event(RETRY_EVENT)["Records"][0]["body"])
    key = message["archive_key"]
    body = load_event(f"{message['vendor']}_callback/api_completed.json")["body"]
    aws.client("s3").put_object(Bucket=results_bucket, Key=key, Body=body.encode(), ContentType="application/json")
    done.append(f"archived callback the CallbackRetry sample names: s3://{results_bucket}/{key}")
    return done


def _wait_submitted(dynamodb: Any, table: str, reference_ids: list[str], timeout: float = 60.0) -> None:
    """Until every job has left QUEUED (the worker submits bulk jobs in the background)."""
    deadline = time.monotonic() + timeout
    waiting = list(reference_ids)
    while waiting:
        item = dynamodb.get_item(TableName=table, Key={"reference_id": {"S": waiting[0]}}).get("Item")
        if item is not None and item["status"]["S"] != "QUEUED":
            waiting.pop(0)
            continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"seeding the samples: {waiting[0]} still not submitted after {timeout:.0f} s")
        time.sleep(0.2)
