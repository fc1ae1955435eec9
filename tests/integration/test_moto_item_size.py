"""The local moto server (local/moto_server.py, in a process of its own as the local stack runs it)
holds DynamoDB's 400 KB item limit as DynamoDB does: on every write path, measured as DynamoDB
measures (handoff.itemsize), and a refused write changes nothing: not the item, not the stream.

Issue 20, item 5: a Playment FAILED callback with thousands of failures written into `last_error`
was refused by DynamoDB but half-applied by the local moto server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from handoff.itemsize import MAX_ITEM_BYTES, item_size
from local.aws import endpoint_client, free_port

ROOT = Path(__file__).resolve().parents[2]
PUT_TOO_LARGE = "Item size has exceeded the maximum allowed size"
UPDATE_TOO_LARGE = "Item size to update has exceeded the maximum allowed size"


class Moto:
    def __init__(self, endpoint: str) -> None:
        self.dynamodb = endpoint_client(endpoint, "dynamodb")
        self.streams = endpoint_client(endpoint, "dynamodbstreams")

    def table(self) -> str:
        """A fresh table keyed on `pk`, with a stream of new and old images (as JobsTable's)."""
        name = f"items-{uuid.uuid4().hex[:8]}"
        self.dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        return name

    def get(self, table: str, pk: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.dynamodb.get_item(
            TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True
        ).get("Item")
        return item

    def iterator(self, table: str) -> str:
        arn = self.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        shard = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator: str = self.streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        return iterator

    def records(self, table: str, iterator: str | None = None) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.streams.get_records(
            ShardIterator=iterator or self.iterator(table), Limit=1000
        )["Records"]
        return records


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    port = free_port()
    server = subprocess.Popen(  # the local stack's moto server, as local/aws.py starts it
        [sys.executable, "-m", "local.moto_server", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, "the moto server exited before it listened"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the moto server did not listen within 30 s"
                time.sleep(0.05)
        yield Moto(f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def failures(count: int, message_bytes: int) -> dict[str, Any]:
    """A Playment-like `meta_data.failures` list: many small maps. DynamoDB counts 3 bytes per map
    and 1 per element on top of names and values; moto's own measure counted neither."""
    entry = {"M": {"code": {"S": "FS_0001"}, "message": {"S": "x" * message_bytes}}}
    return {"L": [entry] * count}


def padded(item: dict[str, Any], size: int) -> dict[str, Any]:
    """`item` with a `padding` string that makes it exactly `size` bytes as DynamoDB counts."""
    grown = {**item, "padding": {"S": ""}}
    grown["padding"] = {"S": "p" * (size - item_size(grown))}
    assert item_size(grown) == size
    return grown


def refused(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    "too_many",
    [
        # one long text: moto refused it, but only after applying the actions before it
        pytest.param({"S": "e" * MAX_ITEM_BYTES}, id="text"),
        # thousands of small maps: over as DynamoDB counts, under moto's own 405,000
        pytest.param(failures(5000, 60), id="failures"),
    ],
)
def test_an_update_growing_an_item_past_400_kb_is_refused_and_leaves_the_item_and_stream_as_they_were(
    moto: Moto, too_many: dict[str, Any]
) -> None:
    # given a job item, and its stream so far
    table = moto.table()
    original = {"pk": {"S": "job-1"}, "status": {"S": "SUBMITTED"}, "attempts": {"N": "1"}}
    moto.dynamodb.put_item(TableName=table, Item=original)
    records_before = moto.records(table)
    assert item_size({**original, "last_error": too_many}) > MAX_ITEM_BYTES

    # when one UpdateItem changes the status first and then writes the failures
    with pytest.raises(ClientError) as error:
        moto.dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": "job-1"}},
            UpdateExpression="SET #s = :failed, attempts = attempts + :one, last_error = :failures",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":failed": {"S": "FAILED"}, ":one": {"N": "1"}, ":failures": too_many},
        )

    # then DynamoDB's answer, and nothing of the update applied: no status, no count, no stream record
    assert refused(error) == ("ValidationException", UPDATE_TOO_LARGE)
    assert moto.get(table, "job-1") == original
    assert moto.records(table) == records_before


def test_an_update_inside_a_map_is_measured_too(moto: Moto) -> None:
    # given an item with a map, nearly at the limit
    table = moto.table()
    item = padded({"pk": {"S": "job-1"}, "meta": {"M": {"note": {"S": "n"}}}}, MAX_ITEM_BYTES - 100)
    moto.dynamodb.put_item(TableName=table, Item=item)

    # when an update grows the map from within (moto measured only top-level attributes)
    with pytest.raises(ClientError) as error:
        moto.dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": "job-1"}},
            UpdateExpression="SET meta.detail = :big",
            ExpressionAttributeValues={":big": {"S": "d" * 200}},
        )

    # then it is refused and the item is unchanged
    assert refused(error) == ("ValidationException", UPDATE_TOO_LARGE)
    assert moto.get(table, "job-1") == item


def test_an_update_that_would_create_an_item_over_the_limit_creates_nothing(moto: Moto) -> None:
    table = moto.table()

    with pytest.raises(ClientError) as error:
        moto.dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": "job-new"}},
            UpdateExpression="SET last_error = :failures",
            ExpressionAttributeValues={":failures": failures(5000, 60)},
        )

    assert refused(error) == ("ValidationException", UPDATE_TOO_LARGE)
    assert moto.get(table, "job-new") is None
    assert moto.records(table) == []  # moto wrote the key first, then the update: neither is left


def test_a_put_over_the_limit_is_refused_and_the_stored_item_is_kept(moto: Moto) -> None:
    # given a stored item
    table = moto.table()
    original = {"pk": {"S": "job-1"}, "status": {"S": "SUBMITTED"}}
    moto.dynamodb.put_item(TableName=table, Item=original)
    records_before = moto.records(table)

    for oversized in (
        padded({"pk": {"S": "job-1"}}, MAX_ITEM_BYTES + 1),  # one byte over
        {"pk": {"S": "job-1"}, "last_error": failures(5000, 60)},  # over as DynamoDB counts lists and maps
    ):
        assert item_size(oversized) > MAX_ITEM_BYTES
        # when a PutItem replaces it with an item over the limit
        with pytest.raises(ClientError) as error:
            moto.dynamodb.put_item(TableName=table, Item=oversized)
        # then it is refused, and the item and stream are unchanged
        assert refused(error) == ("ValidationException", PUT_TOO_LARGE)
        assert moto.get(table, "job-1") == original
        assert moto.records(table) == records_before


def test_writes_up_to_the_limit_succeed(moto: Moto) -> None:
    table = moto.table()
    # a put of exactly 409,600 bytes (moto refused from 405,000)
    item = padded({"pk": {"S": "job-1"}}, MAX_ITEM_BYTES)
    moto.dynamodb.put_item(TableName=table, Item=item)
    assert moto.get(table, "job-1") == item

    # an update that brings an item to exactly the limit
    small = {"pk": {"S": "job-2"}, "status": {"S": "SUBMITTED"}}
    moto.dynamodb.put_item(TableName=table, Item=small)
    grown = padded(small, MAX_ITEM_BYTES)
    moto.dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "job-2"}},
        UpdateExpression="SET padding = :padding",
        ExpressionAttributeValues={":padding": grown["padding"]},
    )
    assert moto.get(table, "job-2") == grown


