"""Playment's settings: each field named by its environment variable (its alias), validated once
per container. Playment's own docs disagree on host, version, paths and the routing field
(REFERENCE.md §1.1, gotcha 5): all of them are configuration.

PLAYMENT_API_GENERATION picks which documentation the deployment follows and, from it, coherent
defaults for every path, the routing field and the auth header (GENERATIONS); each PLAYMENT_*_PATH,
PLAYMENT_ROUTING_FIELD and PLAYMENT_API_KEY_HEADER that is set (not empty) still overrides its part.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from handoff.models import PATH_SEGMENT_PATTERN
from handoff.settings import env_settings

Generation = Literal["readme", "docs", "sdk"]
RoutingField = Literal["tag", "work_flow_id"]


@dataclass(frozen=True)
class GenerationDefaults:
    """What one generation of Playment's documentation says (REFERENCE.md §1.1, §1.2)."""

    routing_field: RoutingField
    api_key_header: str
    create_job_path: str
    get_job_path: str
    create_batch_path: str
    batch_jobs_path: str
    project_details_path: str
    project_stats_path: str  # "" where the generation documents none


GENERATIONS: dict[str, GenerationDefaults] = {
    # playment.readme.io (P1, P2, P5, P6): v0 jobs with `tag`, batches at the singular /v1/project/.
    "readme": GenerationDefaults(
        routing_field="tag",
        api_key_header="x-api-key",
        create_job_path="/v0/projects/{project_id}/jobs",
        get_job_path="/v0/projects/{project_id}/jobs/{job_id}",
        create_batch_path="/v1/project/{project_id}/batch",
        batch_jobs_path="/v0/projects/{project_id}/batch/{batch_id}",
        project_details_path="/v0/projects/{project_id}/details",
        project_stats_path="",
    ),
    # docs.playment.io / TELUS (P12-P15, P25): v1 everywhere, `work_flow_id`, plural /v1/projects/.
    "docs": GenerationDefaults(
        routing_field="work_flow_id",
        api_key_header="x-api-key",
        create_job_path="/v1/projects/{project_id}/jobs",
        get_job_path="/v1/projects/{project_id}/jobs/{job_id}",
        create_batch_path="/v1/projects/{project_id}/batch",
        batch_jobs_path="/v1/projects/{project_id}/batch/{batch_id}",
        project_details_path="/v1/projects/{project_id}/details",
        project_stats_path="",
    ),
    # The official Python SDK v1.0.5 (P23): jobs at /projectsvc/, the rest v0, batches singular.
    "sdk": GenerationDefaults(
        routing_field="tag",
        api_key_header="x-api-key",
        create_job_path="/projectsvc/projects/{project_id}/jobs",
        get_job_path="/v0/projects/{project_id}/jobs/{job_id}",
        create_batch_path="/v1/project/{project_id}/batch",
        batch_jobs_path="/v0/projects/{project_id}/batch/{batch_id}",
        project_details_path="/v0/projects/{project_id}/details",
        project_stats_path="/v0/projects/{project_id}/stats",
    ),
}
DEFAULT_GENERATION: Generation = "readme"  # what the template deployed before the setting existed

_PATHS = ("create_job_path", "get_job_path", "create_batch_path", "batch_jobs_path", "project_details_path")


class PlaymentSettings(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    secret_name: str = Field(alias="PLAYMENT_SECRET_NAME", min_length=1)
    base_url: str = Field(alias="PLAYMENT_BASE_URL", pattern=r"^https?://[^/\s]+(/\S*)?$")
    project_id: str = Field(alias="PLAYMENT_PROJECT_ID", pattern=PATH_SEGMENT_PATTERN)
    default_tag: str = Field(alias="PLAYMENT_DEFAULT_TAG", default="")
    api_generation: Generation = Field(alias="PLAYMENT_API_GENERATION", default=DEFAULT_GENERATION)
    # Unset: the generation's (filled in below).
    routing_field: RoutingField = Field(alias="PLAYMENT_ROUTING_FIELD", default="tag")
    api_key_header: str = Field(alias="PLAYMENT_API_KEY_HEADER", default="x-api-key", min_length=1)
    create_job_path: str = Field(alias="PLAYMENT_CREATE_JOB_PATH", default="")
    get_job_path: str = Field(alias="PLAYMENT_GET_JOB_PATH", default="")
    create_batch_path: str = Field(alias="PLAYMENT_CREATE_BATCH_PATH", default="")
    batch_jobs_path: str = Field(alias="PLAYMENT_BATCH_JOBS_PATH", default="")
    project_details_path: str = Field(alias="PLAYMENT_PROJECT_DETAILS_PATH", default="")
    attachments_path: str = Field(alias="PLAYMENT_ATTACHMENTS_PATH", default="/v1/attachments")
    # A lookup after FS_0001 pages through the batch listing (100 jobs a page) at most this far.
    max_listing_pages: int = Field(alias="PLAYMENT_MAX_LISTING_PAGES", default=100, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _generation_defaults(cls, values: object) -> object:
        """Every path, the routing field and the header that is not set comes from the generation
        (an unknown generation is left for the field's own check, which names the variable)."""
        if not isinstance(values, dict):
            return values
        generation = values.get("PLAYMENT_API_GENERATION", values.get("api_generation", DEFAULT_GENERATION))
        defaults = GENERATIONS.get(generation) if isinstance(generation, str) else None
        if defaults is None:
            return values
        filled = dict(values)
        for name in ("routing_field", "api_key_header", *_PATHS):
            alias = str(cls.model_fields[name].alias)
            if filled.get(alias, filled.get(name, "")) in ("", None):
                filled.pop(name, None)
                filled[alias] = getattr(defaults, name)
        return filled

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator(*_PATHS)
    @classmethod
    def _has_project_placeholder(cls, value: str) -> str:
        if "{project_id}" not in value or not value.startswith("/"):
            raise ValueError("must start with / and contain {project_id}")
        return value

    @field_validator("get_job_path")
    @classmethod
    def _has_job_placeholder(cls, value: str) -> str:
        if "{job_id}" not in value:
            raise ValueError("must contain {job_id}")
        return value

    @field_validator("batch_jobs_path")
    @classmethod
    def _has_batch_placeholder(cls, value: str) -> str:
        if "{batch_id}" not in value:
            raise ValueError("must contain {batch_id}")
        return value

    @property
    def generation_defaults(self) -> GenerationDefaults:
        return GENERATIONS[self.api_generation]


@lru_cache(maxsize=1)
def playment_settings() -> PlaymentSettings:
    """Raises ConfigurationError naming each missing or malformed PLAYMENT_* variable."""
    settings: PlaymentSettings = env_settings(PlaymentSettings)
    return settings
