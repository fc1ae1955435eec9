"""Configuration errors name the variable at fault."""

from __future__ import annotations

import pytest

from handoff import settings, vendors
from handoff.vendors.playment import playment_settings


def test_missing_project_id_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLAYMENT_PROJECT_ID")
    settings.clear_caches()
    vendors.reset()
    with pytest.raises(settings.ConfigurationError, match="PLAYMENT_PROJECT_ID"):
        playment_settings()
    settings.clear_caches()
    vendors.reset()


def test_path_template_without_project_placeholder_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYMENT_CREATE_JOB_PATH", "/v0/jobs")
    settings.clear_caches()
    vendors.reset()
    with pytest.raises(settings.ConfigurationError, match="PLAYMENT_CREATE_JOB_PATH"):
        playment_settings()
    settings.clear_caches()
    vendors.reset()
