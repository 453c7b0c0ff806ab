"""From backend scores to ``Prediction``s: calibration, the two levels, thresholds, urgency.

A model directory holds ``meta.json`` (this module reads it) and the backend's own files.
Labels are either taxonomy codes (subcategories "0102" and/or top-level "01") or flat labels
(any other strings, e.g. the 7 classes of a 12345 dataset). For taxonomy labels the confidence is
the calibrated probability of the top-level category (the sum over its subcategories); the
subcategory is the model's best one inside that category when the model knows subcategories of
it, else the taxonomy keyword rule with the most (and longest) keyword hits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .calibration import apply_confidence_map, softmax
from .inputs import NO_TEXT, NOT_CHINESE, input_problem
from .segment import normalize
from .taxonomy import Category, Taxonomy
from .types import Candidate, Prediction
from .urgency import detect_urgency

META_FILE = "meta.json"
FORMAT = 1
NEVER_ROUTED_GROUPS = frozenset({"99"})  # "other or unclear": a moderator's decision whatever the confidence


class Backend(Protocol):
    kind: str
    labels: list[str]

    def logits(self, normalized: Sequence[str]) -> tuple[np.ndarray, Any]: ...

    def top_features(self, ctx: Any, row: int, label_idx: int, k: int = 3) -> list[str]: ...

    def save(self, model_dir: Path) -> None: ...


@dataclass
class LabelSpace:
    """How model labels map onto reported (top-level) classes."""

    labels: list[str]
    groups: list[str]  # top-level codes, or the labels themselves for a flat model
    agg: np.ndarray  # labels x groups, 0/1
    taxonomy_based: bool

    @classmethod
    def build(cls, labels: Sequence[str], taxonomy: Taxonomy | None) -> LabelSpace:
        labels = list(labels)
        if taxonomy is not None and labels and all(taxonomy.top_level_of(lb) for lb in labels):
            tops = [str(taxonomy.top_level_of(lb)) for lb in labels]
            groups = sorted(set(tops))
            agg = np.zeros((len(labels), len(groups)), dtype=np.float64)
            for i, t in enumerate(tops):
                agg[i, groups.index(t)] = 1.0
            return cls(labels, groups, agg, True)
        return cls(labels, labels, np.eye(len(labels)), False)

    @property
    def label_group(self) -> np.ndarray:
        """The group index of each label."""
        out: np.ndarray = self.agg.argmax(axis=1)
        return out

    def decide(self, probs: np.ndarray, gprobs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the chosen group (that of the best label) and its probability."""
        pred = self.label_group[probs.argmax(axis=1)] if len(probs) else np.zeros(0, dtype=int)
        conf = gprobs[np.arange(len(pred)), pred] if len(pred) else np.zeros(0)
        return pred, conf

    def group_index(self, labels: Sequence[str], taxonomy: Taxonomy | None) -> np.ndarray:
        """Index into ``groups`` of each gold label (-1 where unknown)."""
        out = []
        for lb in labels:
            g = taxonomy.top_level_of(lb) if (self.taxonomy_based and taxonomy is not None) else lb
            out.append(self.groups.index(g) if g in self.groups else -1)
        return np.asarray(out, dtype=int)


def keyword_subcategory(cat: Category, normalized_text: str) -> tuple[str, str] | None:
    """The subcategory of ``cat`` whose keywords match best, and the keyword that decided it."""
    best: tuple[int, str, str] | None = None
    for sub in cat.subcategories:
        score = 0
        top_kw = ""
        for kw in (*sub.keywords, sub.name):
            k = normalize(kw)
            if k and k in normalized_text:
                score += len(k)
                if len(k) > len(top_kw):
                    top_kw = k
        if score and (best is None or score > best[0]):
            best = (score, sub.code, top_kw)
    return (best[1], best[2]) if best else None


