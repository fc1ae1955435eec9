"""Environment -> typed settings, and vendor secrets through Powertools parameters (cached).

Each function reads only what it uses: the core settings at cold start, a vendor's settings the
first time that vendor is called. A missing or malformed variable fails loudly with its name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator


class ConfigurationError(RuntimeError):
    """The function's environment is missing or malformed: a deployment problem, not a request one."""


class CoreSettings(BaseModel):
    jobs_table_name: str = Field(min_length=1)
    # Seconds a cached secret stays fresh; rotation reaches warm functions within this time.
    secrets_max_age: int = Field(default=300, ge=0)
    vendor_connect_timeout: float = Field(default=3.05, gt=0)
    vendor_read_timeout: float = Field(default=10.0, gt=0)
    results_bucket: str = ""
    event_bus_name: str = ""


class PlaymentSettings(BaseModel):
    """Playment's own docs disagree on host, version, paths and the routing field
    (REFERENCE.md §1.1, gotcha 5): all of them are configuration."""

    secret_name: str = Field(min_length=1)
    base_url: str = Field(pattern=r"^https?://[^/\s]+(/\S*)?$")
    project_id: str = Field(min_length=1)
    default_tag: str = ""
    routing_field: Literal["tag", "work_flow_id"] = "tag"
    api_key_header: str = "x-api-key"
    create_job_path: str = "/v0/projects/{project_id}/jobs"
    get_job_path: str = "/v0/projects/{project_id}/jobs/{job_id}"
    create_batch_path: str = "/v1/project/{project_id}/batch"
    batch_jobs_path: str = "/v0/projects/{project_id}/batch/{batch_id}"
    project_details_path: str = "/v0/projects/{project_id}/details"
    attachments_path: str = "/v1/attachments"
    # A lookup after FS_0001 pages through the batch listing (100 jobs a page) at most this far.
    max_listing_pages: int = Field(default=100, ge=1)

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


class TextkingSettings(BaseModel):
    secret_name: str = Field(min_length=1)
    base_url: str = Field(default="https://api.textking.com/v1", pattern=r"^https?://[^\s]+$")
    # Where TEXTKING should POST callbacks: given directly (local stack, custom domain) or read
    # from the SSM parameter that the stack writes (the API's URL cannot be a plain !Ref in the
    # function's environment without a circular dependency).
    callback_url: str = ""
    callback_url_parameter: str = ""
    ordering_enabled: bool = False
    qualities: str = "translation,translation-and-correction"
    default_project_name: str = "Handoff"
    # The one bucket documents may be named from by s3:// URI ("": none; send text instead).
    document_bucket: str = ""

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def quality_names(self) -> frozenset[str]:
        return frozenset(q.strip() for q in self.qualities.split(",") if q.strip())


class SubmissionSettings(BaseModel):
    """The retry path and the vendor rate limits (SubmitJob, SubmissionWorker, Reconciler)."""

    queue_url: str = Field(min_length=1)
    rate_limit_table: str = Field(min_length=1)
    # "playment=20,textking=2": submissions per second per vendor, across all functions.
    rates: str = ""
    # The queue's maxReceiveCount: the worker's attempt on this receive is the last one.
    max_receives: int = Field(default=8, ge=1)
    retry_base_seconds: int = Field(default=2, ge=0, le=900)
    retry_cap_seconds: int = Field(default=300, ge=0, le=900)
    # How long SubmitJob waits for a free rate slot before handing the job to the queue instead.
    inline_max_wait_seconds: float = Field(default=1.0, ge=0)
    # A worker holds a job this long while it submits it (longer than the worker's timeout).
    lease_seconds: int = Field(default=180, ge=1)

    @field_validator("rates")
    @classmethod
    def _rates_parse(cls, value: str) -> str:
        _parse_rates(value)
        return value

    @property
    def rate_per_vendor(self) -> dict[str, float]:
        return _parse_rates(self.rates)


