"""Case numbers (统一编码): prefix + local date + daily sequence, e.g. ``ZW20261127000123``.

The sequence comes from one counter row per prefix and day, bumped with an atomic
``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` in the report's own transaction, so every
writer on every process gets a distinct number on PostgreSQL and on SQLite alike; the unique
constraint on ``reports.case_number`` is the backstop. The date is the deployment's local date
(China Standard Time by default), which is what residents and staff read on the number.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

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
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(CaseCounter).values(prefix=prefix, day=day, value=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[CaseCounter.prefix, CaseCounter.day], set_={"value": CaseCounter.value + 1}
    ).returning(CaseCounter.value)
    value = (await session.execute(stmt)).scalar_one()
    return format_case_number(prefix, day, value)
