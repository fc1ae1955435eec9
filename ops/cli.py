"""The Handoff operator CLI, over the paths callers use (the IAM API, SigV4-signed) and the
operator tools (replay, redrive, preflight).

    handoff jobs list [--status S] [--vendor V] [--batch REF] [--updated-after T] [--limit N] [--all]
    handoff jobs show|retry|cancel|order REFERENCE_ID
    handoff batches show BATCH_REF [--vendor]
    handoff replay KEY                    re-apply an archived callback (ops/replay.py)
    handoff redrive [--rate N]            dead-lettered submissions back to the queue (ops/redrive.py)
    handoff preflight                     every vendor's configuration checked (ops/preflight.py)
    handoff events tail [--follow] [--reference-id ID]   the local stack's events

Which stack (as the make targets choose): `--local` the running `make local` (an error when none
runs), `--stack NAME` a deployed stack read from CloudFormation with your AWS credentials, and
neither: the local stack if one runs, else the stack `handoff`. API requests are signed with the
default credential chain (AWS_PROFILE, environment, SSO, instance role), or the local stack's own.

Output is a table for people; `--json` prints the API's JSON as it answered (`jobs list --all`:
one document {"jobs": [...]} of every page; `events tail`: one event per line). Exit codes: 0
done; 1 the API refused (one line `handoff: <code>: <message>` on stderr, the error's details
under it); 2 the CLI could not act (no stack, no credentials, cannot connect: one line saying what
to do). Never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
for _entry in (str(ROOT / "shared"), str(ROOT)):
    if _entry not in sys.path:  # the layer (handoff.*), which replay and preflight read
        sys.path.insert(0, _entry)

from handoff.vendors import VENDOR_NAMES  # noqa: E402
from ops import stacks  # noqa: E402

PROG = "handoff"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 35.0  # API Gateway gives up on a function after 29 s: its 504 comes before this
# Answers a GET may meet while the stack is busy or throttled; asked again with backoff. A POST
# (retry, cancel, order) is sent once: its answer says what happened, and the operator decides.
TRANSIENT = frozenset({429, 502, 503, 504})
GET_ATTEMPTS = 3


class CliError(RuntimeError):
    """The CLI could not act (exit 2): the message is one line saying what to do."""


class ApiError(RuntimeError):
    """The API answered an error (exit 1): its body {"error": {code, message, details}}."""

    def __init__(self, status: int, body: Any, text: str) -> None:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            self.code = error["code"]
            self.message = " ".join(str(error.get("message", "")).split())
            details = error.get("details")
            self.details: list[Any] = details if isinstance(details, list) else []
        else:  # not Handoff's shape (a proxy's page, an empty body): the status and what came
            self.code = f"HTTP {status}"
            self.message = " ".join(text.split())[:300] or "(no body)"
            self.details = []
        self.status, self.body = status, body
        super().__init__(f"{self.code}: {self.message}")


# --- the API, as a caller reaches it ------------------------------------------------------------


@dataclass
class Api:
    """The stack's API (its ApiUrl), every request signed with SigV4 (service execute-api)."""

    url: str
    credentials: Any  # botocore credentials (a refreshable chain is frozen per request)
    region: str
    http: Any = field(default=None)  # a requests.Session (tests give a fake)
    pause: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.http is None:
            import requests

            self.http = requests.Session()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.call("GET", path, params)

    def post(self, path: str) -> Any:
        return self.call("POST", path)

    def call(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        import requests
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.url.rstrip('/')}{path}" + (f"?{query}" if query else "")
        attempts = GET_ATTEMPTS if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            request = AWSRequest(method, url, headers={"Accept": "application/json"})
            frozen = getattr(self.credentials, "get_frozen_credentials", lambda: self.credentials)()
            SigV4Auth(frozen, "execute-api", self.region).add_auth(request)
            try:
                answer = self.http.request(
                    method, url, headers=dict(request.headers), timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)
                )
            except requests.exceptions.ConnectionError as exc:
                if attempt < attempts:
                    self.pause(0.5 * 2**attempt)
                    continue
                raise CliError(
                    f"cannot connect to the API at {self.url} ({type(exc).__name__}): is the stack running "
                    "(make local), and the network and region right?"
                ) from None
            except requests.exceptions.Timeout:
                raise CliError(f"the API at {self.url} did not answer within {READ_TIMEOUT:.0f} s: try again") from None
            if answer.status_code in TRANSIENT and attempt < attempts:
                self.pause(0.5 * 2**attempt)
                continue
            try:
                body = answer.json()
            except ValueError:
                body = None
            if answer.status_code >= 400 or body is None:
                raise ApiError(answer.status_code, body, answer.text)
            return body
        raise AssertionError("unreachable")  # pragma: no cover


