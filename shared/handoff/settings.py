"""Environment -> typed settings, and vendor secrets through Powertools parameters (cached).

Each function reads only what it uses: the core settings at cold start, a vendor's settings the
first time that vendor is called. A missing or malformed variable fails loudly with its name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

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
    batches_table_name: str = ""


class SubmissionSettings(BaseModel):
    """The retry path and the vendor rate limits (SubmitJob, SubmissionWorker, Reconciler)."""

    queue_url: str = Field(min_length=1)
    rate_limit_table: str = Field(min_length=1)
    # "<vendor>=20,<other>=2": submissions per second per vendor, across all functions.
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
    silent_after_by_vendor: str = ""  # "<vendor>=600,<other>=3600"
    max_jobs_per_run: int = Field(default=100, ge=1, le=10_000)
    # A DELIVERED job waits on the customer (who accepts the result or asks for a revision at the
    # vendor, whose "completed" then means "accepted by you"): days, not minutes. It is looked up
    # after this long without news, not every sweep. Never less than its vendor's own budget.
    delivered_silent_after_seconds: int = Field(default=86400, ge=1)

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
    for vendor, seconds in _parse_rates(value, unit="seconds").items():
        if seconds != int(seconds):
            raise ValueError(f"expected vendor=whole seconds, got {vendor}={seconds}")
        budgets[vendor] = int(seconds)
    return budgets


def _parse_rates(value: str, unit: str = "requests_per_second") -> dict[str, float]:
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        vendor, sep, number = part.partition("=")
        try:
            rate = float(number)
        except ValueError:
            rate = 0.0
        if not sep or not vendor.strip() or rate <= 0:
            raise ValueError(f"expected vendor={unit} (a number above 0), got {part!r}")
        rates[vendor.strip()] = rate
    return rates


def env_settings(model: type[BaseModel], env: Mapping[str, str] | None = None) -> Any:
    """`model` from the environment, its fields named by their aliases: the variables' names (the
    aws-lambda-handler-cookbook's way). An empty variable counts as unset. Raises ConfigurationError
    naming every variable that is missing or malformed."""
    env = os.environ if env is None else env
    names = {name: field.alias or name for name, field in model.model_fields.items()}
    return _from_env(model, {name: alias for name, alias in names.items()}, env, by_alias=True)


def _from_env(
    model: type[BaseModel], names: Mapping[str, str], env: Mapping[str, str], *, by_alias: bool = False
) -> Any:
    values = {(var if by_alias else field): env[var] for field, var in names.items() if env.get(var, "") != ""}
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
    "batches_table_name": "BATCHES_TABLE_NAME",
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
    "delivered_silent_after_seconds": "RECONCILE_DELIVERED_AFTER_SECONDS",
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
def submission_settings() -> SubmissionSettings:
    return _from_env(SubmissionSettings, SUBMISSION_ENV, os.environ)


@lru_cache(maxsize=1)
def reconciler_settings() -> ReconcilerSettings:
    return _from_env(ReconcilerSettings, RECONCILER_ENV, os.environ)


@lru_cache(maxsize=1)
def callback_retry_settings() -> CallbackRetrySettings:
    return _from_env(CallbackRetrySettings, CALLBACK_RETRY_ENV, os.environ)


def results_bucket() -> str:
    bucket = core_settings().results_bucket
    if not bucket:
        raise ConfigurationError("RESULTS_BUCKET_NAME is not set")
    return bucket


# Powertools' providers by their DEFAULT_PROVIDERS key: (class, AWS service).
_PROVIDERS = {"secrets": ("SecretsProvider", "secretsmanager"), "ssm": ("SSMProvider", "ssm")}


def parameters_provider(kind: str) -> Any:
    """Powertools' default provider `kind` ("secrets", "ssm"), the one parameters.get_secret and
    get_parameter use, built on a client from boto3's default session: the session the function's
    other clients come from, whose service models and endpoint data are loaded already. Left to
    itself, Powertools builds each provider on a new boto3 Session, which loads them all again
    (60-150 ms at a function's first read). Built again after parameters.clear_caches()."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

    if kind not in DEFAULT_PROVIDERS:
        import boto3  # a function's clients have imported it already

        provider, service = _PROVIDERS[kind]
        DEFAULT_PROVIDERS[kind] = getattr(parameters, provider)(boto3_client=boto3.client(service))
    return DEFAULT_PROVIDERS[kind]


def secret_json(name: str, *, force_fetch: bool = False) -> dict[str, Any]:
    """A JSON secret from Secrets Manager, cached for SECRETS_MAX_AGE_SECONDS (`force_fetch`: read
    from Secrets Manager now, and cache that).

    Powertools caches by (name, transform) only, so rotation keeps current and previous values
    inside one JSON secret rather than reading AWSPREVIOUS (anchors.md §2.1).
    """
    value = parameters_provider("secrets").get(
        name, transform="json", max_age=core_settings().secrets_max_age, force_fetch=force_fetch
    )
    if not isinstance(value, dict):
        raise ConfigurationError(f"secret {name} must hold a JSON object")
    return value


def ssm_parameter(name: str) -> str:
    """An SSM parameter's value, cached for SECRETS_MAX_AGE_SECONDS."""
    return str(parameters_provider("ssm").get(name, max_age=core_settings().secrets_max_age))


def put_secret_json(name: str, value: dict[str, Any]) -> None:
    """Store `value` as the secret's new current version (secretsmanager:PutSecretValue; the
    function's role must allow it on that secret), then read it back into the cache, so that
    this container uses it at once. Raises botocore's ClientError when it cannot be stored."""
    import json

    parameters_provider("secrets").client.put_secret_value(SecretId=name, SecretString=json.dumps(value))
    secret_json(name, force_fetch=True)


def clear_caches() -> None:
    """Forget settings and cached secrets (tests; a function never needs this)."""
    from aws_lambda_powertools.utilities import parameters

    core_settings.cache_clear()
    submission_settings.cache_clear()
    reconciler_settings.cache_clear()
    callback_retry_settings.cache_clear()
    parameters.clear_caches()
