"""Evaluating a classifier on labelled data: figures, a markdown report and a confusion matrix."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import expected_calibration_error
from .model import TaxonomyClassifier
from .types import Prediction


def _gold_of(pred: Prediction, gold: str, clf: TaxonomyClassifier) -> tuple[str, str, str]:
    """(predicted label at the gold's level, predicted group, gold group)."""
    tax = clf.taxonomy if clf.space.taxonomy_based else None
    pred_group = pred.parent_code or pred.code
    if tax is None:
        return pred.code, pred_group, gold
    gold_group = tax.top_level_of(gold) or gold
    if len(gold) == 2:
        return pred_group, pred_group, gold_group
    return pred.code, pred_group, gold_group


def evaluate(
    clf: TaxonomyClassifier,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    out_dir: str | Path | None = None,
    batch_size: int = 512,
    title: str = "evaluation",
) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    preds: list[Prediction] = []
    for i in range(0, len(texts), batch_size):
        preds.extend(clf.classify(list(texts[i : i + batch_size])))
    rows = [_gold_of(p, g, clf) for p, g in zip(preds, labels, strict=True)]
    y_pred = [r[0] for r in rows]
    g_pred = [r[1] for r in rows]
    g_gold = [r[2] for r in rows]
    label_set = sorted(set(labels))
    conf = np.asarray([p.confidence for p in preds])
    correct_group = np.asarray([a == b for a, b in zip(g_pred, g_gold, strict=True)])
    routed = np.asarray([not p.needs_review for p in preds])
    p_, r_, f_, s_ = precision_recall_fscore_support(labels, y_pred, labels=label_set, zero_division=0)
    metrics: dict[str, Any] = {
        "n": len(labels),
        "accuracy": float(accuracy_score(labels, y_pred)),
        "macro_f1": float(f1_score(labels, y_pred, labels=label_set, average="macro", zero_division=0)),
        "top_level_accuracy": float(correct_group.mean()) if len(preds) else 0.0,
        "ece": expected_calibration_error(conf, correct_group),
        "coverage": float(routed.mean()) if len(preds) else 0.0,
        "precision_routed": float(correct_group[routed].mean()) if routed.any() else 1.0,
        "target_precision": clf.meta.get("target_precision"),
        "urgent": int(sum(p.urgent for p in preds)),
        "model_version": clf.version,
        "per_class": {
            lb: {"precision": float(p_[i]), "recall": float(r_[i]), "f1": float(f_[i]), "support": int(s_[i])}
            for i, lb in enumerate(label_set)
        },
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        groups = sorted(set(g_gold) | set(g_pred))
        cm = confusion_matrix(g_gold, g_pred, labels=groups)
        _plot_confusion(cm, groups, out / "confusion_matrix.png", clf)
        metrics["reliability"] = reliability_table(conf, correct_group)
        plot_reliability(metrics["reliability"], out / "reliability.png", f"{clf.version}, n={len(preds)}")
        (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
        (out / "report.md").write_text(_report(metrics, title, groups, cm), encoding="utf-8")
        metrics["report"] = str(out / "report.md")
        metrics["confusion_matrix"] = str(out / "confusion_matrix.png")
        metrics["reliability_diagram"] = str(out / "reliability.png")
    return metrics


def reliability_table(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per confidence bin (equal width): count, mean confidence and accuracy (top level)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        m = idx == b
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "n": int(m.sum()),
                "confidence": float(conf[m].mean()) if m.any() else 0.0,
                "accuracy": float(correct[m].mean()) if m.any() else 0.0,
            }
        )
    return rows


def plot_reliability(table: list[dict[str, float]], path: Path, subtitle: str = "") -> None:
    """The reliability diagram: accuracy against confidence per bin (the diagonal is perfect
    calibration), with how many predictions fall in each bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = [r for r in table if r["n"]]
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
    ax.bar(
        [(r["low"] + r["high"]) / 2 for r in filled],
        [r["accuracy"] for r in filled],
        width=[r["high"] - r["low"] for r in filled],
        alpha=0.6,
        edgecolor="black",
        label="accuracy",
    )
    ax.plot(
        [r["confidence"] for r in filled],
        [r["accuracy"] for r in filled],
        "o-",
        color="C3",
        label="mean confidence vs accuracy",
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("top-level accuracy")
    ax.set_title(f"reliability diagram\n{subtitle}", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    hist.bar(
        [(r["low"] + r["high"]) / 2 for r in table],
        [r["n"] for r in table],
        width=[r["high"] - r["low"] for r in table],
        color="C0",
        edgecolor="black",
    )
    hist.set_xlim(0, 1)
    hist.set_xlabel("confidence")
    hist.set_ylabel("predictions")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_confusion(cm: np.ndarray, groups: list[str], path: Path, clf: TaxonomyClassifier) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Chinese glyphs are often missing from the installed fonts; label with codes or indices.
    ticks = [g if g.isascii() else str(i) for i, g in enumerate(groups)]
    n = len(groups)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * n + 2), max(4, 0.5 * n + 2)))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), ticks, rotation=90)
    ax.set_yticks(range(n), ticks)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"confusion matrix ({clf.version})")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        str(cm[i, j]),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _report(m: dict[str, Any], title: str, groups: list[str], cm: np.ndarray) -> str:
    lines = [
        f"# {title}",
        "",
        f"Model `{m['model_version']}`, {m['n']} examples.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| accuracy | {m['accuracy']:.4f} |",
        f"| macro-F1 | {m['macro_f1']:.4f} |",
        f"| top-level accuracy | {m['top_level_accuracy']:.4f} |",
        f"| expected calibration error | {m['ece']:.4f} |",
        f"| auto-dispatch coverage (share routed without a moderator) | {m['coverage']:.4f} |",
        f"| auto-dispatch precision, top level (target {m['target_precision']}) | {m['precision_routed']:.4f} |",
        f"| flagged urgent | {m['urgent']} |",
        "",
        "## Per class",
        "",
        "| label | precision | recall | F1 | support |",
        "| --- | --- | --- | --- | --- |",
    ]
    for lb, v in m["per_class"].items():
        lines.append(f"| {lb} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |")
    if m.get("reliability"):
        lines += [
            "",
            "## Reliability (top-level confidence)",
            "",
            "![reliability diagram](reliability.png)",
            "",
            "| confidence bin | predictions | mean confidence | accuracy |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r['low']:.1f}-{r['high']:.1f} | {r['n']} | {r['confidence']:.3f} | {r['accuracy']:.3f} |"
            for r in m["reliability"]
            if r["n"]
        ]
    lines += [
        "",
        "## Confusion matrix (top level; rows gold, columns predicted)",
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "| gold \\ predicted | " + " | ".join(f"{i}" for i in range(len(groups))) + " |",
        "| --- |" + " --- |" * len(groups),
    ]
    for i, g in enumerate(groups):
        lines.append(f"| {i} {g} | " + " | ".join(str(v) for v in cm[i]) + " |")
    return "\n".join(lines) + "\n"
