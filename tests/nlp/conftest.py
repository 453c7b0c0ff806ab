"""Fixtures of the nlp tests: the ../shared lookup and a bundled model trained once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def find_shared_dir() -> Path | None:
    """``../shared`` next to the repository (overridable with GATEWAY_SHARED_DIR), if it exists."""
    env = os.environ.get("GATEWAY_SHARED_DIR")
    path = Path(env) if env else REPO.parent / "shared"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder; skipped when missing, but a failure when CI=true."""
    path = find_shared_dir()
    if path is None:
        msg = f"{REPO.parent / 'shared'} is missing (datasets and taxonomy sources live there)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + "; CI=true requires it")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def bundled(model_cache: Path):
    """The bundled default model, trained from the seed corpus into a session temp dir."""
    from nlp import load_classifier

    return load_classifier(cache_dir=model_cache)
