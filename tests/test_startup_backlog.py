"""Once dispatch is configured, the backlog parked while it was not goes out when the gateway
starts, urgent first, instead of on a sweep minutes later; /metrics shows the outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from gateway import keys
from gateway.core.classify import PlaceholderClassifier
from gateway.db import Report
from gateway.http.app import create_app
from gateway.tasks.runners import InProcessRunner
from tests.dispatch_support import deliveries, dispatch_server, fast_dispatch, wait_for

__all__ = ["dispatch_server"]  # the ``fake`` fixture


async def test_parked_backlog_goes_out_at_start_up_urgent_first(
    aiohttp_client: Any, make_settings: Any, fake: Any
) -> None:
    first_runner = InProcessRunner(max_attempts=3)
    before = await aiohttp_client(create_app(make_settings(), classifier=PlaceholderClassifier(), runner=first_runner))
    pipeline = before.app[keys.PIPELINE]
    cases = []
    for text in ("公园长椅坏了", "楼道里有燃气味"):
        resp = await before.post("/api/v1/reports", json={"text": text})
        cases.append((await resp.json())["case_number"])
    await first_runner.idle()
    async with before.app[keys.DB].session() as s, s.begin():
        await s.execute(update(Report).where(Report.case_number == cases[1]).values(urgent=True, priority="P1"))
    for case in cases:
        await pipeline.change_status(case, "ready", "moderator:mod1")
    await first_runner.idle()
    parked = await deliveries(before.app[keys.DB])
    assert [d.state for d in parked] == ["pending", "pending"] and all(
        "no dispatch target" in (d.last_error or "") for d in parked
    )
    metrics = await (await before.get("/metrics")).text()
    assert 'gateway_outbox_deliveries{state="pending"} 2.0' in metrics
    assert "gateway_outbox_oldest_pending_seconds" in metrics and 'gateway_media{state="failed"} 0.0' in metrics
    await before.close()

    runner = InProcessRunner(max_attempts=3)
    after = await aiohttp_client(
        create_app(make_settings(**fast_dispatch(fake)), classifier=PlaceholderClassifier(), runner=runner)
    )
    db = after.app[keys.DB]

    async def all_delivered() -> bool:
        return all(d.state == "delivered" for d in await deliveries(db))

    await wait_for(all_delivered, timeout=5, what="the backlog delivered at start-up")
    assert fake.order == [cases[1], cases[0]]  # urgent first
    metrics = await (await after.get("/metrics")).text()
    assert 'gateway_outbox_deliveries{state="delivered"} 2.0' in metrics
    assert "gateway_outbox_oldest_pending_seconds 0.0" in metrics
