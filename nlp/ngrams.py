"""A fast character n-gram TF-IDF vectorizer, vectorized over a whole batch with numpy.

sklearn's ``TfidfVectorizer(analyzer="char")`` builds every n-gram as a Python string; for
Chinese text that is most of the cost of classifying a report. Here a batch of texts is joined
into one array of code points (a 0 between texts), every n-gram is hashed to 64 bits with integer
arithmetic (no Python loop over characters), and the hashes are looked up in the sorted vocabulary
with ``np.searchsorted``. The vocabulary is exact (64-bit hashes of the n-grams seen at least
``min_df`` times in training; a collision between two of the ~10^5 n-grams has odds of ~10^-9),
and each vocabulary entry keeps its n-gram string for explanations.

Weights are those of ``TfidfVectorizer(sublinear_tf=True, smooth_idf=True, norm="l2")``:
``(1 + log tf) * idf`` with ``idf = ln((1 + n) / (1 + df)) + 1``, rows scaled to unit length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

_P = np.uint64(1_000_003)
# One salt per n so that a bigram's hash never equals a unigram's code point or a trigram's hash.
_SALTS = (
    np.uint64(0),
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xC2B2AE3D27D4EB4F),
    np.uint64(0x165667B19E3779F9),
    np.uint64(0x27D4EB2F165667C5),
)
MAX_N = len(_SALTS)


def _codes(texts: Sequence[str], max_chars: int) -> tuple[np.ndarray, str]:
    """Code points of the texts (first ``max_chars``, spaces removed), a 0 after each text."""
    joined = "\x00".join(t[:max_chars].replace(" ", "").replace("\x00", "") for t in texts) + "\x00"
    return np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64), joined


def _hashes(codes: np.ndarray, n_min: int, n_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hashes, row ids, start positions and lengths of all n-grams that do not cross a text boundary."""
    sep = codes == 0
    sep_u8 = sep.astype(np.int64)
    row = np.cumsum(sep_u8) - sep_u8
    hs, rows, starts, lens = [], [], [], []
    with np.errstate(over="ignore"):
        for n in range(n_min, n_max + 1):
            size = len(codes) - n + 1
            if size <= 0:
                continue
            h = codes[:size].copy()
            bad = sep[:size].copy()
            for k in range(1, n):
                h = h * _P + codes[k : k + size]
                bad |= sep[k : k + size]
            h ^= _SALTS[n - 1]
            ok = np.flatnonzero(~bad)
            hs.append(h[ok])
            rows.append(row[ok])
            starts.append(ok)
            lens.append(np.full(len(ok), n, dtype=np.int64))
    if not hs:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=np.uint64), empty, empty, empty
    return np.concatenate(hs), np.concatenate(rows), np.concatenate(starts), np.concatenate(lens)


class CharNgramVectorizer:
    """Character ``n_min``..``n_max``-grams of the first ``max_chars`` characters, TF-IDF (see module doc)."""

    def __init__(self, n_min: int = 1, n_max: int = 2, max_chars: int = 600, min_df: int = 2) -> None:
        if not 1 <= n_min <= n_max <= MAX_N:
            raise ValueError(f"n-gram range must lie within 1..{MAX_N}")
        self.n_min, self.n_max, self.max_chars, self.min_df = n_min, n_max, max_chars, min_df
        self.vocab = np.zeros(0, dtype=np.uint64)
        self.idf = np.zeros(0, dtype=np.float32)
        self.names = np.zeros(0, dtype=object)

    def fit(self, texts: Sequence[str]) -> CharNgramVectorizer:
        codes, joined = _codes(texts, self.max_chars)
        h, rows, starts, lens = _hashes(codes, self.n_min, self.n_max)
        # document frequency: distinct (hash, row) pairs per hash
        order = np.lexsort((rows, h))
        h_s, r_s = h[order], rows[order]
        first_pair = np.ones(len(h_s), dtype=bool)
        first_pair[1:] = (h_s[1:] != h_s[:-1]) | (r_s[1:] != r_s[:-1])
        uh, first_idx, df = np.unique(h_s[first_pair], return_index=True, return_counts=True)
        keep = df >= self.min_df
        self.vocab = uh[keep]
        n = len(texts)
        self.idf = (np.log((1.0 + n) / (1.0 + df[keep])) + 1.0).astype(np.float32)
        pos = order[np.flatnonzero(first_pair)[first_idx[keep]]]
        self.names = np.asarray([joined[s : s + k] for s, k in zip(starts[pos], lens[pos], strict=True)], dtype=object)
        return self

    def fit_transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        return self.fit(texts).transform(texts)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        n_rows, n_cols = len(texts), len(self.vocab)
        codes, _ = _codes(texts, self.max_chars)
        h, rows, _, _ = _hashes(codes, self.n_min, self.n_max)
        if n_cols == 0 or len(h) == 0:
            return sparse.csr_matrix((n_rows, n_cols), dtype=np.float32)
        idx = np.searchsorted(self.vocab, h)
        np.minimum(idx, n_cols - 1, out=idx)
        hit = self.vocab[idx] == h
        rows, idx = rows[hit], idx[hit]
        # term counts: sort by (row, column) and count runs
        key = rows * n_cols + idx
        key.sort()
        uniq, counts = np.unique(key, return_counts=True)
        r, c = np.divmod(uniq, n_cols)
        data = (1.0 + np.log(counts.astype(np.float32))) * self.idf[c]
        sq = np.bincount(r, weights=data.astype(np.float64) ** 2, minlength=n_rows)
        norms = np.sqrt(sq)
        norms[norms == 0] = 1.0
        data = (data / norms[r]).astype(np.float32)
        indptr = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=n_rows), out=indptr[1:])
        return sparse.csr_matrix((data, c.astype(np.int32), indptr), shape=(n_rows, n_cols))

    def get_feature_names_out(self) -> np.ndarray:
        return self.names
