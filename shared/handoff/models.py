"""What callers submit and what a job looks like. Pydantic only: no AWS, no HTTP."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

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
AttachmentUrl = Annotated[str, Field(min_length=8, max_length=2048, pattern=r"^(https|s3|gs)://\S+$")]


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
    primary_view: bool = Field(default=False, strict=True)


class FrameSensor(_PassThrough):
    sensor_id: str = Field(min_length=1, max_length=256)
    data_url: AttachmentUrl


class SensorFrame(_PassThrough):
    frame_id: str = Field(min_length=1, max_length=256)
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
                raise ValueError(f"frame {frame.frame_id!r} names unknown sensor_id {unknown}")
        return self


class PlaymentData(_PassThrough):
    """Exactly one of image_url (one URL or a list), video_data or sensor_data."""

    # The schema says "exactly one" too (null is not offered there: the API takes it as absent).
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "oneOf": [{"required": ["image_url"]}, {"required": ["video_data"]}, {"required": ["sensor_data"]}]
        },
    )

    image_url: (
        AttachmentUrl | Annotated[list[AttachmentUrl], Field(min_length=1, max_length=1000)] | SkipJsonSchema[None]
    ) = None
    video_data: VideoData | SkipJsonSchema[None] = None
    sensor_data: SensorData | SkipJsonSchema[None] = None

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
    # JSON true is not the number 1, nor "5" the number 5; 5.0 is (JSON Schema's integer).
    priority_weight: int = Field(default=5, ge=1, le=9)

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


# --- TEXTKING ------------------------------------------------------------------------------------

LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$", examples=["en", "de", "pt-BR"])]
# Quality names differ between TEXTKING's wiki and its client (REFERENCE.md gotcha 26): the stack's
# TextkingQualities parameter decides which are accepted; the model checks only the form.
Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")]


_MIME_PART = r"[A-Za-z0-9!#$&^_.+\-]+"
MEDIA_TYPE_PATTERN = rf'^{_MIME_PART}/{_MIME_PART}( *; *{_MIME_PART}=({_MIME_PART}|"[^"\x00-\x1f\x7f]*"))*$'
# The stack's TextkingQualities default; the schema lists these, a deployment may take others.
DEFAULT_TEXTKING_QUALITIES = ("translation", "translation-and-correction")


class TextkingDocument(BaseModel):
    """The one document of a TEXTKING job: inline text, or an s3:// object in the stack's
    DocumentSourceBucket, which the function reads."""

    # The schema says "exactly one of text and s3_uri" as the validator below does.
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"oneOf": [{"required": ["text"]}, {"required": ["s3_uri"]}]}
    )

    filename: str = Field(min_length=1, max_length=200, pattern=r"^[^/\\\x00-\x1f]+$")
    # Sent as the upload's Content-Type header: a media type with parameters, never a line break.
    content_type: str = Field(default="text/plain; charset=utf-8", max_length=128, pattern=MEDIA_TYPE_PATTERN)
    text: Annotated[str, Field(min_length=1, max_length=200_000)] | SkipJsonSchema[None] = None
    s3_uri: Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+$")] | SkipJsonSchema[None] = None

    @field_validator("filename")
    @classmethod
    def _not_a_dot_segment(cls, value: str) -> str:
        # The filename is the upload URL's last path segment: "." and ".." would be removed from it.
        if value.strip(".") == "" and len(value) <= 2:
            raise ValueError('the filename cannot be "." or ".."')
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TextkingDocument:
        if (self.text is None) == (self.s3_uri is None):
            raise ValueError("document needs exactly one of text, s3_uri")
        return self


class TextkingSubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor: Literal["textking"]
    reference_id: ReferenceId
    name: str = Field(min_length=1, max_length=200, description="The job's name at TEXTKING.")
    source_language: LanguageCode
    target_language: LanguageCode
    quality: Slug = Field(
        default="translation",
        description="One of the stack's TextkingQualities (the schema lists the default ones).",
        json_schema_extra={"enum": list(DEFAULT_TEXTKING_QUALITIES)},
    )
    topic: str | None = Field(default=None, min_length=1, max_length=64)
    briefing: str | None = Field(default=None, max_length=10_000)
    document: TextkingDocument
    # A URL path segment at TEXTKING, which takes project ids as UUIDs (anything else: 400 invalid UUID).
    project_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        description="Add the job to this (prepared) TEXTKING project: its id, a UUID.",
    )
    project_name: str | None = Field(default=None, min_length=1, max_length=200)
    order: bool | None = Field(
        default=None,
        strict=True,
        description="Start the project, which places a billed order. Default: the stack's TextkingOrderingEnabled.",
    )

    @model_validator(mode="after")
    def _languages_differ(self) -> TextkingSubmitRequest:
        if self.source_language.casefold() == self.target_language.casefold():  # tags ignore case
            raise ValueError("source_language and target_language must differ")
        return self


SubmitRequest = Annotated[PlaymentSubmitRequest | TextkingSubmitRequest, Field(discriminator="vendor")]
VENDOR_NAMES: frozenset[str] = frozenset({"playment", "textking"})
_SUBMIT_REQUEST: TypeAdapter[PlaymentSubmitRequest | TextkingSubmitRequest] = TypeAdapter(SubmitRequest)
MAX_BULK_JOBS = 500


def parse_submit_request(value: Any) -> PlaymentSubmitRequest | TextkingSubmitRequest:
    """One submit request from plain data (raises pydantic.ValidationError)."""
    return _SUBMIT_REQUEST.validate_python(value)


class BulkSubmitRequest(BaseModel):
    """Many jobs in one call. Each job is validated on its own: one invalid job does not reject the rest."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[Any] = Field(
        min_length=1,
        max_length=MAX_BULK_JOBS,
        description=f"Up to {MAX_BULK_JOBS} submit requests, each shaped like a single POST /jobs body.",
    )