def test_a_transaction_with_one_oversized_update_writes_nothing(moto: Moto) -> None:
    # given two stored items
    table = moto.table()
    first = {"pk": {"S": "job-1"}, "status": {"S": "SUBMITTED"}}
    second = {"pk": {"S": "job-2"}, "status": {"S": "SUBMITTED"}}
    for item in (first, second):
        moto.dynamodb.put_item(TableName=table, Item=item)
    records_before = moto.records(table)

    # when one transaction puts a new item, updates the first, and grows the second past the limit
    with pytest.raises(ClientError) as error:
        moto.dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": "job-3"}, "status": {"S": "QUEUED"}}}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": "job-1"}},
                        "UpdateExpression": "SET #s = :done",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":done": {"S": "COMPLETED"}},
                    }
                },
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": "job-2"}},
                        "UpdateExpression": "SET last_error = :failures",
                        "ExpressionAttributeValues": {":failures": failures(5000, 60)},
                    }
                },
            ]
        )

    # then the transaction is cancelled for that item, and none of the three writes happened
    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = error.value.response["CancellationReasons"]
    assert [reason["Code"] for reason in reasons] == ["None", "None", "ValidationError"]
    assert reasons[2]["Message"] == UPDATE_TOO_LARGE
    assert moto.get(table, "job-3") is None
    assert moto.get(table, "job-1") == first
    assert moto.get(table, "job-2") == second
    assert moto.records(table) == records_before


