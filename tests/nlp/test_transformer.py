"""The transformer backend with a tiny BERT built here (no hub, no downloads)."""

import argparse
import json
from pathlib import Path

import pytest

from tests.conftest import require_module

pytestmark = pytest.mark.transformer

ROWS = [
    ("路灯不亮了", "0102"),
    ("路灯坏了好几天", "0102"),
    ("晚上路灯一直不亮", "0102"),
    ("公司拖欠工资", "1401"),
    ("老板不发工资", "1401"),
    ("工地欠薪了", "1401"),
] * 4


@pytest.fixture()
def tiny_base(tmp_path: Path) -> Path:
    require_module("torch")
    transformers = require_module("transformers")
    chars = sorted({c for t, _ in ROWS for c in t} | set("的了有我门口楼道煤气味"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    base = tmp_path / "tiny-bert"
    base.mkdir()
    (base / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = transformers.BertTokenizer(str(base / "vocab.txt"), do_lower_case=False)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=64,
    )
    import torch

    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(base)
    tok.save_pretrained(base)
    return base


def test_train_load_classify(tmp_path, tiny_base, capsys):
    from nlp import load_classifier
    from nlp.commands import register

    data = tmp_path / "train.jsonl"
    data.write_text(
        "\n".join(json.dumps({"text": t, "label": lb}, ensure_ascii=False) for t, lb in ROWS), encoding="utf-8"
    )
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "model"
    args = parser.parse_args(
        [
            "train",
            str(data),
            "--out",
            str(out),
            "--backend",
            "transformer",
            "--base-model",
            str(tiny_base),
            "--max-steps",
            "3",
            "--batch-size",
            "8",
            "--no-progress",
        ]
    )
    assert args.func(args) == 0
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["backend"] == "transformer" and meta["labels"] == ["0102", "1401"]
    assert (out / "hf" / "config.json").is_file()

    clf = load_classifier(out)
    preds = clf.classify(["路灯不亮", "楼道里有很浓的煤气味"])
    assert len(preds) == 2
    for p in preds:
        assert p.code in {"0102", "1401"} and p.parent_code in {"01", "14"}
        assert abs(sum(c.confidence for c in p.top_k) - 1) < 0.01
        assert p.model_version.startswith("transformer-")
    assert preds[1].urgent and preds[1].priority == "P1"
