"""The numpy character n-gram vectorizer gives sklearn's TF-IDF, batch by batch."""

import numpy as np
import pytest

from nlp.ngrams import CharNgramVectorizer

TRAIN = [
    "小区门口的路灯坏了好几天了",
    "路灯不亮，晚上走路很危险",
    "楼下饭店油烟太大",
    "饭店油烟熏得不敢开窗",
    "老板拖欠工资三个月",
    "公司拖欠工资不发",
    "路灯 坏了 井盖 丢了",
    "abc路灯abc",
]
OTHER = ["路灯坏了", "油烟", "", "完全没见过的字", "拖欠工资拖欠工资"]


@pytest.mark.parametrize(("n_min", "n_max", "max_chars", "min_df"), [(1, 2, 600, 2), (1, 3, 600, 1), (2, 3, 5, 1)])
def test_same_as_sklearn_tfidf(n_min, n_max, max_chars, min_df):
    from sklearn.feature_extraction.text import TfidfVectorizer

    ours = CharNgramVectorizer(n_min, n_max, max_chars, min_df)
    x = ours.fit_transform(TRAIN)
    ref = TfidfVectorizer(
        analyzer="char", lowercase=False, ngram_range=(n_min, n_max), sublinear_tf=True, min_df=min_df, dtype=np.float32
    )
    prep = [t[:max_chars].replace(" ", "") for t in TRAIN]
    xr = ref.fit_transform(prep)
    assert x.shape == xr.shape
    col = {name: i for i, name in enumerate(ref.get_feature_names_out())}
    perm = np.asarray([col[name] for name in ours.get_feature_names_out()])
    assert abs(x - xr[:, perm]).max() < 1e-6
    y = ours.transform(OTHER)
    yr = ref.transform([t[:max_chars].replace(" ", "") for t in OTHER])[:, perm]
    assert abs(y - yr).max() < 1e-6


def test_rows_do_not_depend_on_the_batch():
    v = CharNgramVectorizer().fit(TRAIN)
    together = v.transform(OTHER).toarray()
    alone = np.vstack([v.transform([t]).toarray() for t in OTHER])
    assert np.allclose(together, alone)
    assert together[2].sum() == 0 and together[3].sum() == 0  # empty and unseen texts: no features
    assert v.transform([]).shape == (0, len(v.vocab))


def test_ngrams_never_cross_texts():
    v = CharNgramVectorizer(2, 2, 600, 1).fit(["甲乙", "丙丁"])
    assert sorted(v.get_feature_names_out()) == ["丙丁", "甲乙"]  # no "乙丙"
