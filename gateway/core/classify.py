"""The classification seam between the core and ``nlp``.

``NlpClassifier`` wraps ``nlp.load_classifier`` (loaded once, lazily, off the event loop);
``PlaceholderClassifier`` is the named stand-in that sends every report to moderators, used when
``GATEWAY_CLASSIFIER=placeholder`` (tests of the core, or a deployment without a model).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nlp import load_classifier


@dataclass(frozen=True, slots=True)
class Classification:
    code: str | None
    name: str | None
    parent: str | None
    confidence: float
    needs_review: bool
    priority: str
    urgent: bool
    model_version: str
    set_by: str  # model | rule | placeholder | no_text | not_chinese (no category: an input check sent it to review)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    explanation: str = ""
    parent_name: str | None = None


class ReportClassifier(Protocol):
    async def classify(self, text: str) -> Classification: ...


async def classify_many(classifier: ReportClassifier, texts: Sequence[str]) -> list[Classification]:
    """Classify ``texts`` in one call where the classifier takes lists (``NlpClassifier``)."""
    many = getattr(classifier, "classify_many", None)
    if many is not None:
        found: list[Classification] = await many(texts)
        return found
    return [await classifier.classify(t) for t in texts]


class PlaceholderClassifier:
    """Marks every report ``needs_review``: a stand-in, named as such in the report."""

    version = "placeholder"

    async def classify(self, text: str) -> Classification:
        return Classification(
            code=None,
            name=None,
            parent=None,
            confidence=0.0,
            needs_review=True,
            priority="P3",
            urgent=False,
            model_version=self.version,
            set_by="placeholder",
            explanation="placeholder classifier: every report goes to moderator review",
        )


class NlpClassifier:
    """The ``nlp`` package's classifier, loaded on first use in a worker thread (loading never
    trains: the bundled model ships in the package). ``cache_dir`` is not used any more."""

    def __init__(self, model_dir: Path | None, taxonomy: Path | None, cache_dir: Path | None = None) -> None:
        self._args = (model_dir, taxonomy)
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                model_dir, taxonomy = self._args
                self._model = load_classifier(model_dir, taxonomy_path=taxonomy)
            return self._model

    def _classify_sync(self, texts: Sequence[str]) -> list[Classification]:
        return [self._classification(pred) for pred in self._load().classify(list(texts))]

    @staticmethod
    def _classification(pred: Any) -> Classification:
        # An input the model must not guess on (no text, not Chinese) has no code; set_by names why.
        unreadable = pred.set_by == "input"
        return Classification(
            code=pred.code or None,
            name=pred.name or None,
            parent=pred.parent_code,
            parent_name=pred.parent_name,
            confidence=float(pred.confidence),
            needs_review=bool(pred.needs_review),
            priority=pred.priority,
            urgent=bool(pred.urgent),
            model_version=pred.model_version,
            set_by=str(pred.review_reason) if unreadable else pred.set_by,
            candidates=[{"code": c.code, "name": c.name, "confidence": float(c.confidence)} for c in pred.top_k],
            explanation=pred.explanation,
        )

    async def warm_up(self) -> None:
        await asyncio.to_thread(self._load)

    async def classify(self, text: str) -> Classification:
        return (await self.classify_many([text]))[0]

    async def classify_many(self, texts: Sequence[str]) -> list[Classification]:
        """One model call for all ``texts`` (in a worker thread)."""
        return await asyncio.to_thread(self._classify_sync, texts)
