"""The intake hot path (issue 11): concurrent intakes group-committed in set-based batches, on
SQLite and PostgreSQL, with the guarantees of the one-message path: nothing acknowledged lost or
duplicated, a bad message failing alone, stitching unchanged, case numbers unique, and
back-pressure instead of collapse."""

from __future__ import annotations

import asyncio
import gc
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text

from gateway import keys
from gateway.core.casenumber import CaseBlocks, is_case_number
from gateway.core.classify import PlaceholderClassifier
from gateway.core.groupcommit import GroupCommit
from gateway.db import Contact, Database, History, Media, Message, Report
from gateway.http.app import create_app
from gateway.models import InboundMessage, Location, LocationSource, MediaRef, MessageKind
from tests.dispatch_support import CHAT, Resident, wire_chat


def photo(sender: str) -> InboundMessage:
    return InboundMessage(
        channel=CHAT,
        channel_message_id=uuid.uuid4().hex,
        sender=sender,
        received_at=datetime.now(UTC),
        kind=MessageKind.IMAGE,
        media=(MediaRef(kind=MessageKind.IMAGE, url="http://media.test/p.jpg"),),
    )


def place(sender: str) -> InboundMessage:
    return InboundMessage(
        channel=CHAT,
        channel_message_id=uuid.uuid4().hex,
        sender=sender,
        received_at=datetime.now(UTC),
        kind=MessageKind.LOCATION,
        location=Location(lat=22.65, lng=114.02, label="民治大道", source=LocationSource.GPS),
    )


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


@pytest.fixture
async def app(db_url: str, aiohttp_client: Any, make_settings: Callable[..., Any], runner: Any) -> Any:
    settings = make_settings(database_url=db_url)
    client = await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))
    wire_chat(client.app)
    return client.app


# --------------------------------------------------------------------------- group commit


async def test_group_commit_coalesces_concurrent_items_and_isolates_failures() -> None:
    seen: list[list[int]] = []

    async def run(items: Sequence[int]) -> list[int | BaseException]:
        seen.append(list(items))
        await asyncio.sleep(0.01)  # a commit
        return [ValueError(f"bad {i}") if i == 3 else i * 10 for i in items]

    commit: GroupCommit[int, int] = GroupCommit(run, max_batch=4)
    results = await asyncio.gather(*(commit.submit(i) for i in range(10)), return_exceptions=True)
    assert [r if isinstance(r, int) else str(r) for r in results] == [0, 10, 20, "bad 3", 40, 50, 60, 70, 80, 90]
    assert sorted(i for batch in seen for i in batch) == list(range(10))
    assert max(len(b) for b in seen) == 4 and commit.largest == 4 and commit.batches == len(seen) <= 4


async def test_group_commit_runs_a_lone_item_at_once_and_reports_a_failed_batch_to_each() -> None:
    async def broken(items: Sequence[int]) -> list[int | BaseException]:
        raise RuntimeError("database gone")

    commit: GroupCommit[int, int] = GroupCommit(broken)
    results = await asyncio.gather(commit.submit(1), commit.submit(2), return_exceptions=True)
    assert [str(r) for r in results] == ["database gone", "database gone"]

    async def echo(items: Sequence[int]) -> list[int | BaseException]:
        return list(items)

    lone: GroupCommit[int, int] = GroupCommit(echo)
    assert await asyncio.wait_for(lone.submit(7), timeout=1) == 7 and lone.batches == 1


async def test_group_commit_runs_at_most_parallel_batches() -> None:
    running = peak = 0

    async def run(items: Sequence[int]) -> list[int | BaseException]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return list(items)

    commit: GroupCommit[int, int] = GroupCommit(run, max_batch=2, parallel=3)
    assert await asyncio.gather(*(commit.submit(i) for i in range(20))) == list(range(20))
    assert peak == 3


# --------------------------------------------------------------------------- the batch path


