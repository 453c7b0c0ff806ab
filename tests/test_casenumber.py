"""Case numbers (统一编码): format and uniqueness under concurrent writers on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from gateway.core.casenumber import format_case_number, is_case_number, next_case_number
from gateway.db import Database


def test_format_is_prefix_date_sequence():
    assert format_case_number("ZW", "20261127", 123) == "ZW20261127000123"
    assert format_case_number("LH", "20261127", 1234567) == "LH202611271234567"  # grows past 6 digits
    assert is_case_number("ZW20261127000123")
    assert not is_case_number("zw20261127000123") and not is_case_number("ZW2026112700012")


async def test_date_is_china_standard_time(sqlite_url):
    db = Database(sqlite_url)
    try:
        async with db.session() as s, s.begin():
            # 17:00 UTC on 27 Nov is already 28 Nov in Shenzhen.
            case = await next_case_number(s, "ZW", datetime(2026, 11, 27, 17, 0, tzinfo=UTC))
        assert case == "ZW20261128000001"
    finally:
        await db.close()


async def test_sequence_restarts_each_day_and_per_prefix(db_url):
    db = Database(db_url)
    try:
        day1, day2 = datetime(2026, 1, 1, 3, tzinfo=UTC), datetime(2026, 1, 2, 3, tzinfo=UTC)
        got = []
        for prefix, when in [("ZW", day1), ("ZW", day1), ("ZW", day2), ("LH", day1)]:
            async with db.session() as s, s.begin():
                got.append(await next_case_number(s, prefix, when))
        assert got == ["ZW20260101000001", "ZW20260101000002", "ZW20260102000001", "LH20260101000001"]
    finally:
        await db.close()


@pytest.mark.parametrize("writers", [40])
async def test_unique_under_concurrent_writers(db_url, writers):
    """Many engines (as separate processes would have) numbering at once never collide or skip."""
    when = datetime(2026, 11, 27, 4, tzinfo=UTC)
    dbs = [Database(db_url) for _ in range(4)]

    async def one(i: int) -> str:
        db = dbs[i % len(dbs)]
        async with db.session() as s, s.begin():
            case = await next_case_number(s, "ZW", when)
            await asyncio.sleep(0)  # hold the transaction open across a scheduling point
            return case

    try:
        cases = await asyncio.gather(*(one(i) for i in range(writers)))
    finally:
        for db in dbs:
            await db.close()
    assert len(set(cases)) == writers
    assert sorted(int(c[-6:]) for c in cases) == list(range(1, writers + 1))