class ReconcilerSettings(BaseModel):
    # A job with no news for this long is looked up at its vendor (a quiet QUEUED job is enqueued
    # again); a vendor may have a budget of its own (its callback policy decides how soon silence
    # means a lost callback).
    silent_after_seconds: int = Field(default=3600, ge=1)
    silent_after_by_vendor: str = ""  # "playment=600,textking=3600"
    max_jobs_per_run: int = Field(default=100, ge=1, le=10_000)

    @field_validator("silent_after_by_vendor")
    @classmethod
    def _budgets_parse(cls, value: str) -> str:
        _parse_budgets(value)
        return value

    def silence_budgets(self) -> dict[str, int]:
        """vendor -> seconds of silence after which its jobs are looked up."""
        return _parse_budgets(self.silent_after_by_vendor)

    def silent_after(self, vendor: str) -> int:
        return self.silence_budgets().get(vendor, self.silent_after_seconds)


class CallbackRetrySettings(BaseModel):
    """Re-applying archived callbacks (CallbackRetryQueue)."""

    queue_url: str = Field(min_length=1)
    max_receives: int = Field(default=10, ge=2, le=1000)
    retry_base_seconds: int = Field(default=30, ge=0, le=900)
    retry_cap_seconds: int = Field(default=900, ge=1, le=900)


def _parse_budgets(value: str) -> dict[str, int]:
    budgets = {}
    for vendor, seconds in _parse_rates(value).items():
        if seconds != int(seconds):
            raise ValueError(f"expected vendor=whole seconds, got {vendor}={seconds}")
        budgets[vendor] = int(seconds)
    return budgets


def _parse_rates(value: str) -> dict[str, float]:
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        vendor, sep, number = part.partition("=")
        try:
            rate = float(number)
        except ValueError:
            rate = 0.0
        if not sep or not vendor.strip() or rate <= 0:
            raise ValueError(f"expected vendor=requests_per_second, got {part!r}")
        rates[vendor.strip()] = rate
    return rates


