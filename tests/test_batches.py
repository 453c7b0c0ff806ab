"""Triage and the outbox in set-based batches (issue 11), on SQLite and PostgreSQL: concurrent
classify tasks share one batch, the batch writes the same history, deliveries and statuses as
one report at a time would, and one delivery task sends the due backlog, each case exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.core.lifecycle import IllegalTransition, Status
from gateway.core.transitions import Move
from gateway.db import Delivery, History, Report
from gateway.tasks.runners import TaskContext
from gateway.tasks.table import classify_report as classify_task
from tests.dispatch_support import DroppingRunner, Process, Resident, deliveries, fast_dispatch

# Different problems, so that the twin check sends none of them to moderators.
PROBLEMS = [
    "小区门口的路灯坏了三天",
    "垃圾桶满了没人清运，臭气熏天",
    "人行道的地砖松动翘起",
    "楼下烧烤店油烟很大",
    "公园的长椅被人砸坏了",
    "路边违章停车堵住了消防通道",
    "深夜工地施工噪音扰民",
    "河道里漂着很多白色垃圾",
    "红绿灯不亮了，路口很乱",
    "小广告贴满了公交站台",
    "树枝断了挂在电线上",
    "下水道堵塞污水外溢",
]


async def _history(gw: Process, report_id: int) -> list[tuple[str | None, str | None]]:
    async with gw.db.session() as s:
        rows = await s.execute(
            select(History.from_status, History.to_status).where(History.report_id == report_id).order_by(History.id)
        )
        return [(a, b) for a, b in rows.all()]


async def test_concurrent_classify_tasks_share_a_batch_and_write_what_one_at_a_time_would(
    make_settings: Any, fake: Any, db_url: str
) -> None:
    runner = DroppingRunner()  # the tasks are run here, all at once
    async with Process(make_settings(**fast_dispatch(fake), database_url=db_url), runner=runner) as gw:
        ids = []
        for text in PROBLEMS:
            r = await gw.pipeline.intake([Resident().says(text, complete=True)])
            assert r.report_id is not None
            ids.append(r.report_id)
        # Intake enqueued a classification task per batch it stored (one intake at a time here).
        assert [args for name, args in runner.enqueued if name == "classify_report"] == [(i,) for i in ids]
        batches = gw.pipeline.triage._coalesce.batches
        statuses = await asyncio.gather(*(gw.pipeline.classify_report(i) for i in ids))
        # One batch holds every call, and each call hears the status its report reached.
        assert gw.pipeline.triage._coalesce.batches - batches == 1
        assert statuses == [Status.READY] * len(ids)
        async with gw.db.session() as s:
            found = (await s.execute(select(Report.id, Report.status, Report.category_code))).all()
        assert sorted(found) == sorted((i, Status.READY, "0101") for i in ids)
        for i in ids:
            assert await _history(gw, i) == [
                (None, Status.RECEIVED),
                (Status.RECEIVED, Status.CLASSIFIED),
                (Status.CLASSIFIED, Status.READY),
            ]
        rows = await deliveries(gw.db)
        assert sorted(d.report_id for d in rows) == sorted(ids)  # one delivery each, in the same transaction
        # ... and one delivery task for the batch's deliveries, after commit.
        assert [args for name, args in runner.enqueued if name == "deliver_dispatch"] == [tuple(d.id for d in rows)]
        # A classify task that comes again finds nothing to do and writes nothing.
        assert await gw.pipeline.classify_report(ids[3]) is None
        assert len(await _history(gw, ids[3])) == 3


async def test_a_batch_takes_the_waiting_reports_along_and_their_tasks_answer_from_memory(
    make_settings: Any, fake: Any
) -> None:
    async with Process(make_settings(**fast_dispatch(fake)), runner=DroppingRunner()) as gw:
        ids = []
        for text in PROBLEMS[:5]:
            r = await gw.pipeline.intake([Resident().says(text, complete=True)])
            assert r.report_id is not None
            ids.append(r.report_id)
        assert await gw.pipeline.classify_report(ids[0]) == Status.READY  # and the 4 waiting with it
        async with gw.db.session() as s:
            ready = await s.scalar(select(func.count()).select_from(Report).where(Report.status == Status.READY))
        assert ready == 5
        batches = gw.pipeline.triage._coalesce.batches
        await gw.db.close()  # the other tasks need no query: a closed database would fail one
        assert [await gw.pipeline.classify_report(i) for i in ids[1:]] == [None] * 4
        assert gw.pipeline.triage._coalesce.batches == batches


async def test_one_delivery_task_sends_the_due_backlog_each_exactly_once(
    make_settings: Any, fake: Any, db_url: str
) -> None:
    runner = DroppingRunner()  # like a Celery worker: one task, nothing else running
    async with Process(make_settings(**fast_dispatch(fake), database_url=db_url), runner=runner) as gw:
        cases = [await gw.ready_report(text) for text in PROBLEMS[:6]]
        pks = sorted(d.id for d in await deliveries(gw.db))
        assert len(pks) == 6
        assert await gw.outbox.deliver(gw.http, pks[0]) == "delivered"
        assert sorted(c["case_number"] for c in fake.deliveries.values()) == sorted(cases)
        assert len(fake.seen) == 6 and all(s.signature_ok for s in fake.seen)
        # The other deliveries' own tasks find them delivered: nothing is sent twice.
        assert [await gw.outbox.deliver(gw.http, pk) for pk in pks[1:]] == [None] * 5
        assert len(fake.seen) == 6
        async with gw.db.session() as s:
            states = (await s.execute(select(Delivery.state, func.count()).group_by(Delivery.state))).all()
            dispatched = await s.scalar(
                select(func.count()).select_from(Report).where(Report.status == Status.DISPATCHED)
            )
        assert states == [("delivered", 6)] and dispatched == 6
        report_id = (await deliveries(gw.db))[0].report_id
        assert (await _history(gw, report_id))[-1] == (Status.READY, Status.DISPATCHED)


async def test_concurrent_delivery_tasks_share_one_claim(make_settings: Any, fake: Any) -> None:
    runner = DroppingRunner()
    async with Process(make_settings(**fast_dispatch(fake)), runner=runner) as gw:
        for text in PROBLEMS[:8]:
            await gw.ready_report(text)
        pks = sorted(d.id for d in await deliveries(gw.db))
        states = await asyncio.gather(*(gw.outbox.deliver(gw.http, pk) for pk in pks))
        assert states == ["delivered"] * 8
        assert gw.outbox._claiming.batches == 1 and len(fake.seen) == 8


async def test_write_moves_refuses_a_move_the_lifecycle_forbids_before_writing(make_settings: Any) -> None:
    async with Process(make_settings(), runner=DroppingRunner()) as gw:
        case = await gw.ready_report()
        async with gw.db.session() as s:
            report = await s.scalar(select(Report).where(Report.case_number == case))
            assert report is not None
        ok = Move(report.id, case, report.channel, None, report.sender, Status.READY, Status.NEEDS_REVIEW, "t")
        bad = Move(report.id, case, report.channel, None, report.sender, Status.READY, Status.CLOSED, "t")
        before = await _history(gw, report.id)
        with pytest.raises(IllegalTransition):
            await gw.db.run_sync(lambda conn: gw.pipeline.lifecycle.write_moves(conn, [ok, bad], gw.pipeline.clock()))
        assert await _history(gw, report.id) == before


async def test_an_intake_batch_enqueues_one_classification_task_for_its_reports(make_settings: Any, fake: Any) -> None:
    runner = DroppingRunner()
    async with Process(make_settings(**fast_dispatch(fake)), runner=runner) as gw:
        results = await asyncio.gather(
            *(gw.pipeline.intake([Resident().says(text, complete=True)]) for text in PROBLEMS)
        )
        tasks = [args for name, args in runner.enqueued if name == "classify_report"]
        assert sorted(i for args in tasks for i in args) == sorted(r.report_id for r in results)
        assert len(tasks) < len(PROBLEMS)  # batches, not a task per report
        await classify_task(TaskContext(pipeline=gw.pipeline), *tasks[0])
        async with gw.db.session() as s:
            ready = await s.scalar(select(func.count()).select_from(Report).where(Report.status == Status.READY))
        assert ready == len(PROBLEMS)  # the first task's batch took the waiting ones along