def job_path(reference_id: str, action: str = "") -> str:
    """/jobs/{reference_id}[/action], the id percent-encoded as one path segment (README "Ids in URLs")."""
    return f"/jobs/{quote(reference_id, safe='')}" + (f"/{action}" if action else "")


def open_api(stack: stacks.Stack) -> Api:
    """The stack's API with the credentials that sign for it: the caller's, or the local stack's."""
    from botocore.exceptions import BotoCoreError

    url = stack.output("ApiUrl")
    try:
        credentials = stack.credentials()
    except BotoCoreError as exc:  # a profile that cannot be read, an SSO session expired
        raise CliError(stacks.aws_error(exc, "read your AWS credentials")) from None
    if credentials is None:
        raise CliError("no AWS credentials: configure them (aws configure, AWS_PROFILE), or use --local")
    if not stack.region:
        raise CliError("no AWS region: set AWS_DEFAULT_REGION or pass --region")
    return Api(url, credentials, stack.region)


# --- what people read -----------------------------------------------------------------------------


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Aligned columns under an upper-case header; a missing or null value is "-"."""
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = [[c.upper() for c in columns], *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return " ".join(str(value).split())


def detail_line(detail: Any) -> str:
    """One of an API error's details: `field: message` for an invalid field, else `name: value, ...`."""
    if not isinstance(detail, dict):
        return cell(detail)
    if isinstance(detail.get("field"), str) and "message" in detail:
        return f"{detail['field']}: {cell(detail['message'])}"
    return ", ".join(f"{name}: {cell(value)}" for name, value in detail.items())


def fields(pairs: list[tuple[str, Any]]) -> str:
    """Name/value lines, the names aligned; empty values left out."""
    kept = [(name, cell(value)) for name, value in pairs if value not in (None, "", {}, [])]
    width = max((len(name) for name, _ in kept), default=0)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in kept)


JOB_COLUMNS = ["reference_id", "vendor", "status", "updated_at", "vendor_job_id"]


def render_jobs(page: dict[str, Any]) -> str:
    jobs = page.get("jobs") or []
    return table(jobs, JOB_COLUMNS) if jobs else "no jobs"


def render_job(job: dict[str, Any]) -> str:
    error = job.get("last_error") or {}
    result_ref = job.get("result_ref")
    result = job.get("result")
    inline = f"inline ({len(json.dumps(result))} bytes)" if result is not None else None
    quote_ = job.get("quote") or {}
    head = fields(
        [
            ("reference_id", job.get("reference_id")),
            ("vendor", job.get("vendor")),
            ("status", job.get("status")),
            ("vendor_job_id", job.get("vendor_job_id")),
            ("vendor_refs", job.get("vendor_refs")),
            ("batch_ref", job.get("batch_ref")),
            ("attempts", job.get("attempts")),
            ("last_error", f"{error.get('code')}: {error.get('message')}" if error else None),
            ("result", result_ref or inline),
            (
                "quote",
                f"{quote_.get('words')} words, {quote_.get('net_price')} {quote_.get('currency')}" if quote_ else None,
            ),
            ("ordered_at", job.get("ordered_at")),
            ("created_at", job.get("created_at")),
            ("updated_at", job.get("updated_at")),
        ]
    )
    history = job.get("history") or []
    if not history:
        return head
    return f"{head}\n\n{table(history, ['at', 'status', 'source'])}"


def render_batch(batch: dict[str, Any]) -> str:
    counts = batch.get("counts") or {}
    expected = batch.get("expected_jobs")
    return fields(
        [
            ("batch_ref", batch.get("batch_ref")),
            ("vendor", batch.get("vendor")),
            ("name", batch.get("name")),
            ("state", batch.get("state")),
            ("vendor_batch_id", batch.get("vendor_batch_id")),
            ("jobs", f"{batch.get('jobs')}" + (f" of {expected} expected" if expected is not None else "")),
            ("final", batch.get("final")),
            ("counts", ", ".join(f"{status} {n}" for status, n in sorted(counts.items())) or None),
            ("created_at", batch.get("created_at")),
            ("closed_at", batch.get("closed_at")),
            ("completed_at", batch.get("completed_at")),
            ("published_at", batch.get("published_at")),
            ("vendor_details", batch.get("vendor_details")),
        ]
    )


def detail_of(event: dict[str, Any]) -> dict[str, Any]:
    detail = event.get("detail")
    return detail if isinstance(detail, dict) else {}


