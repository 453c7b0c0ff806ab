"""Reading labelled examples from CSV or JSONL files."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

ORIGIN_COL = "origin"  # optional: "generated" rows (the seed corpus) train but never calibrate
GENERATED = "generated"


class DataError(ValueError):
    """A data file lacks a column or cannot be read."""


@dataclass(frozen=True)
class Examples:
    texts: list[str]
    labels: list[str]
    origins: list[str] = field(default_factory=list)  # the ``origin`` column, when the file has one

    def calibration_rows(self) -> list[bool] | None:
        """Rows whose held-out scores may calibrate: all but generated ones (None: all rows)."""
        return [o != GENERATED for o in self.origins] if self.origins else None

    def __len__(self) -> int:
        return len(self.texts)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """All rows of a CSV (header row; UTF-8, BOM allowed) or JSONL file (``.jsonl``, ``.ndjson``)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    if p.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        rows = []
        with p.open(encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{p}:{n}: not JSON: {exc}") from exc
                if not isinstance(obj, dict):
                    raise DataError(f"{p}:{n}: each line must be a JSON object")
                rows.append({str(k): "" if v is None else str(v) for k, v in obj.items()})
        return rows
    with p.open(encoding="utf-8-sig", newline="") as fh:
        return [dict(r) for r in csv.DictReader(fh)]


def select(
    rows: list[dict[str, str]],
    *,
    text_col: str = "text",
    label_col: str = "label",
    split_col: str | None = None,
    split: str | None = None,
    require_label: bool = True,
    source: str = "data",
) -> Examples:
    """Texts and labels of the rows (of one split when ``split_col`` and ``split`` are given)."""
    if rows:
        missing = [c for c in (text_col, label_col if require_label else None, split_col) if c and c not in rows[0]]
        if missing:
            raise DataError(f"{source}: missing column(s) {', '.join(missing)}; has {', '.join(rows[0])}")
    texts, labels, origins = [], [], []
    has_origin = bool(rows) and ORIGIN_COL in rows[0]
    for r in rows:
        if split_col and split is not None and r.get(split_col, "") != split:
            continue
        text = (r.get(text_col) or "").strip()
        label = (r.get(label_col) or "").strip()
        if not text or (require_label and not label):
            continue
        texts.append(text)
        labels.append(label)
        if has_origin:
            origins.append((r.get(ORIGIN_COL) or "").strip())
    return Examples(texts, labels, origins)
