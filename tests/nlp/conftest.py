"""Fixtures of the nlp tests: the bundled model shipped in the package (``shared_dir`` comes from
tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bundled():
    """The bundled default model (``nlp/data/model``), loaded once per session."""
    from nlp import load_classifier

    return load_classifier()