def _body_kind(value: Any) -> str:
    return "bulk" if isinstance(value, dict) and "jobs" in value else "single"


# POST /jobs takes one request, or {"jobs": [...]}.
SubmitBody = Annotated[
    Annotated[SubmitRequest, Tag("single")] | Annotated[BulkSubmitRequest, Tag("bulk")],
    Discriminator(_body_kind),
]
BODY_TAGS = frozenset({"single", "bulk"})


class SubmissionMessage(BaseModel):
    """A SubmissionQueue message: which job to (re)submit. The request itself stays in the table."""

    model_config = ConfigDict(extra="ignore")

    reference_id: str = Field(pattern=REFERENCE_ID_PATTERN)


class CallbackRetryMessage(BaseModel):
    """A CallbackRetryQueue message: an archived callback body to apply again."""

    model_config = ConfigDict(extra="ignore")

    vendor: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    archive_key: str = Field(pattern=r"^raw/[a-z][a-z0-9_]{0,31}/[\x21-\x7e]{1,900}$")


# --- Playment callbacks --------------------------------------------------------------------------


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


def request_hash(request: BaseModel) -> str:
    """Hash of the normalised request: equal for requests that mean the same job."""
    return hashlib.sha256(canonical_json(request.model_dump(mode="json")).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _text(value: Any, default: str) -> str:
    """A vendor value as text we can store and log (a lone surrogate becomes an escape)."""
    if value is None:
        return default
    text = value if isinstance(value, str) else json.dumps(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _require_unique(values: list[str], what: str) -> None:
    dupes = sorted(v for v, n in Counter(values).items() if n > 1)
    if dupes:
        raise ValueError(f"duplicate {what}: {dupes[:5]}")


class DocumentUnavailable(Exception):
    """A document named by s3:// URI cannot be read, and trying again will not change that."""


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
    next_attempt_at: str | None = None
    last_error: JobError | None = None
    result: Any = None
    result_ref: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    created_at: str
    updated_at: str
    version: int = 1


# --- Events --------------------------------------------------------------------------------------

EVENT_SOURCE = "handoff"
STATUS_CHANGED = "Job Status Changed"


class JobStatusChanged(BaseModel):
    """The detail of a `Job Status Changed` event on the bus (source "handoff")."""

    reference_id: str
    vendor: str
    status: JobStatus
    previous_status: JobStatus | None = Field(description="None when the job was just created (QUEUED).")
    vendor_job_id: str | None = None
    result_ref: str | None = None
    at: str = Field(description="When the status changed (the job's updated_at), ISO-8601 UTC.")
    version: int = Field(description="The job item's version after the change: increases with every write.")