async def test_concurrent_residents_are_stored_in_batches_with_distinct_case_numbers(app: Any) -> None:
    pipeline = app[keys.PIPELINE]
    residents = [Resident() for _ in range(60)]
    results = await asyncio.gather(*(pipeline.intake([r.says("路灯坏了，在民治大道")]) for r in residents))
    cases = [r.case_number for r in results]
    assert all(r.created and r.session_open and is_case_number(r.case_number or "") for r in results)
    assert len(set(cases)) == 60
    assert pipeline.intake_stage._commit.largest > 1  # they were group-committed
    assert pipeline.intake_stage.retried_batches == 0  # by the batch path, not the one-by-one fallback
    db = app[keys.DB]
    assert await count(db, Report) == 60 and await count(db, Message) == 60 and await count(db, History) == 60
    assert await count(db, Contact, Contact.last_inbound_at.is_not(None)) == 60
    async with db.session() as s:
        stored = dict((await s.execute(select(Report.sender, Report.case_number))).all())
    assert {r.sender: c for r, c in zip(residents, cases, strict=True)} == stored


async def test_photo_text_and_place_of_one_resident_in_one_batch_make_one_report(app: Any) -> None:
    pipeline = app[keys.PIPELINE]
    alice = Resident()
    first, second, third = await asyncio.gather(
        pipeline.intake([photo(alice.sender)]),
        pipeline.intake([alice.says("井盖丢了，很危险")]),
        pipeline.intake([place(alice.sender)]),
    )
    assert pipeline.intake_stage._commit.largest == 3 and pipeline.intake_stage.retried_batches == 0
    assert first.created and not second.created and not third.created
    assert first.case_number == second.case_number == third.case_number
    assert "描述" in (first.reply or "") or "文字" in (first.reply or "")  # the photo asks for words
    db = app[keys.DB]
    async with db.session() as s:
        report = await s.scalar(select(Report))
        assert report is not None
        assert report.text == "井盖丢了，很危险" and report.location_address == "民治大道"
        assert report.session_open
    assert await count(db, Media, Media.report_id == report.id) == 1
    # Then 提交 closes it, in a batch of its own.
    closed = await pipeline.intake([alice.says("提交")])
    assert closed.case_number == first.case_number and not closed.session_open


async def test_the_same_message_twice_in_one_batch_is_stored_once(app: Any) -> None:
    pipeline = app[keys.PIPELINE]
    bob = Resident()
    a, b = await asyncio.gather(
        pipeline.intake([bob.says("垃圾没人收", msg_id="m-1")]), pipeline.intake([bob.says("垃圾没人收", msg_id="m-1")])
    )
    assert a.case_number == b.case_number and [a.duplicate, b.duplicate] == [False, True]
    assert pipeline.intake_stage.retried_batches == 0
    assert await count(app[keys.DB], Message) == 1 and await count(app[keys.DB], Report) == 1
    # A later retry is answered from the stored message, with the same case.
    again = await pipeline.intake([bob.says("垃圾没人收", msg_id="m-1")])
    assert again.duplicate and again.case_number == a.case_number and a.case_number in (again.reply or "")


async def test_a_bad_message_fails_alone_and_its_batch_mates_are_stored(app: Any) -> None:
    pipeline = app[keys.PIPELINE]
    good = [Resident() for _ in range(5)]
    bad = Resident().says("含有\x00的文字")  # the database guard refuses NUL (the edge checks first in production)
    results = await asyncio.gather(
        *(pipeline.intake([r.says("路灯不亮")]) for r in good[:3]),
        pipeline.intake([bad]),
        *(pipeline.intake([r.says("路灯不亮")]) for r in good[3:]),
        return_exceptions=True,
    )
    assert isinstance(results[3], Exception) and "NUL" in str(results[3]).upper()
    assert pipeline.intake_stage.retried_batches >= 1  # the batch failed as a whole, then item by item
    stored = [r for i, r in enumerate(results) if i != 3]
    assert all(not isinstance(r, BaseException) and r.created for r in stored)
    assert await count(app[keys.DB], Report) == 5
    assert await count(app[keys.DB], Message, Message.channel_message_id == bad.channel_message_id) == 0


