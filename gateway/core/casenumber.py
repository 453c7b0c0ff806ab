"""Case numbers (统一编码): prefix + local date + daily sequence, e.g. ``ZW20261127000123``.

The sequence comes from one counter row per prefix and day, bumped with an atomic
``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, so every writer on every process gets a
distinct number on PostgreSQL and on SQLite alike; the unique constraint on
``reports.case_number`` is the backstop. On PostgreSQL the bump commits on its own connection
(autocommit), so the counter row is locked for one statement, not for the whole intake
transaction, which would serialize every intake of the day; a report transaction that then
fails leaves a gap in the sequence. SQLite serializes writers anyway, so there it runs in the
report's transaction and leaves no gap. The date is the deployment's local date
(China Standard Time by default), which is what residents and staff read on the number.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gateway.db import CaseCounter

CST = timezone(timedelta(hours=8), "Asia/Shanghai")
SEQUENCE_DIGITS = 6
CASE_RE = re.compile(r"^[A-Z]{1,8}\d{8}\d{6,}$")


def format_case_number(prefix: str, day: str, value: int) -> str:
    return f"{prefix}{day}{value:0{SEQUENCE_DIGITS}d}"


def is_case_number(text: str) -> bool:
    return bool(CASE_RE.match(text))


async def next_case_number(session: AsyncSession, prefix: str, now: datetime, tz: timezone = CST) -> str:
    day = now.astimezone(tz).strftime("%Y%m%d")
    engine = session.bind
    if not isinstance(engine, AsyncEngine):
        raise TypeError("the session must be bound to an AsyncEngine")
    if engine.dialect.name == "postgresql":
        counter_engine = session.info.get("counter_engine", engine)  # gateway.db.Database gives one
        async with counter_engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            value = (await conn.execute(_bump(postgresql.insert, prefix, day))).scalar_one()
    else:
        value = (await session.execute(_bump(sqlite.insert, prefix, day))).scalar_one()
    return format_case_number(prefix, day, value)


def _bump(insert: Any, prefix: str, day: str) -> Any:
    stmt = insert(CaseCounter).values(prefix=prefix, day=day, value=1)
    return stmt.on_conflict_do_update(
        index_elements=[CaseCounter.prefix, CaseCounter.day], set_={"value": CaseCounter.value + 1}
    ).returning(CaseCounter.value)
