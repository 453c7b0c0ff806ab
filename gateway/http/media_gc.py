"""Orphaned media are removed: files in the local store that no report refers to.

Web photos are stored only once their report is valid (``gateway.api``), but a report can still
fail after that (the database refuses it, the process dies), and channel media fetched for a
report that was later merged away can linger. Every ``INTERVAL_S`` each serving process removes
files older than ``MIN_AGE_S`` with no ``media`` row (several processes doing so is harmless: a
file is either referenced or not). The age keeps a file that an intake in flight is about to
reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from gateway import keys
from gateway.db import Database, Media
from gateway.media import LocalMediaStore

log = logging.getLogger(__name__)
MIN_AGE_S = 3600.0
INTERVAL_S = 600.0
_BATCH = 500


def _files(root: Path, older_than: float) -> Iterator[Path]:
    if not root.is_dir():
        return
    for sub in root.iterdir():
        if not (sub.is_dir() and len(sub.name) == 2):
            continue
        for path in sub.iterdir():
            if len(path.name) == 64 and not path.suffix and path.stat().st_mtime < older_than:
                yield path


def _remove(path: Path) -> None:
    for victim in (path, path.with_suffix(".type")):
        with contextlib.suppress(FileNotFoundError):
            victim.unlink()


async def remove_orphans(db: Database, root: Path, *, min_age_s: float = MIN_AGE_S, now: float | None = None) -> int:
    """Delete unreferenced media files older than ``min_age_s``; the number removed."""
    cutoff = (time.time() if now is None else now) - min_age_s
    candidates = await asyncio.to_thread(lambda: list(_files(root, cutoff)))
    removed = 0
    for start in range(0, len(candidates), _BATCH):
        batch = {p.name: p for p in candidates[start : start + _BATCH]}
        async with db.session() as s:
            used = set(await s.scalars(select(Media.sha256).where(Media.sha256.in_(list(batch)))))
        for name, path in batch.items():
            if name not in used:
                await asyncio.to_thread(_remove, path)
                removed += 1
    return removed


def periodic(interval_s: float = INTERVAL_S) -> Callable[[web.Application], Any]:
    """A ``cleanup_ctx`` entry running ``remove_orphans`` every ``interval_s`` on a local store."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        store = app[keys.MEDIA]
        task = asyncio.create_task(_loop(app, store, interval_s)) if isinstance(store, LocalMediaStore) else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return ctx


async def _loop(app: web.Application, store: LocalMediaStore, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            count = await remove_orphans(app[keys.DB], store.root)
            if count:
                log.info("orphaned media removed", extra={"count": count})
        except Exception:
            log.exception("orphaned media sweep failed")


__all__ = ["periodic", "remove_orphans"]
