"""Probability calibration, per-category thresholds and the figures that measure them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def fit_temperature(logits: np.ndarray, y: np.ndarray, agg: np.ndarray | None = None) -> float:
    """The softmax temperature minimising the negative log-likelihood of ``y``.

    ``agg`` (labels x groups, 0/1) aggregates label probabilities into groups first; then ``y``
    holds group indices (calibrating the top-level probability of a subcategory model).
    """
    if len(y) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        p = softmax(logits, float(np.exp(log_t)))
        if agg is not None:
            p = p @ agg
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))

    res = minimize_scalar(nll, bounds=(np.log(0.005), np.log(50.0)), method="bounded", options={"xatol": 1e-3})
    return float(np.exp(res.x))


def choose_thresholds(
    confidence: np.ndarray,
    predicted: Sequence[str],
    correct: np.ndarray,
    target_precision: float,
    *,
    min_support: int = 10,
) -> tuple[dict[str, float], float]:
    """Per-class confidence thresholds reaching ``target_precision`` on held-out predictions.

    For each predicted class the threshold is the lowest confidence such that the predictions of
    that class at or above it are correct with add-one smoothed precision
    ``(correct + 1) / (n + 2) >= target`` (small samples therefore need more evidence). Classes
    predicted fewer than ``min_support`` times use the global threshold, chosen the same way over
    all predictions. A class whose target cannot be met gets a threshold above 1 (always review).
    """
    predicted_arr = np.asarray(predicted)
    glob = _threshold(confidence, correct, target_precision)
    out: dict[str, float] = {}
    for cls in sorted(set(predicted_arr.tolist())):
        mask = predicted_arr == cls
        if int(mask.sum()) < min_support:
            continue
        out[cls] = _threshold(confidence[mask], correct[mask], target_precision)
    return out, glob


def _threshold(conf: np.ndarray, correct: np.ndarray, target: float) -> float:
    order = np.argsort(-conf, kind="stable")
    c = conf[order]
    ok = correct[order].astype(float)
    cum = np.cumsum(ok)
    n = np.arange(1, len(c) + 1)
    prec = (cum + 1) / (n + 2)
    good = np.nonzero(prec >= target)[0]
    if len(good) == 0:
        return 1.01
    k = int(good.max())
    # ties: the threshold must not admit items with the same confidence beyond k
    return float(c[k])


def expected_calibration_error(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width bins over the top-label confidence."""
    if len(conf) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(float(conf[m].mean()) - float(correct[m].mean()))
    return float(total)


def coverage_at(conf: np.ndarray, thresholds: np.ndarray, correct: np.ndarray) -> tuple[float, float]:
    """Share of items auto-routed (confidence >= their threshold) and the precision among them."""
    routed = conf >= thresholds
    cov = float(routed.mean()) if len(conf) else 0.0
    prec = float(correct[routed].mean()) if routed.any() else 1.0
    return cov, prec