def _from_env(model: type[BaseModel], names: Mapping[str, str], env: Mapping[str, str]) -> Any:
    values = {field: env[var] for field, var in names.items() if env.get(var, "") != ""}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{names.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else '?'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(f"invalid environment for {model.__name__}: {problems}") from None


CORE_ENV = {
    "jobs_table_name": "JOBS_TABLE_NAME",
    "secrets_max_age": "SECRETS_MAX_AGE_SECONDS",
    "vendor_connect_timeout": "VENDOR_CONNECT_TIMEOUT_SECONDS",
    "vendor_read_timeout": "VENDOR_READ_TIMEOUT_SECONDS",
    "results_bucket": "RESULTS_BUCKET_NAME",
    "event_bus_name": "EVENT_BUS_NAME",
}

TEXTKING_ENV = {
    "secret_name": "TEXTKING_SECRET_NAME",
    "base_url": "TEXTKING_BASE_URL",
    "callback_url": "TEXTKING_CALLBACK_URL",
    "callback_url_parameter": "TEXTKING_CALLBACK_URL_PARAMETER",
    "ordering_enabled": "TEXTKING_ORDERING_ENABLED",
    "qualities": "TEXTKING_QUALITIES",
    "default_project_name": "TEXTKING_DEFAULT_PROJECT_NAME",
    "document_bucket": "TEXTKING_DOCUMENT_BUCKET",
}

PLAYMENT_ENV = {
    "secret_name": "PLAYMENT_SECRET_NAME",
    "base_url": "PLAYMENT_BASE_URL",
    "project_id": "PLAYMENT_PROJECT_ID",
    "default_tag": "PLAYMENT_DEFAULT_TAG",
    "routing_field": "PLAYMENT_ROUTING_FIELD",
    "api_key_header": "PLAYMENT_API_KEY_HEADER",
    "create_job_path": "PLAYMENT_CREATE_JOB_PATH",
    "get_job_path": "PLAYMENT_GET_JOB_PATH",
    "create_batch_path": "PLAYMENT_CREATE_BATCH_PATH",
    "batch_jobs_path": "PLAYMENT_BATCH_JOBS_PATH",
    "project_details_path": "PLAYMENT_PROJECT_DETAILS_PATH",
    "attachments_path": "PLAYMENT_ATTACHMENTS_PATH",
    "max_listing_pages": "PLAYMENT_MAX_LISTING_PAGES",
}


SUBMISSION_ENV = {
    "queue_url": "SUBMISSION_QUEUE_URL",
    "rate_limit_table": "RATE_LIMIT_TABLE_NAME",
    "rates": "VENDOR_MAX_REQUESTS_PER_SECOND",
    "max_receives": "SUBMISSION_MAX_RECEIVES",
    "retry_base_seconds": "RETRY_BASE_SECONDS",
    "retry_cap_seconds": "RETRY_CAP_SECONDS",
    "inline_max_wait_seconds": "INLINE_MAX_WAIT_SECONDS",
    "lease_seconds": "SUBMISSION_LEASE_SECONDS",
}

RECONCILER_ENV = {
    "silent_after_seconds": "RECONCILE_AFTER_SECONDS",
    "silent_after_by_vendor": "RECONCILE_AFTER_SECONDS_BY_VENDOR",
    "max_jobs_per_run": "RECONCILE_MAX_JOBS_PER_RUN",
}


CALLBACK_RETRY_ENV = {
    "queue_url": "CALLBACK_RETRY_QUEUE_URL",
    "max_receives": "CALLBACK_RETRY_MAX_RECEIVES",
    "retry_base_seconds": "CALLBACK_RETRY_BASE_SECONDS",
    "retry_cap_seconds": "CALLBACK_RETRY_CAP_SECONDS",
}


@lru_cache(maxsize=1)
def core_settings() -> CoreSettings:
    return _from_env(CoreSettings, CORE_ENV, os.environ)


@lru_cache(maxsize=1)
def playment_settings() -> PlaymentSettings:
    return _from_env(PlaymentSettings, PLAYMENT_ENV, os.environ)


@lru_cache(maxsize=1)
def textking_settings() -> TextkingSettings:
    return _from_env(TextkingSettings, TEXTKING_ENV, os.environ)


@lru_cache(maxsize=1)
def submission_settings() -> SubmissionSettings:
    return _from_env(SubmissionSettings, SUBMISSION_ENV, os.environ)


@lru_cache(maxsize=1)
def reconciler_settings() -> ReconcilerSettings:
    return _from_env(ReconcilerSettings, RECONCILER_ENV, os.environ)


@lru_cache(maxsize=1)
def callback_retry_settings() -> CallbackRetrySettings:
    return _from_env(CallbackRetrySettings, CALLBACK_RETRY_ENV, os.environ)


def textking_callback_url() -> str:
    settings = textking_settings()
    if settings.callback_url:
        return settings.callback_url
    if not settings.callback_url_parameter:
        raise ConfigurationError("set TEXTKING_CALLBACK_URL or TEXTKING_CALLBACK_URL_PARAMETER")
    from aws_lambda_powertools.utilities import parameters

    return str(parameters.get_parameter(settings.callback_url_parameter, max_age=core_settings().secrets_max_age))


def results_bucket() -> str:
    bucket = core_settings().results_bucket
    if not bucket:
        raise ConfigurationError("RESULTS_BUCKET_NAME is not set")
    return bucket


def secret_json(name: str) -> dict[str, Any]:
    """A JSON secret from Secrets Manager, cached for SECRETS_MAX_AGE_SECONDS.

    Powertools caches by (name, transform) only, so rotation keeps current and previous values
    inside one JSON secret rather than reading AWSPREVIOUS (anchors.md §2.1).
    """
    from aws_lambda_powertools.utilities import parameters  # deferred: only functions with secrets pay for it

    value = parameters.get_secret(name, transform="json", max_age=core_settings().secrets_max_age)
    if not isinstance(value, dict):
        raise ConfigurationError(f"secret {name} must hold a JSON object")
    return value


def clear_caches() -> None:
    """Forget settings and cached secrets (tests; a function never needs this)."""
    from aws_lambda_powertools.utilities import parameters

    core_settings.cache_clear()
    playment_settings.cache_clear()
    textking_settings.cache_clear()
    submission_settings.cache_clear()
    reconciler_settings.cache_clear()
    callback_retry_settings.cache_clear()
    parameters.clear_caches()
