"""Objects in the ResultsBucket: raw callback bodies, large results, delivered translations.

raw/<vendor>/<yyyy>/<mm>/<dd>/<time>-<uuid>.<ext>      every authenticated callback body, as received
results/<vendor>/<reference_id>/<sha256>.json          results over the inline limit
deliveries/<vendor>/<reference_id>/<filename>         delivered files (e.g. translations)
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import boto3
from botocore.exceptions import ClientError

from handoff.models import DocumentUnavailable

# S3 answers that no retry will change: the object (or bucket) is not there, or not ours to read.
_PERMANENT = frozenset({"NoSuchKey", "NoSuchBucket", "AccessDenied", "404", "403", "InvalidObjectState"})


class ArchiveMissing(LookupError):
    """No archived object under this key."""


def callback_key(vendor: str, content_type: str) -> str:
    now = datetime.now(UTC)
    ext = "json" if "json" in content_type else "form" if "form" in content_type else "bin"
    return f"raw/{vendor}/{now:%Y/%m/%d/%H%M%S}-{uuid.uuid4().hex}.{ext}"


def result_key(vendor: str, reference_id: str, body: bytes) -> str:
    # Keyed by content: a second, different result never overwrites the first.
    return f"results/{vendor}/{quote(reference_id, safe='')}/{hashlib.sha256(body).hexdigest()[:32]}.json"


# S3 refuses a key over 1,024 bytes (UTF-8). reference_id (<= 128 characters, ':' encoded as 3
# bytes) and the vendor name leave this much for a delivered file's name.
MAX_DELIVERY_NAME_BYTES = 400


def delivery_key(vendor: str, reference_id: str, filename: str) -> str:
    """deliveries/<vendor>/<reference_id>/<filename>, percent-encoded (spaces too). A name too long
    for an S3 key keeps its start and extension, with a hash of the whole name between them."""
    name = quote(filename, safe=".-_")
    if len(name) > MAX_DELIVERY_NAME_BYTES:
        _, dot, extension = filename.rpartition(".")
        suffix = quote(dot + extension, safe=".-_") if dot and len(extension) <= 16 else ""
        digest = hashlib.sha256(filename.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        head = quote(filename, safe=".-_")[: MAX_DELIVERY_NAME_BYTES - len(suffix) - 20]
        head = head[: head.rfind("%")] if "%" in head[-2:] else head  # never half an escape
        name = f"{head}-{digest}{suffix}"
    return f"deliveries/{vendor}/{quote(reference_id, safe='')}/{name}"


class Archive:
    """The ResultsArchive (handoff.ports) in the ResultsBucket."""

    def __init__(self, bucket: str, client: Any = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("s3")
        return self._client

    def put_callback(self, vendor: str, body: bytes, content_type: str) -> str:
        """Archive a raw callback body; returns its key."""
        key = callback_key(vendor, content_type)
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType=content_type or "application/octet-stream"
        )
        return key

    def get_callback(self, key: str) -> bytes:
        """An archived callback body, byte for byte. Raises ArchiveMissing when it is not there
        (expired after RawCallbackRetentionDays, or deleted); other S3 failures raise ClientError."""
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in {"NoSuchKey", "404"}:
                raise ArchiveMissing(key) from exc
            raise
        return bytes(obj["Body"].read())

    def put_result(self, vendor: str, reference_id: str, body: bytes) -> str:
        key = result_key(vendor, reference_id, body)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return f"s3://{self.bucket}/{key}"

    def put_delivery(self, vendor: str, reference_id: str, filename: str, body: bytes, content_type: str) -> str:
        key = delivery_key(vendor, reference_id, filename)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return f"s3://{self.bucket}/{key}"


def read_s3_uri(uri: str, client: Any = None) -> bytes:
    """The bytes of s3://bucket/key. Raises DocumentUnavailable when it is missing or forbidden."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        obj = (client or boto3.client("s3")).get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        _raise_if_permanent(exc, uri)
        raise
    return bytes(obj["Body"].read())


def check_s3_uri(uri: str, client: Any = None) -> int:
    """The size in bytes of s3://bucket/key (one HeadObject, authorised by s3:GetObject). Raises
    DocumentUnavailable when it is missing or forbidden; other failures (throttling, 5xx) ClientError."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        head = (client or boto3.client("s3")).head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        _raise_if_permanent(exc, uri)
        raise
    return int(head.get("ContentLength", 0))


def _raise_if_permanent(exc: ClientError, uri: str) -> None:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code in _PERMANENT:
        reason = "is forbidden to Handoff" if code in {"AccessDenied", "403"} else "does not exist"
        raise DocumentUnavailable(f"the document {reason} ({code})") from exc
