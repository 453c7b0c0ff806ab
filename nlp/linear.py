"""The fast default backend: sparse word and character n-grams with a linear model.

Features (``Featurizer``), computed on ``segment.normalize``-d text:

- word unigrams of the jieba tokens (domain dictionary from the taxonomy, stop
  words and punctuation dropped), TF-IDF with sublinear term frequency;
- character n-grams of the normalized text without spaces, TF-IDF, sublinear.

Long texts are cut for speed: only the first ``max_seg_chars`` characters are segmented and the
first ``max_char_chars`` feed the character n-grams (a web complaint says what it is about in
its title and first sentences; the rest mostly adds time and cost).

The model is a one-vs-rest linear SVM (``LinearSVC``); its decision scores are turned into
probabilities by a softmax whose temperature is fitted on held-out data (see ``train``).
Model files are pickles: a model directory is a trusted artefact, like code.
"""

from __future__ import annotations

import pickle  # noqa: S403 - model directories are trusted artefacts written by `gateway train`
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from .segment import Segmenter, get_segmenter

MODEL_FILE = "linear.pkl"


@dataclass
class FeatureParams:
    word_ngrams: tuple[int, int] = (1, 1)
    char_ngrams: tuple[int, int] = (1, 3)
    word_min_df: int = 1
    char_min_df: int = 2
    max_seg_chars: int = 400
    max_char_chars: int = 600
    char_weight: float = 1.0
    word_weight: float = 1.0


@dataclass
class LinearParams:
    C: float = 0.7
    features: FeatureParams = field(default_factory=FeatureParams)


class Featurizer:
    def __init__(self, params: FeatureParams, domain_words: Sequence[str]) -> None:
        self.params = params
        self.domain_words = tuple(sorted(set(domain_words)))
        self.word_vec: Any = None
        self.char_vec: Any = None
        self._names: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_names"] = None
        return state

    @property
    def segmenter(self) -> Segmenter:
        return get_segmenter(self.domain_words)

    def prepare(self, normalized: Sequence[str]) -> tuple[list[str], list[str]]:
        """Word and character views of normalized texts."""
        seg = self.segmenter
        p = self.params
        words = [" ".join(seg.cut(t[: p.max_seg_chars])) for t in normalized]
        chars = [t[: p.max_char_chars].replace(" ", "") for t in normalized]
        return words, chars

    def fit_transform(self, normalized: Sequence[str]) -> sparse.csr_matrix:
        from sklearn.feature_extraction.text import TfidfVectorizer

        p = self.params
        self.word_vec = TfidfVectorizer(
            token_pattern=r"\S+",  # noqa: S106 - a regex, not a password
            lowercase=False, ngram_range=p.word_ngrams, sublinear_tf=True,
            min_df=p.word_min_df, dtype=np.float32,
        )
        self.char_vec = TfidfVectorizer(
            analyzer="char", lowercase=False, ngram_range=p.char_ngrams, sublinear_tf=True,
            min_df=p.char_min_df, dtype=np.float32,
        )
        words, chars = self.prepare(normalized)
        xw = self.word_vec.fit_transform(words)
        xc = self.char_vec.fit_transform(chars)
        return self._stack(xw, xc)

    def transform(self, normalized: Sequence[str]) -> sparse.csr_matrix:
        words, chars = self.prepare(normalized)
        return self._stack(self.word_vec.transform(words), self.char_vec.transform(chars))

    def _stack(self, xw: sparse.spmatrix, xc: sparse.spmatrix) -> sparse.csr_matrix:
        p = self.params
        return sparse.hstack([xw * p.word_weight, xc * p.char_weight], format="csr")

    @property
    def feature_names(self) -> np.ndarray:
        if self._names is None:
            self._names = np.concatenate(
                [self.word_vec.get_feature_names_out(), self.char_vec.get_feature_names_out()]
            )
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
        order = np.argsort(-contrib)[:k]
        names = self.featurizer.feature_names
        return [str(names[idx[i]]) for i in order if contrib[i] > 0]

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


def _fit_svm(x: sparse.csr_matrix, y: np.ndarray, n_labels: int, C: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.svm import LinearSVC

    clf = LinearSVC(C=C, random_state=seed, max_iter=5000, dual=True)
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
    coef, intercept = _fit_svm(x, y, len(labels), params.C, seed)
    backend = LinearBackend(feat, coef, intercept, labels)
    oof = None
    if cv_folds >= 2:
        oof = np.zeros((len(y), len(labels)), dtype=np.float32)
        for k, (tr, te) in enumerate(_folds(y, cv_folds, seed, groups)):
            say(f"cross-validation fold {k + 1}/{cv_folds}")
            c, b = _fit_svm(x[tr], y[tr], len(labels), params.C, seed)
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
