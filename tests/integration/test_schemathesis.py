"""The committed openapi.json against a local stack of its own, over real HTTP (schemathesis).

Every operation of the document, with requests generated from it in both modes (positive: what the
document allows; negative: what it does not): schemathesis' coverage phase (its deterministic cases at
and past each constraint, wrong content types and other methods included), then its fuzzing phase
(EXAMPLES random requests per operation and mode, derandomized); at least 1,500 requests in all. Routes
under /jobs and /batches are SigV4-signed over the final URL and body, as API Gateway's IAM auth needs; the Playment
callback mostly carries the real x-playment-key, so generated bodies get past authentication; TEXTKING
callbacks are generated forms (their signed token cannot be valid: 400/401 is the expected answer).

For every response:
  - no 5xx, and the status, content type and body are documented (schemathesis' own checks:
    not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance);
  - every 4xx body is {"error": {"code": str, "message": str, "details": list}};
  - a refused request wrote nothing: the job table and the results bucket are snapshotted after every
    request, and what changed across a refused one must be explained by jobs accepted earlier
    carrying on in the background (see `unexplained_writes`).

Failures are collected, not raised one by one: the test fails at the end with every failing case
(method, path, status, what failed, a body snippet), grouped into classes, a summary last.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
import requests
import schemathesis
from boto3.dynamodb.types import TypeDeserializer
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.generation.drivers import CoverageGenerator  # what the engine runs as its coverage phase
from schemathesis.generation.feedback import FeedbackSources
from schemathesis.generation.overrides import Override
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.aws import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from local.process import StackProcess
from tests.integration.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
# Fuzzing, per operation and mode: 12 operations x 2 modes, ~600 requests, on top of the ~1,400 of the coverage
# phase (every boundary, wrong type, content type and method). Each request costs a snapshot of the table
# and bucket (~15-60 ms, growing with the table), so more examples mostly buy time, not new classes.
EXAMPLES = 25
MIN_REQUESTS = 1500
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same requests on every run
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # nothing is raised to hypothesis, so there is nothing to shrink
    suppress_health_check=list(HealthCheck),
)

# Who may change a job while a refused request is in flight: the stack's own background work (the
# SubmissionWorker, the reconciler, and the TEXTKING sandbox calling back for jobs accepted earlier).
# Any other source in a new history entry ("playment-callback": the Playment sandbox never calls back
# in this stack; "operator": only POST /jobs/{id}/retry) can only come from the refused request.
BACKGROUND_SOURCES = frozenset({"submit", "redrive", "reconciler", "textking-callback"})
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELED"})  # nothing in the background touches these
FIXED_FIELDS = ("reference_id", "vendor", "request", "request_hash", "created_at")
SANDBOX_CALLBACK_VENDORS = frozenset({"textking"})  # raw/<vendor>/ objects the sandboxes may write
# Answers of 400 and over that record something by contract: the job a vendor rejected is kept FAILED.
WRITES_BY_CONTRACT = frozenset({("POST", "/jobs", 424)})
_deserializer = TypeDeserializer()


@pytest.fixture(scope="module")
def own_stack() -> Iterator[Stack]:
    process = StackProcess("--log-level", "WARNING", "--no-vendor-callbacks")
    yield Stack(process.urls, process.output)
    process.stop()


class SigV4(requests.auth.AuthBase):
    """Signs the request as it goes on the wire (final URL, headers and body), as Stack.call does."""

    credentials = Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)  # the local API verifies against these

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-SHA256"):
            request.headers.pop(name, None)
        body = request.body if request.body is not None else b""
        signed = AWSRequest(method=request.method, url=request.url, data=body, headers=dict(request.headers))
        SigV4Auth(self.credentials, "execute-api", REGION).add_auth(signed)
        request.headers["Authorization"] = signed.headers["Authorization"]
        request.headers["X-Amz-Date"] = signed.headers["X-Amz-Date"]
        return request


# -- what a request could have written ---------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    items: dict[str, dict[str, Any]]  # reference_id -> the job item, as DynamoDB returns it
    objects: dict[str, str]  # results bucket: key -> ETag


def snapshot(stack: Stack, dynamodb: Any, s3: Any, pool: ThreadPoolExecutor) -> Snapshot:
    def items() -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        scan: dict[str, Any] = {"TableName": stack.urls["jobs_table"], "ConsistentRead": True}
        while True:
            page = dynamodb.scan(**scan)
            found.update((item["reference_id"]["S"], item) for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                return found
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def objects() -> dict[str, str]:
        found: dict[str, str] = {}
        listing: dict[str, Any] = {"Bucket": stack.urls["results_bucket"]}
        while True:
            page = s3.list_objects_v2(**listing)
            found.update((obj["Key"], obj["ETag"]) for obj in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return found
            listing["ContinuationToken"] = page["NextContinuationToken"]

    table, bucket = pool.submit(items), pool.submit(objects)  # side by side: half the wait
    return Snapshot(table.result(), bucket.result())


def plain(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def unexplained_writes(before: Snapshot, after: Snapshot, holds_sent_body: Any) -> tuple[list[str], int]:
    """(what the refused request must have written, how many changes the background explains).

    Jobs accepted earlier in the run carry on in the background while a refused request is in flight
    (submitted, reconciled, called back by the TEXTKING sandbox), so "nothing changed" would be flaky.
    What the background never does, and so counts against the refused request: create or delete a job
    item; touch a job that had finished; change a job's request, vendor or creation; add a history
    entry from any source outside BACKGROUND_SOURCES; delete or overwrite an object; archive a raw
    Playment callback (the Playment sandbox does not call back here), or a raw callback with the bytes
    this request sent; store a result or delivery for a job that did not exist or had finished.
    """
    problems: list[str] = []
    explained = 0
    for ref in sorted(after.items.keys() - before.items.keys()):
        problems.append(f"created job item {ref!r} (status {plain(after.items[ref]).get('status')})")
    for ref in sorted(before.items.keys() - after.items.keys()):
        problems.append(f"deleted job item {ref!r}")
    for ref in sorted(before.items.keys() & after.items.keys()):
        if before.items[ref] == after.items[ref]:
            continue
        old, new = plain(before.items[ref]), plain(after.items[ref])
        if old.get("status") in TERMINAL:
            problems.append(f"changed job {ref!r}, which had finished ({old.get('status')} -> {new.get('status')})")
            continue
        fixed = [name for name in FIXED_FIELDS if old.get(name) != new.get(name)]
        if fixed:
            problems.append(f"changed job {ref!r}: {', '.join(fixed)}")
            continue
        added = [entry for entry in new.get("history", []) if entry not in old.get("history", [])]
        foreign = [entry for entry in added if entry.get("source") not in BACKGROUND_SOURCES]
        if foreign:
            sources = ", ".join(f"{e.get('status')} by {e.get('source')!r}" for e in foreign)
            problems.append(f"changed job {ref!r}: history {sources}")
        else:
            explained += 1
    for key in sorted(before.objects.keys() - after.objects.keys()):
        problems.append(f"deleted object {key}")
    for key in sorted(before.objects.keys() & after.objects.keys()):
        if before.objects[key] != after.objects[key]:
            problems.append(f"overwrote object {key}")
    for key in sorted(after.objects.keys() - before.objects.keys()):
        kind, _, rest = key.partition("/")
        vendor, _, rest = rest.partition("/")
        if kind == "raw" and vendor in SANDBOX_CALLBACK_VENDORS and not holds_sent_body(key):
            explained += 1  # a sandbox's own callback for a job accepted earlier
        elif kind in ("results", "deliveries") and rest:
            ref = unquote(rest.partition("/")[0])
            job = before.items.get(ref)
            if job is not None and plain(job).get("status") not in TERMINAL:
                explained += 1  # a job accepted earlier reached its result
            else:
                problems.append(f"archived {key}")
        else:
            problems.append(f"archived {key}")
    return problems, explained


def refused(case: Case, status: int) -> bool:
    """Whether the answer says nothing was done, so nothing may have been written."""
    method, path = case.method.upper(), case.operation.path
    if (method, path, status) in WRITES_BY_CONTRACT:
        return False
    if status >= 500:  # a documented 5xx says what it kept (the callbacks' 503: archived); it fails anyway
        return str(status) not in {str(code) for code in case.operation.responses.status_codes}
    return status >= 400


# -- what is wrong with one response ------------------------------------------------------------------


def error_shape_problem(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return "4xx body is not JSON"
    error = payload.get("error") if isinstance(payload, dict) else None
    if (
        not isinstance(error, dict)
        or not isinstance(error.get("code"), str)
        or not isinstance(error.get("message"), str)
        or not isinstance(error.get("details"), list)
    ):
        return "4xx body is not {error: {code: str, message: str, details: list}}"
    return None


def snippet(body: bytes, limit: int = 160) -> str:
    text = body.decode("utf-8", "replace").replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def first_line(text: str, limit: int = 160) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[:limit] + "..."


@dataclass(frozen=True)
class Finding:
    method: str  # as sent
    path: str  # the operation's path template
    sent_path: str
    source: str  # phase/mode [coverage scenario]
    undocumented_method: bool  # a coverage probe with a method the document does not list for the path
    status: int | None
    what: str  # the failure class: a schemathesis failure title, or one of this file's checks
    detail: str
    body: str

    @property
    def kind(self) -> tuple[str, str, int | None, str]:
        """The failure class: one per operation, status and failed check (other methods: one per path)."""
        return ("*" if self.undocumented_method else self.method, self.path, self.status, self.what)


@dataclass
class Run:
    stack: Stack
    playment_key: str
    dynamodb: Any
    s3: Any
    session: requests.Session = field(default_factory=requests.Session)
    requests_sent: int = 0
    statuses: Counter[tuple[str, str, str, int | None]] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    harness_errors: list[str] = field(default_factory=list)
    checked_for_writes: int = 0
    explained_by_background: int = 0
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(2))
    last: Snapshot | None = None  # the store as the previous request left it
    responses: int = 0  # every response the session received

    def __post_init__(self) -> None:
        self.session.hooks["response"].append(self._count)

    def _count(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.responses += 1

    def snapshot(self) -> Snapshot:
        self.last = snapshot(self.stack, self.dynamodb, self.s3, self.pool)
        return self.last

    def holds(self, key: str, sent: bytes) -> bool:
        """Whether the object is an archived copy of `sent`: by the CRC32 its writer sent along (moto's
        server stores form-encoded uploads without their body), or else by its bytes."""
        bucket = self.stack.urls["results_bucket"]
        stored = self.s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED").get("ChecksumCRC32")
        if stored:
            return bool(stored == base64.b64encode(zlib.crc32(sent).to_bytes(4, "big")).decode())
        return bool(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == sent)

    def exercise(self, case: Case, source: str, use_real_key: bool = True) -> None:
        """Send one case, check its answer, and record whatever is wrong (never raises for the product)."""
        method, path = case.method.upper(), case.operation.path
        scenario = getattr(case.meta.phase.data, "scenario", None) if case.meta is not None else None
        label = f"{source} {scenario}" if scenario else source
        headers: dict[str, str] = {}
        if path == "/callbacks/playment" and use_real_key:
            headers["x-playment-key"] = self.playment_key  # else: whatever was generated (or nothing)
        auth = SigV4() if path.startswith(("/jobs", "/batches")) else None

        other_method = method != case.operation.method.upper()

        def found(status: int | None, what: str, detail: str, body: bytes = b"") -> None:
            self.findings.append(
                Finding(method, path, case.formatted_path, label, other_method, status, what, detail, snippet(body))
            )

        # One snapshot per request, taken after it: the one before is what the previous request left.
        before = self.last or self.snapshot()
        self.requests_sent += 1
        try:
            response = case.call(
                base_url=self.stack.urls["api"], session=self.session, headers=headers, auth=auth, timeout=30
            )
        except requests.RequestException as exc:
            self.statuses[("*" if other_method else method, path, source, None)] += 1
            found(None, "no response", f"{type(exc).__name__}: {first_line(str(exc))}")
            self.snapshot()
            return
        after = self.snapshot()
        status = response.status_code
        self.statuses[("*" if other_method else method, path, source, status)] += 1

        answered = self.responses
        try:
            # A check may send a request of its own (not_a_server_error re-sends a content-type probe that
            # got a 5xx with the document's content type): the same way, so it reaches the stack signed.
            sent_with = {"base_url": self.stack.urls["api"], "session": self.session, "auth": auth, "timeout": 30}
            case.validate_response(response, checks=CHECKS, headers=headers, transport_kwargs=sent_with)
        except FailureGroup as group:
            for failure in group.exceptions:
                found(status, failure.title, first_line(failure.message), response.content)
        except AssertionError as failure:  # a single schemathesis Failure
            found(status, type(failure).__name__, first_line(str(failure)), response.content)

        if self.responses > answered:  # counted, and what they wrote is not blamed on the next request
            self.requests_sent += self.responses - answered
            self.snapshot()

        if 400 <= status < 500 and (problem := error_shape_problem(response.content)):
            found(status, problem, "", response.content)

        if refused(case, status):
            self.checked_for_writes += 1
            sent = response.request.body
            sent_body = sent.encode() if isinstance(sent, str) else bytes(sent or b"")
            problems, explained = unexplained_writes(before, after, lambda key: self.holds(key, sent_body))
            self.explained_by_background += explained
            if problems:
                found(status, "refused request wrote something", "; ".join(problems), response.content)

    def exercise_safely(self, case: Case, source: str, use_real_key: bool = True) -> None:
        try:
            self.exercise(case, source, use_real_key)
        except Exception as exc:  # never let one case stop the run (nor make hypothesis shrink)
            self.harness_errors.append(f"{case.method.upper()} {case.formatted_path} ({source}): {exc!r}")

    def fuzz(self, operation: APIOperation, mode: GenerationMode) -> None:
        """Schemathesis' fuzzing phase: EXAMPLES random requests of one mode."""
        source = f"fuzzing/{mode.value}"
        try:
            strategy = operation.as_strategy(generation_mode=mode)
        except Exception as exc:  # the document could not be turned into requests: the harness's problem
            self.harness_errors.append(f"{operation.label} ({source}): {exc!r}")
            return

        @FUZZ
        @given(case=strategy, use_real_key=st.sampled_from([True] * 9 + [False]))
        def run(case: Case, use_real_key: bool) -> None:
            self.exercise_safely(case, source, use_real_key)

        try:
            run()
        except HypothesisException as exc:
            self.harness_errors.append(f"{operation.label} ({source}): {exc!r}")

    def cover(self, operation: APIOperation) -> None:
        """Schemathesis' coverage phase: its deterministic cases at and past each constraint of the document,
        both modes (wrong and missing content types, other methods, each boundary and each wrong type)."""
        generator = CoverageGenerator(
            operation=operation,
            generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
            generation_config=operation.schema.config.generation_for(operation=operation, phase="coverage"),
            auth_storage=None,
            override=Override(),
            feedback=FeedbackSources(),
        )
        try:
            cases = list(generator)
        except Exception as exc:
            self.harness_errors.append(f"{operation.label} (coverage): {exc!r}")
            return
        self.harness_errors += [
            f"{operation.label} (coverage): {exc!r}" for exc in generator.controller.deferred_errors
        ]
        for case in cases:
            mode = case.meta.generation.mode.value if case.meta is not None else "?"
            self.exercise_safely(case, f"coverage/{mode}")


