"""What every vendor request and archive key holds to, whatever the vendor or the caller sends."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from handoff.archive import delivery_key
from handoff.observability import logger
from handoff.vendors.base import Timeouts, Transient, new_session, send, within


def trickle(seconds_per_byte: float, size: int) -> Any:
    def handler(_: Any) -> Response:
        def body() -> Iterator[bytes]:
            for _ in range(size):
                time.sleep(seconds_per_byte)
                yield b"x"

        return Response(body(), content_type="application/octet-stream")

    return handler


def test_a_vendor_trickling_its_answer_is_a_timeout_at_connect_plus_read(httpserver: HTTPServer) -> None:
    # given a vendor that answers at once, then sends its body a byte every 0.3 s (each read
    # well inside the read timeout, the whole far past it)
    httpserver.expect_request("/slow").respond_with_handler(trickle(0.3, 30))

    # when a request with a 0.5 s connect and 1 s read timeout is sent
    started = time.monotonic()
    with pytest.raises(Transient) as refused:
        send(new_session(), "GET", httpserver.url_for("/slow"), Timeouts(0.5, 1.0))

    # then it is a timeout by the two timeouts' sum, not after the body's 9 s
    assert refused.value.code == "timeout"
    assert time.monotonic() - started < 4


def test_within_bounds_every_request_of_a_context_and_refuses_to_start_one_too_late(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/slow").respond_with_handler(trickle(0.2, 30))
    httpserver.expect_request("/fast").respond_with_data("ok")

    with within(2.0):
        answered = send(new_session(), "GET", httpserver.url_for("/fast"), Timeouts(5, 10))
        with pytest.raises(Transient) as slow:
            send(new_session(), "GET", httpserver.url_for("/slow"), Timeouts(5, 10))
        with pytest.raises(Transient) as late:
            send(new_session(), "GET", httpserver.url_for("/fast"), Timeouts(5, 10))

    assert answered.content == b"ok"
    assert slow.value.code == "timeout"
    assert late.value.code == "out_of_time"


@pytest.mark.parametrize(
    ("reference_id", "filename"),
    [
        ("a:" * 63 + "b", "\u00e9" * 196 + "_de.txt"),
        ("r", "x" * 1000 + ".docx"),
        ("r", "\U0001f600" * 150 + "_de"),
    ],
)
def test_a_delivery_key_always_fits_s3s_1024_bytes_and_keeps_its_extension(reference_id: str, filename: str) -> None:
    key = delivery_key("textking", reference_id, filename)

    assert len(key.encode()) <= 1024
    assert key.startswith(f"deliveries/textking/{reference_id.replace(':', '%3A')}/")
    if "." in filename:
        assert key.endswith("." + filename.rpartition(".")[2])
    assert delivery_key("textking", reference_id, filename + "2") != key  # distinct names stay distinct


def test_a_short_delivery_name_is_kept_percent_encoded() -> None:
    assert delivery_key("textking", "r", "a b,c=d_de.txt") == "deliveries/textking/r/a%20b%2Cc%3Dd_de.txt"


def test_a_log_line_with_a_lone_surrogate_is_written_not_lost() -> None:
    # given a log record carrying a vendor's lone surrogate, as a handler formats it
    record = logging.LogRecord("handoff", logging.WARNING, __file__, 1, "callback applied", None, None)
    record.reference_id = "r-\ud800"
    line = logger.registered_handler.formatter.format(record)

    # then the line is text any stream can write (the escape, not the surrogate), and says it
    line.encode("utf-8")
    assert json.loads(line)["reference_id"] == "r-\ud800"
