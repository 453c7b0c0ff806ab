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
    min_support: int = 30,
) -> tuple[dict[str, float], float]:
    """Per-class confidence thresholds reaching ``target_precision`` on held-out predictions.

    Each predicted class with at least ``min_support`` held-out predictions gets an isotonic
    (monotone) estimate of P(correct | confidence) fitted on its own predictions. Predictions are
    then admitted in order of that estimate, across classes, as long as the admitted ones stay
    correct with add-one smoothed precision ``(correct + 1) / (n + 2) >= target``; a class's
    threshold is the lowest confidence admitted for it. This keeps the overall precision of
    auto-routed reports at the target while letting reliable classes route more (thresholds set
    class by class, each to its own target, are noisier and route measurably less: 0.78 vs 0.83
    of the gov_messages_7class dev split at 97 %). Rarer classes get the global threshold, the
    lowest confidence at which all predictions above it reach the target. A class whose target
    cannot be met gets a threshold above 1 (always review).
    """
    from sklearn.isotonic import IsotonicRegression

    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    predicted_arr = np.asarray(predicted)
    glob = _threshold(conf, ok, target_precision)
    all_classes = sorted(set(predicted_arr.tolist()))
    classes = [c for c in all_classes if int((predicted_arr == c).sum()) >= min_support]
    rare = {c: glob for c in all_classes if c not in classes}
    if not classes:
        return rare, glob
    masks = {c: predicted_arr == c for c in classes}
    est = np.full(len(conf), -1.0)  # rare classes: routed by the global threshold, not ranked here
    for m in masks.values():
        iso = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0.0, y_max=1.0)
        est[m] = iso.fit(conf[m], ok[m].astype(float)).predict(conf[m])
    ranked = est >= 0
    order = np.argsort(-est[ranked], kind="stable")
    e, hits = est[ranked][order], ok[ranked][order].astype(float)
    prec = (np.cumsum(hits) + 1) / (np.arange(1, len(e) + 1) + 2)
    last = np.ones(len(e), dtype=bool)  # admit whole ties of the estimate only
    last[:-1] = e[:-1] != e[1:]
    good = np.nonzero((prec >= target_precision) & last)[0]
    tau = float(e[good.max()]) if len(good) else 2.0
    out: dict[str, float] = dict(rare)
    for c, m in masks.items():
        admitted = m & (est >= tau)
        out[c] = float(conf[admitted].min()) if admitted.any() else 1.01
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


MIN_MAP_ROWS = 200  # fewer held-out predictions than this: the temperature alone calibrates


def fit_confidence_map(conf: np.ndarray, correct: np.ndarray) -> tuple[list[float], list[float]] | None:
    """A monotone map from the softmax confidence to the observed accuracy (isotonic regression on
    held-out predictions), as the knots of a piecewise-linear function; None with too little data.

    One temperature cannot fix a model that is under-confident in the middle and over-confident
    at the top (the linear model's margins on long real texts); the map can, and being monotone it
    keeps the order of predictions, so thresholds and rankings mean the same. Each block of the
    isotonic fit gets its add-one smoothed accuracy ``(correct + 1) / (n + 2)``: a block where every
    held-out prediction was right does not claim certainty (1.0) on what it has not seen.
    """
    from sklearn.isotonic import IsotonicRegression

    if len(conf) < MIN_MAP_ROWS:
        return None
    order = np.argsort(conf, kind="stable")
    c = np.asarray(conf, dtype=np.float64)[order]
    ok = np.asarray(correct, dtype=np.float64)[order]
    fitted = IsotonicRegression(increasing=True, out_of_bounds="clip").fit_transform(c, ok)
    starts = np.flatnonzero(np.r_[True, fitted[1:] != fitted[:-1]])
    ends = np.r_[starts[1:], len(c)]
    xs: list[float] = []
    ys: list[float] = []
    best = 0.0
    for a, b in zip(starts, ends, strict=True):
        best = max(best, float((ok[a:b].sum() + 1) / (b - a + 2)))  # keep it monotone after smoothing
        xs += [float(c[a]), float(c[b - 1])]
        ys += [best, best]
    return [0.0, *xs, 1.0], [ys[0], *ys, ys[-1]]


def apply_confidence_map(conf: np.ndarray, knots: tuple[list[float], list[float]] | None) -> np.ndarray:
    if knots is None:
        return np.asarray(conf, dtype=np.float64)
    out: np.ndarray = np.interp(conf, knots[0], knots[1])
    return out
