"""Scale AI's settings: each field named by its environment variable (its alias), validated once
per container."""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, field_validator

from handoff.settings import ConfigurationError, env_settings, ssm_parameter

# A Scale task type is a path segment of POST /v1/task/{type}: lower-case letters and digits
# (imageannotation, videoannotation, textcollection, ...: scaleapi.tasks.TaskType).
TASK_TYPE_PATTERN = r"^[a-z][a-z0-9]{1,63}$"


class ScaleSettings(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    secret_name: str = Field(alias="SCALE_SECRET_NAME", min_length=1)
    base_url: str = Field(alias="SCALE_BASE_URL", default="https://api.scale.com/v1", pattern=r"^https?://[^\s]+$")
    # The project (and task type) a request that names none goes to ("": the request must name it).
    project: str = Field(alias="SCALE_PROJECT", default="")
    task_type: str = Field(alias="SCALE_TASK_TYPE", default="imageannotation", pattern=TASK_TYPE_PATTERN)
    # Where Scale should POST the task's callback: given directly (local stack, custom domain) or
    # read from the SSM parameter the stack writes (the API's URL cannot be a plain !Ref in the
    # functions' environment: the API depends on the functions).
    callback_url: str = Field(alias="SCALE_CALLBACK_URL", default="")
    callback_url_parameter: str = Field(alias="SCALE_CALLBACK_URL_PARAMETER", default="")

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


@lru_cache(maxsize=1)
def scale_settings() -> ScaleSettings:
    """Raises ConfigurationError naming each missing or malformed SCALE_* variable."""
    settings: ScaleSettings = env_settings(ScaleSettings)
    return settings


def scale_callback_url() -> str:
    """The ScaleCallback function's URL, given to Scale as each task's callback_url."""
    settings = scale_settings()
    if settings.callback_url:
        return settings.callback_url
    if not settings.callback_url_parameter:
        raise ConfigurationError("set SCALE_CALLBACK_URL or SCALE_CALLBACK_URL_PARAMETER")
    return ssm_parameter(settings.callback_url_parameter)