def render_event(event: dict[str, Any]) -> str:
    """One line per event: when, what, whose, and the change it announces."""
    detail = detail_of(event)
    kind = str(event.get("detail-type", "?"))
    whose = detail.get("reference_id") or detail.get("batch_ref") or "-"
    if kind == "Batch Completed":
        counts = detail.get("counts") or {}
        what = f"{detail.get('jobs')} jobs: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items()) if n)
    elif detail.get("status"):
        what = f"{detail.get('previous_status') or '(new)'} -> {detail['status']}"
    else:
        what = ""
    when = detail.get("at") or detail.get("completed_at") or event.get("time") or "-"
    return f"{cell(when):<24}  {kind:<18}  {cell(whose):<32}  {cell(detail.get('vendor')):<9}  {what}".rstrip()


# --- the commands -----------------------------------------------------------------------------------


def emit(args: argparse.Namespace, out: TextIO, document: Any, text: Callable[[Any], str]) -> None:
    print(json.dumps(document, ensure_ascii=False) if args.json else text(document), file=out)


def jobs_list(args: argparse.Namespace, stack: stacks.Stack, out: TextIO, err: TextIO) -> int:
    api = open_api(stack)
    params = {
        "status": args.status,
        "vendor": args.vendor,
        "batch": args.batch,
        "updated_after": args.updated_after,
        "limit": args.limit,
        "cursor": args.cursor,
    }
    page = api.get("/jobs", params)
    if not args.all:
        emit(args, out, page, render_jobs)
        if not args.json and page.get("next_cursor"):
            print(f"more jobs: --all, or --cursor {page['next_cursor']}", file=err)
        return 0
    jobs = list(page.get("jobs") or [])
    while page.get("next_cursor"):  # same filters, as the cursor requires
        page = api.get("/jobs", {**params, "cursor": page["next_cursor"]})
        jobs += page.get("jobs") or []
    emit(args, out, {"jobs": jobs}, render_jobs)
    return 0


def jobs_show(args: argparse.Namespace, stack: stacks.Stack, out: TextIO, err: TextIO) -> int:
    emit(args, out, open_api(stack).get(job_path(args.reference_id)), render_job)
    return 0


def jobs_action(action: str) -> Callable[[argparse.Namespace, stacks.Stack, TextIO, TextIO], int]:
    def run(args: argparse.Namespace, stack: stacks.Stack, out: TextIO, err: TextIO) -> int:
        emit(args, out, open_api(stack).post(job_path(args.reference_id, action)), render_job)
        return 0

    return run


def batches_show(args: argparse.Namespace, stack: stacks.Stack, out: TextIO, err: TextIO) -> int:
    path = f"/batches/{quote(args.batch_ref, safe='')}"
    emit(args, out, open_api(stack).get(path, {"vendor": "true" if args.vendor_details else None}), render_batch)
    return 0


def events_tail(args: argparse.Namespace, stack: stacks.Stack, out: TextIO, err: TextIO) -> int:
    queue = stack.state.get("events_queue")
    if not queue:
        raise CliError("the local stack runs without event capture (--no-event-capture): restart make local without it")
    shown = 0
    try:
        for event in drain(stack.client("sqs"), str(queue), follow=args.follow, reference_id=args.reference_id):
            print(json.dumps(event, ensure_ascii=False) if args.json else render_event(event), file=out, flush=True)
            shown += 1
    except KeyboardInterrupt:  # the way out of --follow
        return 0
    if not shown and not args.json:
        whose = f" of {args.reference_id}" if args.reference_id else ""
        print(f"no events{whose} on the local events queue (each is shown once, then taken off it)", file=err)
    return 0


# Another job's event received by a filtered tail is out of sight for other readers this long (a
# visibility of 0 would hand it straight back to this tail, ahead of the events it waits for); a
# tail that ends hands those it holds back at once.
OTHERS_INVISIBLE_SECONDS = 5


def drain(sqs: Any, queue_url: str, *, follow: bool, reference_id: str | None) -> Iterator[dict[str, Any]]:
    """The events on the local events queue, taken off it once printed (the queue is a local
    stand-in for a subscriber: once read, an event is gone, as from any queue). With reference_id,
    only that job's (or batch's) events are taken; the others stay for another reader. Without
    follow: everything the queue holds, in the order it happened, then the end."""
    held: dict[str, str] = {}  # MessageId -> receipt handle of events received and not taken
    try:
        while True:
            wanted: list[tuple[dict[str, Any], dict[str, Any]]] = []
            while True:  # without follow, one read of the whole queue; with it, what one receive brings
                messages = receive(sqs, queue_url, wait=5 if follow else 1)
                new = [m for m in messages if m["MessageId"] not in held]
                for message in new:
                    event = parsed(message)
                    detail = event.get("detail") if isinstance(event, dict) else None
                    mine = isinstance(detail, dict) and reference_id in (
                        detail.get("reference_id"),
                        detail.get("batch_ref"),
                    )
                    if event is not None and (reference_id is None or mine):
                        wanted.append((event, message))
                    else:
                        held[message["MessageId"]] = message["ReceiptHandle"]
                if follow or not new:
                    break
            wanted.sort(key=lambda pair: event_order(pair[0]))
            for event, _ in wanted:
                yield event
            taken = [message for _, message in wanted]
            for start in range(0, len(taken), 10):
                sqs.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(taken[start : start + 10])
                    ],
                )
            if not follow:
                return
    finally:
        release(sqs, queue_url, list(held.values()))


