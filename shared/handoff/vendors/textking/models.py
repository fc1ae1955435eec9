"""TEXTKING's request model (REFERENCE.md §2.2-2.4). Pydantic only."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from handoff.models import NOT_BLANK, UUID_PATTERN, ReferenceId, lower_case

# TEXTKING takes "the ISO 639 language code" (POST-Jobs, POST-price-info); every example is a
# two-letter ISO 639-1 code. A region subtag ("pt-BR") or a three-letter code is not one: refused
# with 422 before any TEXTKING call, not with a 400 after the project exists.
ISO_639_1 = frozenset(
    """aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv
    dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii
    ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk
    ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc
    sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve
    vi vo wa wo xh yi yo za zh zu""".split()  # noqa: SIM905 (184 codes: a list literal would be 40 lines)
)
LanguageCode = Annotated[
    str,
    Field(
        pattern=r"^[a-z]{2}$",
        examples=["en", "de", "fr"],
        description="An ISO 639-1 code, as TEXTKING takes (no region subtag).",
        json_schema_extra={"enum": sorted(ISO_639_1)},
    ),
]

# The document formats TEXTKING takes (POST-Document: "docx, doc, xlsx, xls, pptx, idml, rtf, odt,
# html, txt and xml"; anything else is a 406, after the project and job exist), by file name
# extension, with the media types accepted for each; the first is what the upload sends.
DOCUMENT_FORMATS: dict[str, tuple[str, ...]] = {
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",),
    "doc": ("application/msword",),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",),
    "xls": ("application/vnd.ms-excel",),
    "pptx": ("application/vnd.openxmlformats-officedocument.presentationml.presentation",),
    "idml": ("application/vnd.adobe.indesign-idml-package",),
    "rtf": ("application/rtf", "text/rtf"),
    "odt": ("application/vnd.oasis.opendocument.text",),
    "html": ("text/html",),
    "txt": ("text/plain",),
    "xml": ("application/xml", "text/xml"),
}
# A filename as TEXTKING takes it, for the schema as for the validator: printable ASCII without
# '"', ';', '/', '\\' (below), then one of the extensions above in any letter case (".htm" too).
_NAME_CHARS = r"[\x20\x21\x23-\x2e\x30-\x3a\x3c-\x5b\x5d-\x7e]"
_EXTENSIONS = "|".join(
    "".join(f"[{c.lower()}{c.upper()}]" for c in extension) for extension in (*DOCUMENT_FORMATS, "htm")
)
FILENAME_PATTERN = rf"^{_NAME_CHARS}*\.(?:{_EXTENSIONS})$"

# The formats that are text, which inline `text` can be (the others are binary: by s3_uri only).
TEXT_FORMATS = frozenset({"txt", "html", "xml", "rtf"})

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
        extra="forbid",
        # null is as good as absent (the API reads it so): exactly one of them is a string
        json_schema_extra={
            "oneOf": [
                {"required": ["text"], "properties": {"text": {"type": "string"}}},
                {"required": ["s3_uri"], "properties": {"s3_uri": {"type": "string"}}},
            ]
        },
    )

    filename: str = Field(
        min_length=1,
        max_length=200,
        # TEXTKING names the translation after it in an unquoted Content-Disposition header
        # (REFERENCE.md §2.4): printable ASCII only (a header carries no other text), without '"'
        # and ';' (which would end it there), '/' and '\\' (a URL path segment here)
        pattern=FILENAME_PATTERN,
        description="Its extension names the format: one of " + ", ".join(DOCUMENT_FORMATS) + ".",
    )
    # The upload's Content-Type is the bare media type (no parameters), as TEXTKING's own example
    # and its PHP client send it ("text/plain"); None: the format's own type.
    content_type: str | None = Field(
        default=None,
        max_length=128,
        pattern=MEDIA_TYPE_PATTERN,
        description="A media type of the filename's format (parameters are not sent). Default: the format's.",
    )
    text: Annotated[str, Field(min_length=1, max_length=200_000)] | None = None
    s3_uri: Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+$")] | None = None

    @field_validator("filename")
    @classmethod
    def _not_a_dot_segment(cls, value: str) -> str:
        # The filename is the upload URL's last path segment: "." and ".." would be removed from it.
        if value.strip(".") == "" and len(value) <= 2:
            raise ValueError('the filename cannot be "." or ".."')
        stem, dot, _ = value.rpartition(".")
        if dot and not stem.strip():  # ".txt", " .txt": an extension with no name
            raise ValueError("the filename needs a name before its extension")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TextkingDocument:
        if (self.text is None) == (self.s3_uri is None):
            raise ValueError("document needs exactly one of text, s3_uri")
        return self

    @model_validator(mode="after")
    def _a_format_textking_takes(self) -> TextkingDocument:
        extension = document_format(self.filename)
        if extension is None:
            raise ValueError(f"the filename's extension is not one TEXTKING takes: {', '.join(DOCUMENT_FORMATS)}")
        if self.text is not None and extension not in TEXT_FORMATS:
            raise ValueError(f".{extension} is not a text format: send the document by s3_uri, not as text")
        if self.content_type is not None and media_type(self.content_type) not in DOCUMENT_FORMATS[extension]:
            raise ValueError(
                f"content_type is not a type of .{extension} documents ({', '.join(DOCUMENT_FORMATS[extension])})"
            )
        return self


def document_format(filename: str) -> str | None:
    """The TEXTKING format a filename names by its extension (".htm" is html), or None."""
    extension = filename.rpartition(".")[2].lower() if "." in filename else ""
    extension = "html" if extension == "htm" else extension
    return extension if extension in DOCUMENT_FORMATS else None


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def upload_content_type(document: TextkingDocument) -> str:
    """The upload's Content-Type: the caller's media type without parameters, else the format's."""
    if document.content_type is not None:
        return media_type(document.content_type)
    extension = document_format(document.filename)
    return DOCUMENT_FORMATS[extension][0] if extension else "application/octet-stream"


class TextkingSubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendor: Literal["textking"]
    reference_id: ReferenceId
    # TEXTKING refuses a name that is blank (POST-Projects, POST-Jobs: 400): "\S" says not blank,
    # to the validator and to the schema alike
    name: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK, description="The job's name at TEXTKING.")
    source_language: LanguageCode
    target_language: LanguageCode
    quality: Slug = Field(
        default="translation",
        description="One of the stack's TextkingQualities (the schema lists the default ones).",
        json_schema_extra={"enum": list(DEFAULT_TEXTKING_QUALITIES)},
    )
    topic: str | None = Field(
        default=None, pattern=UUID_PATTERN, description="A TEXTKING topic id (a UUID, see GET /topics)."
    )
    briefing: str | None = Field(default=None, max_length=10_000)
    document: TextkingDocument
    # A URL path segment at TEXTKING, which takes project ids as UUIDs (anything else: 400 invalid UUID).
    project_id: str | None = Field(
        default=None,
        pattern=UUID_PATTERN,
        description="Add the job to this (prepared) TEXTKING project: its id, a UUID.",
    )
    project_name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NOT_BLANK)
    order: bool | None = Field(
        default=None,
        strict=True,
        description="Start the project, which places a billed order. Default: the stack's TextkingOrderingEnabled.",
    )

    @field_validator("topic", "project_id")
    @classmethod
    def _canonical_uuid(cls, value: str | None) -> str | None:
        return lower_case(value)  # TEXTKING's own ids are lower case; a UUID's case means nothing

    @field_validator("source_language", "target_language")
    @classmethod
    def _a_language_textking_takes(cls, value: str) -> str:
        if value not in ISO_639_1:
            raise ValueError("not an ISO 639-1 language code, which TEXTKING takes")
        return value

    @field_validator("target_language")
    @classmethod
    def _languages_differ(cls, value: str, info: ValidationInfo) -> str:
        # a field validator, so that the error names the field (target_language), not the body
        source = info.data.get("source_language")
        if isinstance(source, str) and source.casefold() == value.casefold():  # tags ignore case
            raise ValueError("must differ from source_language")
        return value


CALLBACK_FIELD_MAX = 1024


class TextkingCallbackForm(BaseModel):
    """The callback's form as OpenAPI documents it (the function reads the raw body itself)."""

    # as the function takes them (client.parse_callback_form): each exactly once, 1-1,024 characters
    project_id: str = Field(min_length=1, max_length=CALLBACK_FIELD_MAX)
    job_id: str = Field(min_length=1, max_length=CALLBACK_FIELD_MAX)
    extra_data: str = Field(
        min_length=1, max_length=CALLBACK_FIELD_MAX, description="the signed token registered with the callback"
    )
