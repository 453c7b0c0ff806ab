"""CLI glue: ``gateway train``, ``gateway evaluate``, ``gateway classify`` (see DESIGN.md).

The gateway's argparse CLI calls ``register(subparsers)``; every subcommand sets ``func`` to a
handler ``handler(args) -> int``. ``python -m nlp`` runs the same commands on their own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 2


def _split_args(p: argparse.ArgumentParser, default_split: str) -> None:
    p.add_argument("--text-col", default="text", help="column holding the text (default: text)")
    p.add_argument("--label-col", default="label", help="column holding the label (default: label)")
    p.add_argument(
        "--split-col",
        default=None,
        help="column naming the split of each row; default: `split` when the file has one (give '' to use every row)",
    )
    p.add_argument("--split", default=default_split, help=f"split to use (default: {default_split})")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    t = subparsers.add_parser("train", help="train a classifier model directory from labelled CSV/JSONL")
    t.add_argument("data", help="labelled examples, CSV with a header row or JSONL")
    t.add_argument("--out", required=True, help="model directory to write (replaced)")
    _split_args(t, "train")
    t.add_argument(
        "--dev",
        default=None,
        help="a separate dev file for calibration and thresholds "
        "(default: the `dev` split of DATA if it has a split column, else cross-validation)",
    )
    t.add_argument("--dev-split", default="dev", help="name of the dev split (default: dev)")
    t.add_argument("--backend", choices=["linear", "transformer"], default="linear")
    t.add_argument("--base-model", default=None, help="local Hugging Face checkpoint directory (transformer)")
    t.add_argument("--taxonomy", default=None, help="taxonomy YAML (default: the bundled city taxonomy)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--target-precision", type=float, default=0.97)
    t.add_argument("--epochs", type=float, default=3.0, help="transformer: training epochs")
    t.add_argument("--max-steps", type=int, default=0, help="transformer: stop after this many steps (0: no cap)")
    t.add_argument("--batch-size", type=int, default=16, help="transformer: batch size")
    t.add_argument("--learning-rate", type=float, default=5e-5, help="transformer: learning rate")
    t.add_argument("--max-length", type=int, default=256, help="transformer: tokens per text")
    t.add_argument("--C", type=float, default=None, help="linear: SVM regularisation (default: tuned value)")
    t.add_argument(
        "--bundled-params",
        action="store_true",
        help="linear: the bundled model's parameters and cross-validation (see nlp/bundled.py)",
    )
    t.add_argument(
        "--export-onnx",
        action="store_true",
        help="transformer: also export model.onnx and serve it with onnxruntime (CPU)",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    e = subparsers.add_parser("evaluate", help="evaluate a model on labelled data; last line is JSON")
    e.add_argument("paths", nargs="+", metavar="[DIR] DATA", help="model directory (optional) and data file")
    e.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    _split_args(e, "test")
    e.add_argument("--taxonomy", default=None)
    e.add_argument(
        "--report-dir",
        default=None,
        help="where the report goes (default: DIR/eval-<data name>, or var/reports/ for the bundled model)",
    )
    e.set_defaults(func=cmd_evaluate)

    c = subparsers.add_parser("classify", help="classify texts; one JSON object per text")
    c.add_argument("texts", nargs="*", metavar="TEXT", help="texts (default: one per line from stdin)")
    c.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    c.add_argument("--taxonomy", default=None)
    c.add_argument("--input", default=None, help="read texts from a file: one per line, or JSONL with a `text` field")
    c.add_argument("--mask-pii", action="store_true", help="include the PII-masked text in the output")
    c.set_defaults(func=cmd_classify)


def _resolve_split_col(args: argparse.Namespace, rows: list[dict[str, str]]) -> str | None:
    if args.split_col is not None:
        return args.split_col or None
    return "split" if rows and "split" in rows[0] else None


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def cmd_train(args: argparse.Namespace) -> int:
    from .bundled import CV_FOLDS
    from .dataio import DataError, read_rows, select
    from .taxonomy import TaxonomyError, load_taxonomy
    from .train import train_model

    try:
        taxonomy = load_taxonomy(args.taxonomy)
        rows = read_rows(args.data)
        split_col = _resolve_split_col(args, rows)
        train = select(
            rows,
            text_col=args.text_col,
            label_col=args.label_col,
            split_col=split_col,
            split=args.split if split_col else None,
            source=args.data,
        )
        dev = None
        if args.dev:
            dev = select(read_rows(args.dev), text_col=args.text_col, label_col=args.label_col, source=args.dev)
        elif split_col:
            dev = (
                select(
                    rows,
                    text_col=args.text_col,
                    label_col=args.label_col,
                    split_col=split_col,
                    split=args.dev_split,
                    source=args.data,
                )
                or None
            )
    except (DataError, TaxonomyError, OSError) as exc:
        return _err(str(exc))
    if not train.texts:
        return _err(f"{args.data}: no labelled rows" + (f" in split {args.split!r}" if split_col else ""))
    if args.backend == "transformer" and not args.base_model:
        return _err("--backend transformer needs --base-model DIR (a local checkpoint)")
    if args.export_onnx and args.backend != "transformer":
        return _err("--export-onnx needs --backend transformer")
    linear_params = transformer_params = None
    if args.backend == "linear":
        from .linear import LinearParams

        linear_params = LinearParams()
        if args.bundled_params:
            from .bundled import params

            linear_params = params()
        if args.C is not None:
            linear_params.C = args.C
    else:
        from .transformer import TransformerParams

        transformer_params = TransformerParams(
            epochs=args.epochs,
            max_steps=args.max_steps,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            max_length=args.max_length,
        )
    n_dev = len(dev.texts) if dev else 0
    cal = train.calibration_rows()
    if cal is not None:
        print(f"origin column: {len(cal) - sum(cal)} generated rows train but never calibrate", file=sys.stderr)
    print(
        f"training {args.backend} on {len(train.texts)} examples, {len(set(train.labels))} labels"
        f"{f', dev {n_dev}' if n_dev else ', calibration by cross-validation'}",
        file=sys.stderr,
    )
    meta = train_model(
        train.texts,
        train.labels,
        args.out,
        taxonomy=taxonomy,
        backend=args.backend,
        dev_texts=dev.texts if dev else None,
        dev_labels=dev.labels if dev else None,
        seed=args.seed,
        target_precision=args.target_precision,
        base_model=args.base_model,
        linear_params=linear_params,
        transformer_params=transformer_params,
        progress=not args.no_progress,
        calibration_rows=train.calibration_rows(),
        cv_folds=CV_FOLDS if args.bundled_params else 5,
    )
    summary = {
        "model_dir": str(args.out),
        "version": meta["version"],
        "labels": len(meta["labels"]),
        "seconds": meta["train"]["seconds"],
        "calibration": meta["calibration"],
    }
    if args.export_onnx:
        from .onnx_export import export_onnx

        summary["onnx"] = str(export_onnx(args.out))
    print(json.dumps(summary, ensure_ascii=False))
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .dataio import DataError, read_rows, select
    from .evaluate import evaluate
    from .loader import load_classifier

    if len(args.paths) > 2:
        return _err("evaluate takes [DIR] DATA")
    model_dir = args.paths[0] if len(args.paths) == 2 else args.model
    data = args.paths[-1]
    try:
        rows = read_rows(data)
        split_col = _resolve_split_col(args, rows)
        ex = select(
            rows,
            text_col=args.text_col,
            label_col=args.label_col,
            split_col=split_col,
            split=args.split if split_col else None,
            source=data,
        )
        clf = load_classifier(model_dir or None, taxonomy_path=args.taxonomy or None)
    except (DataError, OSError, ValueError) as exc:
        return _err(str(exc))
    if not ex.texts:
        return _err(f"{data}: no labelled rows to evaluate")
    stem = Path(data).stem + (f"-{args.split}" if split_col else "")
    report_dir = args.report_dir or (Path(model_dir) / f"eval-{stem}" if model_dir else Path("var") / "reports" / stem)
    metrics = evaluate(clf, ex.texts, ex.labels, out_dir=report_dir, title=f"Evaluation on {data}")
    for lb, v in metrics["per_class"].items():
        print(f"{lb}\tP={v['precision']:.3f}\tR={v['recall']:.3f}\tF1={v['f1']:.3f}\tn={v['support']}")
    print(
        f"accuracy {metrics['accuracy']:.4f} | macro-F1 {metrics['macro_f1']:.4f} | top-level accuracy "
        f"{metrics['top_level_accuracy']:.4f} | auto-dispatch precision {metrics['precision_routed']:.4f} at "
        f"coverage {metrics['coverage']:.4f} | ECE {metrics['ece']:.4f} (n={metrics['n']})"
    )
    print(f"report: {metrics['report']}")
    print(f"reliability diagram: {metrics['reliability_diagram']}")
    print(json.dumps(metrics, ensure_ascii=False))
    return EXIT_OK


def _read_texts(args: argparse.Namespace) -> list[str]:
    if args.texts:
        return list(args.texts)
    source: Any
    if args.input:
        source = Path(args.input).read_text(encoding="utf-8-sig").splitlines()
    else:
        source = sys.stdin.read().splitlines()
    texts = []
    for line in source:
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                line = str(obj.get("text", "")) if isinstance(obj, dict) else line
            except json.JSONDecodeError:
                pass
        texts.append(line)
    return texts


def cmd_classify(args: argparse.Namespace) -> int:
    from .loader import load_classifier
    from .pii import mask_pii

    try:
        texts = _read_texts(args)
        clf = load_classifier(args.model or None, taxonomy_path=args.taxonomy or None)
    except (OSError, ValueError) as exc:
        return _err(str(exc))
    for text, pred in zip(texts, clf.classify(texts), strict=True):
        out = {"text": mask_pii(text) if args.mask_pii else text, **pred.to_dict()}
        print(json.dumps(out, ensure_ascii=False))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlp", description="classifier tools of the gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))
