"""The public data types of the classifier seam."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Candidate:
    code: str
    name: str
    confidence: float


@dataclass(frozen=True)
class Prediction:
    code: str  # most specific code chosen: subcategory when known, else top level, or a flat label
    name: str
    parent_code: str | None  # top-level code when `code` is a subcategory
    parent_name: str | None
    confidence: float  # calibrated probability of the top-level prediction
    top_k: tuple[Candidate, ...]  # top 3 top-level candidates, best first
    explanation: str
    needs_review: bool  # a moderator decides: see review_reason
    priority: str  # P1..P4; P1 whenever an urgency rule fires
    urgent: bool
    model_version: str
    set_by: str  # "model", "rule" (an urgency rule chose the category) or "input" (no category: see review_reason)
    label: str = ""  # the model's own label (for a subcategory model: the argmax subcategory)
    threshold: float = 0.0  # the auto-routing threshold that applied
    # why a moderator must decide: "low_confidence" (confidence below the category's threshold),
    # "no_text" (empty or photo-only) or "not_chinese" (another language or script); None: routable
    review_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Classifier(Protocol):
    version: str

    def classify(self, texts: Sequence[str]) -> list[Prediction]: ...