def report(run: Run, seconds: float) -> str:
    by_kind: dict[tuple[str, str, int | None, str], list[Finding]] = defaultdict(list)
    for finding in run.findings:
        by_kind[finding.kind].append(finding)
    lines = ["", "Every failing case, by class:"]
    for (method, path, status, what), cases in sorted(by_kind.items(), key=lambda kv: repr(kv[0])):
        lines.append(f"== {method} {path} -> {status}: {what} ({len(cases)} cases)")
        lines += [
            f"   [{c.source}] {c.method} {c.sent_path[:80]} -> {c.status}: {c.detail} | body: {c.body}" for c in cases
        ]
    if run.harness_errors:
        lines.append(f"Harness errors ({len(run.harness_errors)}):")
        lines += [f"   {error}" for error in run.harness_errors]
    lines.append("")
    lines.append(
        f"{run.requests_sent} requests in {seconds:.0f}s; {run.checked_for_writes} refused ones checked for writes"
        f" ({run.explained_by_background} concurrent changes attributed to jobs accepted earlier)."
    )
    per_operation: dict[tuple[str, str, str], Counter[int | None]] = defaultdict(Counter)
    for (method, path, mode, status), n in run.statuses.items():
        per_operation[(method, path, mode)][status] += n
    for (method, path, mode), counts in sorted(per_operation.items()):
        spread = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items(), key=lambda kv: str(kv[0])))
        lines.append(f"  {method} {path} [{mode}] {spread}")
    lines.append(f"{len(run.findings)} failing checks in {len(by_kind)} classes:")
    for (method, path, status, what), cases in sorted(by_kind.items(), key=lambda kv: repr(kv[0])):
        example = cases[0]
        lines.append(
            f"  {len(cases):4d} x {method} {path} -> {status}: {what}"
            + (f" ({example.detail[:120]})" if example.detail else "")
            + f" | e.g. {example.body[:120]}"
        )
    return "\n".join(lines)


