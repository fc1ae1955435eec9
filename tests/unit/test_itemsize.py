"""handoff.itemsize: an item's size as DynamoDB's developer guide counts it ("DynamoDB item sizes
and formats"): names and values, numbers by significant digits, binaries by raw bytes, lists and
maps with 3 bytes of overhead and 1 byte per element."""

from __future__ import annotations

import base64

import pytest

from handoff.itemsize import MAX_ITEM_BYTES, item_size, value_size


def test_the_limit_is_400_kb_of_1024_bytes() -> None:
    assert MAX_ITEM_BYTES == 409_600


@pytest.mark.parametrize(
    ("text", "size"),
    [("", 0), ("abc", 3), ("é", 2), ("€", 3), ("😀", 4), ("a€😀", 8)],
)
def test_a_string_is_its_utf8_bytes(text: str, size: int) -> None:
    assert value_size({"S": text}) == size


def test_an_attribute_name_counts_its_utf8_bytes_too() -> None:
    assert item_size({"id": {"S": "abc"}}) == 2 + 3
    assert item_size({"prénom": {"S": "x"}}) == 7 + 1


@pytest.mark.parametrize(
    ("number", "size"),
    [
        ("0", 1),  # no significant digit: the 1 byte alone
        ("1", 2),
        ("27", 2),  # 1 byte per two significant digits, + 1
        ("123", 3),
        ("1234", 3),
        ("1200", 2),  # trailing zeros trimmed
        ("000120", 2),  # leading zeros trimmed
        ("0.00012", 2),
        ("-12.5", 3),
        ("1E+5", 2),
        ("1.5e-3", 2),
        ("12345678901234567890123456789012345678", 20),  # 38 digits, the most DynamoDB keeps
    ],
)
def test_a_number_is_one_byte_per_two_significant_digits_plus_one(number: str, size: int) -> None:
    assert value_size({"N": number}) == size


def test_a_binary_is_its_raw_bytes_whether_given_as_bytes_or_as_base64_text() -> None:
    raw = b"\x00\x01binary\xff"
    assert value_size({"B": raw}) == len(raw)
    assert value_size({"B": base64.b64encode(raw).decode()}) == len(raw)


def test_a_boolean_or_a_null_is_one_byte() -> None:
    assert value_size({"BOOL": False}) == 1
    assert value_size({"NULL": True}) == 1


def test_an_empty_list_or_map_is_three_bytes() -> None:
    assert item_size({"l": {"L": []}}) == 1 + 3
    assert item_size({"m": {"M": {}}}) == 1 + 3


def test_each_list_element_adds_one_byte_to_its_own_size() -> None:
    # 3 (list) + (1 + 1 "a") + (1 + 2 "bc") + (1 + 2 number 27)
    assert value_size({"L": [{"S": "a"}, {"S": "bc"}, {"N": "27"}]}) == 3 + 2 + 3 + 3


def test_each_map_element_adds_one_byte_to_its_name_and_value() -> None:
    # 3 (map) + (1 + "key" 3 + "value" 5)
    assert value_size({"M": {"key": {"S": "value"}}}) == 3 + 9


def test_nested_lists_and_maps_count_their_overheads_at_every_level() -> None:
    nested = {"M": {"a": {"L": [{"M": {}}, {"BOOL": True}]}}}
    # outer map 3 + element (1 + "a" 1 + list (3 + (1 + 3) + (1 + 1)))
    assert value_size(nested) == 3 + 1 + 1 + (3 + 4 + 2)


def test_a_set_is_the_sum_of_its_elements() -> None:
    assert value_size({"SS": ["a", "bc"]}) == 3
    assert value_size({"NS": ["1", "1234"]}) == 2 + 3
    assert value_size({"BS": [b"ab", base64.b64encode(b"cde").decode()]}) == 5


def test_an_item_of_each_kind_adds_up_as_the_guide_says() -> None:
    # The example of the dyno-item-size package (npm), which reports 32 bytes for it.
    item = {"string": {"S": "string"}, "number": {"N": "27"}, "buffer": {"B": b"buffer"}}
    assert item_size(item) == 32


def test_an_item_just_at_the_limit_measures_exactly_the_limit() -> None:
    item = {"pk": {"S": "job-1"}, "blob": {"S": ""}}
    item["blob"]["S"] = "x" * (MAX_ITEM_BYTES - item_size(item))
    assert item_size(item) == MAX_ITEM_BYTES


@pytest.mark.parametrize("value", [{"X": "1"}, {"S": "a", "N": "1"}, {}, {"B": "not base64!"}])
def test_what_is_not_an_attribute_value_is_refused(value: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"."):
        value_size(value)
