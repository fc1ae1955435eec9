"""In-memory fakes of the queue and limiter ports (handoff.ports): they record what was asked of them."""

from __future__ import annotations

import threading
from collections.abc import Iterable


class FakeRetryQueue:
    """The SubmissionQueue: `sent` holds (reference_id, delay) in the order sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.visibility: list[tuple[str, int]] = []  # (receipt handle, delay) of retry_later
        self.unavailable = False  # True: every send fails, as SQS down would
        self._lock = threading.Lock()

    def send(self, reference_id: str, delay: int = 0) -> None:
        if self.unavailable:
            raise ConnectionError("the queue is unavailable")
        with self._lock:
            self.sent.append((reference_id, delay))

    def send_many(self, reference_ids: Iterable[str]) -> list[str]:
        ids = list(reference_ids)
        if self.unavailable:
            return ids
        with self._lock:
            self.sent.extend((ref, 0) for ref in ids)
        return []

    def retry_later(self, receipt_handle: str, delay: int) -> None:
        with self._lock:
            self.visibility.append((receipt_handle, delay))

    def messages(self) -> list[str]:
        """The reference_ids sent, in order."""
        return [ref for ref, _ in self.sent]


class FakeCallbackRetries:
    """The CallbackRetryQueue: `sent` holds (vendor, archive_key, delay)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []
        self.unavailable = False

    def send(self, vendor: str, archive_key: str, delay: int = 0) -> None:
        if self.unavailable:
            raise ConnectionError("the queue is unavailable")
        self.sent.append((vendor, archive_key, delay))


class FakeRateLimiter:
    """A limiter whose answers a test scripts: each reserve() takes the next of `waits` (seconds to
    wait, or None: no slot within the caller's patience); when they run out, a slot at once."""

    def __init__(self, waits: Iterable[float | None] = (), rates: dict[str, float] | None = None) -> None:
        self.waits = list(waits)
        self.rates = rates or {}  # vendor -> requests per second (rate(): the pace a bulk is ordered by)
        self.asked: list[tuple[str, float]] = []  # (vendor, max_wait)

    def rate(self, vendor: str) -> float | None:
        return self.rates.get(vendor)

    def reserve(self, vendor: str, max_wait: float) -> float | None:
        self.asked.append((vendor, max_wait))
        return self.waits.pop(0) if self.waits else 0.0
