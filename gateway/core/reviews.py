"""Labeled examples from moderators' decisions: the classifier's learning loop.

When a moderator confirms or changes a report's category, the report's text (title and body,
as the classifier saw them, with personal data masked) and the category become one row of
``labeled_examples``; a later decision on the same report replaces it. ``export_examples``
writes them as a CSV with ``text,label`` columns, the input of ``gateway train --from-reviews``.
"""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import Database, LabeledExample, Report, utcnow
from nlp.pii import mask_pii


def _mask(text: str) -> str:
    return mask_pii(text)


def example_text(report: Report) -> str:
    return "\n".join(p for p in (report.title, report.text) if p)


async def record_example(
    s: AsyncSession, report: Report, label: str, *, model_label: str | None, moderator: str, source: str
) -> LabeledExample:
    """Store (or replace) the moderator's label of ``report`` inside the caller's transaction."""
    row = await s.scalar(select(LabeledExample).where(LabeledExample.report_id == report.id))
    if row is None:
        row = LabeledExample(report_id=report.id)
        s.add(row)
    row.text = _mask(example_text(report))
    row.label = label
    row.model_label = model_label
    row.model_version = report.category_model_version
    row.source = source
    row.moderator = moderator
    row.created_at = utcnow()
    return row


async def examples_csv(db: Database, *, for_spreadsheets: bool = False) -> str:
    """All labeled examples as CSV text (``text,label``), oldest first.

    ``for_spreadsheets``: a cell that starts like a formula (``= + - @``, tab, CR) gets a leading
    ``'`` so that a spreadsheet shows it as text instead of running it (CSV injection, OWASP);
    the training export keeps the text as it is.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label"])
    async with db.session() as s:
        rows = await s.execute(select(LabeledExample.text, LabeledExample.label).order_by(LabeledExample.id))
        for text, label in rows:
            writer.writerow([_as_text(text), label] if for_spreadsheets else [text, label])
    return out.getvalue()


def _as_text(cell: str) -> str:
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


async def export_examples(db: Database, path: str | Path) -> int:
    """Write the labeled examples to ``path`` as CSV (``text,label``); returns how many rows."""
    body = await examples_csv(db)
    await asyncio.to_thread(_write, Path(path), body)
    return max(0, sum(1 for _ in csv.reader(io.StringIO(body))) - 1)


def _write(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
