"""The local stream poller (local/stream_poller.py) feeds a DynamoDB stream as Lambda's event
source does with the template's mapping: a poisoned record is isolated by bisection, given up
after MaximumRetryAttempts to the OnFailure queue with Lambda's batch description, and the
stream goes on; a partial batch response resumes at the lowest failed record.

Issue 20, item 4: the poller re-read from the lowest failed record forever, so one record the
function could not read blocked its shard and every record after it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models.dynamodb import DynamoDBStreamLambdaOnFailureDestinationModel
from moto import mock_aws

from local.stack import ROOT, stream_mapping
from local.stream_poller import EventSourceMapping, StreamPoller

TABLE = "poller-jobs"


@dataclass
class Stream:
    dynamodb: Any
    streams: Any
    sqs: Any
    arn: str
    dlq: str

    def write(self, *keys: str) -> None:
        for key in keys:
            self.dynamodb.put_item(TableName=TABLE, Item={"pk": {"S": key}, "status": {"S": "SUBMITTED"}})

    def shard_id(self) -> str:
        shard_id: str = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][0]["ShardId"]
        return shard_id

    def sequence_numbers(self) -> dict[str, str]:
        iterator = self.streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=self.shard_id(), ShardIteratorType="TRIM_HORIZON"
        )
        records = self.streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"]
        return {r["dynamodb"]["Keys"]["pk"]["S"]: r["dynamodb"]["SequenceNumber"] for r in records}

    def dead_letters(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.dlq, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]


@pytest.fixture
def stream() -> Iterator[Stream]:
    with mock_aws():
        dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
        dynamodb.create_table(
            TableName=TABLE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        arn = dynamodb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        dlq = sqs.create_queue(QueueName="events-dlq")["QueueUrl"]
        yield Stream(dynamodb, boto3.client("dynamodbstreams"), sqs, arn, dlq)


@dataclass
class Function:
    """A handler that raises on any batch holding a poisoned key, else records the batch as done;
    or that reports the keys in `report` as failed (a partial batch response)."""

    poisoned: frozenset[str] = frozenset()
    report: frozenset[str] = frozenset()
    report_times: int = 1_000_000  # how many invocations report them
    batches: list[list[str]] = field(default_factory=list)  # every batch handed over
    done: list[str] = field(default_factory=list)  # records processed by a successful invocation

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        keys = [record["dynamodb"]["Keys"]["pk"]["S"] for record in event["Records"]]
        self.batches.append(keys)
        if self.poisoned & set(keys):
            raise ValueError("not a readable job")
        failed = [r for r in event["Records"] if r["dynamodb"]["Keys"]["pk"]["S"] in self.report]
        if failed and self.report_times > 0:
            self.report_times -= 1
            first_failed = keys.index(failed[0]["dynamodb"]["Keys"]["pk"]["S"])
            self.done += keys[:first_failed]
            return {"batchItemFailures": [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in failed]}
        self.done += keys
        return {"batchItemFailures": []}


def drain(poller: StreamPoller) -> None:
    """Poll until the stream has nothing more to hand over."""
    for _ in range(1000):
        if not poller.poll_once():
            return
    raise AssertionError("the poller never ran dry")


def poller(stream: Stream, function: Function, **settings: Any) -> StreamPoller:
    mapping = EventSourceMapping(**{"batch_size": 10, "on_failure": stream.dlq, **settings})
    return StreamPoller(stream.streams, stream.arn, function, mapping=mapping, sqs=stream.sqs, retry_interval=0)


KEYS = [f"job-{n}" for n in range(10)]


def test_a_poisoned_record_is_bisected_out_given_up_to_the_on_failure_queue_and_the_stream_goes_on(
    stream: Stream,
) -> None:
    # given ten changes, the seventh of which the function cannot read
    stream.write(*KEYS)
    function = Function(poisoned=frozenset({"job-6"}))
    feeder = poller(stream, function, bisect_batch_on_function_error=True, maximum_retry_attempts=2)

    # when the poller feeds the stream, in its own thread as the local stack runs it
    feeder.interval = 0.01
    feeder.start()
    try:
        deadline = time.monotonic() + 10
        while feeder.given_up == 0 or "job-9" not in function.done:
            assert time.monotonic() < deadline, f"handed over so far: {function.batches}"
            time.sleep(0.01)
        # and the table changes again after the poisoned record was given up
        stream.write("job-10")
        while "job-10" not in function.done:
            assert time.monotonic() < deadline, f"handed over so far: {function.batches}"
            time.sleep(0.01)
    finally:
        feeder.stop()

    # then every other record was processed, once each and in order, and so was the later one
    assert function.done == [key for key in KEYS if key != "job-6"] + ["job-10"]
    # the poisoned record was isolated by halving (10 -> 5 -> 3 -> 2 -> 1), then tried 1 + 2 times
    assert function.batches[:4] == [KEYS, KEYS[:5], KEYS[5:], KEYS[5:8]]
    assert function.batches.count(["job-6"]) == 3
    # and it is described in the OnFailure queue as Lambda describes a given-up stream batch
    (message,) = stream.dead_letters()
    DynamoDBStreamLambdaOnFailureDestinationModel.model_validate(message)
    sequence = stream.sequence_numbers()["job-6"]
    info = message["DDBStreamBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == sequence
    assert info["batchSize"] == 1
    assert info["streamArn"] == stream.arn
    assert info["shardId"] == stream.shard_id()
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["approximateInvokeCount"] == 3
    assert message["requestContext"]["functionArn"].endswith(":function:EventPublisherFunction")
    assert message["responseContext"]["functionError"] == "Unhandled"


def test_without_bisection_the_whole_failing_batch_is_retried_then_given_up(stream: Stream) -> None:
    stream.write(*KEYS[:4])
    function = Function(poisoned=frozenset({"job-2"}))
    feeder = poller(stream, function, bisect_batch_on_function_error=False, maximum_retry_attempts=1)

    drain(feeder)

    assert function.batches == [KEYS[:4], KEYS[:4]]  # tried, retried once, given up whole
    (message,) = stream.dead_letters()
    sequences = stream.sequence_numbers()
    info = message["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        sequences["job-0"],
        sequences["job-3"],
        4,
    )
    stream.write("job-4")
    drain(feeder)
    assert function.done == ["job-4"]


def test_a_partial_batch_response_resumes_at_the_lowest_failed_record(stream: Stream) -> None:
    # given ten changes, and a function that reports the fourth and the eighth as failed, once
    stream.write(*KEYS)
    function = Function(report=frozenset({"job-7", "job-3"}), report_times=1)
    feeder = poller(stream, function, report_batch_item_failures=True, bisect_batch_on_function_error=True)

    # when the poller feeds the stream
    drain(feeder)

    # then the batch is handed over again from the lowest failed record (not before it)
    assert function.batches == [KEYS, KEYS[3:]]
    assert function.done == KEYS
    assert stream.dead_letters() == []


def test_records_reported_failed_every_time_are_given_up_from_the_lowest_one(stream: Stream) -> None:
    stream.write(*KEYS)
    function = Function(report=frozenset({"job-3"}))
    feeder = poller(stream, function, report_batch_item_failures=True, maximum_retry_attempts=2)

    drain(feeder)

    assert function.batches == [KEYS, KEYS[3:], KEYS[3:]]
    (message,) = stream.dead_letters()
    sequences = stream.sequence_numbers()
    info = message["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        sequences["job-3"],
        sequences["job-9"],
        7,
    )
    assert message["requestContext"]["approximateInvokeCount"] == 3
    assert "functionError" not in message["responseContext"]  # the function answered; it did not fail


@pytest.mark.parametrize(
    "answer",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"sequenceNumber": "1"}]},
    ],
)
def test_an_unusable_partial_batch_response_fails_the_whole_batch(stream: Stream, answer: dict[str, Any]) -> None:
    stream.write(*KEYS[:2])
    batches: list[int] = []

    def function(event: dict[str, Any], context: Any) -> dict[str, Any]:
        batches.append(len(event["Records"]))
        return answer

    feeder = StreamPoller(
        stream.streams,
        stream.arn,
        function,
        mapping=EventSourceMapping(report_batch_item_failures=True, maximum_retry_attempts=0, on_failure=stream.dlq),
        sqs=stream.sqs,
        retry_interval=0,
    )
    drain(feeder)

    assert batches == [2]
    assert [m["DDBStreamBatchInfo"]["batchSize"] for m in stream.dead_letters()] == [2]


def test_batch_item_failures_are_not_read_unless_the_mapping_reports_them(stream: Stream) -> None:
    stream.write(*KEYS[:3])
    function = Function(report=frozenset({"job-1"}))
    feeder = poller(stream, function, report_batch_item_failures=False)

    drain(feeder)

    assert function.batches == [KEYS[:3]]  # a success, as Lambda reads it without the response type


def test_the_local_stack_takes_the_mapping_from_the_template() -> None:
    mapping = stream_mapping(ROOT / "template.yaml", "EventPublisherFunction", lambda logical: f"queue:{logical}")

    assert mapping == EventSourceMapping(
        batch_size=100,
        starting_position="TRIM_HORIZON",
        bisect_batch_on_function_error=True,
        maximum_retry_attempts=100,
        report_batch_item_failures=True,
        on_failure="queue:EventsDLQ",
    )


def test_a_retry_of_the_same_records_waits_the_retry_interval_and_a_split_does_not(stream: Stream) -> None:
    stream.write(*KEYS[:2])
    function = Function(poisoned=frozenset({"job-1"}))
    mapping = EventSourceMapping(batch_size=10, bisect_batch_on_function_error=True, on_failure=stream.dlq)
    feeder = StreamPoller(stream.streams, stream.arn, function, mapping=mapping, sqs=stream.sqs, retry_interval=60)

    for _ in range(5):
        feeder.poll_once()

    # the batch, its halves at once, then the failed half waits its minute before a retry
    assert function.batches == [KEYS[:2], ["job-0"], ["job-1"]]
