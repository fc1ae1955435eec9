"""handoff.vendor_json: a vendor's JSON read and written back as the vendor wrote it."""

from __future__ import annotations

import json

import pytest

from handoff import vendor_json
from handoff.vendor_json import RawNumber

ODD = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1E+400",
    "1e-400",
    "1234567890123456789012345678901234567890.123456789",
    "0.30000000000000000001",
    "9" * 4301,
    "-" + "1" * 5000,
]


@pytest.mark.parametrize("token", ODD, ids=[t[:24] for t in ODD])
def test_a_number_no_double_or_int_holds_is_written_back_as_its_text(token: str) -> None:
    text = '{"a":[' + token + "," + token + '],"b":{"c":' + token + "}}"

    value = vendor_json.loads(text)

    assert value["b"]["c"] == RawNumber(token)
    assert vendor_json.dumps(value) == text.encode()


@pytest.mark.parametrize("token", ["0", "-0.0", "1.5", "0.1", "1e5", "1E-5", "12345678901234567890", "2.5e-300"])
def test_a_number_a_double_or_int_holds_exactly_is_a_plain_number(token: str) -> None:
    value = vendor_json.loads(token)

    assert isinstance(value, int | float)
    assert value == json.loads(token)


def test_written_text_is_compact_sorted_ascii_with_strings_as_json_writes_them() -> None:
    value = vendor_json.loads('{"b": "\\ud800 é", "a": [true, null, 1.5, {"": "x"}]}')

    assert vendor_json.dumps(value) == b'{"a":[true,null,1.5,{"":"x"}],"b":"\\ud800 \\u00e9"}'


def test_only_unicode_text_is_unicode() -> None:
    assert vendor_json.holds_only_unicode({"a": ["é", "\U0001f600"], "b": RawNumber("1e400")})
    assert not vendor_json.holds_only_unicode({"a": "\ud800"})
    assert not vendor_json.holds_only_unicode({"\udc00": 1})


def test_what_is_not_json_is_still_refused() -> None:
    with pytest.raises(json.JSONDecodeError):
        vendor_json.loads('{"a": 1,}')
