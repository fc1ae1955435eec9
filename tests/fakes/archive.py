"""FakeArchive: the ResultsArchive (handoff.ports) in memory, under the same keys as the S3 one."""

from __future__ import annotations

import threading

from handoff.archive import ArchiveMissing, callback_key, delivery_key, result_key


class FakeArchive:
    def __init__(self, bucket: str = "handoff-results") -> None:
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, str]] = {}  # key -> (body, content type)
        self.unavailable = False  # True: every put fails, as S3 down would
        self._lock = threading.Lock()

    def put_callback(self, vendor: str, body: bytes, content_type: str) -> str:
        key = callback_key(vendor, content_type)
        self._put(key, body, content_type or "application/octet-stream")
        return key

    def get_callback(self, key: str) -> bytes:
        with self._lock:
            if key not in self.objects:
                raise ArchiveMissing(key)
            return self.objects[key][0]

    def put_result(self, vendor: str, reference_id: str, body: bytes) -> str:
        key = result_key(vendor, reference_id, body)
        self._put(key, body, "application/json")
        return f"s3://{self.bucket}/{key}"

    def put_delivery(self, vendor: str, reference_id: str, filename: str, body: bytes, content_type: str) -> str:
        key = delivery_key(vendor, reference_id, filename)
        self._put(key, body, content_type)
        return f"s3://{self.bucket}/{key}"

    def archived(self, prefix: str = "") -> dict[str, bytes]:
        """Every object under `prefix`, by key (tests.conftest.archived gives the same from moto's S3)."""
        with self._lock:
            return {k: body for k, (body, _) in self.objects.items() if k.startswith(prefix)}

    def read_uri(self, uri: str) -> bytes:
        """The object an s3:// URI that this archive returned points at."""
        return self.archived()[uri.removeprefix(f"s3://{self.bucket}/")]

    def _put(self, key: str, body: bytes, content_type: str) -> None:
        if self.unavailable:
            raise ConnectionError("the archive is unavailable")
        with self._lock:
            self.objects[key] = (bytes(body), content_type)
