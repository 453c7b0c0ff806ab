"""``gateway train --from-reviews``: retrain with what moderators confirmed (the learning loop).

The moderators' confirmed or corrected categories (``gateway/core/reviews.py``) are added to the
training data as labeled examples: to DATA when given, otherwise to the bundled model's own
training data (generated seed sentences and the annotated real reports, ``nlp.bundled``) with the
bundled model's parameters, so the new model knows every category and learns the city's own
wording. The merged file is handed to the ordinary ``train`` command. Rows whose ``origin`` is
``generated`` train but never calibrate: thresholds and confidence come from real reports only.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from gateway.core.reviews import examples_csv
from gateway.db import Database
from gateway.settings import load_settings
from nlp.bundled import write_training_file
from nlp.dataio import read_rows


def extend_train_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    train = sub.choices.get("train")
    if train is None:
        return
    for action in train._actions:
        if action.dest == "data":
            action.nargs = "?"
            action.help = f"{action.help} (optional with --from-reviews: default the bundled model's training data)"
    train.add_argument(
        "--from-reviews",
        action="store_true",
        help="add the categories moderators confirmed in the console (GATEWAY_DATABASE_URL) to the training data",
    )
    plain = train.get_default("func")
    train.set_defaults(func=lambda args: _train(args, plain))


def _train(args: argparse.Namespace, plain: Any) -> int:
    if not args.from_reviews:
        if not args.data:
            print("gateway train: DATA is required (or use --from-reviews)", file=sys.stderr)
            return 2
        return int(plain(args))
    reviews = asyncio.run(_reviews(load_settings().db_url))
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            base = Path(args.data)
        else:
            base = _default_base(Path(tmp) / "bundled_training_data.jsonl")
            args.bundled_params = True
        merged = Path(tmp) / "train_with_reviews.jsonl"
        count = merge(base, args.text_col, args.label_col, reviews, merged)
        print(
            f"training on {base.name} plus {len(reviews)} moderator-confirmed examples ({count} rows)", file=sys.stderr
        )
        args.data, args.text_col, args.label_col = str(merged), "text", "label"
        return int(plain(args))


async def _reviews(url: str) -> list[tuple[str, str]]:
    db = Database(url)
    try:
        body = await examples_csv(db)
    finally:
        await db.close()
    return [(row["text"], row["label"]) for row in csv.DictReader(io.StringIO(body))]


def _default_base(path: Path) -> Path:
    write_training_file(path)
    return path


def merge(base: Path, text_col: str, label_col: str, reviews: list[tuple[str, str]], out: Path) -> int:
    """Write the base rows and the reviews as JSONL; with splits in the base, reviews go to ``train``."""
    rows = read_rows(base)
    split = any(row.get("split") for row in rows)  # reviews join the train split, if there are splits
    origin = any(row.get("origin") for row in rows)  # generated rows must stay marked (never calibrate)
    with out.open("w", encoding="utf-8") as fh:
        for row in rows:
            record = {"text": row[text_col], "label": row[label_col]}
            if split:
                record["split"] = row.get("split") or "train"
            if origin:
                record["origin"] = row.get("origin") or ""
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        for text, label in reviews:
            record = {"text": text, "label": label, **({"split": "train"} if split else {})}
            if origin:
                record["origin"] = "review"
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(rows) + len(reviews)
