"""EventPublisher: the JobsTable stream -> one `Job Status Changed` event per status change."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from pytest_httpserver import HTTPServer

from functions.event_publisher import app as publisher_app
from functions.playment_callback import app as callback_app
from functions.submit_job import app as submit_app
from handoff.events import EventPublisher
from handoff.models import HistoryEntry, Job, JobStatus
from handoff.store import job_item
from tests.conftest import LambdaContext, load_event, stream_records

pytestmark = pytest.mark.usefixtures("aws")

REF = "order-1042-img-7"
JOB_ID = "3f3e8675-ca69-46d7-aa34-96f90fcbb732"
BUS = "handoff-events"


@pytest.fixture
def bus() -> str:
    """The bus, with a rule that copies every Handoff event into a queue the test reads."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=BUS)
    url = sqs.create_queue(QueueName="captured-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all-handoff", EventBusName=BUS, EventPattern=json.dumps({"source": ["handoff"]}))
    events.put_targets(Rule="all-handoff", EventBusName=BUS, Targets=[{"Id": "capture", "Arn": arn}])
    return url


def captured(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        found += [json.loads(m["Body"]) for m in batch]
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    return sorted(found, key=lambda e: e["detail"]["version"])


def publish(records: list[dict[str, Any]], context: LambdaContext) -> dict[str, Any]:
    answer: dict[str, Any] = publisher_app.lambda_handler({"Records": records}, context)
    return answer


def callback(status: str, context: LambdaContext) -> None:
    request = load_event("playment_callback/api_completed.json")
    body = {"reference_id": REF, "job_id": JOB_ID, "status": status, "tag": "t", "result": {"category": "cat"}}
    request["body"] = json.dumps({"annotations": [body]})
    assert callback_app.lambda_handler(request, context)["statusCode"] == 200


def test_each_status_change_is_exactly_one_event_and_other_writes_none(
    playment: HTTPServer, bus: str, context: LambdaContext
) -> None:
    # given a job that failed once (a write without a status change), then was accepted
    create = "/v0/projects/proj-1/jobs"
    playment.expect_ordered_request(create, method="POST").respond_with_data("busy", status=503)
    playment.expect_ordered_request(create, method="POST").respond_with_json(
        {"data": {"job_id": JOB_ID}, "success": True}
    )
    submit_app.lambda_handler(load_event("submit_job/direct_invoke_playment.json"), context)
    submit_app.submitter().resume(REF, final=False, max_wait=1)
    # and callbacks PENDING, COMPLETED, and COMPLETED again (a duplicate: nothing written)
    for status in ("PENDING", "COMPLETED", "COMPLETED"):
        callback(status, context)

    # when the stream is published
    answer = publish(stream_records(), context)

    # then there is one event per status change, in order, and nothing for the other writes
    assert answer == {"batchItemFailures": []}
    events = captured(bus)
    assert [(e["detail"]["previous_status"], e["detail"]["status"]) for e in events] == [
        (None, "QUEUED"),
        ("QUEUED", "SUBMITTED"),
        ("SUBMITTED", "IN_PROGRESS"),
        ("IN_PROGRESS", "COMPLETED"),
    ]
    assert {(e["source"], e["detail-type"]) for e in events} == {("handoff", "Job Status Changed")}
    last = events[-1]["detail"]
    assert last["reference_id"] == REF
    assert last["vendor"] == "playment"
    assert last["vendor_job_id"] == JOB_ID
    assert last["at"].endswith("Z")


def test_a_duplicate_callback_publishes_nothing(playment: HTTPServer, bus: str, context: LambdaContext) -> None:
    playment.expect_request("/v0/projects/proj-1/jobs", method="POST").respond_with_json(
        {"data": {"job_id": JOB_ID}, "success": True}
    )
    submit_app.lambda_handler(load_event("submit_job/direct_invoke_playment.json"), context)
    callback("COMPLETED", context)
    publish(stream_records(), context)
    before = len(captured(bus))
    seen = len(stream_records())

    callback("COMPLETED", context)  # the vendor sends it again
    publish(stream_records()[seen:], context)

    assert before == 3
    assert captured(bus) == []


def stream_record(sequence: str, status: str, previous: str | None) -> dict[str, Any]:
    """A stream record as DynamoDB writes it for the JobsTable: the whole item in each image."""
    at = "2026-11-23T10:00:00.000Z"
    job = Job(
        reference_id=f"r-{sequence}",
        vendor="playment",
        status=JobStatus(status),
        request={"vendor": "playment", "reference_id": f"r-{sequence}"},
        request_hash="h",
        created_at=at,
        updated_at=at,
        version=int(sequence),
        history=[HistoryEntry(at=at, status=JobStatus(status), source="test")],
    )
    image = job_item(job)
    old = {**image, "status": {"S": previous}} if previous else None
    return {
        "eventName": "MODIFY" if previous else "INSERT",
        "dynamodb": {"SequenceNumber": sequence, "NewImage": image, **({"OldImage": old} if old else {})},
    }


def test_refused_entries_are_sent_again_and_never_dropped() -> None:
    # given PutEvents refuses the second entry once, then takes it
    client = boto3.client("events", region_name="us-east-1")
    records = [stream_record("1", "SUBMITTED", "QUEUED"), stream_record("2", "COMPLETED", "SUBMITTED")]
    with Stubber(client) as stub:
        stub.add_response(
            "put_events",
            {"FailedEntryCount": 1, "Entries": [{"EventId": "e1"}, {"ErrorCode": "ThrottlingException"}]},
        )
        stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "e2"}]})

        # when the batch is published
        retry = EventPublisher(client, BUS, sleep=lambda _: None).publish(records)

        # then the refused entry went out again, alone, and nothing is left to retry
        assert retry == []
        stub.assert_no_pending_responses()


