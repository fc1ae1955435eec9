"""TEXTKING's request model (REFERENCE.md §2.2-2.4). Pydantic only."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from handoff.models import ReferenceId

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


class TextkingCallbackForm(BaseModel):
    """The callback's form as OpenAPI documents it (the function reads the raw body itself)."""

    project_id: str
    job_id: str
    extra_data: str = Field(description="the signed token registered with the callback")
