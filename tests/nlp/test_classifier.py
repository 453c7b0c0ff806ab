import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nlp import Candidate, Classifier, Prediction, load_classifier
from nlp.loader import SEED_CORPUS_PATH, bundled_model_key, ensure_bundled_model, seed_params
from nlp.taxonomy import load_taxonomy

PROBES = [
    ("小区门口的路灯坏了好几天了", "0102"),
    ("楼道里有很浓的煤气味", "1003"),
    ("马路中间的井盖不见了，晚上太危险", "0101"),
    ("楼下饭店的油烟熏得我们不敢开窗", "0612"),
    ("工地半夜还在打桩施工，吵得睡不着", "0801"),
    ("老板拖欠我们三个月工资了", "1401"),
    ("有辆车乱停在小区出口，车出不去", "0906"),
    ("垃圾桶满了好几天没人清运，臭死了", "0604"),
    ("我们这片停水了，也没有提前通知", "1301"),
    ("物业费收了但是楼道从来没人打扫", "1306"),
    ("孩子在学校被同学欺负，老师不管", "1109"),
    ("广场舞音响太吵了，晚上十点还在跳", "0613"),
]


def test_import_is_light():
    code = "import sys, nlp; print([m for m in ('torch', 'transformers', 'jieba', 'sklearn') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_bundled_model_is_a_classifier_with_the_seam(bundled):
    assert isinstance(bundled, Classifier)
    assert bundled.version.startswith("seed-linear-")
    [p] = bundled.classify(["小区门口的路灯坏了好几天了"])
    assert isinstance(p, Prediction)
    assert p.code == "0102" and p.parent_code == "01" and p.parent_name == "市政公用设施"
    assert p.name == "路灯与景观照明"
    assert len(p.top_k) == 3 and all(isinstance(c, Candidate) for c in p.top_k)
    assert p.top_k[0].code == "01" and p.top_k[0].confidence >= p.top_k[1].confidence
    assert 0 < p.confidence <= 1 and p.priority in {"P1", "P2", "P3", "P4"}
    assert p.set_by == "model" and "0102" in p.explanation
    assert p.model_version == bundled.version
    json.dumps(p.to_dict(), ensure_ascii=False)


def test_probes(bundled):
    preds = bundled.classify([t for t, _ in PROBES])
    got = [(t, p.code, exp) for (t, exp), p in zip(PROBES, preds, strict=True)]
    wrong = [g for g in got if g[1] != g[2]]
    assert len(wrong) <= 2, wrong
    top_wrong = [g for g in got if g[1][:2] != g[2][:2]]
    assert len(top_wrong) <= 1, top_wrong


def test_gas_smell_is_urgent_p1(bundled):
    [p] = bundled.classify(["楼道里有很浓的煤气味"])
    assert p.urgent and p.priority == "P1" and p.code == "1003"
    [q] = bundled.classify(["路灯不亮了"])
    assert not q.urgent and q.priority != "P1"


def test_urgency_rule_sets_category_when_model_unsure(bundled):
    [p] = bundled.classify(["那边好像着火了快来"])
    assert p.urgent and p.priority == "P1"
    if p.needs_review:
        assert p.code == "1010" and p.set_by == "rule"


def test_gibberish_needs_review(bundled):
    [p] = bundled.classify(["嗯嗯嗯 ok 123"])
    assert p.needs_review


def test_empty_and_batch(bundled):
    assert bundled.classify([]) == []
    with pytest.raises(TypeError):
        bundled.classify("一个字符串")  # type: ignore[arg-type]
    assert len(bundled.classify(["", "路灯坏了"] * 10)) == 20


def test_deterministic_and_cached(model_cache: Path, bundled):
    assert load_classifier(cache_dir=model_cache) is bundled
    key = bundled_model_key()
    assert (model_cache / f"seed-{key[:16]}" / "meta.json").is_file()
    assert ensure_bundled_model(model_cache) == model_cache / f"seed-{key[:16]}"


@pytest.mark.slow
def test_changed_corpus_changes_key(tmp_path, monkeypatch):
    import nlp.loader as loader

    corpus = tmp_path / "seed.jsonl"
    corpus.write_bytes(SEED_CORPUS_PATH.read_bytes() + '{"text":"新的一句","label":"0102","phrase":99}\n'.encode())
    before = bundled_model_key()
    monkeypatch.setattr(loader, "SEED_CORPUS_PATH", corpus)
    assert bundled_model_key() != before


@pytest.mark.slow
def test_heldout_phrases_accuracy(tmp_path):
    """Train without a quarter of the phrases; classify sentences built from the unseen ones."""
    from nlp.model import TaxonomyClassifier  # noqa: F401 - type for readers
    from nlp.train import train_model

    rows = [json.loads(line) for line in SEED_CORPUS_PATH.read_text(encoding="utf-8").splitlines()]
    train = [r for r in rows if r["phrase"] < 0 or r["phrase"] % 4 != 3]
    test = [r for r in rows if r["phrase"] >= 0 and r["phrase"] % 4 == 3]
    train_model(
        [r["text"] for r in train],
        [r["label"] for r in train],
        tmp_path / "m",
        taxonomy=load_taxonomy(),
        cv_folds=0,
        linear_params=seed_params(),
    )
    clf = load_classifier(tmp_path / "m")
    preds = clf.classify([r["text"] for r in test])
    sub = np.mean([p.code == r["label"] for p, r in zip(preds, test, strict=True)])
    top = np.mean([(p.parent_code or p.code) == r["label"][:2] for p, r in zip(preds, test, strict=True)])
    print(f"held-out phrases: n={len(test)} subcategory accuracy {sub:.3f}, top-level {top:.3f}")
    assert sub > 0.72 and top > 0.76


def test_keyword_rule_picks_subcategory_for_top_level_models(tmp_path):
    from nlp.train import train_model

    texts = ["路灯不亮", "路灯坏了", "井盖丢了", "井盖坏了", "工资拖欠", "老板不发工资", "拖欠工资", "欠薪"]
    labels = ["01", "01", "01", "01", "14", "14", "14", "14"]
    train_model(texts, labels, tmp_path / "m", taxonomy=load_taxonomy(), cv_folds=2)
    clf = load_classifier(tmp_path / "m")
    [p] = clf.classify(["我家门口的路灯不亮"])
    assert p.parent_code == "01" and p.code == "0102"
    assert "keyword rule" in p.explanation


def test_flat_labels(tmp_path):
    from nlp.train import train_model

    texts = ["工资拖欠", "老板不发工资", "拖欠工资了", "欠薪讨薪", "学校收费", "孩子入学难", "学位不够", "转学手续"]
    labels = ["劳动和社会保障"] * 4 + ["教育文体"] * 4
    meta = train_model(texts, labels, tmp_path / "m", taxonomy=load_taxonomy(), cv_folds=2)
    assert meta["taxonomy_based"] is False
    clf = load_classifier(tmp_path / "m")
    [p] = clf.classify(["公司拖欠工资"])
    assert p.code == "劳动和社会保障" and p.parent_code is None and p.label == p.code
