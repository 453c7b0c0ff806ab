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
``train``). Model files are pickles: a model directory is a trusted artefact, like code.
"""

from __future__ import annotations

import pickle  # noqa: S403 - model directories are trusted artefacts written by `gateway train`
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from .ngrams import CharNgramVectorizer
from .segment import Segmenter, get_segmenter

MODEL_FILE = "linear.pkl"


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

    def _words(self, normalized: Sequence[str]) -> list[str]:
        seg = self.segmenter
        n = self.params.max_seg_chars
        return [" ".join(seg.cut(t[:n])) for t in normalized]

    def fit_transform(self, normalized: Sequence[str]) -> sparse.csr_matrix:
        from sklearn.feature_extraction.text import TfidfVectorizer

        p = self.params
        self.char_vec = CharNgramVectorizer(p.char_ngrams[0], p.char_ngrams[1], p.max_char_chars, p.char_min_df)
        xc = self.char_vec.fit_transform(normalized)
        if p.head_weight > 0 and p.head_chars > 0:
            self.head_vec = CharNgramVectorizer(p.char_ngrams[0], p.char_ngrams[1], p.head_chars, p.char_min_df)
            xc = sparse.hstack([xc, self.head_vec.fit_transform(normalized) * p.head_weight], format="csr")
        if not self.uses_words:
            return self._stack(None, xc)
        self.word_vec = TfidfVectorizer(
            token_pattern=r"\S+",  # noqa: S106 - a regex, not a password
            lowercase=False,
            ngram_range=p.word_ngrams,
            sublinear_tf=True,
            min_df=p.word_min_df,
            dtype=np.float32,
        )
        return self._stack(self.word_vec.fit_transform(self._words(normalized)), xc)

    def transform(self, normalized: Sequence[str]) -> sparse.csr_matrix:
        if isinstance(self.char_vec, CharNgramVectorizer):
            xc = self.char_vec.transform(normalized)
        else:  # a model pickled with sklearn's char vectorizer (code version 1)
            n = self.params.max_char_chars
            xc = self.char_vec.transform([t[:n].replace(" ", "") for t in normalized])
        head = getattr(self, "head_vec", None)  # absent in models pickled before the head block
        if head is not None:
            xc = sparse.hstack([xc, head.transform(normalized) * self.params.head_weight], format="csr")
        xw = self.word_vec.transform(self._words(normalized)) if self.word_vec is not None else None
        return self._stack(xw, xc)

    def _stack(self, xw: sparse.spmatrix | None, xc: sparse.csr_matrix) -> sparse.csr_matrix:
        p = self.params
        if xw is None:
            return xc * p.char_weight if p.char_weight != 1.0 else xc
        return sparse.hstack([xw * p.word_weight, xc * p.char_weight], format="csr")

    @property
    def feature_names(self) -> np.ndarray:
        if self._names is None:
            parts = [self.char_vec.get_feature_names_out()]
            head = getattr(self, "head_vec", None)
            if head is not None:
                parts.append(head.get_feature_names_out())
            if self.word_vec is not None:
                parts.insert(0, self.word_vec.get_feature_names_out())
            self._names = np.concatenate(parts)
        return self._names


class LinearBackend:
    """Scores normalized texts with a fitted featurizer and a linear model (coef: labels x features)."""

    kind = "linear"

    def __init__(self, featurizer: Featurizer, coef: np.ndarray, intercept: np.ndarray, labels: list[str]):
        self.featurizer = featurizer
        self.coef = np.ascontiguousarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.labels = labels
        self._coef_t = np.ascontiguousarray(self.coef.T)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_coef_t"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
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
        with open(model_dir / MODEL_FILE, "wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, model_dir: Path) -> LinearBackend:
        with open(model_dir / MODEL_FILE, "rb") as fh:
            obj = pickle.load(fh)  # noqa: S301 - trusted model directory
        if not isinstance(obj, cls):
            raise TypeError(f"{model_dir / MODEL_FILE} does not hold a linear model")
        return obj


def _fit_svm(
    x: sparse.csr_matrix, y: np.ndarray, n_labels: int, C: float, seed: int, class_weight: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.svm import LinearSVC

    clf = LinearSVC(C=C, random_state=seed, max_iter=5000, dual=True, class_weight=class_weight)
    clf.fit(x, y)
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
) -> tuple[LinearBackend, np.ndarray | None]:
    """Fit the backend; with ``cv_folds`` >= 2 also return out-of-fold logits for calibration."""
    say = progress or (lambda _msg: None)
    feat = Featurizer(params.features, domain_words)
    say("features")
    x = feat.fit_transform(normalized)
    say("fit")
    coef, intercept = _fit_svm(x, y, len(labels), params.C, seed, params.class_weight)
    backend = LinearBackend(feat, coef, intercept, labels)
    oof = None
    if cv_folds >= 2:
        oof = np.zeros((len(y), len(labels)), dtype=np.float32)
        for k, (tr, te) in enumerate(_folds(y, cv_folds, seed, groups)):
            say(f"cross-validation fold {k + 1}/{cv_folds}")
            c, b = _fit_svm(x[tr], y[tr], len(labels), params.C, seed, params.class_weight)
            oof[te] = np.asarray(x[te] @ c.T) + b
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
