"""TEXTKING's settings: each field named by its environment variable (its alias), validated once
per container."""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, field_validator

from handoff.settings import ConfigurationError, env_settings, ssm_parameter


class TextkingSettings(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    secret_name: str = Field(alias="TEXTKING_SECRET_NAME", min_length=1)
    base_url: str = Field(
        alias="TEXTKING_BASE_URL", default="https://api.textking.com/v1", pattern=r"^https?://[^\s]+$"
    )
    # The OAuth token endpoint, for the refresh grant (REFERENCE.md §2.1): used only when the
    # secret holds a refresh_token; on another host than the API.
    oauth_token_url: str = Field(
        alias="TEXTKING_OAUTH_TOKEN_URL", default="https://www.textking.com/oauth/token", pattern=r"^https?://[^\s]+$"
    )
    # Where TEXTKING should POST callbacks: given directly (local stack, custom domain) or read
    # from the SSM parameter that the stack writes (the API's URL cannot be a plain !Ref in the
    # function's environment without a circular dependency).
    callback_url: str = Field(alias="TEXTKING_CALLBACK_URL", default="")
    callback_url_parameter: str = Field(alias="TEXTKING_CALLBACK_URL_PARAMETER", default="")
    ordering_enabled: bool = Field(alias="TEXTKING_ORDERING_ENABLED", default=False)
    qualities: str = Field(alias="TEXTKING_QUALITIES", default="translation,translation-and-correction")
    default_project_name: str = Field(alias="TEXTKING_DEFAULT_PROJECT_NAME", default="Handoff")
    # The one bucket documents may be named from by s3:// URI ("": none; send text instead).
    document_bucket: str = Field(alias="TEXTKING_DOCUMENT_BUCKET", default="")

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def quality_names(self) -> frozenset[str]:
        return frozenset(q.strip() for q in self.qualities.split(",") if q.strip())


@lru_cache(maxsize=1)
def textking_settings() -> TextkingSettings:
    """Raises ConfigurationError naming each missing or malformed TEXTKING_* variable."""
    settings: TextkingSettings = env_settings(TextkingSettings)
    return settings


def textking_callback_url() -> str:
    settings = textking_settings()
    if settings.callback_url:
        return settings.callback_url
    if not settings.callback_url_parameter:
        raise ConfigurationError("set TEXTKING_CALLBACK_URL or TEXTKING_CALLBACK_URL_PARAMETER")
    return ssm_parameter(settings.callback_url_parameter)
