"""make redrive: move dead-lettered submissions back to SubmissionQueue.

Uses SQS's own redrive (StartMessageMoveTask) from the stack's SubmissionDLQ to its
SubmissionQueue, then follows the task until it ends. Where that API is missing (the local stack:
moto does not implement it), the messages are moved by this tool instead: received from the DLQ,
sent to the queue with their body and attributes, then deleted from the DLQ, as the move task does.
The worker treats a redriven message as a request for another round: a job FAILED
retries_exhausted (and never accepted by a vendor) is QUEUED again and submitted; a message whose
job has moved on is simply dropped.

    python -m ops.redrive [--stack NAME|local] [--region us-east-1] [--rate 10] [--no-wait]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ops import stacks

FINAL = {"COMPLETED", "CANCELLED", "FAILED"}
# How SQS (or an emulator) says an action is not there at all, as opposed to refused or failing.
MISSING_API = {"NotImplemented", "UnsupportedOperation", "InvalidAction", "UnknownOperationException"}


class RedriveError(RuntimeError):
    """The redrive could not run: the message is one line saying what to do."""


def stack_queues(stack: stacks.Stack) -> tuple[str, str]:
    """(dead-letter queue ARN, queue ARN) from the stack's outputs."""
    return stack.output("SubmissionDLQArn"), stack.output("SubmissionQueueArn")


def start(sqs: Any, dlq_arn: str, queue_arn: str, rate: int | None = None) -> str:
    request: dict[str, Any] = {"SourceArn": dlq_arn, "DestinationArn": queue_arn}
    if rate:
        request["MaxNumberOfMessagesPerSecond"] = rate
    return str(sqs.start_message_move_task(**request)["TaskHandle"])


def api_missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = response.get("Error", {}).get("Code", "")
    return code in MISSING_API or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 501


def follow(sqs: Any, dlq_arn: str, handle: str, *, poll_seconds: float = 5.0, out: Any = sys.stdout) -> dict[str, Any]:
    """Report the task's progress until it ends; returns its last description."""
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]
        task = next((t for t in tasks if t.get("TaskHandle") == handle), tasks[0] if tasks else None)
        if task is None:
            raise RedriveError("the move task is not listed")
        moved, total = task.get("ApproximateNumberOfMessagesMoved", 0), task.get("ApproximateNumberOfMessagesToMove")
        print(f"{task['Status']}: {moved} of {total if total is not None else '?'} messages moved", file=out)
        if task["Status"] in FINAL:
            return dict(task)
        time.sleep(poll_seconds)


def move(sqs: Any, dlq_url: str, queue_url: str, *, rate: int | None = None, out: TextIO = sys.stdout) -> int:
    """Move every message from the DLQ to the queue by hand (receive, send, delete), at most `rate`
    a second; returns how many were moved. A message is deleted from the DLQ only once it is on
    the queue, so a failure midway loses nothing (at worst a message is on both: the worker drops
    the second copy, its job having moved on)."""
    moved = 0
    while True:
        began = time.monotonic()
        batch = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, rate or 10),
            WaitTimeSeconds=1,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            break
        entries = []
        for index, message in enumerate(batch):
            entry: dict[str, Any] = {"Id": str(index), "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if sent.get("Failed"):
            said = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in sent["Failed"])
            raise RedriveError(f"the queue refused {len(sent['Failed'])} message(s) ({said}); they stay in the DLQ")
        sqs.delete_message_batch(
            QueueUrl=dlq_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
        moved += len(batch)
        print(f"RUNNING: {moved} messages moved", file=out, flush=True)
        if rate:
            time.sleep(max(0.0, len(batch) / rate - (time.monotonic() - began)))
    print(f"COMPLETED: {moved} messages moved", file=out)
    return moved


def redrive(stack: stacks.Stack, *, rate: int | None, wait: bool, out: TextIO) -> int:
    dlq_arn, queue_arn = stack_queues(stack)
    sqs = stack.client("sqs")
    try:
        handle = start(sqs, dlq_arn, queue_arn, rate)
    except Exception as exc:
        if not api_missing(exc):
            raise
        print(
            f"StartMessageMoveTask is not available on stack {stack.name} ({stacks.error_message(exc)}): "
            f"moving the messages from {dlq_arn} to {queue_arn} one batch at a time",
            file=out,
            flush=True,
        )
        move(sqs, stack.output("SubmissionDLQUrl"), stack.output("SubmissionQueueUrl"), rate=rate, out=out)
        return 0
    print(f"moving messages from {dlq_arn} to {queue_arn} (task {handle})", file=out, flush=True)
    if not wait:
        return 0
    task = follow(sqs, dlq_arn, handle, out=out)
    if task["Status"] != "COMPLETED":
        raise RedriveError(f"the task ended {task['Status']}: {task.get('FailureReason', '')}")
    return 0


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stack",
        default=None,
        help=f"a deployed stack's name, or {stacks.LOCAL!r} (default: a running local stack, else "
        f"{stacks.DEFAULT_STACK!r})",
    )
    parser.add_argument("--region", default=None)
    parser.add_argument("--rate", type=int, default=None, help="messages per second (default: SQS decides)")
    parser.add_argument("--no-wait", action="store_true")
    parser.add_argument("--local-state", type=Path, default=stacks.STATE_FILE, help="the local stack's state file")
    args = parser.parse_args(argv)
    try:
        stack = stacks.find(args.stack, args.region, args.local_state)
        return redrive(stack, rate=args.rate, wait=not args.no_wait, out=out)
    except (RedriveError, stacks.StackError) as exc:
        print(f"redrive: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # botocore's errors: one line, never a traceback
        print(f"redrive: {describe(exc)}", file=sys.stderr)
        return 2


def describe(exc: Exception) -> str:
    from botocore.exceptions import BotoCoreError

    if isinstance(exc, BotoCoreError):
        return stacks.aws_error(exc, "reach SQS")
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    if code in {"AccessDenied", "AccessDeniedException"}:
        return (
            f"SQS refused ({stacks.error_message(exc)}): your credentials need sqs:StartMessageMoveTask, "
            "sqs:ListMessageMoveTasks and sqs:ReceiveMessage/DeleteMessage on the DLQ"
        )
    return f"SQS failed ({type(exc).__name__}: {stacks.error_message(exc)}): fix that and run make redrive again"


if __name__ == "__main__":
    sys.exit(main())
