"""``load_classifier``: a model directory, or the bundled default model shipped in the package.

The bundled model (``nlp/data/model``) is built by ``python -m nlp.bundled build`` from the
committed corpora and committed with them; loading it never trains (a serving process must not
spend minutes of CPU on training while residents wait). A missing bundled model is an error that
says how to build it; a stale one (older than its corpora or training code) loads with a warning.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from .model import TaxonomyClassifier, read_meta
from .taxonomy import Taxonomy, load_taxonomy

SEED_CORPUS_PATH = Path(__file__).parent / "data" / "seed_corpus.jsonl"

log = logging.getLogger(__name__)


class ModelMissingError(FileNotFoundError):
    """The bundled model is not in the package (a checkout where it was deleted or not built)."""


_lock = threading.Lock()
_loaded: dict[tuple[str, str, str], TaxonomyClassifier] = {}


def bundled_model_dir() -> Path:
    """Where the bundled model lives (it may be missing)."""
    from .bundled import BUNDLED_MODEL_DIR

    return BUNDLED_MODEL_DIR


def _bundled(taxonomy: Taxonomy) -> Path:
    from .bundled import BUNDLED_MODEL_DIR, is_current

    path = BUNDLED_MODEL_DIR
    if not (path / "meta.json").is_file():
        raise ModelMissingError(f"the bundled model is missing ({path}): build it with `python -m nlp.bundled build`")
    meta = read_meta(path)
    if meta.get("taxonomy_sha256") != taxonomy.sha256:
        raise ValueError(
            f"the bundled model was trained for the bundled taxonomy, not {taxonomy.path}: "
            "train a model for it (`gateway train DATA --out DIR`) and set GATEWAY_MODEL_DIR"
        )
    if not is_current(path):
        log.warning(
            "the bundled model is older than its corpora or training code: run `python -m nlp.bundled build`",
            extra={"model_dir": str(path)},
        )
    return path


def open_model(model_dir: Path, taxonomy: Taxonomy, runtime: str | None = None) -> TaxonomyClassifier:
    """Open a model directory (no caching; ``load_classifier`` caches)."""
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
    runtime: str | None = None,
) -> TaxonomyClassifier:
    """A ready classifier, loaded once per process for the same arguments.

    ``model_dir`` None means the bundled default model (``nlp/data/model``, see ``nlp.bundled``).
    ``runtime`` (transformer models): ``"torch"`` or ``"onnx"`` (onnxruntime on ``model.onnx``, see
    ``nlp.onnx_export``); None: the directory's ``meta.json`` decides (torch unless exported).
    """
    key = (str(model_dir or ""), str(taxonomy_path or ""), str(runtime or ""))
    clf = _loaded.get(key)
    if clf is not None:
        return clf
    with _lock:
        clf = _loaded.get(key)
        if clf is None:
            taxonomy = load_taxonomy(taxonomy_path)
            path = Path(model_dir) if model_dir is not None else _bundled(taxonomy)
            clf = open_model(path, taxonomy, runtime)
            _loaded[key] = clf
    return clf


def ensure_bundled_model(cache_dir: str | Path | None = None, taxonomy_path: str | Path | None = None) -> Path:
    """The bundled model's directory. Kept for callers of the former train-on-first-use loader:
    nothing is trained and ``cache_dir`` is not used."""
    del cache_dir
    return _bundled(load_taxonomy(taxonomy_path))
