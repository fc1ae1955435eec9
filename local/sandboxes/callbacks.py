"""Delivering a sandbox's callbacks the way a vendor would: later, over HTTP, with faults.

Each sandbox schedules callbacks (at, url, body, headers); one background thread sends them when
due. Faults, drawn per callback: `drop_rate` (never sent), `duplicate_rate` (sent twice),
`reorder` (a job's callbacks may overtake each other: each is delayed by a random extra).
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from dataclasses import dataclass, field

import requests


@dataclass(order=True)
class Scheduled:
    at: float
    seq: int
    url: str = field(compare=False)
    body: bytes = field(compare=False)
    headers: dict[str, str] = field(compare=False)


class CallbackSender:
    def __init__(self, *, seed: int | None = None, timeout: float = 10.0) -> None:
        self.drop_rate = 0.0
        self.duplicate_rate = 0.0
        self.reorder_seconds = 0.0
        self.timeout = timeout
        self.sent: list[tuple[str, int]] = []  # (url, HTTP status or 0 for a connection error)
        self.dropped = 0
        self._queue: list[Scheduled] = []
        self._seq = itertools.count()
        self._random = random.Random(seed)  # noqa: S311 (fault injection, not cryptography)
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="vendor-callbacks", daemon=True)
        self._thread.start()

    def schedule(self, delay: float, url: str, body: bytes, headers: dict[str, str]) -> None:
        with self._wake:
            if self._random.random() < self.drop_rate:
                self.dropped += 1
                return
            copies = 2 if self._random.random() < self.duplicate_rate else 1
            for _ in range(copies):
                extra = self._random.uniform(0, self.reorder_seconds) if self.reorder_seconds else 0.0
                heapq.heappush(
                    self._queue, Scheduled(time.monotonic() + delay + extra, next(self._seq), url, body, headers)
                )
            self._wake.notify()

    def pending(self) -> int:
        with self._wake:
            return len(self._queue)

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        session = requests.Session()
        while True:
            with self._wake:
                while not self._stop and (not self._queue or self._queue[0].at > time.monotonic()):
                    self._wake.wait(timeout=(self._queue[0].at - time.monotonic()) if self._queue else None)
                if self._stop:
                    return
                item = heapq.heappop(self._queue)
            try:
                status = session.post(item.url, data=item.body, headers=item.headers, timeout=self.timeout).status_code
            except requests.RequestException:
                status = 0
            with self._wake:
                self.sent.append((item.url, status))
                self._delivered(item, status)

    def _delivered(self, item: Scheduled, status: int) -> None:
        """After each delivery, under the sender's lock: a vendor that resends decides here."""
