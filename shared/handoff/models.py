"""What callers submit and what a job looks like. Pydantic only: no AWS, no HTTP."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

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
