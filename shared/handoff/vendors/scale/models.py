"""Scale AI's request and callback models (REFERENCE.md §6). Pydantic only."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from handoff.models import NOT_BLANK, URL_AFTER_SCHEME, ReferenceId, port_in_range
from handoff.vendors.scale.settings import TASK_TYPE_PATTERN

# Scale keeps at most 10 KB of metadata per task; measured as the JSON Scale is sent, with the key
# Handoff adds (below), and "KB" read as 10,000 bytes so that either reading of it holds.
MAX_METADATA_BYTES = 10_000
# Added to every task's metadata: the reference_id, so that a task whose unique_id was cleared at
# Scale (cancel with clear_unique_id) still names its job in callbacks and lookups.
REFERENCE_KEY = "handoff_reference_id"
# What Handoff sets itself, or takes as a field of its own: not accepted among `params`.
MANAGED_FIELDS = frozenset(
    {"unique_id", "callback_url", "project", "batch", "instruction", "attachment", "attachment_type", "metadata"}
)

# Scale reads attachments by URL (public, signed, or a bucket it was given access to).
# each naming a host (or bucket): "https:///a.jpg" names none
AttachmentUrl = Annotated[
    str,
    Field(min_length=8, max_length=2048, pattern=rf"^(https?|s3|gs){URL_AFTER_SCHEME}"),
    AfterValidator(port_in_range),
]


class ScaleSubmitRequest(BaseModel):
    """A Scale task (POST /v1/task/{task_type}); Handoff adds unique_id (= reference_id) and callback_url."""

    model_config = ConfigDict(extra="forbid")

    vendor: Literal["scale"]
    reference_id: ReferenceId
    task_type: str | None = Field(
        default=None,
        pattern=TASK_TYPE_PATTERN,
        description="Scale's task type, e.g. imageannotation; defaults to the stack's ScaleTaskType.",
        examples=["imageannotation"],
    )
    project: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=NOT_BLANK,
        description="Defaults to the stack's ScaleProject.",
    )
    batch: str | None = Field(default=None, min_length=1, max_length=256, pattern=NOT_BLANK)
    instruction: str | None = Field(default=None, min_length=1, max_length=100_000)
    attachment: AttachmentUrl | None = None
    attachment_type: str | None = Field(default=None, min_length=1, max_length=64, examples=["image"])
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The task type's own fields (geometries, objects_to_annotate, annotation_attributes, "
        "fields, ...), sent to Scale exactly as given.",
        # what the validator refuses, the schema forbids: no field Handoff sets or takes itself
        json_schema_extra={"properties": {name: False for name in sorted(MANAGED_FIELDS)}},
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Kept by Scale with the task (at most {MAX_METADATA_BYTES} bytes as JSON, with the "
        f'"{REFERENCE_KEY}" Handoff adds).',
    )

    @field_validator("params")
    @classmethod
    def _no_managed_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(MANAGED_FIELDS & set(value))
        if clash:
            raise ValueError(f"set by Handoff or a field of the request itself, not a param: {clash}")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_fits(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        reference_id = info.data.get("reference_id")  # absent when it was invalid itself
        if REFERENCE_KEY in value and value[REFERENCE_KEY] != reference_id:
            raise ValueError(f"{REFERENCE_KEY} is set by Handoff (to the reference_id)")
        size = len(_compact({**value, REFERENCE_KEY: reference_id or ""}).encode("utf-8", "surrogatepass"))
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"{size} bytes as JSON with {REFERENCE_KEY}; Scale keeps at most {MAX_METADATA_BYTES}")
        return value

    def vendor_metadata(self) -> dict[str, Any]:
        return {**self.metadata, REFERENCE_KEY: self.reference_id}

    def task_fields(self) -> dict[str, Any]:
        """The task's own fields, as given (Handoff's own - project, unique_id, callback_url - are
        added by the client)."""
        fields: dict[str, Any] = dict(self.params)
        for name in ("batch", "instruction", "attachment", "attachment_type"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        fields["metadata"] = self.vendor_metadata()
        return fields


# --- callbacks and lookups ------------------------------------------------------------------------


class ScaleTask(BaseModel):
    """A Scale task as its callbacks and GET /v1/task/{id} carry it (the fields Handoff reads)."""

    model_config = ConfigDict(extra="allow")

    task_id: str = Field(min_length=1, max_length=256)
    status: str = Field(min_length=1, max_length=32)
    unique_id: str | None = None
    callback_url: str | None = None
    metadata: Any = None
    response: Any = None
    error: Any = None

    @field_validator("unique_id", mode="before")
    @classmethod
    def _text_or_none(cls, value: Any) -> Any:
        return value if isinstance(value, str) and value else None

    @property
    def reference_id(self) -> str | None:
        """Our reference_id: the task's unique_id, or (when Scale cleared it) the one in its metadata."""
        if self.unique_id:
            return self.unique_id
        marked = self.metadata.get(REFERENCE_KEY) if isinstance(self.metadata, dict) else None
        return marked if isinstance(marked, str) and marked else None


class ScaleCallback(BaseModel):
    """A callback body (REFERENCE.md §6): {"task": {...}, "response": {...}, "task_id": "..."}."""

    model_config = ConfigDict(extra="allow")

    task: ScaleTask
    task_id: str | None = Field(default=None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _one_task(self) -> ScaleCallback:
        if self.task_id is not None and self.task_id != self.task.task_id:
            raise ValueError("task_id and task.task_id differ")
        return self

    @property
    def response(self) -> Any:
        """The result: the body's `response`, else the task's own."""
        extra = self.model_extra or {}
        return extra.get("response", self.task.response)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