class TaxonomyClassifier:
    """The ``Classifier`` of the seam, for any backend."""

    def __init__(self, backend: Backend, meta: dict[str, Any], taxonomy: Taxonomy | None):
        self.backend = backend
        self.meta = meta
        self.taxonomy = taxonomy
        self.version: str = str(meta["version"])
        self.space = LabelSpace.build(backend.labels, taxonomy)
        self.temperature = float(meta.get("temperature", 1.0))
        cmap = meta.get("confidence_map")
        self.confidence_map = (list(cmap["x"]), list(cmap["y"])) if cmap else None
        self.thresholds: dict[str, float] = {k: float(v) for k, v in meta.get("thresholds", {}).items()}
        self.default_threshold = float(meta.get("default_threshold", 0.5))
        self._kw_cache: dict[str, Any] = {}
        self._label_sets = self._labels_by_group()

    def _labels_by_group(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(len(self.space.labels)):
            g = int(np.argmax(self.space.agg[i]))
            out.setdefault(g, []).append(i)
        return out

    def threshold_for(self, group: str) -> float:
        return self.thresholds.get(group, self.default_threshold)

    def probabilities(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray, Any]:
        """Normalized texts, label probabilities and calibrated group (top-level) probabilities."""
        normalized = [normalize(t or "") for t in texts]
        logits, ctx = self.backend.logits(normalized)
        probs = softmax(np.asarray(logits, dtype=np.float64), self.temperature)
        return normalized, probs, apply_confidence_map(probs @ self.space.agg, self.confidence_map), ctx

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        if isinstance(texts, str):
            raise TypeError("classify() takes a sequence of texts, not one string")
        if not texts:
            return []
        normalized, probs, gprobs, ctx = self.probabilities(texts)
        out = []
        for i, text in enumerate(normalized):
            problem = input_problem(text)
            out.append(self._unreadable(problem) if problem else self._predict(i, text, probs[i], gprobs[i], ctx))
        return out

    def _unreadable(self, problem: str) -> Prediction:
        """No guess: a text with no words, or not in Chinese, goes to moderators with the reason."""
        why = {NO_TEXT: "no text to classify (empty or photo only)", NOT_CHINESE: "the text is not (mostly) Chinese"}[
            problem
        ]
        return Prediction(
            code="",
            name="",
            parent_code=None,
            parent_name=None,
            confidence=0.0,
            top_k=(),
            explanation=f"{why}: a moderator decides",
            needs_review=True,
            priority="P3",
            urgent=False,
            model_version=self.version,
            set_by="input",
            review_reason=problem,
        )

    def _predict(self, row: int, text: str, probs: np.ndarray, gprobs: np.ndarray, ctx: Any) -> Prediction:
        tax = self.taxonomy if self.space.taxonomy_based else None
        groups = self.space.groups
        # The top level is that of the best label; its confidence is the calibrated probability
        # of the whole top level. (The top level with the largest summed probability would favour
        # categories with many subcategories: on held-out real reports it is right less often.)
        best_label = int(np.argmax(probs))
        g = int(self.space.label_group[best_label])
        group = groups[g]
        conf = float(gprobs[g])
        order = [g, *(j for j in np.argsort(-gprobs, kind="stable") if j != g)]
        top_k = tuple(
            Candidate(groups[j], tax.name_of(groups[j]) if tax else groups[j], round(float(gprobs[j]), 4))
            for j in order[:3]
        )
        members = self._label_sets.get(g, [])
        label = self.space.labels[best_label]
        feats = self.backend.top_features(ctx, row, best_label)
        threshold = self.threshold_for(group)
        needs_review = conf < threshold or (self.space.taxonomy_based and group in NEVER_ROUTED_GROUPS)
        parts = [f"{group} {tax.name_of(group) if tax else group} p={conf:.2f}"]
        if feats:
            parts[0] += " (" + ", ".join(feats) + ")"

        code, set_by = group, "model"
        if tax is not None:
            sub_members = [i for i in members if len(self.space.labels[i]) == 4]
            if sub_members:
                best_sub = max(sub_members, key=lambda i: probs[i])
                code = self.space.labels[best_sub]
                within = float(probs[best_sub] / max(float(probs[members].sum()), 1e-12))
                parts.append(f"subcategory {code} {tax.name_of(code)} by model ({within:.2f} within {group})")
            else:
                hit = keyword_subcategory(tax.category(group), text)
                if hit:
                    code = hit[0]
                    parts.append(f"subcategory {code} {tax.name_of(code)} by keyword rule '{hit[1]}'")
                else:
                    parts.append("no subcategory rule fired")

        if group in NEVER_ROUTED_GROUPS and tax is not None:
            parts.append(f"{group} always goes to moderators")
        urgent_hits = detect_urgency(text)
        urgent = bool(urgent_hits)
        if urgent:
            parts.append("urgent: " + ", ".join(f"{h.rule} ('{h.matched}')" for h in urgent_hits))
            if tax is not None and needs_review:
                for h in urgent_hits:
                    if h.code and h.code in tax and tax.top_level_of(h.code) in groups:
                        code, set_by = h.code, "rule"
                        parts.append(f"category {h.code} set by urgency rule {h.rule}")
                        break

        if tax is not None:
            top = str(tax.top_level_of(code))
            parent_code = top if code != top else None
            parent_name = tax.name_of(top) if parent_code else None
            priority = "P1" if urgent else (tax.priority_of(code) if parent_code else _group_priority(tax, top))
            name = tax.name_of(code)
        else:
            parent_code = parent_name = None
            priority = "P1" if urgent else "P3"
            name = code
        return Prediction(
            code=code,
            name=name,
            parent_code=parent_code,
            parent_name=parent_name,
            confidence=round(conf, 4),
            top_k=top_k,
            explanation="; ".join(parts),
            needs_review=needs_review,
            priority=priority,
            urgent=urgent,
            model_version=self.version,
            set_by=set_by,
            label=label,
            threshold=round(threshold, 4),
            review_reason="low_confidence" if needs_review else None,
        )


def _group_priority(tax: Taxonomy, top: str) -> str:
    """A top-level category's priority: the most common one among its subcategories."""
    cat = tax.category(top)
    prios = [s.priority for s in cat.subcategories]
    return max(sorted(set(prios)), key=prios.count) if prios else "P3"


def read_meta(model_dir: Path) -> dict[str, Any]:
    path = model_dir / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} is not a model directory (no {META_FILE})")
    meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported model format {meta.get('format')!r}")
    return meta


def write_meta(model_dir: Path, meta: dict[str, Any]) -> None:
    meta = {"format": FORMAT, **meta}
    (model_dir / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
