"""Fixtures of the nlp tests: a bundled model trained once per session (``shared_dir`` comes from
tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def bundled(model_cache: Path):
    """The bundled default model, trained from the seed corpus into a session temp dir."""
    from nlp import load_classifier

    return load_classifier(cache_dir=model_cache)
