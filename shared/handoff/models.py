"""What callers submit and what a job looks like. Pydantic only: no AWS, no HTTP."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

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


BATCH_REF_PATTERN = REFERENCE_ID_PATTERN

# What follows a URL's scheme: a host (or bucket) of letters, digits and . _ - that starts and
# ends with a letter or digit, an optional port, then a path/query of printable ASCII (RFC 3986:
# anything else is percent-encoded). No user:password@, no empty host, no whitespace or controls.
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
URL_AFTER_SCHEME = rf"://[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?::{_PORT})?(?:[/?#][\x21-\x7e]*)?$"  # port 1-65535


def port_in_range(url: str) -> str:
    """The URL, if its port (when it names one) is 1-65535. Raises ValueError."""
    port = urlsplit(url).port  # raises ValueError outside 0-65535
    if port == 0:
        raise ValueError("the port must be 1-65535")
    return url


def lower_case(value: Any) -> Any:
    """A UUID in its canonical, lower-case form (RFC 4122: case-insensitive on input): vendors
    that compare ids as text see one spelling."""
    return value.lower() if isinstance(value, str) else value


UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# A value a vendor URL carries as one path segment, as it is: RFC 3986's unreserved characters,
# starting with a letter or digit (so never "." or "..", which URLs drop as dot-segments).
PATH_SEGMENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~\-]{0,127}$"

BatchRef = Annotated[
    str,
    Field(
        pattern=BATCH_REF_PATTERN,
        description="Handoff's id for a batch: unique across the stack, 1-128 characters of letters, "
        "digits and . _ : - (given by the caller, or made up by Handoff when none is given).",
        examples=["order-1042"],
    ),
]


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    SUBMITTED = "SUBMITTED"
    IN_PROGRESS = "IN_PROGRESS"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class SubmissionMessage(BaseModel):
    """A SubmissionQueue message: which job to (re)submit. The request itself stays in the table."""

    model_config = ConfigDict(extra="ignore")

    reference_id: str = Field(pattern=REFERENCE_ID_PATTERN)


class CallbackRetryMessage(BaseModel):
    """A CallbackRetryQueue message: an archived callback body to apply again."""

    model_config = ConfigDict(extra="ignore")

    vendor: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    archive_key: str = Field(pattern=r"^raw/[a-z][a-z0-9_]{0,31}/[\x21-\x7e]{1,900}$")


def request_hash(request: BaseModel) -> str:
    """Hash of the normalised request: equal for requests that mean the same job."""
    return hashlib.sha256(canonical_json(request.model_dump(mode="json")).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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


# vendor_refs["ordered"]: "true" once the vendor's billed order is placed, "false" while a job the
# vendor accepted waits for it (a vendor with an order step: handoff.vendors.base.OrderCapability).
ORDERED_REF = "ordered"
# vendor_refs["cleanup"]: what a FAILED job left at the vendor, still to be deleted (the vendor's
# own word for it, e.g. "project"; "" or absent: nothing). Set when a submission that failed for
# good could not delete what it had created (or gave up after retries with something created);
# the reconciler retries the deletion through the vendor's CleanupCapability until it succeeds.
CLEANUP_REF = "cleanup"


class Quote(BaseModel):
    """What the vendor asks for a job it holds unordered, as the vendor gives it (words, net price,
    currency: e.g. read back once the job's document is uploaded; the vendor's package says how)."""

    words: int = Field(ge=0, description="Words the vendor counted in the document.")
    net_price: float = Field(ge=0, description="The vendor's net price for the job, in `currency`.")
    currency: str = Field(min_length=1, max_length=8, examples=["EUR"])


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
    batch_ref: str | None = None
    quote: Quote | None = Field(
        default=None,
        description="The vendor's quote for a job submitted without its order (a vendor with an order step).",
    )
    ordered_at: str | None = Field(
        default=None, description="When POST /jobs/{reference_id}/order placed the vendor's order."
    )
    history: list[HistoryEntry] = Field(default_factory=list)
    created_at: str
    updated_at: str
    version: int = 1


class JobSummary(BaseModel):
    """A job as GET /jobs lists it: what the table's indexes hold (no request, result or history:
    GET /jobs/{reference_id} gives those)."""

    reference_id: str
    vendor: str
    status: JobStatus
    vendor_job_id: str | None = None
    batch_ref: str | None = None
    created_at: str | None = None
    updated_at: str = Field(description="When the job was last written, ISO-8601 UTC: the list's order, newest first.")


class JobList(BaseModel):
    """One page of GET /jobs, newest first (by updated_at)."""

    jobs: list[JobSummary]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= (with the same filters) for the next page; null: this was the last."
    )


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
    batch_ref: str | None = Field(default=None, description="The Handoff batch the job belongs to, if any.")
    at: str = Field(description="When the status changed (the job's updated_at), ISO-8601 UTC.")
    version: int = Field(description="The job item's version after the change: increases with every write.")


JOB_ORDERED = "Job Ordered"


class JobOrdered(BaseModel):
    """The detail of a `Job Ordered` event on the bus (source "handoff"): a job the vendor held
    unordered had its order placed later (POST /jobs/{reference_id}/order); vendor_refs.ordered
    went from "false" to "true". One per job (at-least-once downstream: `version` tells a repeat)."""

    reference_id: str
    vendor: str
    status: JobStatus = Field(description="The job's status when the order was recorded.")
    vendor_job_id: str | None = None
    quote: Quote | None = Field(default=None, description="The quote the order accepted, if the job had one.")
    batch_ref: str | None = None
    at: str = Field(description="When the order was recorded (the job's updated_at), ISO-8601 UTC.")
    version: int = Field(description="The job item's version after the order was recorded.")


# --- Batches -------------------------------------------------------------------------------------

BATCH_COMPLETED = "Batch Completed"


def json_integer(value: Any) -> Any:
    """A JSON integer as the rest of the API takes one: true is not 1, nor "3" the number 3; 3.0
    is (JSON Schema's integer), 2.5 is not."""
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


# A name a vendor shows people (a batch's, a job's, a routing tag): no control character (C0, DEL,
# C1, the line and paragraph separators) and at least one character that shows (not a space, nor
# a zero-width one or a byte order mark). Spelled out rather than with \s, whose meaning differs
# between the validator's regex engine and JSON Schema's (ECMA-262): the two read it alike.
_CONTROL_CHARS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
_INVISIBLE_CHARS = r"\x20\xa0\u1680\u2000-\u200f\u202f\u205f\u2060\u3000\ufeff"
NOT_BLANK = rf"^[^{_CONTROL_CHARS}]*[^{_CONTROL_CHARS}{_INVISIBLE_CHARS}\t\n\r][^{_CONTROL_CHARS}]*$"


def not_blank(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be blank")
    return value


# Field before the validator: after it, pydantic writes its bounds as "ge"/"le", not JSON Schema
BatchSize = Annotated[int, Field(ge=1, le=100_000), BeforeValidator(json_integer)]


# The names of the registered vendors that have batches, filled by the registry (handoff.vendors)
# as it loads: models cannot import it (it imports them). Only the OpenAPI document reads it, as
# the enum of a batch's `vendor` (another vendor is refused: 422).
VENDORS_WITH_BATCHES: list[str] = []


def _batch_vendor_enum(schema: dict[str, Any]) -> None:
    if VENDORS_WITH_BATCHES:
        schema["enum"] = sorted(VENDORS_WITH_BATCHES)


class CreateBatchRequest(BaseModel):
    """POST /batches: a batch at a vendor that has them, tracked by Handoff under `batch_ref`."""

    model_config = ConfigDict(extra="forbid")

    vendor: str = Field(
        min_length=1,
        max_length=32,
        description="A registered vendor that has batches.",
        json_schema_extra=_batch_vendor_enum,
    )
    name: Annotated[str, BeforeValidator(not_blank)] = Field(
        min_length=1,
        max_length=255,
        pattern=NOT_BLANK,
        description="The vendor's batch name (unique per project; not blank).",
    )
    description: str = Field(default="", max_length=2000)
    batch_ref: BatchRef | None = Field(
        default=None, description="Your id for the batch; the same request again answers the same batch."
    )
    expected_jobs: BatchSize | None = Field(
        default=None,
        description="How many jobs the batch will hold (a JSON integer). Set here or by closing it: until "
        "then the batch is open and never completes. A sized batch takes jobs until it holds this many.",
    )


class Batch(BaseModel):
    """A batch as Handoff keeps it (BatchesTable, key batch_ref)."""

    batch_ref: str
    vendor: str
    name: str
    description: str = ""
    vendor_batch_id: str | None = Field(default=None, description="The vendor's own id of the batch.")
    request_hash: str
    expected_jobs: int | None = Field(
        default=None,
        description="The batch's size, once known: it takes jobs until it holds this many, and completes "
        "when it holds this many and every one is final.",
    )
    closed_at: str | None = None
    completed_at: str | None = Field(default=None, description="When every job had reached a final status.")
    final_counts: dict[str, int] | None = Field(default=None, description="Jobs by final status, at completion.")
    published_at: str | None = Field(default=None, description="When its `Batch Completed` event was published.")
    claimant: str | None = None
    publishing_until: float | None = None
    created_at: str
    updated_at: str
    version: int = 1


class BatchView(BaseModel):
    """A batch as the API answers it."""

    batch_ref: str
    vendor: str
    name: str
    description: str = ""
    vendor_batch_id: str | None = None
    expected_jobs: int | None = None
    closed_at: str | None = None
    completed_at: str | None = None
    final_counts: dict[str, int] | None = None
    published_at: str | None = None
    created_at: str
    updated_at: str
    version: int
    state: str = Field(
        description="open (no size yet) | sized (a size, holding fewer jobs: takes more) | closed (holds its "
        "size: takes no new job) | completed (held its size, every job final)"
    )


class BatchProgress(BatchView):
    """GET /batches/{batch_ref}: the batch and its jobs counted by status (from Handoff's table)."""

    jobs: int = Field(description="Jobs in the batch.")
    final: int = Field(description="Jobs in a final status (COMPLETED, FAILED, CANCELED).")
    counts: dict[str, int] = Field(description="Jobs by status.")
    vendor_details: dict[str, Any] | None = Field(
        default=None, description="With vendor=true: the vendor's own word on the batch, or its error."
    )


class BatchCompleted(BaseModel):
    """The detail of a `Batch Completed` event on the bus (source "handoff"): one per batch."""

    batch_ref: str
    vendor: str
    vendor_batch_id: str | None
    name: str
    jobs: int = Field(description="How many jobs the batch held.")
    counts: dict[str, int] = Field(description="Jobs by final status (COMPLETED, FAILED, CANCELED).")
    completed_at: str
