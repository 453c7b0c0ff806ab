"""The fast default backend: sparse character n-grams (optionally jieba words) with a linear model.

Features (``Featurizer``), computed on ``segment.normalize``-d text without spaces:

- character 1-2-grams of the first ``max_char_chars`` characters, TF-IDF with sublinear term
  frequency (``ngrams.CharNgramVectorizer``: numpy over the whole batch, no Python loop per
  character);
- the same n-grams of the first ``head_chars`` characters (the title, or the first sentence of
  a message), as a second block weighted ``head_weight``: what a report opens with says what it
  is about;
- optionally (``word_weight`` > 0) jieba word unigrams of the first ``max_seg_chars`` characters
  (domain dictionary from the taxonomy, stop words and punctuation dropped). Off by default:
  on the 7-class 12345 data they add nothing over character bigrams (cross-validated macro-F1
  0.9196 with, 0.9197 without) and cost three quarters of the classification time.

The model is a one-vs-rest linear SVM (``LinearSVC``, balanced class weights); its decision scores
are turned into probabilities by a softmax whose temperature is fitted on held-out data (see
``train``). A model is saved as numpy arrays (``linear.npz``, no pickle); directories written by
older versions (``linear.pkl``, a pickle: trusted artefacts, like code) still load.
"""

from __future__ import annotations

import json
import pickle  # noqa: S403 - models written before linear.npz were pickles (trusted artefacts)
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from .ngrams import CharNgramVectorizer
from .segment import Segmenter, get_segmenter

MODEL_FILE = "linear.pkl"  # read only: models of code version 2 and older
ARRAYS_FILE = "linear.npz"


@dataclass
class FeatureParams:
    word_ngrams: tuple[int, int] = (1, 1)
    char_ngrams: tuple[int, int] = (1, 2)
    word_min_df: int = 1
    char_min_df: int = 2
    max_seg_chars: int = 400
    max_char_chars: int = 600
    char_weight: float = 1.0
    word_weight: float = 0.0  # > 0 adds jieba word unigrams (slow: jieba is ~4x the rest of classify)
    head_chars: int = 20  # a second character n-gram block over the first characters (the title)
    head_weight: float = 0.7  # 0 turns the head block off


@dataclass
class LinearParams:
    C: float = 2.0
    class_weight: str | None = "balanced"
    features: FeatureParams = field(default_factory=FeatureParams)
    # < 1: keep only this share of the weights (the largest), rounded to float16, in the final
    # model and in every cross-validation model (so calibration sees the scores the model gives)
    keep_weights: float = 1.0
    # > 0 (labels grouped into top-level categories): also fit a model of the top-level categories
    # and add this multiple of its score to each of its labels' scores. Both are linear, so the
    # sum is one weight matrix: nothing changes at classification time.
    top_level_weight: float = 0.0


def compact_weights(coef: np.ndarray, keep: float) -> np.ndarray:
    """``coef`` with all but the ``keep`` share of largest-magnitude weights zeroed, rounded to float16."""
    flat = np.abs(coef).ravel()
    k = int(len(flat) * (1.0 - keep))
    cut = float(np.partition(flat, k)[k]) if 0 < k < len(flat) else 0.0
    out: np.ndarray = np.where(np.abs(coef) >= cut, coef, 0.0).astype(np.float16).astype(np.float32)
    return out


