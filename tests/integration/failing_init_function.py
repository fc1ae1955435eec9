"""A function whose init (its module's import) raises, as a misconfigured function's does."""

from __future__ import annotations

raise RuntimeError("this function's init fails on purpose")
