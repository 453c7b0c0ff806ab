"""``load_classifier``: a model directory, or the bundled default model trained from the seed corpus."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from .model import TaxonomyClassifier, read_meta
from .taxonomy import DEFAULT_TAXONOMY_PATH, Taxonomy, load_taxonomy

SEED_CORPUS_PATH = Path(__file__).parent / "data" / "seed_corpus.jsonl"
DEFAULT_CACHE_DIR = Path("var") / "models"

log = logging.getLogger(__name__)


def seed_params():  # noqa: ANN201 - LinearParams, imported lazily
    """Linear parameters of the bundled model.

    Unlike long web complaints, the seed corpus is short sentences over 147 subcategories, and a
    resident's wording is often not in it: jieba words with the taxonomy's domain dictionary
    generalise to unseen phrases much better than characters alone (phrases held out of training,
    subcategory / top-level accuracy: 0.80 / 0.83 with words, 0.73 / 0.78 without).
    """
    from .linear import FeatureParams, LinearParams

    return LinearParams(C=1.0, features=FeatureParams(word_weight=1.0))


_lock = threading.Lock()
_loaded: dict[tuple[str, str, str, str], TaxonomyClassifier] = {}


def bundled_model_key(taxonomy_path: str | Path | None = None) -> str:
    """Hash of the seed corpus, the taxonomy and the training code version."""
    from .train import CODE_VERSION

    h = hashlib.sha256()
    h.update(SEED_CORPUS_PATH.read_bytes())
    h.update(b"\x00")
    h.update(Path(taxonomy_path or DEFAULT_TAXONOMY_PATH).read_bytes())
    h.update(b"\x00" + CODE_VERSION.encode())
    for name in ("linear.py", "ngrams.py", "segment.py", "train.py", "calibration.py", "loader.py"):
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()


def ensure_bundled_model(
    cache_dir: str | Path | None = None, taxonomy_path: str | Path | None = None, *, progress: bool = False
) -> Path:
    """The directory of the bundled model, training it from the seed corpus if not cached yet."""
    taxonomy = load_taxonomy(taxonomy_path)
    key = bundled_model_key(taxonomy_path)
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    target = cache / f"seed-{key[:16]}"
    if (target / "meta.json").is_file():
        return target
    from .dataio import read_rows
    from .train import train_model

    rows = [r for r in read_rows(SEED_CORPUS_PATH) if r.get("label", "") in taxonomy and r.get("text")]
    texts = [r["text"] for r in rows]
    labels = [r["label"] for r in rows]
    groups = [f"{r['label']}/{r.get('phrase', i)}" for i, r in enumerate(rows)]
    if not texts:
        raise ValueError(f"the seed corpus has no labels of taxonomy {taxonomy.path}")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".seed-", dir=cache))
    try:
        train_model(
            texts,
            labels,
            tmp / "model",
            taxonomy=taxonomy,
            seed=0,
            cv_folds=3,
            groups=groups,
            linear_params=seed_params(),
            progress=progress,
            version_prefix="seed-",
        )
        try:
            os.replace(tmp / "model", target)
        except OSError:
            if not (target / "meta.json").is_file():  # another process won the race only if it finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _open(model_dir: Path, taxonomy: Taxonomy, runtime: str | None = None) -> TaxonomyClassifier:
    meta = read_meta(model_dir)
    if meta["backend"] == "linear":
        from .linear import LinearBackend

        backend = LinearBackend.load(model_dir)
        return TaxonomyClassifier(backend, meta, taxonomy)
    if meta["backend"] == "transformer":
        if _use_onnx(model_dir, meta, runtime):
            from .onnx_export import OnnxBackend

            return TaxonomyClassifier(OnnxBackend.load(model_dir), meta, taxonomy)
        from .transformer import TransformerBackend

        return TaxonomyClassifier(TransformerBackend.load(model_dir), meta, taxonomy)
    raise ValueError(f"{model_dir}: unknown backend {meta['backend']!r}")


def _use_onnx(model_dir: Path, meta: dict[str, Any], runtime: str | None) -> bool:
    """``runtime`` given: it decides (``onnx`` fails without model.onnx or onnxruntime). Else the
    ``runtime`` that ``export_onnx`` wrote to meta.json, falling back to torch when it cannot run."""
    from .onnx_export import ONNX_FILE, onnx_available

    if runtime not in (None, "torch", "onnx"):
        raise ValueError(f"unknown runtime {runtime!r} (torch or onnx)")
    if runtime == "torch" or (runtime is None and meta.get("runtime", "torch") != "onnx"):
        return False
    missing = [] if (model_dir / ONNX_FILE).is_file() else [f"no {ONNX_FILE}"]
    if not onnx_available():
        missing.append("onnxruntime is not installed")
    if not missing:
        return True
    if runtime == "onnx":
        raise ValueError(f"{model_dir}: cannot serve with onnxruntime: {', '.join(missing)}")
    log.warning(
        "onnx runtime unavailable, serving with torch",
        extra={"model_dir": str(model_dir), "reason": ", ".join(missing)},
    )
    return False


def load_classifier(
    model_dir: str | Path | None = None,
    *,
    taxonomy_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    runtime: str | None = None,
) -> TaxonomyClassifier:
    """A ready classifier, loaded once per process for the same arguments.

    ``model_dir`` None means the bundled default model: trained from ``nlp/data/seed_corpus.jsonl``
    on first use (a few seconds) and cached under ``cache_dir`` (default ``./var/models``) in a
    directory keyed by the hash of corpus, taxonomy and training code, so a changed corpus retrains.
    ``runtime`` (transformer models): ``"torch"`` or ``"onnx"`` (onnxruntime on ``model.onnx``, see
    ``nlp.onnx_export``); None: the directory's ``meta.json`` decides (torch unless exported).
    """
    key = (str(model_dir or ""), str(taxonomy_path or ""), str(cache_dir or ""), str(runtime or ""))
    clf = _loaded.get(key)
    if clf is not None:
        return clf
    with _lock:
        clf = _loaded.get(key)
        if clf is None:
            taxonomy = load_taxonomy(taxonomy_path)
            path = Path(model_dir) if model_dir is not None else ensure_bundled_model(cache_dir, taxonomy_path)
            clf = _open(path, taxonomy, runtime)
            _loaded[key] = clf
    return clf