class WordVectorizer:
    """TF-IDF of word unigrams (sklearn's ``TfidfVectorizer(sublinear_tf=True)`` weights), with a
    plain sorted vocabulary and numpy arrays, so that a saved model needs no pickle."""

    def __init__(self, min_df: int = 1) -> None:
        self.min_df = min_df
        self.vocab: dict[str, int] = {}
        self.idf = np.zeros(0, dtype=np.float32)
        self.names = np.zeros(0, dtype=str)

    def fit(self, docs: Sequence[Sequence[str]]) -> WordVectorizer:
        df: dict[str, int] = {}
        for doc in docs:
            for tok in set(doc):
                df[tok] = df.get(tok, 0) + 1
        words = sorted(w for w, c in df.items() if c >= self.min_df)
        counts = np.asarray([df[w] for w in words], dtype=np.float64)
        self.set_state(np.asarray(words, dtype=str), (np.log((1.0 + len(docs)) / (1.0 + counts)) + 1.0))
        return self

    def set_state(self, names: np.ndarray, idf: np.ndarray) -> None:
        self.names = names
        self.idf = np.asarray(idf, dtype=np.float32)
        self.vocab = {str(w): i for i, w in enumerate(names.tolist())}

    def transform(self, docs: Sequence[Sequence[str]]) -> sparse.csr_matrix:
        vocab = self.vocab
        indptr = [0]
        cols: list[int] = []
        counts: list[int] = []
        for doc in docs:
            tf: dict[int, int] = {}
            for tok in doc:
                j = vocab.get(tok)
                if j is not None:
                    tf[j] = tf.get(j, 0) + 1
            cols.extend(tf)
            counts.extend(tf.values())
            indptr.append(len(cols))
        c = np.asarray(cols, dtype=np.int32)
        data = (1.0 + np.log(np.asarray(counts, dtype=np.float32))) * self.idf[c] if cols else np.zeros(0, np.float32)
        ptr = np.asarray(indptr, dtype=np.int64)
        rows = np.repeat(np.arange(len(docs)), np.diff(ptr))
        norms = np.sqrt(np.bincount(rows, weights=data.astype(np.float64) ** 2, minlength=len(docs)))
        norms[norms == 0] = 1.0
        data = (data / norms[rows]).astype(np.float32)
        return sparse.csr_matrix((data, c, ptr), shape=(len(docs), len(self.idf)))

    def get_feature_names_out(self) -> np.ndarray:
        return self.names