def receive(sqs: Any, queue_url: str, wait: int) -> list[dict[str, Any]]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        messages: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait,
            VisibilityTimeout=OTHERS_INVISIBLE_SECONDS,
        ).get("Messages", [])
    except (BotoCoreError, ClientError) as exc:
        raise CliError(
            f"cannot read the local events queue ({stacks.error_message(exc)}): is make local still running?"
        ) from None
    return messages


def release(sqs: Any, queue_url: str, handles: list[str]) -> None:
    """Other jobs' events back on the queue at once (best effort: they come back by themselves)."""
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
            for i, h in enumerate(handles[start : start + 10])
        ]
        with contextlib.suppress(Exception):  # a handle that expired is already visible again
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)


def parsed(message: dict[str, Any]) -> dict[str, Any] | None:
    try:
        event = json.loads(message["Body"])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def event_order(event: dict[str, Any]) -> tuple[str, int]:
    """Events in the order they happened (SQS does not keep it): time, then the job's version."""
    detail = detail_of(event)
    version = detail.get("version")
    return str(detail.get("at") or detail.get("completed_at") or ""), version if isinstance(version, int) else 0


def stack_options(args: argparse.Namespace) -> list[str]:
    """The CLI's choice of stack, as the operator tools (ops/replay.py, ...) take it."""
    chosen = stacks.LOCAL if args.local else args.stack
    # --name=value: a value that starts with "-" is still the option's value
    options = [f"--stack={chosen}"] if chosen else []
    if args.region:
        options.append(f"--region={args.region}")
    return [*options, f"--local-state={args.local_state}"]


def replay(args: argparse.Namespace, out: TextIO) -> int:
    from ops import replay as tool

    return tool.main([*stack_options(args), f"--key={args.key}"], out)


def redrive(args: argparse.Namespace, out: TextIO) -> int:
    from ops import redrive as tool

    rate = [f"--rate={args.rate}"] if args.rate is not None else []
    return tool.main([*stack_options(args), *rate, *(["--no-wait"] if args.no_wait else [])], out)


def preflight(args: argparse.Namespace, out: TextIO) -> int:
    from ops import preflight as tool

    return tool.main(stack_options(args), out)


# --- arguments ---------------------------------------------------------------------------------------


