"""Training a model directory: fit, calibrate, choose thresholds, write ``meta.json``."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import apply_confidence_map, choose_thresholds, fit_confidence_map, fit_temperature, softmax
from .model import NEVER_ROUTED_GROUPS, Backend, LabelSpace, write_meta
from .segment import normalize
from .taxonomy import Taxonomy

CODE_VERSION = "3"  # bump when features or training change in a way that invalidates models
NEVER = 1.01  # a threshold no confidence reaches


def _progress(enabled: bool) -> Callable[[str], None]:
    def say(msg: str) -> None:
        if enabled:
            print(f"[train] {msg}", flush=True)

    return say


def _normalize_all(texts: Sequence[str], progress: bool, desc: str) -> list[str]:
    if progress:
        from tqdm import tqdm

        return [normalize(t) for t in tqdm(texts, desc=desc, unit="text", mininterval=0.5)]
    return [normalize(t) for t in texts]


def _cal_source(backend: str, has_dev: bool, cv_folds: int) -> str:
    if backend != "linear":
        return "dev" if has_dev else "held-out 10%"
    cv = f"{cv_folds}-fold cross-validation" if cv_folds >= 2 else ""
    return " + ".join(x for x in (cv, "dev" if has_dev else "") if x) or "none"


def data_fingerprint(texts: Sequence[str], labels: Sequence[str], extra: Any = None) -> str:
    h = hashlib.sha256()
    for t, lb in zip(texts, labels, strict=True):
        h.update(t.encode("utf-8"))
        h.update(b"\x1f")
        h.update(lb.encode("utf-8"))
        h.update(b"\x1e")
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def train_model(
    texts: Sequence[str],
    labels: Sequence[str],
    out_dir: str | Path,
    *,
    taxonomy: Taxonomy | None = None,
    backend: str = "linear",
    dev_texts: Sequence[str] | None = None,
    dev_labels: Sequence[str] | None = None,
    seed: int = 0,
    target_precision: float = 0.97,
    base_model: str | Path | None = None,
    linear_params: Any = None,
    transformer_params: Any = None,
    cv_folds: int = 5,
    groups: Sequence[str] | None = None,
    progress: bool = False,
    version_prefix: str = "",
    sample_weight: Sequence[float] | None = None,
    calibration_rows: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """Train a model into ``out_dir`` (replaced if it exists) and return its metadata.

    Calibration (the softmax temperature) and the per-category thresholds are fitted on held-out
    scores. Linear backend: the out-of-fold scores of ``cv_folds``-fold cross validation over the
    training data (rows sharing a ``groups`` value stay in one fold; ``cv_folds`` < 2 turns it
    off) pooled with the full model's scores of ``dev_texts`` when given; the text features are
    fitted inside each fold. ``calibration_rows`` (a mask over ``texts``) limits the cross-validation
    to those rows (e.g. real reports, never generated sentences): the other rows are in every
    fold's training data and calibrate nothing. ``sample_weight`` weights the rows in training.
    Transformer backend: ``dev_texts``, else a held-out 10 % of the training data.

    The metadata records only figures measured on held-out scores (``calibration``: the
    cross-validated top-level accuracy); coverage and precision are measured by ``evaluate`` on
    data the thresholds were not chosen from.
    """
    if len(texts) != len(labels) or not texts:
        raise ValueError("need the same positive number of texts and labels")
    if (dev_texts is None) != (dev_labels is None):
        raise ValueError("give both dev_texts and dev_labels, or neither")
    say = _progress(progress)
    started = time.perf_counter()
    out = Path(out_dir)
    label_list = sorted(set(labels))
    index = {lb: i for i, lb in enumerate(label_list)}
    domain_words = sorted(taxonomy.keywords()) if taxonomy is not None else []
    space = LabelSpace.build(label_list, taxonomy)
    texts = list(texts)
    labels = list(labels)

    model_backend: Backend
    if backend == "transformer":
        from .transformer import TransformerParams, train_transformer

        params_t = transformer_params or TransformerParams()
        fit_texts, fit_labels = texts, labels
        cal_texts: list[str] = list(dev_texts) if dev_texts is not None else []
        cal_labels: list[str] = list(dev_labels) if dev_labels is not None else []
        if dev_texts is None:
            rng = np.random.default_rng(seed)
            perm = rng.permutation(len(texts))
            n_cal = max(1, len(texts) // 10) if len(texts) >= 10 else 0
            cal_idx, fit_idx = perm[:n_cal], perm[n_cal:]
            fit_texts = [texts[i] for i in fit_idx]
            fit_labels = [labels[i] for i in fit_idx]
            cal_texts = [texts[i] for i in cal_idx]
            cal_labels = [labels[i] for i in cal_idx]
        fit_norm = _normalize_all(fit_texts, progress, "normalize")
        model_backend = train_transformer(
            fit_norm,
            np.asarray([index[lb] for lb in fit_labels]),
            label_list,
            base_model,
            params_t,
            seed=seed,
            progress=progress,
        )
        cal_norm = _normalize_all(cal_texts, False, "normalize dev")
        cal_logits = model_backend.logits(cal_norm)[0] if cal_norm else np.zeros((0, len(label_list)))
        cal_gold = cal_labels
        params_dump: dict[str, Any] = asdict(params_t)
        model_backend_kind = "transformer"
    elif backend == "linear":
        from .linear import LinearParams, train_linear

        params_l = linear_params or LinearParams()
        norm = _normalize_all(texts, progress, "normalize")
        y = np.asarray([index[lb] for lb in labels])
        cal_mask = np.ones(len(texts), dtype=bool) if calibration_rows is None else np.asarray(calibration_rows, bool)
        model_backend, oof = train_linear(
            norm,
            y,
            label_list,
            domain_words,
            params_l,
            seed=seed,
            cv_folds=cv_folds,
            groups=groups,
            progress=say,
            sample_weight=None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64),
            cv_rows=None if calibration_rows is None else cal_mask,
            label_groups=space.agg.argmax(axis=1).tolist() if space.taxonomy_based else None,
        )
        # Held-out scores for calibration and thresholds: out-of-fold scores of the training data
        # and the full model's scores of the dev data, pooled (more evidence, steadier thresholds).
        parts: list[np.ndarray] = []
        cal_gold = []
        if oof is not None:
            parts.append(oof[cal_mask])
            cal_gold.extend(lb for lb, m in zip(labels, cal_mask, strict=True) if m)
        if dev_texts is not None and dev_labels is not None:
            parts.append(model_backend.logits(_normalize_all(dev_texts, progress, "normalize dev"))[0])
            cal_gold.extend(dev_labels)
        cal_logits = np.concatenate(parts) if parts else np.zeros((0, len(label_list)))
        params_dump = asdict(params_l)
        model_backend_kind = "linear"
    else:
        raise ValueError(f"unknown backend {backend!r} (linear or transformer)")

    say("calibrate")
    gold_group = space.group_index(cal_gold, taxonomy)
    keep = gold_group >= 0
    cal_logits = np.asarray(cal_logits, dtype=np.float64)[keep]
    gold_group = gold_group[keep]
    # Without held-out data, a temperature typical of SVM margins (softmax of raw margins would be
    # nearly uniform over many labels and favour top-level categories with many subcategories).
    default_t = 0.1 if backend == "linear" else 1.0
    temperature = fit_temperature(cal_logits, gold_group, space.agg) if len(gold_group) else default_t
    probs = softmax(cal_logits, temperature) if len(gold_group) else np.zeros((0, len(label_list)))
    pred, conf = space.decide(probs, probs @ space.agg)
    correct = pred == gold_group
    conf_map = fit_confidence_map(conf, correct)
    conf = apply_confidence_map(conf, conf_map)
    pred_names = [space.groups[i] for i in pred]
    # Predictions of a group that never routes (99: fits no category) choose no threshold.
    never = {g for g in space.groups if space.taxonomy_based and g in NEVER_ROUTED_GROUPS}
    routable = np.asarray([p not in never for p in pred_names], dtype=bool)
    thresholds, default_threshold = choose_thresholds(
        conf[routable],
        [p for p, r in zip(pred_names, routable, strict=True) if r],
        correct[routable],
        target_precision,
    )
    thresholds.update({g: NEVER for g in never})
    cal_metrics = {
        "source": _cal_source(backend, dev_texts is not None, cv_folds),
        "n": int(len(gold_group)),
        # held-out (out-of-fold / dev) predictions; the argmax does not depend on the temperature
        "top_level_accuracy": float(correct.mean()) if len(correct) else None,
    }

    fingerprint = data_fingerprint(
        texts,
        labels,
        {
            "backend": backend,
            "params": params_dump,
            "seed": seed,
            "code": CODE_VERSION,
            "taxonomy": taxonomy.sha256 if taxonomy else None,
            "dev": data_fingerprint(list(dev_texts or []), list(dev_labels or [])),
            "weights": None if sample_weight is None else [round(float(w), 6) for w in sample_weight],
            "calibration_rows": None if calibration_rows is None else [bool(m) for m in calibration_rows],
        },
    )
    version = f"{version_prefix}{model_backend_kind}-{fingerprint[:12]}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model_backend.save(out)
    counts = {lb: labels.count(lb) for lb in label_list}
    train_seconds = round(time.perf_counter() - started, 2)
    meta = {
        "version": version,
        "backend": model_backend_kind,
        "labels": label_list,
        "label_counts": counts,
        "taxonomy_based": space.taxonomy_based,
        "taxonomy_sha256": taxonomy.sha256 if taxonomy is not None else None,
        "taxonomy_name": taxonomy.name if taxonomy is not None else None,
        "temperature": temperature,
        "confidence_map": {"x": conf_map[0], "y": conf_map[1]} if conf_map else None,
        "target_precision": target_precision,
        "thresholds": thresholds,
        "default_threshold": default_threshold,
        "seed": seed,
        "params": params_dump,
        "calibration": cal_metrics,
        "train": {
            "n": len(texts),
            "seconds": train_seconds,
            "data_sha256": fingerprint,
            "code_version": CODE_VERSION,
            "python": platform.python_version(),
            "base_model": str(base_model) if base_model else None,
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_meta(out, meta)
    say(f"wrote {out} ({version}) in {train_seconds} s")
    return meta