class Featurizer:
    def __init__(self, params: FeatureParams, domain_words: Sequence[str]) -> None:
        self.params = params
        self.domain_words = tuple(sorted(set(domain_words)))
        self.word_vec: Any = None
        self.char_vec: Any = None
        self.head_vec: CharNgramVectorizer | None = None
        self._names: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_names"] = None
        return state

    @property
    def segmenter(self) -> Segmenter:
        return get_segmenter(self.domain_words)

    @property
    def uses_words(self) -> bool:
        return self.params.word_weight > 0

    def words_of(self, normalized: Sequence[str]) -> list[list[str]] | None:
        """The jieba tokens of each text (None when the features use no words). Segmentation is
        not fitted to data: cross-validation computes it once and fits only the vocabularies."""
        if not self.uses_words:
            return None
        seg = self.segmenter
        n = self.params.max_seg_chars
        return [seg.cut(t[:n]) for t in normalized]

    def fit_transform(self, normalized: Sequence[str], words: list[list[str]] | None = None) -> sparse.csr_matrix:
        p = self.params
        if p.word_ngrams != (1, 1):
            raise ValueError("only word unigrams are supported")
        self.char_vec = CharNgramVectorizer(p.char_ngrams[0], p.char_ngrams[1], p.max_char_chars, p.char_min_df)
        self.char_vec.fit(normalized)
        if p.head_weight > 0 and p.head_chars > 0:
            self.head_vec = CharNgramVectorizer(p.char_ngrams[0], p.char_ngrams[1], p.head_chars, p.char_min_df)
            self.head_vec.fit(normalized)
        if self.uses_words:
            words = words if words is not None else self.words_of(normalized)
            self.word_vec = WordVectorizer(p.word_min_df).fit(words or [])
        self._names = None
        return self.transform(normalized, words)

    def transform(self, normalized: Sequence[str], words: list[list[str]] | None = None) -> sparse.csr_matrix:
        if isinstance(self.char_vec, CharNgramVectorizer):
            xc = self.char_vec.transform(normalized)
        else:  # a model pickled with sklearn's char vectorizer (code version 1)
            n = self.params.max_char_chars
            xc = self.char_vec.transform([t[:n].replace(" ", "") for t in normalized])
        head = getattr(self, "head_vec", None)  # absent in models pickled before the head block
        if head is not None:
            xc = sparse.hstack([xc, head.transform(normalized) * self.params.head_weight], format="csr")
        xw = None
        if self.word_vec is not None:
            words = words if words is not None else self.words_of(normalized)
            if isinstance(self.word_vec, WordVectorizer):
                xw = self.word_vec.transform(words or [])
            else:  # a pickled model with sklearn's TfidfVectorizer over space-joined words
                xw = self.word_vec.transform([" ".join(w) for w in words or []])
        return self._stack(xw, xc)

    def _stack(self, xw: sparse.spmatrix | None, xc: sparse.csr_matrix) -> sparse.csr_matrix:
        p = self.params
        if xw is None:
            return xc * p.char_weight if p.char_weight != 1.0 else xc
        return sparse.hstack([xw * p.word_weight, xc * p.char_weight], format="csr")

    @property
    def feature_names(self) -> np.ndarray:
        if self._names is None:
            parts = [np.asarray(self.char_vec.get_feature_names_out(), dtype=object)]
            head = getattr(self, "head_vec", None)
            if head is not None:
                parts.append(np.asarray(head.get_feature_names_out(), dtype=object))
            if self.word_vec is not None:
                parts.insert(0, np.asarray(self.word_vec.get_feature_names_out(), dtype=object))
            self._names = np.concatenate(parts)
        return self._names

    # ------------------------------------------------------------------ saving without pickle

    def to_arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {
            "params": np.asarray(json.dumps(asdict(self.params))),
            "domain_words": np.asarray(self.domain_words, dtype=str),
        }
        for name, vec in (("char", self.char_vec), ("head", self.head_vec)):
            if vec is None:
                continue
            if not isinstance(vec, CharNgramVectorizer):
                raise TypeError("only models with the numpy character vectorizer can be saved as arrays")
            out[f"{name}_cfg"] = np.asarray([vec.n_min, vec.n_max, vec.max_chars, vec.min_df], dtype=np.int64)
            out[f"{name}_vocab"] = vec.vocab
            out[f"{name}_idf"] = vec.idf
            out[f"{name}_names"] = np.asarray(vec.names.tolist(), dtype=str)
        if self.word_vec is not None:
            if not isinstance(self.word_vec, WordVectorizer):
                raise TypeError("only models with the numpy word vectorizer can be saved as arrays")
            out["word_min_df"] = np.asarray(self.word_vec.min_df)
            out["word_names"] = self.word_vec.names
            out["word_idf"] = self.word_vec.idf
        return out

    @classmethod
    def from_arrays(cls, arrays: Any) -> Featurizer:
        raw = json.loads(str(arrays["params"]))
        for key in ("word_ngrams", "char_ngrams"):
            raw[key] = tuple(raw[key])
        feat = cls(FeatureParams(**raw), [str(w) for w in arrays["domain_words"].tolist()])
        for name in ("char", "head"):
            if f"{name}_cfg" not in arrays:
                continue
            n_min, n_max, max_chars, min_df = (int(v) for v in arrays[f"{name}_cfg"])
            vec = CharNgramVectorizer(n_min, n_max, max_chars, min_df)
            vec.vocab = np.asarray(arrays[f"{name}_vocab"], dtype=np.uint64)
            vec.idf = np.asarray(arrays[f"{name}_idf"], dtype=np.float32)
            vec.names = np.asarray(arrays[f"{name}_names"].tolist(), dtype=object)
            setattr(feat, f"{name}_vec", vec)
        if "word_names" in arrays:
            wv = WordVectorizer(int(arrays["word_min_df"]))
            wv.set_state(np.asarray(arrays["word_names"], dtype=str), arrays["word_idf"])
            feat.word_vec = wv
        return feat


