"""Playment's request and callback models (REFERENCE.md §1.3, §1.4). Pydantic only."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from handoff import vendor_json
from handoff.models import (
    NOT_BLANK,
    PATH_SEGMENT_PATTERN,
    URL_AFTER_SCHEME,
    UUID_PATTERN,
    BatchRef,
    ReferenceId,
    lower_case,
    port_in_range,
)

# Playment reads public https URLs, s3:// and gs:// URIs (REFERENCE.md §1.3), each naming a host
# (or bucket): "https:///a.jpg" names none.
AttachmentUrl = Annotated[
    str,
    Field(min_length=8, max_length=2048, pattern=rf"^(https|s3|gs){URL_AFTER_SCHEME}"),
    AfterValidator(port_in_range),
]

# The data shapes are validated where a mistake would cost a vendor round trip (a missing URL,
# duplicate frame ids -> FS_0003) and otherwise passed through untouched: extra keys such as
# metadata, reference_data or maker_response reach the vendor exactly as the caller sent them.


class _PassThrough(BaseModel):
    model_config = ConfigDict(extra="allow")


class VideoFrame(_PassThrough):
    frame_id: str = Field(min_length=1, max_length=256, pattern=NOT_BLANK)
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
    primary_view: bool = Field(default=False, strict=True)


class FrameSensor(_PassThrough):
    sensor_id: str = Field(min_length=1, max_length=256)
    data_url: AttachmentUrl


class SensorFrame(_PassThrough):
    frame_id: str = Field(min_length=1, max_length=256, pattern=NOT_BLANK)
    sensors: list[FrameSensor] = Field(min_length=1)


class SensorData(_PassThrough):
    sensor_meta: list[SensorMeta] = Field(
        min_length=1,
        json_schema_extra={  # exactly one primary_view, as the validator below checks
            "contains": {"properties": {"primary_view": {"const": True}}, "required": ["primary_view"]},
            "minContains": 1,
            "maxContains": 1,
        },
    )
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
                raise ValueError(f"a frame names {len(unknown)} sensor_id(s) not in sensor_meta")
        return self


class PlaymentData(_PassThrough):
    """Exactly one of image_url (one URL or a list), video_data or sensor_data."""

    # The schema says "exactly one" too (null is not offered there: the API takes it as absent).
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            # null is as good as absent (the API reads it so): exactly one of them holds a value
            "oneOf": [
                {"required": ["image_url"], "properties": {"image_url": {"not": {"type": "null"}}}},
                {"required": ["video_data"], "properties": {"video_data": {"type": "object"}}},
                {"required": ["sensor_data"], "properties": {"sensor_data": {"type": "object"}}},
            ]
        },
    )

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
        pattern=NOT_BLANK,
        description="Playment's routing value (sent as `tag` or `work_flow_id`, per configuration); "
        "defaults to the stack's PlaymentDefaultTag.",
    )
    # A path segment of Playment's URLs: refused at the edge when no URL could carry it as it is.
    project_id: str | None = Field(
        default=None,
        pattern=PATH_SEGMENT_PATTERN,
        description="Defaults to the stack's PlaymentProjectId (letters, digits and . _ ~ -).",
    )
    # Playment takes batch ids as UUIDs (GE_0001 "Invalid UUID passed: batch_id", REFERENCE.md §1.5).
    batch_id: str | None = Field(
        default=None,
        pattern=UUID_PATTERN,
        description="Playment's batch_id, a UUID. A batch created through Handoff is better named by `batch_ref`.",
    )
    batch_ref: BatchRef | None = Field(
        default=None,
        description="A Handoff batch (POST /batches): the job goes into its Playment batch and counts "
        "toward its progress and its `Batch Completed` event.",
    )
    # Playment documents 1..10 on one page and 1..9 (FS_00012) on another: 1..9 is valid under both.
    # JSON true is not the number 1, nor "5" the number 5; 5.0 is (JSON Schema's integer).
    priority_weight: int = Field(default=5, ge=1, le=9)

    @field_validator("batch_id")
    @classmethod
    def _canonical_uuid(cls, value: str | None) -> str | None:
        return lower_case(value)  # Playment's own batch ids are lower case; a UUID's case means nothing

    @field_validator("priority_weight", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a JSON integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError("must be a whole number")
            return int(value)
        return value

    def vendor_data(self) -> dict[str, Any]:
        """The data object exactly as the caller gave it (validated, nothing added)."""
        return self.data.model_dump(mode="json", exclude_unset=True)


# --- callbacks ----------------------------------------------------------------------------------


class PlaymentCallbackError(BaseModel):
    """Playment's error as sent: whatever its shape, a FAILED annotation is never lost for it."""

    model_config = ConfigDict(extra="allow")

    code: Any = "unknown"
    message: Any = ""
    meta_data: Any = None

    @property
    def code_text(self) -> str:
        return _text(self.code, "unknown")[:128]

    @property
    def message_text(self) -> str:
        return _text(self.message, "")[:2000]

    @property
    def told_whole(self) -> bool:
        """Whether code_text, message_text and meta_data.failures carry all Playment said (no text
        cut, nothing else sent): when not, the whole error is kept too (vendors.playment)."""
        meta = self.meta_data
        return (
            _text(self.code, "unknown") == self.code_text
            and _text(self.message, "") == self.message_text
            and not self.model_extra
            and (meta is None or (isinstance(meta, dict) and set(meta) <= {"failures"}))
        )


class PlaymentAnnotation(BaseModel):
    """One element of a Playment callback's "annotations" list (REFERENCE.md §1.4).

    The FAILED example names the job `flu_id` (the legacy Feed Line Unit), the COMPLETED one
    `job_id`: either is accepted, job_id preferred.
    """

    model_config = ConfigDict(extra="allow")

    reference_id: str = Field(min_length=1, max_length=256)
    job_id: str | None = Field(default=None, min_length=1, max_length=256)
    flu_id: str | None = Field(default=None, min_length=1, max_length=256)
    status: str = Field(min_length=1, max_length=32)
    tag: Any = None
    result: Any = None
    error: PlaymentCallbackError | None = None

    @field_validator("error", mode="before")
    @classmethod
    def _error_as_object(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, dict) else {"message": value}

    @property
    def vendor_job_id(self) -> str | None:
        return self.job_id or self.flu_id

    @model_validator(mode="after")
    def _has_job_id(self) -> PlaymentAnnotation:
        if self.vendor_job_id is None:
            raise ValueError("an annotation needs job_id or flu_id")
        return self


def _text(value: Any, default: str) -> str:
    """A vendor value as text we can store and log (a lone surrogate becomes an escape)."""
    if value is None:
        return default
    text = value if isinstance(value, str) else vendor_json.dumps(value).decode()
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _require_unique(values: list[str], what: str) -> None:
    dupes = sorted(v for v, n in Counter(values).items() if n > 1)
    if dupes:
        raise ValueError(f"{len(dupes)} {what} value(s) given more than once")  # never quoting the input


class PlaymentCallbackBody(BaseModel):
    """The callback's body as OpenAPI documents it (the function reads the raw body itself)."""

    annotations: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=500,  # client.MAX_ANNOTATIONS (a test keeps them equal)
        description="{reference_id, job_id | flu_id, status (PENDING|COMPLETED|FAILED, any case), tag, result | error}",
    )