async def test_idempotency_keys_in_and_across_batches(app: Any) -> None:
    pipeline = app[keys.PIPELINE]
    web = [Resident().says("占道经营", complete=True) for _ in range(2)]
    a, b = await asyncio.gather(
        pipeline.intake([web[0]], idempotency_key="k-1"), pipeline.intake([web[1]], idempotency_key="k-1")
    )
    assert a.case_number == b.case_number and sorted([a.duplicate, b.duplicate]) == [False, True]
    c = await pipeline.intake([Resident().says("占道经营", complete=True)], idempotency_key="k-1")
    assert c.duplicate and c.case_number == a.case_number
    assert await count(app[keys.DB], Report) == 1


async def test_sqlite_batches_run_in_the_connections_own_thread(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        threads: list[int] = []

        def work(conn: Any) -> int:
            threads.append(threading.get_ident())
            conn.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            return int(conn.execute(text("SELECT count(*) FROM t")).scalar_one())

        assert await db.run_sync(work) == 1

        def fails(conn: Any) -> None:
            conn.execute(text("INSERT INTO t VALUES (2)"))
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await db.run_sync(fails)
        assert await db.run_sync(work) == 2  # the failed one was rolled back
        assert threading.get_ident() not in threads and len(set(threads)) == 1
    finally:
        await db.close()


@pytest.mark.postgres
async def test_case_number_blocks_of_two_processes_never_collide(pg_url: str) -> None:
    one, two = Database(pg_url), Database(pg_url)
    try:
        assert one.counter_engine is not None and two.counter_engine is not None
        now = datetime.now(UTC)
        a, b = CaseBlocks(one.counter_engine, "ZW", size=5), CaseBlocks(two.counter_engine, "ZW", size=5)
        taken = await asyncio.gather(*(blocks.take(3, now) for blocks in (a, b, a, b, a, b)))
        numbers = [n for group in taken for n in group]
        assert len(numbers) == len(set(numbers)) == 18 and all(is_case_number(n) for n in numbers)
        a.give_back(taken[0][1:], now)  # unused numbers go back to the stock and are handed out again
        assert set(await a.take(2, now)) == set(taken[0][1:])
    finally:
        await one.close()
        await two.close()


# --------------------------------------------------------------------------- back-pressure


async def test_a_saturated_intake_answers_503_at_once_and_stores_nothing(
    aiohttp_client: Any, make_settings: Callable[..., Any], runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(intake_max_in_flight=2)
    client = await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))
    db = client.app[keys.DB]
    release = asyncio.Event()
    real = Database.run_sync

    async def slow(self: Database, fn: Any) -> Any:
        await release.wait()
        return await real(self, fn)

    monkeypatch.setattr(Database, "run_sync", slow)
    body = {"text": "路灯坏了", "location": {"address": "民治大道"}}
    held = [asyncio.create_task(client.post("/api/v1/reports", json=body)) for _ in range(2)]
    for _ in range(100):
        if client.app[keys.PIPELINE].intake_stage.in_flight == 2:
            break
        await asyncio.sleep(0.01)
    refused = await asyncio.wait_for(client.post("/api/v1/reports", json=body), timeout=2)
    assert refused.status == 503 and refused.headers["Retry-After"]
    assert (await refused.json())["error"] == "busy, retry later"
    doc = await (await client.get("/api/openapi.json")).json()
    documented = doc["paths"]["/api/v1/reports"]["post"]["responses"]["503"]
    assert "Retry-After" in documented["headers"] and "saturated" in documented["description"]
    release.set()
    assert [r.status for r in await asyncio.gather(*held)] == [201, 201]
    assert await count(db, Report) == 2
    metrics = await (await client.get("/metrics")).text()
    assert 'gateway_intake_refused_total{channel="web"} 1.0' in metrics


async def test_serving_freezes_start_up_objects_once_warm(
    aiohttp_client: Any, make_settings: Callable[..., Any], runner: Any
) -> None:
    gc.unfreeze()
    try:
        settings = make_settings(gc_freeze=True)
        await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))
        for _ in range(500):
            if gc.get_freeze_count():
                break
            await asyncio.sleep(0.01)
        assert gc.get_freeze_count() > 10_000  # the grid and gazetteer at least
    finally:
        gc.unfreeze()