def test_entries_refused_every_time_make_the_stream_retry_from_the_first_unpublished_record() -> None:
    client = boto3.client("events", region_name="us-east-1")
    records = [stream_record(str(n), "SUBMITTED", "QUEUED") for n in range(1, 4)]
    with Stubber(client) as stub:
        refused = {"ErrorCode": "InternalFailure"}
        stub.add_response("put_events", {"FailedEntryCount": 2, "Entries": [{"EventId": "e1"}, refused, refused]})
        for _ in range(2):
            stub.add_response("put_events", {"FailedEntryCount": 2, "Entries": [refused, refused]})

        retry = EventPublisher(client, BUS, sleep=lambda _: None).publish(records)

    # the first record was published; the stream resumes at the second (Lambda takes the lowest)
    assert retry == ["2", "3"]


def test_the_sample_stream_event_gives_two_events(bus: str, context: LambdaContext) -> None:
    answer = publish(load_event("event_publisher/stream_batch.json")["Records"], context)

    assert answer == {"batchItemFailures": []}
    assert [e["detail"]["status"] for e in captured(bus)] == ["QUEUED", "SUBMITTED"]


class Stopped(BaseException):
    """The function's process ends here (a timeout, an out-of-memory kill): nothing after runs."""


def test_a_function_stopped_after_its_write_loses_no_event(
    playment: HTTPServer, bus: str, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a submitted job, and a callback function that will stop right after its state write
    playment.expect_request("/v0/projects/proj-1/jobs", method="POST").respond_with_json(
        {"data": {"job_id": JOB_ID}, "success": True}
    )
    submit_app.lambda_handler(load_event("submit_job/direct_invoke_playment.json"), context)
    applier = callback_app.intake().applier
    written = applier.store.transition

    def write_then_stop(*args: Any, **kwargs: Any) -> Any:
        written(*args, **kwargs)
        raise Stopped

    monkeypatch.setattr(applier.store, "transition", write_then_stop)

    # when the COMPLETED callback arrives and the function never answers
    with pytest.raises(Stopped):
        callback("COMPLETED", context)

    # then the change is in the table, and its event still reaches the bus through the stream
    publish(stream_records(), context)
    assert [e["detail"]["status"] for e in captured(bus)] == ["QUEUED", "SUBMITTED", "COMPLETED"]


@pytest.mark.parametrize(
    "spoil",
    [
        lambda image: image.update(status={"S": "ARCHIVED_BY_HAND"}),  # a status no job has
        lambda image: image.update(version={"S": "not-a-number"}),  # an item edited by hand
        lambda image: image.pop("reference_id"),
        lambda image: image.pop("status"),  # an item written by hand, no job at all
        lambda image: [image.pop(k) for k in list(image) if k != "reference_id"],
        lambda image: image.update(vendor={"N": "7"}),  # written by hand: a vendor that is a number
        lambda image: image.update(vendor_job_id={"N": "12"}),
        lambda image: image.update(history={"S": "edited"}),  # GET cannot read it: no event either
        lambda image: image.update(vendor_refs={"L": []}),
        lambda image: image.update(result={"B": b"\x00\x01"}),
    ],
    ids=[
        "unknown-status",
        "edited-version",
        "no-reference-id",
        "no-status",
        "only-a-key",
        "numeric-vendor",
        "numeric-id",
        "history-text",
        "refs-a-list",
        "binary-result",
    ],
)
def test_an_unreadable_record_is_set_aside_and_the_rest_of_its_batch_published(
    spoil: Any, bus: str, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the sample batch (two status changes) with an unreadable record between them
    sqs = boto3.client("sqs")
    dead_letters = sqs.create_queue(QueueName="handoff-events-dlq")["QueueUrl"]
    monkeypatch.setenv("EVENTS_DLQ_URL", dead_letters)
    publisher_app.publisher.cache_clear()
    records = load_event("event_publisher/stream_batch.json")["Records"]
    poison = json.loads(json.dumps(records[-1]))
    poison["dynamodb"]["SequenceNumber"] = str(int(records[-1]["dynamodb"]["SequenceNumber"]) - 1)
    spoil(poison["dynamodb"]["NewImage"])
    batch = [*records[:-1], poison, records[-1]]

    # when the publisher gets it
    answer = publish(batch, context)

    # then nothing is retried, both real changes are on the bus, and the record is in the events DLQ
    assert answer == {"batchItemFailures": []}
    assert len(captured(bus)) == 2
    (message,) = sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10)["Messages"]
    kept = json.loads(message["Body"])
    assert kept["record"]["dynamodb"]["SequenceNumber"] == poison["dynamodb"]["SequenceNumber"]
    assert kept["reason"]


def test_an_unreadable_record_that_cannot_be_set_aside_is_retried_not_dropped(
    bus: str, context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given no dead-letter queue to set it aside in
    monkeypatch.delenv("EVENTS_DLQ_URL", raising=False)
    publisher_app.publisher.cache_clear()
    records = load_event("event_publisher/stream_batch.json")["Records"]
    poison = json.loads(json.dumps(records[-1]))
    poison["dynamodb"]["SequenceNumber"] = str(int(records[-1]["dynamodb"]["SequenceNumber"]) + 1)
    poison["dynamodb"]["NewImage"]["status"] = {"S": "ARCHIVED_BY_HAND"}

    # when the publisher gets it after the readable records
    answer = publish([*records, poison], context)

    # then the readable records are published and the unreadable one is reported for retry
    assert answer == {"batchItemFailures": [{"itemIdentifier": poison["dynamodb"]["SequenceNumber"]}]}
    assert len(captured(bus)) == 2


@pytest.mark.parametrize(
    ("identity", "warned"),
    [
        (None, True),  # deleted by someone: noticed
        ({"type": "Service", "principalId": "dynamodb.amazonaws.com"}, False),  # its TTL ran out: expected
    ],
    ids=["by-hand", "ttl"],
)
def test_a_removed_job_is_reported_and_holds_nothing_back(
    bus: str, context: LambdaContext, caplog: pytest.LogCaptureFixture, identity: Any, warned: bool
) -> None:
    # given the sample batch with the removal of a job in front of it
    records = load_event("event_publisher/stream_batch.json")["Records"]
    removal = json.loads(json.dumps(records[0]))
    removal["eventName"] = "REMOVE"
    removal["dynamodb"]["OldImage"] = removal["dynamodb"].pop("NewImage")
    removal["dynamodb"]["SequenceNumber"] = str(int(records[0]["dynamodb"]["SequenceNumber"]) - 1)
    if identity:
        removal["userIdentity"] = identity

    # when the publisher gets it
    answer = publish([removal, *records], context)

    # then the rest is published, and a deletion by hand is a warning with the job's reference_id
    assert answer == {"batchItemFailures": []}
    assert len(captured(bus)) == 2
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "job deleted" in r.getMessage()]
    assert len(warnings) == int(warned)
    for line in warnings:
        assert getattr(line, "reference_id", None) == removal["dynamodb"]["Keys"]["reference_id"]["S"]


def test_a_job_a_person_repairs_by_hand_gets_its_event_even_from_a_status_no_job_has(
    bus: str, context: LambdaContext
) -> None:
    # given an item someone wrote with a status in the wrong case, then repaired (UpdateItem)
    record = stream_record("7", "COMPLETED", "SUBMITTED")
    record["dynamodb"]["OldImage"]["status"] = {"S": "completed"}

    # when the repair's stream record is published
    answer = publish([record], context)

    # then the repaired job's change reaches the bus (its previous status unknown), nothing is set aside
    assert answer == {"batchItemFailures": []}
    (event,) = captured(bus)
    assert (event["detail"]["status"], event["detail"]["previous_status"]) == ("COMPLETED", None)
