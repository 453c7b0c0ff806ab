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

import asyncio
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


def _bump(insert: Any, prefix: str, day: str, n: int = 1) -> Any:
    stmt = insert(CaseCounter).values(prefix=prefix, day=day, value=n)
    return stmt.on_conflict_do_update(
        index_elements=[CaseCounter.prefix, CaseCounter.day], set_={"value": CaseCounter.value + n}
    ).returning(CaseCounter.value)


def bump(dialect: str, prefix: str, day: str, n: int) -> Any:
    """The statement that takes ``n`` numbers of the day's sequence and returns the last one."""
    return _bump(postgresql.insert if dialect == "postgresql" else sqlite.insert, prefix, day, n)


def local_day(now: datetime, tz: timezone = CST) -> str:
    return now.astimezone(tz).strftime("%Y%m%d")


class CaseBlocks:
    """Case numbers taken from the counter a block at a time (PostgreSQL's batch intake).

    One autocommitted bump per ``size`` numbers instead of one per report, so the counter row is
    not a lock every report of the day queues on. Numbers a batch did not use go back to the
    process's stock; what is left in stock when the process stops is a gap in the sequence (the
    sequence is unique and increasing per process, not gap-free: the same holds for a report
    transaction that fails).
    """

    def __init__(self, engine: AsyncEngine, prefix: str, *, size: int = 200, tz: timezone = CST) -> None:
        self.engine = engine
        self.prefix = prefix
        self.size = size
        self.tz = tz
        self._stock: dict[str, list[int]] = {}  # day -> numbers in hand, highest first
        self._lock = asyncio.Lock()

    async def take(self, n: int, now: datetime) -> list[str]:
        day = local_day(now, self.tz)
        async with self._lock:
            for other in [d for d in self._stock if d != day]:
                del self._stock[other]  # yesterday's numbers are never handed out today
            stock = self._stock.setdefault(day, [])
            if len(stock) < n:
                want = max(self.size, n - len(stock))
                async with self.engine.connect() as conn:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    last = (await conn.execute(bump("postgresql", self.prefix, day, want))).scalar_one()
                stock.extend(range(last - want + 1, last + 1))
                stock.sort(reverse=True)
            taken = [stock.pop() for _ in range(n)]
        return [format_case_number(self.prefix, day, v) for v in taken]

    def give_back(self, numbers: list[str], now: datetime) -> None:
        day = local_day(now, self.tz)
        head = f"{self.prefix}{day}"
        stock = self._stock.get(day)
        if stock is None:
            return
        stock.extend(int(c[len(head) :]) for c in numbers if c.startswith(head))
        stock.sort(reverse=True)
