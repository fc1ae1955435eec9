"""make redrive. moto does not implement StartMessageMoveTask (moto PR #10265 is open), so the
SQS side is a botocore Stubber holding the documented request and response shapes."""

from __future__ import annotations

import io
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ops import redrive

DLQ = "arn:aws:sqs:us-east-1:123456789012:handoff-SubmissionDLQ-1"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:handoff-SubmissionQueue-1"


def stack_outputs(**outputs: str) -> dict[str, Any]:
    return {
        "Stacks": [
            {
                "StackName": "handoff",
                "CreationTime": "2026-11-23T00:00:00Z",
                "StackStatus": "CREATE_COMPLETE",
                "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
            }
        ]
    }


def test_redrive_moves_the_stacks_dead_letters_back_and_follows_the_task_to_the_end() -> None:
    # given the stack's outputs and an SQS that runs the move task in two polls
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    with Stubber(cloudformation) as cfn_stub, Stubber(sqs) as sqs_stub:
        cfn_stub.add_response(
            "describe_stacks",
            stack_outputs(SubmissionDLQArn=DLQ, SubmissionQueueArn=QUEUE),
            {"StackName": "handoff"},
        )
        sqs_stub.add_response(
            "start_message_move_task",
            {"TaskHandle": "task-1"},
            {"SourceArn": DLQ, "DestinationArn": QUEUE, "MaxNumberOfMessagesPerSecond": 5},
        )
        for status, moved in (("RUNNING", 3), ("COMPLETED", 7)):
            sqs_stub.add_response(
                "list_message_move_tasks",
                {
                    "Results": [
                        {
                            "TaskHandle": "task-1",
                            "Status": status,
                            "SourceArn": DLQ,
                            "ApproximateNumberOfMessagesMoved": moved,
                            "ApproximateNumberOfMessagesToMove": 7,
                        }
                    ]
                },
                {"SourceArn": DLQ, "MaxResults": 10},
            )

        # when an operator redrives
        dlq, queue = redrive.stack_queues(cloudformation, "handoff")
        handle = redrive.start(sqs, dlq, queue, rate=5)
        out = io.StringIO()
        task = redrive.follow(sqs, dlq, handle, poll_seconds=0, out=out)

        # then the move ran from the DLQ to the queue, to completion, and progress was shown
        assert (dlq, queue, handle) == (DLQ, QUEUE, "task-1")
        assert task["Status"] == "COMPLETED"
        assert out.getvalue().splitlines() == ["RUNNING: 3 of 7 messages moved", "COMPLETED: 7 of 7 messages moved"]
        sqs_stub.assert_no_pending_responses()


def test_a_stack_without_the_queues_is_a_clear_error() -> None:
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", stack_outputs(ApiUrl="https://example"), {"StackName": "other"})
        with pytest.raises(redrive.RedriveError, match="SubmissionDLQArn"):
            redrive.stack_queues(cloudformation, "other")


def test_the_command_exits_non_zero_when_the_task_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    with Stubber(sqs) as stub:
        stub.add_response(
            "list_message_move_tasks",
            {"Results": [{"TaskHandle": "t", "Status": "FAILED", "FailureReason": "AccessDenied"}]},
            {"SourceArn": DLQ, "MaxResults": 10},
        )
        task = redrive.follow(sqs, DLQ, "t", poll_seconds=0, out=io.StringIO())
    assert task["Status"] == "FAILED"
    monkeypatch.setattr(redrive, "stack_queues", lambda *_: (_ for _ in ()).throw(redrive.RedriveError("no stack")))
    assert redrive.main(["--stack", "missing", "--region", "us-east-1"]) == 2