def common_options(suppress: bool) -> argparse.ArgumentParser:
    """Options taken before the command or after it (`handoff --local jobs list`, `handoff jobs
    list --local`): on a subcommand they default to nothing, so they never undo the first ones."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", default=default(False), help="the running local stack")
    where.add_argument(
        "--stack",
        default=default(None),
        help=f"a deployed stack's name (default: a running local stack, else {stacks.DEFAULT_STACK!r})",
    )
    common.add_argument("--region", default=default(None), help="the deployed stack's region")
    common.add_argument("--json", action="store_true", default=default(False), help="the API's JSON, for scripts")
    common.add_argument(
        "--local-state", type=Path, default=default(stacks.STATE_FILE), help=argparse.SUPPRESS
    )  # where `make local` says it runs (tests point it elsewhere)
    return common


def parser() -> argparse.ArgumentParser:
    sub_common = common_options(suppress=True)
    top = argparse.ArgumentParser(
        prog=PROG,
        description="\n\n".join(__doc__.split("\n\n")[:3]),
        parents=[common_options(suppress=False)],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Which stack, output and exit codes: see README 'Operator CLI'.",
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    jobs = commands.add_parser("jobs", help="list, show, retry, cancel or order jobs").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    listing = jobs.add_parser("list", parents=[sub_common], help="jobs newest first (GET /jobs)")
    listing.add_argument("--status", help="QUEUED, SUBMITTED, IN_PROGRESS, DELIVERED, COMPLETED, FAILED, CANCELED")
    listing.add_argument("--vendor", help=f"one of: {', '.join(sorted(VENDOR_NAMES))}")
    listing.add_argument("--batch", help="a batch_ref")
    listing.add_argument("--updated-after", help="an ISO-8601 time with its zone: jobs written after it")
    listing.add_argument("--limit", type=int, help="jobs per page, 1-100 (the API's default: 50)")
    listing.add_argument("--cursor", help="a page's next_cursor, with the same filters")
    listing.add_argument("--all", action="store_true", help="every page, following next_cursor")
    listing.set_defaults(run=jobs_list)
    for action, run, said in [
        ("show", jobs_show, "a job with its history (GET /jobs/{id})"),
        ("retry", jobs_action("retry"), "resubmit a job that FAILED before any vendor accepted it"),
        ("cancel", jobs_action("cancel"), "cancel a QUEUED job, or a submitted one where the vendor allows it"),
        ("order", jobs_action("order"), "place the vendor's order of a job submitted without one"),
    ]:
        one = jobs.add_parser(action, parents=[sub_common], help=said)
        one.add_argument("reference_id")
        one.set_defaults(run=run)

    batches = commands.add_parser("batches", help="a batch's progress").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    batch = batches.add_parser("show", parents=[sub_common], help="a batch and its jobs by status")
    batch.add_argument("batch_ref")
    batch.add_argument(
        "--vendor", dest="vendor_details", action="store_true", help="add the vendor's own word on the batch"
    )
    batch.set_defaults(run=batches_show)

    replayed = commands.add_parser("replay", parents=[sub_common], help="re-apply an archived callback")
    replayed.add_argument("key", help="the archived body's key, raw/<vendor>/...")
    replayed.set_defaults(tool=replay)
    redriven = commands.add_parser("redrive", parents=[sub_common], help="dead-lettered submissions back to the queue")
    redriven.add_argument("--rate", type=int, help="messages per second (default: SQS decides)")
    redriven.add_argument("--no-wait", action="store_true", help="start the move task, do not follow it")
    redriven.set_defaults(tool=redrive)
    checked = commands.add_parser("preflight", parents=[sub_common], help="check every vendor's configuration")
    checked.set_defaults(tool=preflight)

    events = commands.add_parser("events", help="the local stack's events").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    tail = events.add_parser(
        "tail", parents=[sub_common], help="print the events on the local events queue, taking them off it"
    )
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing events as they come, until Ctrl-C")
    tail.add_argument("--reference-id", help="only this job's (or batch's) events; others stay on the queue")
    tail.set_defaults(run=events_tail, local_only=True)
    return top


# --- running -----------------------------------------------------------------------------------------


def in_cli_terms(message: str) -> str:
    """ops/stacks.py speaks to make's users (STACK=...); a CLI user gives options."""
    return (
        message.replace("give STACK=<a deployed stack>", "give --stack <a deployed stack>")
        .replace("give STACK=<your stack> (or ENV=prod)", "give --stack <your stack>")
        .replace("STACK=local", "--local")
    )


def find_stack(args: argparse.Namespace) -> stacks.Stack:
    if getattr(args, "local_only", False):
        if args.stack and args.stack != stacks.LOCAL:
            raise CliError(
                f"`{args.command} {args.action}` reads the local stack's events queue only; a deployed stack's "
                "events are on its EventBridge bus (EventBusArn output): subscribe a queue of your own with a "
                "rule (README 'Job events')"
            )
        return stacks.find(stacks.LOCAL, None, args.local_state)
    return stacks.find(stacks.LOCAL if args.local else args.stack, args.region, args.local_state)


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = parser().parse_args(argv)
    if hasattr(args, "tool"):  # the operator tools speak for themselves (their own lines and exit codes)
        code: int = args.tool(args, out)
        return code
    try:
        return int(args.run(args, find_stack(args), out, err))
    except ApiError as exc:
        if args.json and exc.body is not None:  # a script reads the error as the API gave it
            print(json.dumps(exc.body, ensure_ascii=False), file=out)
        print(f"{PROG}: {exc.code}: {exc.message}", file=err)
        for detail in exc.details:
            print(f"  {detail_line(detail)}", file=err)
        return 1
    except (CliError, stacks.StackError) as exc:
        print(f"{PROG}: {in_cli_terms(str(exc))}", file=err)
        return 2
    except Exception as exc:  # anything else (botocore, a broken answer): one line, never a traceback
        print(f"{PROG}: failed ({type(exc).__name__}: {stacks.error_message(exc)})", file=err)
        return 2


def entry() -> None:
    """The console entry point (.venv/bin/handoff): main's code; a closed pipe (`| head`) is no error."""
    try:
        code = main()
        sys.stdout.flush()
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    entry()
