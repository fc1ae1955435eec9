"""Vendor JSON, read and written back as the vendor wrote it. No AWS, no HTTP.

A vendor's body is authenticated and archived byte for byte; what Handoff keeps of it (a result, an
error's details) must say what the vendor said. Python's json reads some of what vendors write
into other values: NaN and Infinity into floats no strict JSON can hold, a number with more digits
than a double into a rounded one (1.2345678901234567890123 -> 1.2345678901234568), one beyond a
double into inf or 0.0 (1e400, 1e-400), an integer of more than 4,300 digits not at all (a
ValueError: the body would be taken for not JSON, and a vendor does not resend a refused callback).

`loads` reads every such number as a RawNumber that keeps its text; `dumps` writes it back as that
text, so what is kept in S3 is what the vendor sent. Strict JSON text (handoff.store.json_text) does
not take a RawNumber, nor a string with a lone surrogate: store.fits says no, and the value goes to
S3 with `dumps` instead of into the item.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any


class RawNumber:
    """A JSON number as its text, for a number no float or int holds exactly."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __str__(self) -> str:
        return self.token

    def __repr__(self) -> str:
        return f"RawNumber({self.token!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawNumber) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)


def _float(token: str) -> float | RawNumber:
    value = float(token)
    try:
        exact = Decimal(repr(value)) == Decimal(token)
    except InvalidOperation:  # inf, nan
        exact = False
    return value if exact else RawNumber(token)


def _int(token: str) -> int | RawNumber:
    try:
        return int(token)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return RawNumber(token)


def loads(text: str | bytes) -> Any:
    """JSON as a vendor writes it, NaN and Infinity included; numbers a float or int would change
    come back as RawNumber; a leading byte order mark ignored (RFC 8259 §8.1 lets a parser).
    Raises ValueError (json.JSONDecodeError, UnicodeDecodeError) for what is not JSON."""
    if isinstance(text, bytes):
        text = text.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    return json.loads(text.removeprefix("\ufeff"), parse_float=_float, parse_int=_int, parse_constant=RawNumber)


def dumps(value: Any) -> bytes:
    """`value` as compact JSON (keys sorted), RawNumbers as their text, NaN and infinities as
    Python writes them: the vendor's values as sent. ASCII: a lone surrogate stays its escape."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode()


def _write(value: Any, parts: list[str]) -> None:
    if isinstance(value, RawNumber):
        parts.append(value.token)
    elif isinstance(value, dict):
        parts.append("{")
        for i, key in enumerate(sorted(value, key=str)):
            parts.append(("," if i else "") + json.dumps(str(key)) + ":")
            _write(value[key], parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for i, item in enumerate(value):
            if i:
                parts.append(",")
            _write(item, parts)
        parts.append("]")
    else:
        parts.append(json.dumps(value))


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests objects and arrays deeper than `limit` levels (without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def holds_only_unicode(value: Any) -> bool:
    """False when a string or key in `value` holds a lone surrogate (parsed from an escape such as
    "\\ud800"): JSON's grammar takes it, but it is no Unicode text, and strict clients refuse it."""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
