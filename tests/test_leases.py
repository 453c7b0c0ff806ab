"""Process leases (gateway/core/leases.py): a dead process's work resumes at once, a live one's is
left alone, and a database outage is not taken for a death."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from gateway.core.leases import HOST, KeepAlive, Leases, boot_id, held
from gateway.core.lifecycle import Status
from gateway.db import Delivery, Notification, ProcessLease, Report, utcnow
from gateway.tasks.notify import notify
from gateway.tasks.runners import TaskContext
from tests.dispatch_support import DroppingRunner, Process, Resident, fast_dispatch


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> Any:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _leases(gw: Process, bid: str) -> Leases:
    leases = Leases(gw.pipeline.units, gw.settings, "serve")
    leases.boot_id, leases.pid = bid, os.getppid()  # one test process plays several (all alive)
    return leases


async def _ended(gw: Process, bid: str) -> str | None:
    async with gw.db.session() as s:
        return await s.scalar(select(ProcessLease.ended).where(ProcessLease.boot_id == bid))


async def test_a_silent_lease_is_reaped_only_by_a_steady_process(make_settings, fake):
    clock = Clock()
    async with Process(make_settings(**fast_dispatch(fake)), runner=DroppingRunner(), clock=clock) as gw:
        other, me = _leases(gw, "a" * 32), _leases(gw, "b" * 32)
        assert await other.register() == [] and await me.register() == []
        clock.tick(gw.settings.lease_ttl_s + 1)  # `other` says nothing for longer than the TTL...
        me.missed_beat()  # ...but neither did I: after a database outage nobody reaps
        assert await me.beat() == []
        clock.tick(gw.settings.lease_ttl_s)
        await other.beat()  # back: alive again
        assert await me.beat() == []
        clock.tick(gw.settings.lease_ttl_s + 1)
        assert await me.beat() == ["a" * 32]  # silent for a TTL while I beat steadily: dead
        assert await _ended(gw, "a" * 32) == "reaped"
        assert await me.beat() == []  # reaped once
        assert await other.beat() == []  # it lived after all: it takes its lease again
        assert await _ended(gw, "a" * 32) is None
        await me.stop()
        assert await _ended(gw, "b" * 32) == "stopped"


async def test_a_dead_pid_of_this_host_is_reaped_at_once(make_settings, fake):
    async with Process(make_settings(**fast_dispatch(fake)), runner=DroppingRunner()) as gw:
        gone = await asyncio.create_subprocess_exec("true")
        await gone.wait()
        async with gw.pipeline.unit() as s:
            now = gw.pipeline.clock()
            s.add(
                ProcessLease(boot_id="c" * 32, role="worker", host=HOST, pid=gone.pid, started_at=now, heartbeat_at=now)
            )
            s.add(
                ProcessLease(
                    boot_id="d" * 32, role="worker", host=HOST, pid=os.getppid(), started_at=now, heartbeat_at=now
                )
            )
        assert await _leases(gw, "e" * 32).register() == ["c" * 32]  # its heartbeat is fresh, its pid gone
        assert await _ended(gw, "d" * 32) is None  # a live pid is left alone


async def test_recovery_releases_the_dead_claims_and_resumes_everything_at_once(make_settings, fake):
    runner = DroppingRunner()
    settings = make_settings(**fast_dispatch(fake), stuck_after_s=3600)
    async with Process(settings, runner=runner) as gw:
        case = await gw.ready_report()  # a delivery pending
        received = await gw.pipeline.intake([Resident().says("井盖丢了", complete=True)])
        draft = await gw.pipeline.intake([Resident().says("路口")])  # a draft, open for the window
        async with gw.pipeline.unit() as s:
            now = gw.pipeline.clock()
            s.add(
                ProcessLease(boot_id="f" * 32, role="worker", host="elsewhere", pid=1, started_at=now, heartbeat_at=now)
            )
            # The dead worker was mid-send: its lease on the delivery would hold it for 70 s.
            await s.execute(
                update(Delivery).values(claimed_by="f" * 32, next_attempt_at=now + timedelta(seconds=70), attempts=1)
            )
        runner.enqueued.clear()
        assert await gw.pipeline.sweep() == 0  # nothing is stuck for an hour yet
        await gw.pipeline.sweeping.recover(["f" * 32])
        enqueued = {(name, args[0]) for name, args in runner.enqueued}
        async with gw.db.session() as s:
            delivery = (await s.scalars(select(Delivery))).one()
            report = await s.scalar(select(Report).where(Report.case_number == case))
        assert delivery.claimed_by is None and delivery.next_attempt_at <= gw.pipeline.clock()
        assert report is not None and report.status == Status.READY
        assert ("deliver_dispatch", delivery.id) in enqueued
        assert ("classify_report", received.report_id) in enqueued
        assert ("close_session", draft.report_id) in enqueued  # at its expiry, not after a sweep


async def test_a_notification_claimed_by_a_live_process_is_not_sent_twice(make_settings, fake):
    async with Process(make_settings(**fast_dispatch(fake)), runner=DroppingRunner()) as gw:
        async with gw.pipeline.unit() as s:
            n = Notification(channel="chat", recipient="chat:1", kind="status", text="已受理", state="pending")
            s.add(n)
            now = gw.pipeline.clock()
            s.add(
                ProcessLease(boot_id="g" * 32, role="worker", host="elsewhere", pid=1, started_at=now, heartbeat_at=now)
            )
        async with gw.pipeline.unit() as s:
            await s.execute(update(Notification).values(claimed_by="g" * 32))
            assert await held(s, "g" * 32) and await held(s, boot_id()) and not await held(s, None)
        await notify(TaskContext(pipeline=gw.pipeline), n.id)
        async with gw.db.session() as s:
            row = await s.get(Notification, n.id)
            assert row is not None and row.attempts == 0 and row.state == "pending"  # left to its sender
        await gw.pipeline.sweeping.recover(["g" * 32])  # its sender died: released
        async with gw.db.session() as s:
            assert (await s.get(Notification, n.id)).claimed_by is None


async def test_keepalive_resumes_at_start_and_when_the_broker_restarts(make_settings, fake):
    runner = DroppingRunner()
    async with Process(make_settings(**fast_dispatch(fake), stuck_after_s=3600), runner=runner) as gw:
        received = await gw.pipeline.intake([Resident().says("井盖丢了", complete=True)])
        epochs = iter(["run-1", "run-1", "run-2"])

        async def epoch() -> str:
            return next(epochs)

        alive = KeepAlive(_leases(gw, "h" * 32), gw.pipeline.sweeping, 0.01, recover_at_start=True, epoch=epoch)
        runner.enqueued.clear()
        await alive._tick(start=True)  # start-up: everything unfinished, now
        assert ("classify_report", (received.report_id,)) in runner.enqueued
        runner.enqueued.clear()
        await alive._tick(start=False)  # same broker: nothing
        assert runner.enqueued == []
        await alive._tick(start=False)  # a new run_id: what was queued may be gone
        assert ("classify_report", (received.report_id,)) in runner.enqueued
        runner.enqueued.clear()
        gw.pipeline.units.missed = True  # an enqueue after a commit failed
        await alive._tick(start=False)
        assert ("classify_report", (received.report_id,)) in runner.enqueued and not gw.pipeline.units.missed
