"""Playment's settings: each field named by its environment variable (its alias), validated once
per container. Playment's own docs disagree on host, version, paths and the routing field
(REFERENCE.md §1.1, gotcha 5): all of them are configuration."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from handoff.settings import env_settings


class PlaymentSettings(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    secret_name: str = Field(alias="PLAYMENT_SECRET_NAME", min_length=1)
    base_url: str = Field(alias="PLAYMENT_BASE_URL", pattern=r"^https?://[^/\s]+(/\S*)?$")
    project_id: str = Field(alias="PLAYMENT_PROJECT_ID", min_length=1)
    default_tag: str = Field(alias="PLAYMENT_DEFAULT_TAG", default="")
    routing_field: Literal["tag", "work_flow_id"] = Field(alias="PLAYMENT_ROUTING_FIELD", default="tag")
    api_key_header: str = Field(alias="PLAYMENT_API_KEY_HEADER", default="x-api-key")
    create_job_path: str = Field(alias="PLAYMENT_CREATE_JOB_PATH", default="/v0/projects/{project_id}/jobs")
    get_job_path: str = Field(alias="PLAYMENT_GET_JOB_PATH", default="/v0/projects/{project_id}/jobs/{job_id}")
    create_batch_path: str = Field(alias="PLAYMENT_CREATE_BATCH_PATH", default="/v1/project/{project_id}/batch")
    batch_jobs_path: str = Field(alias="PLAYMENT_BATCH_JOBS_PATH", default="/v0/projects/{project_id}/batch/{batch_id}")
    project_details_path: str = Field(
        alias="PLAYMENT_PROJECT_DETAILS_PATH", default="/v0/projects/{project_id}/details"
    )
    attachments_path: str = Field(alias="PLAYMENT_ATTACHMENTS_PATH", default="/v1/attachments")
    # A lookup after FS_0001 pages through the batch listing (100 jobs a page) at most this far.
    max_listing_pages: int = Field(alias="PLAYMENT_MAX_LISTING_PAGES", default=100, ge=1)

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("create_job_path", "get_job_path", "create_batch_path", "batch_jobs_path", "project_details_path")
    @classmethod
    def _has_project_placeholder(cls, value: str) -> str:
        if "{project_id}" not in value or not value.startswith("/"):
            raise ValueError("must start with / and contain {project_id}")
        return value


@lru_cache(maxsize=1)
def playment_settings() -> PlaymentSettings:
    """Raises ConfigurationError naming each missing or malformed PLAYMENT_* variable."""
    settings: PlaymentSettings = env_settings(PlaymentSettings)
    return settings
