"""The local moto's shortcut for DynamoDB attribute values (local/moto_server.py,
dynamodb_attribute_values_as_given) answers exactly what moto's own serializer answers.

Given any item (every attribute type, nested maps and lists, binaries, empty strings and sets), the
body of GetItem, Scan, UpdateItem and DynamoDB Streams' GetRecords is the same JSON with the
shortcut as through moto's walk of the service model; only plain values take the shortcut.
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from moto.core.serialize import BaseJSONSerializer, ResponseSerializer, XFormedAttributePicker, get_serializer_class
from moto.core.utils import get_service_model

from local.moto_server import dynamodb_attribute_values_as_given, plain_attribute_value

dynamodb_attribute_values_as_given()  # tests/conftest.py has applied it too: applying it again changes nothing
MOTO_OWN = BaseJSONSerializer._serialize_type_structure.__wrapped__  # type: ignore[attr-defined]

names = st.text(max_size=8)
numbers = st.one_of(st.integers().map(str), st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str))
scalars = st.one_of(
    st.builds(lambda v: {"S": v}, st.text(max_size=12)),
    st.builds(lambda v: {"N": v}, numbers),
    st.builds(lambda v: {"BOOL": v}, st.booleans()),
    st.builds(lambda v: {"NULL": v}, st.booleans()),
    st.builds(lambda v: {"SS": v}, st.lists(st.text(max_size=6), max_size=3, unique=True)),
    st.builds(lambda v: {"NS": v}, st.lists(numbers, max_size=3, unique=True)),
    # moto keeps a binary as the base64 text it received: these take moto's own path
    st.builds(lambda v: {"B": v}, st.sampled_from(["aGVsbG8=", "", "AAE="])),
    st.builds(lambda v: {"BS": v}, st.lists(st.sampled_from(["aGVsbG8=", "AAE="]), max_size=2, unique=True)),
)
attribute_values = st.recursive(
    scalars,
    lambda inner: (
        st.builds(lambda v: {"M": v}, st.dictionaries(names, inner, max_size=4))
        | st.builds(lambda v: {"L": v}, st.lists(inner, max_size=4))
    ),
    max_leaves=20,
)
items = st.dictionaries(names, attribute_values, min_size=1, max_size=6)


def answer(service: str, operation: str, result: dict[str, Any], *, moto_own: bool) -> str:
    """The response body moto's server would send, as text: compared byte for byte."""
    model = get_service_model(service)  # moto's own model classes, as its responses use
    operation_model = model.operation_model(operation)
    serializer = get_serializer_class(service, model.protocol)(
        operation_model=operation_model, pretty_print=False, value_picker=XFormedAttributePicker()
    )
    if moto_own:
        with mock.patch.object(BaseJSONSerializer, "_serialize_type_structure", MOTO_OWN):
            return str(serializer.serialize(result)["body"])
    return str(serializer.serialize(result)["body"])


def same_answer(service: str, operation: str, result: dict[str, Any]) -> None:
    shortcut = answer(service, operation, result, moto_own=False)
    assert shortcut == answer(service, operation, result, moto_own=True)
    json.loads(shortcut)  # and it is JSON


@settings(max_examples=150, deadline=None)
@given(item=items, others=st.lists(items, max_size=3))
def test_every_item_is_answered_as_moto_answers_it(item: dict[str, Any], others: list[dict[str, Any]]) -> None:
    same_answer("dynamodb", "GetItem", {"Item": item})
    same_answer("dynamodb", "UpdateItem", {"Attributes": item})
    page = [item, *others]
    same_answer("dynamodb", "Scan", {"Items": page, "Count": len(page), "ScannedCount": len(page)})
    record = {"eventID": "1", "eventName": "MODIFY", "dynamodb": {"NewImage": item, "OldImage": item}}
    same_answer("dynamodbstreams", "GetRecords", {"Records": [record]})


def walked(moto_own: bool) -> list[str]:
    """The structures moto's member-by-member walk went through to answer a GetItem of a plain item."""
    item = {"a": {"M": {"b": {"L": [{"S": "x"}, {"NULL": False}]}}}, "n": {"N": "1"}}
    names: list[str] = []
    walk = ResponseSerializer._serialize_type_structure

    def watched(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        names.append(shape.name)
        walk(self, serialized, value, shape, key)

    with mock.patch.object(ResponseSerializer, "_serialize_type_structure", watched):
        answer("dynamodb", "GetItem", {"Item": item}, moto_own=moto_own)
    return names


def test_a_plain_item_takes_the_shortcut() -> None:
    # moto's own path walks each attribute value; the shortcut writes the item's values as they are
    assert walked(moto_own=True).count("AttributeValue") == 5  # a, b, its two items, n
    assert "AttributeValue" not in walked(moto_own=False)


def test_only_plain_values_take_the_shortcut() -> None:
    assert plain_attribute_value({"M": {"a": {"L": [{"S": ""}, {"N": "1"}, {"NULL": True}]}}})
    assert plain_attribute_value({"SS": []})
    assert not plain_attribute_value({"B": "aGVsbG8="})
    assert not plain_attribute_value({"L": [{"S": "a"}, {"BS": ["AAE="]}]})
    assert not plain_attribute_value({"S": "a", "N": "1"})
    assert not plain_attribute_value({"M": {"": {"S": "x"}}})  # moto's walk flattens it: its own path
    assert not plain_attribute_value({"N": 1})  # moto keeps numbers as their text
    assert not plain_attribute_value("S")
