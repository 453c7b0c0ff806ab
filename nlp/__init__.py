"""Chinese text processing for the gateway: classification, urgency, de-duplication, PII masking.

Nothing heavy happens at import: the jieba dictionary, models and torch load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .pii import mask_pii
from .types import Candidate, Classifier, Prediction

if TYPE_CHECKING:
    from .model import TaxonomyClassifier

__all__ = ["Candidate", "Classifier", "Prediction", "load_classifier", "mask_pii"]


def load_classifier(
    model_dir: str | Path | None = None,
    *,
    taxonomy_path: str | Path | None = None,
    runtime: str | None = None,
) -> TaxonomyClassifier:
    """A classifier for ``model_dir``, or the bundled default model (see ``nlp.loader``)."""
    from .loader import load_classifier as _load

    return _load(model_dir, taxonomy_path=taxonomy_path, runtime=runtime)