def test_every_operation_against_the_document(own_stack: Stack) -> None:
    started = time.monotonic()
    stack = own_stack
    secret = stack.aws("secretsmanager").get_secret_value(SecretId=stack.urls["playment_secret"])
    run = Run(
        stack,
        playment_key=json.loads(secret["SecretString"])["callback_key"],
        dynamodb=stack.aws("dynamodb"),
        # Stored checksums are compared, not enforced on reads (see Run.holds).
        s3=boto3.client(
            "s3",
            endpoint_url=stack.urls["aws_endpoint"],
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(response_checksum_validation="when_required"),
        ),
    )
    schema = schemathesis.openapi.from_path(ROOT / "openapi.json")
    schema.config.update(base_url=stack.urls["api"])
    operations = [result.ok() for result in schema.get_all_operations()]  # raises on an operation it cannot read
    assert operations
    try:
        for operation in operations:
            run.cover(operation)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run.fuzz(operation, mode)
    finally:
        run.session.close()
        run.pool.shutdown()

    summary = report(run, time.monotonic() - started)
    if run.harness_errors:
        pytest.fail(f"the harness failed, not (only) the product:{summary}", pytrace=False)
    if run.requests_sent < MIN_REQUESTS:
        pytest.fail(f"only {run.requests_sent} requests, fewer than {MIN_REQUESTS}:{summary}", pytrace=False)
    if run.findings:
        pytest.fail(summary, pytrace=False)
    print(summary)  # with -s: what was sent and answered