def test_a_transaction_with_one_oversized_put_writes_nothing(moto: Moto) -> None:
    table = moto.table()
    moto.dynamodb.put_item(TableName=table, Item={"pk": {"S": "job-1"}, "status": {"S": "SUBMITTED"}})
    records_before = moto.records(table)

    with pytest.raises(ClientError) as error:
        moto.dynamodb.transact_write_items(
            TransactItems=[
                {"Delete": {"TableName": table, "Key": {"pk": {"S": "job-1"}}}},
                {"Put": {"TableName": table, "Item": {"pk": {"S": "job-2"}, "last_error": failures(5000, 60)}}},
            ]
        )

    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = error.value.response["CancellationReasons"]
    assert [reason["Code"] for reason in reasons] == ["None", "ValidationError"]
    assert reasons[1]["Message"] == PUT_TOO_LARGE
    assert moto.get(table, "job-1") == {"pk": {"S": "job-1"}, "status": {"S": "SUBMITTED"}}
    assert moto.get(table, "job-2") is None
    assert moto.records(table) == records_before


def test_a_partiql_transaction_with_one_oversized_insert_writes_nothing(moto: Moto) -> None:
    table = moto.table()
    records_before = moto.records(table)
    big = "x" * (MAX_ITEM_BYTES + 100)

    with pytest.raises(ClientError) as error:
        moto.dynamodb.execute_transaction(
            TransactStatements=[
                {"Statement": f"INSERT INTO \"{table}\" VALUE {{'pk': 't1', 'status': 'QUEUED'}}"},
                {"Statement": f"INSERT INTO \"{table}\" VALUE {{'pk': 't2', 'blob': '{big}'}}"},
            ]
        )

    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in error.value.response["CancellationReasons"]] == ["None", "ValidationError"]
    assert moto.get(table, "t1") is None
    assert moto.get(table, "t2") is None
    assert moto.records(table) == records_before


def test_a_batch_write_with_one_oversized_item_writes_none_of_them(moto: Moto) -> None:
    table = moto.table()

    with pytest.raises(ClientError) as error:
        moto.dynamodb.batch_write_item(
            RequestItems={
                table: [
                    {"PutRequest": {"Item": {"pk": {"S": "job-1"}}}},
                    {"PutRequest": {"Item": {"pk": {"S": "job-2"}, "last_error": failures(5000, 60)}}},
                ]
            }
        )

    assert refused(error) == ("ValidationException", PUT_TOO_LARGE)
    assert moto.get(table, "job-1") is None
    assert moto.records(table) == []


def test_a_cancelled_transaction_leaves_open_stream_iterators_reading_the_table(moto: Moto) -> None:
    # given a reader of the table's stream (as the local stack's stream poller holds one)
    table = moto.table()
    moto.dynamodb.put_item(TableName=table, Item={"pk": {"S": "job-1"}, "status": {"S": "SUBMITTED"}})
    iterator = moto.iterator(table)

    # when a transaction is cancelled (its condition fails) and then the table is written
    with pytest.raises(ClientError) as error:
        moto.dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": "job-2"}}}},
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"pk": {"S": "job-1"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    assert error.value.response["Error"]["Code"] == "TransactionCanceledException"
    moto.dynamodb.put_item(TableName=table, Item={"pk": {"S": "job-3"}})

    # then the reader sees the write after the cancelled transaction, and nothing of the transaction
    keys = [record["dynamodb"]["Keys"]["pk"]["S"] for record in moto.records(table, iterator)]
    assert keys == ["job-1", "job-3"]