class LinearBackend:
    """Scores normalized texts with a fitted featurizer and a linear model (coef: labels x features)."""

    kind = "linear"

    def __init__(self, featurizer: Featurizer, coef: np.ndarray, intercept: np.ndarray, labels: list[str]):
        self.featurizer = featurizer
        self.coef = np.ascontiguousarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.labels = labels
        self.half = False  # weights rounded to float16 (``compact``): saved as float16
        self._coef_t = np.ascontiguousarray(self.coef.T)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_coef_t"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("half", False)
        self._coef_t = np.ascontiguousarray(self.coef.T)

    def compact(self, keep: float) -> None:
        """Keep the ``keep`` share of the weights (``compact_weights``): a smaller model file."""
        self.coef = np.ascontiguousarray(compact_weights(self.coef, keep))
        self.half = True
        self._coef_t = np.ascontiguousarray(self.coef.T)

    def logits(self, normalized: Sequence[str]) -> tuple[np.ndarray, sparse.csr_matrix]:
        x = self.featurizer.transform(normalized)
        scores = np.asarray(x @ self._coef_t) + self.intercept
        return scores, x

    def top_features(self, x: sparse.csr_matrix, row: int, label_idx: int, k: int = 3) -> list[str]:
        start, end = x.indptr[row], x.indptr[row + 1]
        idx = x.indices[start:end]
        if len(idx) == 0:
            return []
        contrib = x.data[start:end] * self.coef[label_idx, idx]
        order = np.argsort(-contrib)
        names = self.featurizer.feature_names
        out: list[str] = []
        for i in order:  # the head block repeats n-grams of the body: name each once
            if contrib[i] <= 0 or len(out) == k:
                break
            name = str(names[idx[i]])
            if name not in out:
                out.append(name)
        return out

    def save(self, model_dir: Path) -> None:
        """``linear.npz``: numpy arrays only (no pickle), readable by any numpy version."""
        coef = sparse.csr_matrix(self.coef)
        arrays = self.featurizer.to_arrays()
        arrays.update(
            labels=np.asarray(self.labels, dtype=str),
            intercept=self.intercept,
            coef_data=coef.data.astype(np.float16 if self.half else np.float32),
            coef_indices=coef.indices.astype(np.int32),
            coef_indptr=coef.indptr.astype(np.int64),
            coef_shape=np.asarray(coef.shape, dtype=np.int64),
        )
        with open(model_dir / ARRAYS_FILE, "wb") as fh:
            np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, model_dir: Path) -> LinearBackend:
        if (model_dir / ARRAYS_FILE).is_file():
            with np.load(model_dir / ARRAYS_FILE, allow_pickle=False) as arrays:
                feat = Featurizer.from_arrays(arrays)
                shape = tuple(int(v) for v in arrays["coef_shape"])
                coef = sparse.csr_matrix(
                    (arrays["coef_data"].astype(np.float32), arrays["coef_indices"], arrays["coef_indptr"]), shape=shape
                ).toarray()
                backend = cls(feat, coef, arrays["intercept"], [str(x) for x in arrays["labels"].tolist()])
                backend.half = arrays["coef_data"].dtype == np.float16
            return backend
        with open(model_dir / MODEL_FILE, "rb") as fh:  # models written before linear.npz
            obj = pickle.load(fh)  # noqa: S301 - trusted model directory
        if not isinstance(obj, cls):
            raise TypeError(f"{model_dir / MODEL_FILE} does not hold a linear model")
        return obj


