"""What callers submit and what a job looks like. Pydantic only: no AWS, no HTTP."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

REFERENCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"

ReferenceId = Annotated[
    str,
    Field(
        pattern=REFERENCE_ID_PATTERN,
        description="The caller's id for the job: unique across the stack, 1-128 characters "
        "of letters, digits and . _ : - (sent to the vendor where the vendor takes one).",
        examples=["order-1042-img-7"],
    ),
]

# Playment reads public https URLs, s3:// and gs:// URIs (REFERENCE.md §1.3).
AttachmentUrl = Annotated[str, Field(min_length=8, max_length=2048, pattern=r"^(https?|s3|gs)://\S+$")]


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    SUBMITTED = "SUBMITTED"
    IN_PROGRESS = "IN_PROGRESS"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


# --- Playment ------------------------------------------------------------------------------------
# The data shapes are validated where a mistake would cost a vendor round trip (a missing URL,
# duplicate frame ids -> FS_0003) and otherwise passed through untouched: extra keys such as
# metadata, reference_data or maker_response reach the vendor exactly as the caller sent them.


class _PassThrough(BaseModel):
    model_config = ConfigDict(extra="allow")


class VideoFrame(_PassThrough):
    frame_id: str = Field(min_length=1, max_length=256)
    src: AttachmentUrl


class VideoData(_PassThrough):
    frames: list[VideoFrame] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _frame_ids_unique(self) -> VideoData:
        _require_unique([f.frame_id for f in self.frames], "frame_id")
        return self


class SensorMeta(_PassThrough):
    id: str = Field(min_length=1, max_length=256)
    modality: str = Field(min_length=1, max_length=64)
    primary_view: bool = False


class FrameSensor(_PassThrough):
    sensor_id: str = Field(min_length=1, max_length=256)
    data_url: AttachmentUrl


class SensorFrame(_PassThrough):
    frame_id: str = Field(min_length=1, max_length=256)
    sensors: list[FrameSensor] = Field(min_length=1)


class SensorData(_PassThrough):
    sensor_meta: list[SensorMeta] = Field(min_length=1)
    frames: list[SensorFrame] = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _consistent(self) -> SensorData:
        _require_unique([s.id for s in self.sensor_meta], "sensor_meta id")
        _require_unique([f.frame_id for f in self.frames], "frame_id")
        if sum(1 for s in self.sensor_meta if s.primary_view) != 1:
            raise ValueError("exactly one sensor_meta entry must have primary_view true")
        known = {s.id for s in self.sensor_meta}
        for frame in self.frames:
            unknown = sorted({s.sensor_id for s in frame.sensors} - known)
            if unknown:
                raise ValueError(f"frame {frame.frame_id!r} names unknown sensor_id {unknown}")
        return self


class PlaymentData(_PassThrough):
    """Exactly one of image_url (one URL or a list), video_data or sensor_data."""

    image_url: AttachmentUrl | Annotated[list[AttachmentUrl], Field(min_length=1, max_length=1000)] | None = None
    video_data: VideoData | None = None
    sensor_data: SensorData | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> PlaymentData:
        given = [k for k in ("image_url", "video_data", "sensor_data") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "data must hold exactly one of image_url, video_data, sensor_data"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class PlaymentSubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor: Literal["playment"]
    reference_id: ReferenceId
    data: PlaymentData
    tag: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Playment's routing value (sent as `tag` or `work_flow_id`, per configuration); "
        "defaults to the stack's PlaymentDefaultTag.",
    )
    project_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="Defaults to the stack's PlaymentProjectId."
    )
    batch_id: str | None = Field(default=None, min_length=1, max_length=128)
    # Playment documents 1..10 on one page and 1..9 (FS_00012) on another: 1..9 is valid under both.
    priority_weight: int = Field(default=5, ge=1, le=9)

    def vendor_data(self) -> dict[str, Any]:
        """The data object exactly as the caller gave it (validated, nothing added)."""
        return self.data.model_dump(mode="json", exclude_unset=True)


SubmitRequest = PlaymentSubmitRequest
VENDOR_NAMES: frozenset[str] = frozenset({"playment"})


def request_hash(request: BaseModel) -> str:
    """Hash of the normalised request: equal for requests that mean the same job."""
    return hashlib.sha256(canonical_json(request.model_dump(mode="json")).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _require_unique(values: list[str], what: str) -> None:
    dupes = sorted(v for v, n in Counter(values).items() if n > 1)
    if dupes:
        raise ValueError(f"duplicate {what}: {dupes[:5]}")


# --- Jobs ----------------------------------------------------------------------------------------


class JobError(BaseModel):
    code: str
    message: str
    retryable: bool = False
    details: list[dict[str, Any]] = Field(default_factory=list)


class HistoryEntry(BaseModel):
    at: str
    status: JobStatus
    source: str
    detail: str | None = None


class Job(BaseModel):
    reference_id: str
    vendor: str
    status: JobStatus
    request: dict[str, Any]
    request_hash: str
    vendor_job_id: str | None = None
    vendor_refs: dict[str, str] = Field(default_factory=dict)
    attempts: int = 0
    last_error: JobError | None = None
    result: Any = None
    result_ref: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    created_at: str
    updated_at: str
    version: int = 1


# --- Errors --------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    field: str | None = None
    message: str
    type: str | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every error answer: {"error": {"code", "message", "details"}}."""

    error: ErrorInfo
