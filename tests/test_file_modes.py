"""The SQLite database and the media files are readable by their owner only (issue 13, item 9)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.db import Database
from gateway.media import LocalMediaStore
from gateway.migrate import upgrade


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default: new files world-readable
    yield
    os.umask(old)


async def test_a_new_sqlite_database_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "gateway.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    db = Database(url)
    try:
        async with db.session() as s:
            await s.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
            await s.execute(text("INSERT INTO probe VALUES (1)"))
            await s.commit()
        made = [p for p in path.parent.iterdir() if p.name.startswith("gateway.db")]
        assert {p.name for p in made} >= {"gateway.db", "gateway.db-wal"}
        assert {p.name: mode(p) for p in made} == {p.name: 0o600 for p in made}
        assert mode(path.parent) == 0o700  # created by the gateway
    finally:
        await db.close()


async def test_an_existing_world_readable_database_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    path.chmod(0o644)
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with db.session() as s:
            await s.execute(text("SELECT 1"))
        assert mode(path) == 0o600
    finally:
        await db.close()


async def test_media_files_and_folders_are_owner_only(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path / "media")
    stored = await store.put(b"#!AMR\n" + b"\x02" * 50, "audio/amr")
    file = tmp_path / "media" / stored.sha256[:2] / stored.sha256
    assert mode(file) == 0o600 and mode(file.with_suffix(".type")) == 0o600
    assert mode(file.parent) == 0o700 and mode(tmp_path / "media") == 0o700
