"""The bundled default model: built from the committed corpora, shipped inside the package.

``python -m nlp.bundled build`` trains it from

- the real corpus (``nlp/data/real_corpus.jsonl``, ``nlp.corpus``): its ``train`` rows;
- the seed corpus (``nlp/data/seed_corpus.jsonl``, ``nlp.seedgen``): generated sentences that
  give every subcategory examples, including the ones residents of the real corpus never wrote;

calibrates it on real reports only (the softmax temperature and the per-category thresholds are
fitted on out-of-fold scores of the real ``train`` rows; generated sentences are in every fold's
training data but never calibrate anything), measures it on the real ``heldout`` rows (never
trained or calibrated on) and writes ``nlp/data/model/`` (``meta.json`` + ``linear.npz``, numpy
arrays, no pickle). ``meta.json`` records the held-out figures and ``bundle_key``, the hash of the
corpora, the taxonomy and the training code: ``python -m nlp.bundled check`` (and a test) says
when the committed model is stale. Serving never trains: ``load_classifier()`` only loads it.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .corpus import HELDOUT, REAL_CORPUS_PATH, SOURCE_DESCRIPTION, load_corpus
from .dataio import GENERATED
from .taxonomy import DEFAULT_TAXONOMY_PATH, Taxonomy, load_taxonomy

if TYPE_CHECKING:
    from .linear import LinearParams

DATA = Path(__file__).parent / "data"
BUNDLED_MODEL_DIR = DATA / "model"
SEED_CORPUS_PATH = DATA / "seed_corpus.jsonl"
TARGET_PRECISION = 0.96  # per-category thresholds aim at this auto-dispatch precision (top level)
CV_FOLDS = 4
KEEP_WEIGHTS = 0.05  # share of the linear weights kept in the shipped file (the largest ones)
_CODE_FILES = ("bundled.py", "linear.py", "ngrams.py", "segment.py", "train.py", "calibration.py", "model.py")


def params() -> LinearParams:
    """Linear parameters of the bundled model: character 1-2-grams of the first 300 characters and
    the title block, no jieba words (with real reports to learn from, words add nothing measurable
    and cost two thirds of the classification time), a top-level model added at half weight
    (out-of-fold on the real train rows: top-level accuracy 0.852 vs 0.839 without), and only the
    largest ``KEEP_WEIGHTS`` of the weights (the shipped file stays small; out-of-fold accuracy
    unchanged: 0.841 with all weights)."""
    from .linear import FeatureParams, LinearParams

    return LinearParams(
        C=1.0, features=FeatureParams(max_char_chars=300), keep_weights=KEEP_WEIGHTS, top_level_weight=0.5
    )


def bundle_key(taxonomy_path: str | Path | None = None) -> str:
    """Hash of what the bundled model is built from: corpora, taxonomy, training code."""
    h = hashlib.sha256()
    for path in (SEED_CORPUS_PATH, REAL_CORPUS_PATH, Path(taxonomy_path or DEFAULT_TAXONOMY_PATH)):
        h.update(path.read_bytes())
        h.update(b"\x00")
    for name in _CODE_FILES:  # the syntax tree, so reformatting the code does not make the model stale
        source = (Path(__file__).parent / name).read_text(encoding="utf-8")
        h.update(ast.dump(ast.parse(source)).encode())
    return h.hexdigest()


@dataclass
class TrainingData:
    texts: list[str]
    labels: list[str]
    real: list[bool]  # rows that calibrate (real reports)
    heldout_texts: list[str]
    heldout_labels: list[str]


def training_data(taxonomy: Taxonomy, real_path: Path | None = None) -> TrainingData:
    from .dataio import read_rows

    seed = [r for r in read_rows(SEED_CORPUS_PATH) if r.get("label", "") in taxonomy and r.get("text")]
    real = load_corpus(real_path)
    train = [r for r in real if r.split != HELDOUT and r.code in taxonomy]
    held = [r for r in real if r.split == HELDOUT and r.code in taxonomy]
    return TrainingData(
        texts=[r["text"] for r in seed] + [r.text for r in train],
        labels=[r["label"] for r in seed] + [r.code for r in train],
        real=[False] * len(seed) + [True] * len(train),
        heldout_texts=[r.text for r in held],
        heldout_labels=[r.code for r in held],
    )


def write_training_file(path: Path, *, real: bool = True) -> int:
    """The bundled model's training rows as JSONL (``text``, ``label``, ``origin``: generated|real),
    for ``gateway train --from-reviews``; ``real=False``: the seed corpus only. Returns the count."""
    data = training_data(load_taxonomy())
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for text, label, is_real in zip(data.texts, data.labels, data.real, strict=True):
            if is_real and not real:
                continue
            origin = "real" if is_real else GENERATED
            fh.write(json.dumps({"text": text, "label": label, "origin": origin}, ensure_ascii=False) + "\n")
            n += 1
    return n


def build(out: Path = BUNDLED_MODEL_DIR, *, progress: bool = False) -> dict[str, Any]:
    """Train, compact, measure on the held-out real rows and write the bundled model to ``out``."""
    from .evaluate import evaluate
    from .loader import open_model
    from .model import read_meta, write_meta
    from .train import train_model

    taxonomy = load_taxonomy()
    data = training_data(taxonomy)
    started, cpu_started = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix=".bundled-", dir=out.parent) as tmp:
        work = Path(tmp) / "model"
        train_model(
            data.texts,
            data.labels,
            work,
            taxonomy=taxonomy,
            seed=0,
            cv_folds=CV_FOLDS,
            linear_params=params(),
            progress=progress,
            version_prefix="default-",
            calibration_rows=data.real,
            target_precision=TARGET_PRECISION,
        )
        meta = read_meta(work)
        seconds = round(time.perf_counter() - started, 1)
        cpu_seconds = round(time.process_time() - cpu_started, 1)
        clf = open_model(work, taxonomy)
        m = evaluate(clf, data.heldout_texts, data.heldout_labels)
        meta["train"]["seconds"] = seconds  # wall clock, on a machine shared with others
        meta["train"]["cpu_seconds"] = cpu_seconds
        meta["train"]["sources"] = {
            "seed_corpus": sum(1 for r in data.real if not r),
            "real_corpus": sum(data.real),
            "real_source": SOURCE_DESCRIPTION,
        }
        meta["calibration"]["rows"] = "out-of-fold scores of the real corpus's train rows (no generated text)"
        meta["evaluation"] = {
            "source": "held-out rows of the real corpus (the dataset's dev split): never trained or calibrated on",
            "n": m["n"],
            "top_level_accuracy": m["top_level_accuracy"],
            "subcategory_accuracy": m["accuracy"],
            "coverage": m["coverage"],
            "precision_routed": m["precision_routed"],
            "ece": m["ece"],
        }
        meta["bundle_key"] = bundle_key()
        write_meta(work, meta)
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(work), out)
    return read_meta(out)


def is_current(model_dir: Path = BUNDLED_MODEL_DIR) -> bool:
    meta_path = model_dir / "meta.json"
    if not meta_path.is_file():
        return False
    return bool(json.loads(meta_path.read_text(encoding="utf-8")).get("bundle_key") == bundle_key())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nlp.bundled", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help=f"train the bundled model into {BUNDLED_MODEL_DIR}")
    b.add_argument("--out", default=str(BUNDLED_MODEL_DIR))
    sub.add_parser("check", help="exit 1 when the bundled model is missing or older than its inputs")
    args = ap.parse_args(argv)
    if args.command == "check":
        ok = is_current()
        print(
            "bundled model is current"
            if ok
            else f"bundled model in {BUNDLED_MODEL_DIR} is missing or stale: run `python -m nlp.bundled build`"
        )
        return 0 if ok else 1
    meta = build(Path(args.out), progress=True)
    size = sum(p.stat().st_size for p in Path(args.out).iterdir())
    print(
        json.dumps(
            {
                "version": meta["version"],
                "seconds": meta["train"]["seconds"],
                "cpu_seconds": meta["train"]["cpu_seconds"],
                "bytes": size,
                "calibration": meta["calibration"],
                "evaluation": meta["evaluation"],
                "thresholds": {k: round(v, 3) for k, v in meta["thresholds"].items()},
            },
            ensure_ascii=False,
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
