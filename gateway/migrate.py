"""Apply Alembic migrations programmatically (``gateway migrate`` and start-up)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from gateway.db import make_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(url: str, revision: str = "heads") -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_sync, url, revision)
    finally:
        await engine.dispose()


def _upgrade_sync(connection: object, url: str, revision: str) -> None:
    cfg = alembic_config(url)
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def upgrade_blocking(url: str, revision: str = "heads") -> None:
    asyncio.run(upgrade(url, revision))


def missing_database(url: str) -> str | None:
    """A one-line reason when ``url`` is a SQLite file that does not exist (a command run from
    another directory would otherwise create an empty one and fail on its first query)."""
    parsed = make_url(url)
    path = parsed.database
    if not parsed.drivername.startswith("sqlite") or not path or path == ":memory:" or path.startswith("file:"):
        return None
    if Path(path).exists():
        return None
    return (
        f"no database at {Path(path).resolve()}: run `gateway migrate` to create it, or run this command"
        " from the directory `gateway serve` runs in (or set GATEWAY_DATABASE_URL / GATEWAY_VAR_DIR)"
    )


def not_migrated(url: str) -> str:
    """The one-line error for a database that exists but lacks the gateway's tables."""
    shown = make_url(url).render_as_string(hide_password=True)
    return f"the database {shown} has no gateway tables: run `gateway migrate`"