def _fit_svm(
    x: sparse.csr_matrix,
    y: np.ndarray,
    n_labels: int,
    C: float,
    seed: int,
    class_weight: str | None = None,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.svm import LinearSVC

    clf = LinearSVC(C=C, random_state=seed, max_iter=5000, dual=True, class_weight=class_weight)
    clf.fit(x, y, sample_weight=sample_weight)
    coef = np.zeros((n_labels, x.shape[1]), dtype=np.float32)
    intercept = np.full(n_labels, -10.0, dtype=np.float32)
    classes = clf.classes_.astype(int)
    if len(classes) == 2 and clf.coef_.shape[0] == 1:  # binary: sklearn keeps one row
        coef[classes[1]] = clf.coef_[0]
        coef[classes[0]] = -clf.coef_[0]
        intercept[classes[1]] = clf.intercept_[0]
        intercept[classes[0]] = -clf.intercept_[0]
    else:
        coef[classes] = clf.coef_
        intercept[classes] = clf.intercept_
    return coef, intercept


def _fit(
    x: sparse.csr_matrix,
    y: np.ndarray,
    n_labels: int,
    params: LinearParams,
    seed: int,
    sample_weight: np.ndarray | None,
    label_groups: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The label model, plus ``top_level_weight`` x the top-level model's scores when labels are grouped."""
    coef, intercept = _fit_svm(x, y, n_labels, params.C, seed, params.class_weight, sample_weight)
    if params.top_level_weight > 0 and label_groups is not None:
        n_groups = int(label_groups.max()) + 1
        g_coef, g_int = _fit_svm(x, label_groups[y], n_groups, params.C, seed, params.class_weight, sample_weight)
        coef = coef + params.top_level_weight * g_coef[label_groups]
        intercept = intercept + params.top_level_weight * g_int[label_groups]
    if params.keep_weights < 1.0:
        coef = compact_weights(coef, params.keep_weights)
    return coef, intercept


def _take(items: Sequence[Any] | None, idx: np.ndarray) -> list[Any] | None:
    return None if items is None else [items[i] for i in idx]


def train_linear(
    normalized: Sequence[str],
    y: np.ndarray,
    labels: list[str],
    domain_words: Sequence[str],
    params: LinearParams,
    *,
    seed: int = 0,
    cv_folds: int = 0,
    groups: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    sample_weight: np.ndarray | None = None,
    cv_rows: np.ndarray | None = None,
    label_groups: Sequence[int] | None = None,
) -> tuple[LinearBackend, np.ndarray | None]:
    """Fit the backend; with ``cv_folds`` >= 2 also return out-of-fold logits for calibration.

    The out-of-fold logits of a row come from a model whose features (vocabularies, IDF) and
    weights were fitted without that row's fold, so they are honest held-out scores. With
    ``cv_rows`` (a boolean mask) only those rows are split into folds and scored; the other rows
    (e.g. generated seed sentences) are in every fold's training data and their logits are NaN.
    ``label_groups`` (the top-level index of each label) enables ``params.top_level_weight``.
    """
    say = progress or (lambda _msg: None)
    n = len(normalized)
    feat = Featurizer(params.features, domain_words)
    say("segment")
    words = feat.words_of(normalized)
    say("features")
    x = feat.fit_transform(normalized, words)
    say("fit")
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    lg = None if label_groups is None else np.asarray(label_groups, dtype=np.int64)
    coef, intercept = _fit(x, y, len(labels), params, seed, sw, lg)
    backend = LinearBackend(feat, coef, intercept, labels)
    backend.half = params.keep_weights < 1.0
    oof = None
    if cv_folds >= 2:
        oof = np.full((n, len(labels)), np.nan, dtype=np.float32)
        scored = np.arange(n) if cv_rows is None else np.flatnonzero(cv_rows)
        always = np.setdiff1d(np.arange(n), scored)
        fold_groups = _take(groups, scored)
        folds = _folds(y[scored], cv_folds, seed, fold_groups) if len(scored) >= cv_folds else []
        for k, (tr, te) in enumerate(folds):
            say(f"cross-validation fold {k + 1}/{cv_folds}")
            tr_idx = np.concatenate([always, scored[tr]])
            te_idx = scored[te]
            f = Featurizer(params.features, domain_words)
            xt = f.fit_transform(_take(normalized, tr_idx) or [], _take(words, tr_idx))
            c, b = _fit(xt, y[tr_idx], len(labels), params, seed, None if sw is None else sw[tr_idx], lg)
            xe = f.transform(_take(normalized, te_idx) or [], _take(words, te_idx))
            oof[te_idx] = np.asarray(xe @ c.T) + b
    return backend, oof


def _folds(
    y: np.ndarray, n: int, seed: int, groups: Sequence[str] | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds for out-of-fold scores; rows of one group (e.g. variants of one phrase) stay together."""
    from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

    if groups is not None:
        return list(StratifiedGroupKFold(n, shuffle=True, random_state=seed).split(np.zeros(len(y)), y, list(groups)))
    counts = np.bincount(y)
    if counts[counts > 0].min() >= n:
        return list(StratifiedKFold(n, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    return list(KFold(n, shuffle=True, random_state=seed).split(np.zeros(len(y))))
