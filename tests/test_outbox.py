"""gateway/dispatch/outbox.py: the outbox is written with the move to ready, drained, retried, dead-lettered,
replayed, and survives a runner restart or a worker killed mid-delivery."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gateway import cli
from gateway.core.lifecycle import Status
from gateway.db import DeliveryAttempt, History, Report, utcnow
from gateway.dispatch.outbox import ReplayRefused
from gateway.tasks.table import QUEUES
from tests.dispatch_support import (
    DroppingRunner,
    FixedClassifier,
    Process,
    Resident,
    deliveries,
    fast_dispatch,
    report,
    wait_for,
)
from tests.fakes.dispatch_server import FakeDispatch


async def _states(db) -> list[str]:
    return [d.state for d in await deliveries(db)]


async def _attempts(db, delivery_pk: int) -> list[tuple[str, int | None]]:
    async with db.session() as s:
        rows = await s.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_pk))
        return [(a.outcome, a.status_code) for a in rows]


async def _all_delivered(db, n: int = 1) -> bool:
    states = await _states(db)
    return len(states) == n and all(s == "delivered" for s in states)


async def test_delivery_row_is_written_in_the_ready_transaction(make_settings, fake):
    runner = DroppingRunner()
    async with Process(make_settings(**fast_dispatch(fake)), runner=runner) as gw:
        case = await gw.ready_report()
        rows = await deliveries(gw.db)
        assert [(d.state, d.target, d.attempts) for d in rows] == [("pending", "default", 0)]
        assert ("deliver_dispatch", (rows[0].id,)) in runner.enqueued  # enqueued after commit
        assert (await report(gw.db, case)).status == Status.READY

        # A move to ready that rolls back leaves no delivery and enqueues nothing.
        gw.pipeline.classifier = FixedClassifier(needs_review=True)
        r = await gw.pipeline.intake([Resident().says("垃圾没人清理", complete=True)])
        await gw.pipeline.classify_report(r.report_id)
        before = len(runner.enqueued)
        with pytest.raises(RuntimeError):
            async with gw.pipeline.unit() as s:
                row = await s.get(Report, r.report_id)
                await gw.pipeline.transition(s, row, Status.READY, "moderator:1")
                raise RuntimeError("crash before commit")
        assert len(await deliveries(gw.db)) == 1 and len(runner.enqueued) == before


async def test_outbox_survives_a_runner_restart(make_settings, fake):
    settings = make_settings(**fast_dispatch(fake))
    async with Process(settings, runner=DroppingRunner()) as dead:
        case = await dead.ready_report()  # the process dies with the deliver task in its queue
    assert fake.seen == []
    async with Process(settings) as fresh:
        assert await fresh.pipeline.sweep() >= 1
        await wait_for(lambda: _all_delivered(fresh.db), what="delivery after restart")
        row = (await deliveries(fresh.db))[0]
        assert list(fake.deliveries) == [row.delivery_id]
        assert fake.deliveries[row.delivery_id]["case_number"] == case
        assert (await report(fresh.db, case)).status == Status.DISPATCHED


async def test_worker_killed_mid_delivery_loses_nothing(make_settings, fake):
    now = [utcnow()]
    settings = make_settings(**fast_dispatch(fake))
    async with Process(settings, runner=DroppingRunner(), clock=lambda: now[0]) as gw:
        await gw.ready_report()
        pk = (await deliveries(gw.db))[0].id
        assert await gw.outbox._claim(pk) is not None  # the worker took it ... and was killed
    async with Process(settings, clock=lambda: now[0]) as fresh:
        assert await fresh.pipeline.sweep() == 0  # the lease still holds: nobody sends twice
        now[0] += timedelta(seconds=settings.dispatch_timeout_s + 61)
        assert await fresh.pipeline.sweep() == 1
        await wait_for(lambda: _all_delivered(fresh.db), what="delivery after the lease expired")
        row = (await deliveries(fresh.db))[0]
        assert row.attempts == 2 and list(fake.deliveries) == [row.delivery_id]


async def test_same_delivery_id_across_retries(make_settings, fake):
    fake.fail_next = 2
    async with Process(make_settings(**fast_dispatch(fake))) as gw:
        await gw.ready_report()
        await wait_for(lambda: _all_delivered(gw.db), what="delivery")
        row = (await deliveries(gw.db))[0]
        attempts = await _attempts(gw.db, row.id)
    assert [s.delivery_id for s in fake.seen] == [row.delivery_id] * 3
    assert all(s.signature_ok for s in fake.seen)
    assert attempts == [("retryable", 503), ("retryable", 503), ("delivered", 200)]


async def test_dispatch_down_then_up_gets_every_case_exactly_once(make_settings, fake, db_url):
    await fake.down()
    settings = make_settings(**fast_dispatch(fake, dispatch_retry_for_s=60), database_url=db_url)
    async with Process(settings) as gw:
        cases = [await gw.ready_report(f"第{i}号路灯坏了") for i in range(3)]

        async def retried() -> bool:
            rows = await deliveries(gw.db)
            return len(rows) == 3 and all(d.attempts >= 2 for d in rows)

        await wait_for(retried, what="failed attempts while dispatch is down")
        fake.slow_next, fake.slow_s = 1, 3.0  # the first answer after the outage is lost to a timeout
        await fake.up()
        await wait_for(lambda: _all_delivered(gw.db, 3), timeout=20, what="delivery after the outage")
        rows = await deliveries(gw.db)
        async with gw.db.session() as s:
            dispatched = await s.scalar(
                select(func.count()).select_from(History).where(History.to_status == Status.DISPATCHED)
            )
    assert sorted(p["case_number"] for p in fake.deliveries.values()) == sorted(cases)
    assert set(fake.deliveries) == {d.delivery_id for d in rows}
    assert len(fake.seen) > 3  # the receiver saw the timed-out one again, and kept it once
    assert dispatched == 3


async def test_4xx_is_not_retried_reported_and_replayable(make_settings, fake):
    fake.answer_status = 422
    async with Process(make_settings(**fast_dispatch(fake))) as gw:
        case = await gw.ready_report()
        await wait_for(lambda: _states(gw.db), what="an attempt")
        await wait_for(lambda: _is(gw.db, "rejected"), what="rejection")
        await asyncio.sleep(0.2)  # give a wrong retry the time to happen
        row = (await deliveries(gw.db))[0]
        assert len(fake.seen) == 1 and row.attempts == 1
        assert row.last_status_code == 422 and "HTTP 422" in row.last_error
        assert [d["state"] for d in await gw.outbox.listing(dead=True)] == ["rejected"]
        assert (await report(gw.db, case)).status == Status.READY

        fake.answer_status = None
        await gw.outbox.replay(row.delivery_id)
        await wait_for(lambda: _all_delivered(gw.db), what="delivery after replay")
        assert list(fake.deliveries) == [row.delivery_id]
        with pytest.raises(ReplayRefused, match="delivered"):
            await gw.outbox.replay(str(row.id))


async def _attempt_times(db, pk: int) -> list:
    async with db.session() as s:
        return list(
            (
                await s.scalars(
                    select(DeliveryAttempt.at).where(DeliveryAttempt.delivery_id == pk).order_by(DeliveryAttempt.number)
                )
            ).all()
        )


async def _is(db, state: str) -> bool:
    return await _states(db) == [state]


async def test_retry_period_over_dead_letter_then_replay_all(make_settings, fake):
    """Retries are timed, not counted: a failing delivery is retried for the whole period (here
    0.6 s, with attempts 50 ms apart at most) and dead-lettered only once it has passed."""
    fake.answer_status = 503
    async with Process(make_settings(**fast_dispatch(fake, dispatch_retry_for_s=0.6))) as gw:
        await gw.ready_report()
        await wait_for(lambda: _is(gw.db, "dead"), what="dead letter")
        row = (await deliveries(gw.db))[0]
        attempts = await _attempt_times(gw.db, row.id)
        assert row.failing_since is not None and row.attempts == len(fake.seen) == len(attempts)
        assert row.attempts > 3  # more than a handful of attempts fit in the period
        assert (attempts[-1] - row.failing_since).total_seconds() >= 0.6  # the last one after it ended
        assert (attempts[-2] - row.failing_since).total_seconds() < 0.6  # and not a retry more
        assert [d["id"] for d in await gw.outbox.listing(dead=True)] == [row.id]
        fake.answer_status = None
        assert [d.id for d in await gw.outbox.replay_dead()] == [row.id]
        await wait_for(lambda: _all_delivered(gw.db), what="delivery after replay")


async def test_cli_lists_dead_letters_and_replays_them(make_settings, fake, monkeypatch, tmp_path, capsys):
    settings = make_settings(**fast_dispatch(fake, dispatch_retry_for_s=0))
    fake.answer_status = 500
    async with Process(settings) as gw:
        case = await gw.ready_report()
        await wait_for(lambda: _is(gw.db, "dead"), what="dead letter")
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("GATEWAY_REDIS_URL", raising=False)
    for key, value in {
        "GATEWAY_DATABASE_URL": settings.db_url,
        "GATEWAY_VAR_DIR": str(settings.var_dir),
        "GATEWAY_DISPATCH_URL": fake.url,
        "GATEWAY_DISPATCH_SECRET": fake.secret,
    }.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    # The CLI runs its own event loop: a thread keeps this one serving the fake dispatch server.
    assert await asyncio.to_thread(cli.main, ["deliveries", "--dead"]) == 0
    listed = capsys.readouterr().out
    assert case in listed and '"state": "dead"' in listed
    fake.answer_status = None
    assert await asyncio.to_thread(cli.main, ["replay", "--all-dead"]) == 0
    assert '"state": "delivered"' in capsys.readouterr().out
    assert [p["case_number"] for p in fake.deliveries.values()] == [case]
    assert await asyncio.to_thread(cli.main, ["replay", "1"]) == 1  # delivered: nothing to replay
    assert "only dead or rejected" in capsys.readouterr().err


async def test_urgent_cases_are_enqueued_first_on_their_own_queue(make_settings, fake):
    runner = DroppingRunner()
    async with Process(make_settings(**fast_dispatch(fake)), runner=runner) as gw:
        await gw.ready_report("路灯不亮")
        await gw.ready_report("马路上井盖没了，很危险")  # urgent: P1
        await gw.ready_report("路灯闪烁")
        rows = await deliveries(gw.db)
        assert [d.priority for d in rows] == ["P3", "P1", "P3"]
        assert [name for name, _ in runner.enqueued if name.startswith("deliver")] == [
            "deliver_dispatch",
            "deliver_dispatch_urgent",
            "deliver_dispatch",
        ]
        runner.enqueued.clear()
        await gw.pipeline.sweep()
        swept = [(name, args[0]) for name, args in runner.enqueued if name.startswith("deliver")]
    assert swept[0] == ("deliver_dispatch_urgent", rows[1].id)
    assert [pk for _, pk in swept[1:]] == [rows[0].id, rows[2].id]
    assert QUEUES["deliver_dispatch_urgent"] == "dispatch_urgent" and QUEUES["deliver_dispatch"] == "dispatch"


async def test_a_report_that_moved_on_is_not_delivered(make_settings, fake):
    async with Process(make_settings(**fast_dispatch(fake)), runner=DroppingRunner()) as gw:
        case = await gw.ready_report()
        await gw.pipeline.change_status(case, Status.NEEDS_REVIEW, "moderator:1", note="分类有误")
        pk = (await deliveries(gw.db))[0].id
        assert await gw.outbox.deliver(gw.http, pk) is None
        assert await _states(gw.db) == ["cancelled"] and fake.seen == []


async def test_without_a_dispatch_target_the_delivery_waits(make_settings):
    async with Process(make_settings(), runner=DroppingRunner()) as gw:
        await gw.ready_report()
        pk = (await deliveries(gw.db))[0].id
        assert await gw.outbox.deliver(gw.http, pk) is None
        row = (await deliveries(gw.db))[0]
        assert row.state == "pending" and row.attempts == 0 and "GATEWAY_DISPATCH_URL" in row.last_error


async def test_routing_table_picks_target_secret_and_department(make_settings, fake, tmp_path):
    other = await FakeDispatch(secret="municipal-secret").start()
    try:
        table = tmp_path / "routing.yaml"
        table.write_text(
            f"targets:\n  municipal:\n    url: {other.url}\n    secret: municipal-secret\n"
            f"    department: 市政管理局\nroutes:\n  - categories: ['01']\n    target: municipal\n",
            encoding="utf-8",
        )
        settings = make_settings(**fast_dispatch(fake, routing_table=table))
        async with Process(settings) as gw:
            await gw.ready_report("路灯坏了，请联系13812345678")
            gw.pipeline.classifier = FixedClassifier(code="1101", name="噪音扰民")
            await gw.ready_report("楼下夜里很吵")
            await wait_for(lambda: _all_delivered(gw.db, 2), what="both deliveries")
            history = (await report(gw.db, (await gw.outbox.listing())[-1]["case_number"])).status
    finally:
        await other.down()
    assert history == Status.DISPATCHED
    [municipal] = other.deliveries.values()
    [fallback] = fake.deliveries.values()
    assert all(s.signature_ok for s in other.seen)  # signed with that target's own secret
    assert municipal["department"] == "市政管理局" and municipal["category"]["code"] == "0101"
    assert "13812345678" not in municipal["text"] and "5678" in municipal["text"]  # PII masked
    assert fallback["category"]["code"] == "1101" and fallback["department"] is None
    assert municipal["deadline"] and municipal["priority"] == "P3"


@pytest.mark.redis
async def test_deliver_task_runs_on_a_celery_worker_over_real_redis(make_settings, redis_url, fake):
    """Production mode: the moderator's approval enqueues over Redis; a Celery worker delivers."""
    from celery.contrib.testing.worker import start_worker

    from gateway.tasks.runners import CeleryRunner
    from gateway.worker import close_worker_context, make_celery, queues

    settings = make_settings(**fast_dispatch(fake), redis_url=redis_url)
    celery_app = make_celery(settings)
    worker = start_worker(celery_app, pool="solo", perform_ping_check=False, queues=queues(), shutdown_timeout=30)
    # The worker thread blocks while it starts and stops; this loop must keep serving the fake.
    await asyncio.to_thread(worker.__enter__)
    try:
        async with Process(settings, runner=CeleryRunner(celery_app)) as gw:
            result = await gw.pipeline.intake([Resident().says("路灯坏了", complete=True)])
            case = result.case_number

            async def in_review() -> bool:  # the worker classified it (placeholder: moderator review)
                return (await report(gw.db, case)).status == Status.NEEDS_REVIEW

            await wait_for(in_review, timeout=30, what="classification by the worker")
            await gw.pipeline.change_status(case, Status.READY, "moderator:1")
            await wait_for(lambda: _all_delivered(gw.db), timeout=30, what="delivery by the worker")
            row = (await deliveries(gw.db))[0]
            assert (await report(gw.db, case)).status == Status.DISPATCHED
    finally:
        await asyncio.to_thread(worker.__exit__, None, None, None)
        await asyncio.to_thread(close_worker_context)
    assert list(fake.deliveries) == [row.delivery_id]
    assert fake.deliveries[row.delivery_id]["case_number"] == case
