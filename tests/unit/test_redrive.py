"""make redrive on a deployed stack. moto does not implement StartMessageMoveTask (moto PR #10265
is open), so the SQS side is a botocore Stubber holding the documented request and response
shapes. (On the local stack, where the API is missing: tests/integration/test_operator_tools.py.)"""

from __future__ import annotations

import io
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ops import redrive, stacks

DLQ = "arn:aws:sqs:us-east-1:123456789012:handoff-SubmissionDLQ-1"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:handoff-SubmissionQueue-1"


def deployed(sqs: Any, **outputs: str) -> stacks.Stack:
    return stacks.Stack("handoff", "us-east-1", outputs, lambda service: sqs)


def test_redrive_moves_the_stacks_dead_letters_back_and_follows_the_task_to_the_end() -> None:
    # given the stack's outputs and an SQS that runs the move task in two polls
    sqs = boto3.client("sqs", region_name="us-east-1")
    stack = deployed(sqs, SubmissionDLQArn=DLQ, SubmissionQueueArn=QUEUE)
    with Stubber(sqs) as sqs_stub:
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
        dlq, queue = redrive.stack_queues(stack)
        handle = redrive.start(sqs, dlq, queue, rate=5)
        out = io.StringIO()
        task = redrive.follow(sqs, dlq, handle, poll_seconds=0, out=out)

        # then the move ran from the DLQ to the queue, to completion, and progress was shown
        assert (dlq, queue, handle) == (DLQ, QUEUE, "task-1")
        assert task["Status"] == "COMPLETED"
        assert out.getvalue().splitlines() == ["RUNNING: 3 of 7 messages moved", "COMPLETED: 7 of 7 messages moved"]
        sqs_stub.assert_no_pending_responses()


def test_a_stack_without_the_queues_is_a_clear_error() -> None:
    stack = deployed(None, ApiUrl="https://example")
    with pytest.raises(stacks.StackError, match="no output SubmissionDLQArn"):
        redrive.stack_queues(stack)


def test_a_failed_task_or_a_refusal_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1")
    stack = deployed(sqs, SubmissionDLQArn=DLQ, SubmissionQueueArn=QUEUE)
    monkeypatch.setattr(stacks, "find", lambda *_: stack)
    monkeypatch.setattr(redrive.time, "sleep", lambda _: None)
    with Stubber(sqs) as stub:
        # a task that fails
        stub.add_response("start_message_move_task", {"TaskHandle": "t"}, {"SourceArn": DLQ, "DestinationArn": QUEUE})
        stub.add_response(
            "list_message_move_tasks",
            {"Results": [{"TaskHandle": "t", "Status": "FAILED", "FailureReason": "AccessDenied"}]},
            {"SourceArn": DLQ, "MaxResults": 10},
        )
        # credentials that may not start one: a refusal, not a missing API (no fallback)
        stub.add_client_error("start_message_move_task", "AccessDenied", "not authorized", http_status_code=403)
        assert redrive.main(["--stack", "handoff"], out=io.StringIO()) == 2
        assert redrive.main(["--stack", "handoff"], out=io.StringIO()) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "redrive: the task ended FAILED: AccessDenied",
        "redrive: SQS refused (not authorized): your credentials need sqs:StartMessageMoveTask, "
        "sqs:ListMessageMoveTasks and sqs:ReceiveMessage/DeleteMessage on the DLQ",
    ]
