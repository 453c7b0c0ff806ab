"""The 7-class 12345 dataset in ../shared: train/dev/test splits, flat labels (skips without it)."""

from pathlib import Path

import pytest

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def test_linear_on_gov7_subset(shared_dir: Path, tmp_path: Path):
    from nlp import load_classifier
    from nlp.dataio import read_rows, select
    from nlp.evaluate import evaluate
    from nlp.linear import FeatureParams, LinearParams
    from nlp.taxonomy import load_taxonomy
    from nlp.train import train_model

    rows = read_rows(shared_dir / "datasets" / "gov_messages_7class" / "data.csv")
    train = select(rows, split_col="split", split="train")
    dev = select(rows, split_col="split", split="dev")
    test = select(rows, split_col="split", split="test")
    # every 3rd row (the file is in source order, grouped by topic): fast; the benchmark uses everything
    params = LinearParams(features=FeatureParams(max_seg_chars=200, max_char_chars=300))
    meta = train_model(
        train.texts[::3],
        train.labels[::3],
        tmp_path / "m",
        taxonomy=load_taxonomy(),
        dev_texts=dev.texts[::2],
        dev_labels=dev.labels[::2],
        linear_params=params,
    )
    assert meta["taxonomy_based"] is False and len(meta["labels"]) == 7
    clf = load_classifier(tmp_path / "m")
    m = evaluate(clf, test.texts[::3], test.labels[::3], out_dir=tmp_path / "eval")
    assert m["macro_f1"] > 0.85 and m["ece"] < 0.08
    assert m["precision_routed"] > 0.93
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()
    # unsegmented originals classify like the segmented, stop-word-stripped training text
    raw = [(r["raw_text"], r["label"]) for r in rows if r["split"] == "test" and r["raw_text"]][::2]
    preds = clf.classify([t for t, _ in raw])
    acc = sum(p.code == lb for p, (_, lb) in zip(preds, raw, strict=True)) / len(raw)
    assert acc > 0.85
