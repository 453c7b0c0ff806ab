"""The agreement figures of docs/annotation.md are what the committed second-pass file gives."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from sklearn.metrics import cohen_kappa_score

ROOT = Path(__file__).resolve().parents[2]
SECOND_PASS = ROOT / "nlp" / "data" / "annotation" / "second_pass.tsv"
DOC = ROOT / "docs" / "annotation.md"


def _rows() -> list[dict[str, str]]:
    with SECOND_PASS.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _kappas(column: str) -> tuple[float, float]:
    rows = _rows()
    ours, second = [r[column] for r in rows], [r["second_pass"] for r in rows]
    sub = cohen_kappa_score(ours, second)
    top = cohen_kappa_score([c[:2] for c in ours], [c[:2] for c in second])
    return round(float(sub), 3), round(float(top), 3)


def _documented(label: str) -> tuple[float, float]:
    line = next(line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith(f"| {label} |"))
    figures = [float(x) for x in re.findall(r"\*\*(\d\.\d+)\*\*", line)]
    assert len(figures) == 2, line
    return figures[0], figures[1]


def test_the_second_pass_covers_300_distinct_rows_with_valid_codes():
    rows = _rows()
    assert len(rows) == 300
    assert len({r["id"] for r in rows}) == 300
    for r in rows:
        for column in ("first_pass", "corpus", "second_pass"):
            assert re.fullmatch(r"\d{4}", r[column]), r


def test_documented_kappas_match_the_data():
    assert _kappas("first_pass") == _documented("first pass")
    assert _kappas("corpus") == _documented("first pass after review (the corpus)")
