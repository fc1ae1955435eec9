"""An item's size as DynamoDB counts it against its 400 KB limit. No AWS, no I/O.

DynamoDB refuses a write whose resulting item is larger than 400 KB (409,600 bytes), counting
attribute names and values as its developer guide says ("DynamoDB item sizes and formats",
CapacityUnitCalculations.html):

- a name, and a String: its UTF-8 bytes;
- a Number: 1 byte per two significant digits (leading and trailing zeros trimmed), plus 1 byte
  (the guide says "approximately": its encoding may take a byte more or less, for example on
  negative numbers; this is the documented measure);
- a Binary: its raw bytes (not the base64 text it travels as);
- a Boolean or Null: 1 byte;
- a List or Map: 3 bytes, plus 1 byte per element, plus its elements (a Map element: its name
  and its value);
- a set: the sum of its elements, each counted as above (the guide names no overhead for sets).

Items are given in DynamoDB JSON, the low-level form (`{"name": {"S": "..."}}`), as the
low-level client sends and a stream record carries them. A Binary may be bytes (the client's
form) or base64 text (the wire's form, as the stream and moto hold it).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

MAX_ITEM_BYTES = 400 * 1024  # 409,600: DynamoDB's "400 KB", names and values included
LIST_OR_MAP_OVERHEAD = 3
ELEMENT_OVERHEAD = 1


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """The size of an item (names and values) as DynamoDB counts it."""
    return sum(_utf8(name) + value_size(value) for name, value in item.items())


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one attribute value (without its name), e.g. `{"S": "abc"}` -> 3."""
    if len(value) != 1:
        raise ValueError(f"an attribute value has exactly one type; got {sorted(value)}")
    ((kind, content),) = value.items()
    if kind == "S":
        return _utf8(content)
    if kind == "N":
        return _number(content)
    if kind == "B":
        return _binary(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(_utf8(element) for element in content)
    if kind == "NS":
        return sum(_number(element) for element in content)
    if kind == "BS":
        return sum(_binary(element) for element in content)
    if kind == "L":
        return LIST_OR_MAP_OVERHEAD + sum(ELEMENT_OVERHEAD + value_size(element) for element in content)
    if kind == "M":
        return LIST_OR_MAP_OVERHEAD + sum(
            ELEMENT_OVERHEAD + _utf8(name) + value_size(element) for name, element in content.items()
        )
    raise ValueError(f"not a DynamoDB attribute type: {kind!r}")


def _utf8(text: str) -> int:
    # surrogatepass: a lone surrogate is counted (3 bytes) rather than refused here; DynamoDB
    # refuses such a string itself.
    return len(text.encode("utf-8", "surrogatepass"))


def _number(number: Any) -> int:
    mantissa = str(number).strip().lstrip("+-").lower().partition("e")[0]
    significant = mantissa.replace(".", "").strip("0")
    return (len(significant) + 1) // 2 + 1


def _binary(content: Any) -> int:
    if isinstance(content, bytes | bytearray | memoryview):
        return len(content)
    try:
        return len(base64.b64decode(content, validate=True))
    except (binascii.Error, ValueError, TypeError):
        raise ValueError("a Binary value is bytes or base64 text") from None
