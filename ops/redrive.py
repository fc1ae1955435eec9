"""make redrive: move dead-lettered submissions back to SubmissionQueue.

Uses SQS's own redrive (StartMessageMoveTask) from the stack's SubmissionDLQ to its
SubmissionQueue, then follows the task until it ends. The worker treats a redriven message as a
request for another round: a job FAILED retries_exhausted (and never accepted by a vendor) is
QUEUED again and submitted; a message whose job has moved on is simply dropped.

    python -m ops.redrive --stack handoff [--region us-east-1] [--rate 10] [--no-wait]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import boto3

FINAL = {"COMPLETED", "CANCELLED", "FAILED"}


class RedriveError(RuntimeError):
    pass


def stack_queues(cloudformation: Any, stack: str) -> tuple[str, str]:
    """(dead-letter queue ARN, queue ARN) from the stack's outputs."""
    try:
        outputs = cloudformation.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    except Exception as exc:
        raise RedriveError(f"cannot read stack {stack!r}: {exc}") from exc
    values = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    try:
        return values["SubmissionDLQArn"], values["SubmissionQueueArn"]
    except KeyError as missing:
        raise RedriveError(f"stack {stack!r} has no output {missing}; is it a Handoff stack?") from None


def start(sqs: Any, dlq_arn: str, queue_arn: str, rate: int | None = None) -> str:
    request: dict[str, Any] = {"SourceArn": dlq_arn, "DestinationArn": queue_arn}
    if rate:
        request["MaxNumberOfMessagesPerSecond"] = rate
    return str(sqs.start_message_move_task(**request)["TaskHandle"])


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="handoff")
    parser.add_argument("--region", default=None)
    parser.add_argument("--rate", type=int, default=None, help="messages per second (default: SQS decides)")
    parser.add_argument("--no-wait", action="store_true")
    args = parser.parse_args(argv)
    session = boto3.session.Session(region_name=args.region)
    try:
        dlq_arn, queue_arn = stack_queues(session.client("cloudformation"), args.stack)
        sqs = session.client("sqs")
        handle = start(sqs, dlq_arn, queue_arn, args.rate)
        print(f"moving messages from {dlq_arn} to {queue_arn} (task {handle})")
        if args.no_wait:
            return 0
        task = follow(sqs, dlq_arn, handle)
    except RedriveError as exc:
        print(f"redrive: {exc}", file=sys.stderr)
        return 2
    if task["Status"] != "COMPLETED":
        print(f"redrive: the task ended {task['Status']}: {task.get('FailureReason', '')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
