"""ONNX export and onnxruntime serving of a transformer model directory (tiny BERT, no downloads)."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_module
from tests.nlp.test_transformer import ROWS, tiny_base  # noqa: F401 - tiny_base is a fixture

pytestmark = pytest.mark.transformer

TEXTS = ["路灯不亮", "楼道里有很浓的煤气味", "老板拖欠工资好几个月了", "晚上门口的路灯坏了"]


def _train(tmp_path: Path, base: Path, *extra: str) -> Path:
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
            str(base),
            "--max-steps",
            "3",
            "--batch-size",
            "8",
            "--no-progress",
            *extra,
        ]
    )
    assert args.func(args) == 0
    return out


@pytest.fixture()
def trained(tmp_path, tiny_base):  # noqa: F811 - the imported fixture
    require_module("onnxruntime")
    return _train(tmp_path, tiny_base)


def test_export_matches_torch(trained):
    from nlp import load_classifier
    from nlp.onnx_export import OnnxBackend, export_onnx
    from nlp.segment import normalize

    torch_clf = load_classifier(trained)
    assert type(torch_clf.backend).__name__ == "TransformerBackend"
    path = export_onnx(trained)
    assert path == trained / "model.onnx" and path.stat().st_size > 0
    meta = json.loads((trained / "meta.json").read_text(encoding="utf-8"))
    assert meta["runtime"] == "onnx" and meta["format"] == 1
    assert meta["onnx"]["inputs"] == ["input_ids", "token_type_ids", "attention_mask"]
    assert meta["onnx"]["max_abs_diff"] < 1e-4

    onnx = OnnxBackend.load(trained)
    normalized = [normalize(t) for t in TEXTS]
    got, _ = onnx.logits(normalized)
    want, _ = torch_clf.backend.logits(normalized)
    assert got.shape == want.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)  # tiny logits: relative too
    # Dynamic axes: one text (batch 1, its own sequence length) gives the same row as in the batch.
    np.testing.assert_allclose(onnx.logits(normalized[:1])[0], want[:1], rtol=1e-4, atol=1e-6)
    assert onnx.logits([])[0].shape == (0, 2)

    served = load_classifier(trained, runtime="onnx")
    assert isinstance(served.backend, OnnxBackend)
    # meta's runtime (written by the export) picks onnx when no runtime is given
    assert isinstance(load_classifier(str(trained) + "/", runtime=None).backend, OnnxBackend)
    for a, b in zip(served.classify(TEXTS), torch_clf.classify(TEXTS), strict=True):
        assert (a.code, a.needs_review, a.urgent, a.label) == (b.code, b.needs_review, b.urgent, b.label)
        assert abs(a.confidence - b.confidence) < 1e-4


def test_runtime_choice(trained):
    from nlp import load_classifier

    with pytest.raises(ValueError, match="no model.onnx"):
        load_classifier(trained, runtime="onnx")
    with pytest.raises(ValueError, match="unknown runtime"):
        load_classifier(trained, runtime="tensorrt")
    # meta asks for onnx but model.onnx is gone: torch serves
    meta = json.loads((trained / "meta.json").read_text(encoding="utf-8"))
    (trained / "meta.json").write_text(json.dumps({**meta, "runtime": "onnx"}), encoding="utf-8")
    assert type(load_classifier(trained).backend).__name__ == "TransformerBackend"


def test_cli_export_onnx(tmp_path, tiny_base):  # noqa: F811 - the imported fixture
    require_module("onnxruntime")
    from nlp import load_classifier
    from nlp.onnx_export import OnnxBackend

    out = _train(tmp_path, tiny_base, "--export-onnx")
    assert (out / "model.onnx").is_file()
    clf = load_classifier(out)
    assert isinstance(clf.backend, OnnxBackend)
    preds = clf.classify(["路灯不亮", "楼道里有很浓的煤气味"])
    assert [p.code[:2] in {"01", "14"} for p in preds] == [True, True]
    assert preds[1].urgent


def test_export_onnx_flag_needs_transformer(tmp_path, capsys):
    from nlp.commands import register

    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"text": "路灯不亮了", "label": "0102"}, ensure_ascii=False), encoding="utf-8")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", str(data), "--out", str(tmp_path / "m"), "--export-onnx"])
    assert args.func(args) == 2
    assert "--export-onnx needs --backend transformer" in capsys.readouterr().err
