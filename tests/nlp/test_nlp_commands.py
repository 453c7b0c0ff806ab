"""`gateway train|evaluate|classify` through `register()` (as the gateway CLI wires them)."""

import argparse
import csv
import json
from pathlib import Path

import pytest

from nlp.commands import register


def run(argv, capsys):
    parser = argparse.ArgumentParser(prog="gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    rc = args.func(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


ROWS = [
    ("路灯不亮了", "0102"),
    ("路灯坏了好几天", "0102"),
    ("晚上路灯一直不亮", "0102"),
    ("这条路的路灯闪个不停", "0102"),
    ("井盖不见了", "0101"),
    ("井盖破了个洞", "0101"),
    ("井盖松动响", "0101"),
    ("有个井盖移位了", "0101"),
    ("公司拖欠工资", "1401"),
    ("老板不发工资", "1401"),
    ("工地欠薪", "1401"),
    ("讨薪无门", "1401"),
    ("广场舞太吵", "0613"),
    ("酒吧噪音大", "0613"),
    ("音响扰民", "0613"),
    ("喇叭太吵了", "0613"),
]


@pytest.fixture()
def data_csv(tmp_path: Path) -> Path:
    p = tmp_path / "data.csv"
    with p.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["content", "cat", "split"])
        for i, (t, lb) in enumerate(ROWS * 2):
            w.writerow([t + ("！" if i >= len(ROWS) else ""), lb, "train" if i % 4 else ("dev" if i % 8 else "test")])
    return p


def test_train_evaluate_classify_csv(tmp_path, data_csv, capsys):
    out = tmp_path / "model"
    rc, stdout, _ = run(
        [
            "train",
            str(data_csv),
            "--out",
            str(out),
            "--text-col",
            "content",
            "--label-col",
            "cat",
            "--seed",
            "3",
            "--no-progress",
        ],
        capsys,
    )
    assert rc == 0
    info = json.loads(stdout.strip().splitlines()[-1])
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert info["version"] == meta["version"] and meta["seed"] == 3
    assert meta["calibration"]["source"] == "5-fold cross-validation + dev"  # split column picked up
    assert meta["taxonomy_sha256"] and meta["train"]["n"] == sum(1 for i in range(32) if i % 4)

    rc, stdout, _ = run(["evaluate", str(out), str(data_csv), "--text-col", "content", "--label-col", "cat"], capsys)
    assert rc == 0
    last = json.loads(stdout.strip().splitlines()[-1])
    assert {"accuracy", "macro_f1", "ece", "coverage", "per_class"} <= set(last)
    assert last["n"] == 4  # test split only
    assert Path(last["report"]).is_file() and Path(last["confusion_matrix"]).stat().st_size > 1000
    assert Path(last["reliability_diagram"]).stat().st_size > 1000
    assert sum(r["n"] for r in last["reliability"]) == last["n"]
    assert "auto-dispatch precision" in stdout and "at coverage" in stdout and "ECE" in stdout
    assert "reliability.png" in Path(last["report"]).read_text(encoding="utf-8")
    assert "macro-F1" in Path(last["report"]).read_text(encoding="utf-8")

    rc, stdout, _ = run(["classify", "--model", str(out), "路灯不亮", "老板拖欠工资"], capsys)
    lines = [json.loads(x) for x in stdout.strip().splitlines()]
    assert rc == 0 and [x["code"] for x in lines] == ["0102", "1401"]


def test_training_is_deterministic(tmp_path, data_csv, capsys):
    for name in ("a", "b"):
        run(
            [
                "train",
                str(data_csv),
                "--out",
                str(tmp_path / name),
                "--text-col",
                "content",
                "--label-col",
                "cat",
                "--no-progress",
            ],
            capsys,
        )
    a = json.loads((tmp_path / "a" / "meta.json").read_text(encoding="utf-8"))
    b = json.loads((tmp_path / "b" / "meta.json").read_text(encoding="utf-8"))
    assert a["version"] == b["version"] and a["thresholds"] == b["thresholds"] and a["temperature"] == b["temperature"]


def test_jsonl_and_separate_dev(tmp_path, capsys):
    train = tmp_path / "train.jsonl"
    train.write_text(
        "\n".join(json.dumps({"text": t, "label": lb}, ensure_ascii=False) for t, lb in ROWS), encoding="utf-8"
    )
    rc, _, err = run(
        [
            "train",
            str(train),
            "--out",
            str(tmp_path / "m"),
            "--dev",
            str(train),
            "--no-progress",
            "--target-precision",
            "0.9",
        ],
        capsys,
    )
    assert rc == 0, err
    meta = json.loads((tmp_path / "m" / "meta.json").read_text(encoding="utf-8"))
    # held-out scores: the training rows' out-of-fold scores pooled with the dev rows
    assert meta["target_precision"] == 0.9 and meta["calibration"]["n"] == 2 * len(ROWS)
    rc, stdout, _ = run(
        ["evaluate", str(train), "--model", str(tmp_path / "m"), "--report-dir", str(tmp_path / "r")], capsys
    )
    assert rc == 0 and json.loads(stdout.strip().splitlines()[-1])["accuracy"] == 1.0


def test_classify_bundled_from_stdin(monkeypatch, capsys, tmp_path):
    import io

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO('小区门口的路灯坏了\n{"text": "楼道里有很浓的煤气味"}\n'))
    rc, stdout, _ = run(["classify", "--mask-pii"], capsys)
    lines = [json.loads(x) for x in stdout.strip().splitlines()]
    assert rc == 0 and len(lines) == 2 and lines[1]["urgent"] is True


def test_errors_are_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    rc, _, err = run(["train", str(bad), "--out", str(tmp_path / "m")], capsys)
    assert rc == 2 and "missing column" in err
    rc, _, err = run(["train", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "m")], capsys)
    assert rc == 2
    rc, _, err = run(
        [
            "train",
            str(bad),
            "--out",
            str(tmp_path / "m"),
            "--backend",
            "transformer",
            "--text-col",
            "a",
            "--label-col",
            "b",
        ],
        capsys,
    )
    assert rc == 2 and "--base-model" in err
