"""POST /api/v1/dispatch/callback through the real app: signed, idempotent, lifecycle-checked,
written to the history, and told to the resident on the channel the report came from."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select

from gateway import keys
from gateway.core.lifecycle import Status
from gateway.db import DispatchCallback, History
from tests.dispatch_support import (
    Resident,
    deliveries,
    notifications,
    report,
    wait_for,
)
from tests.fakes.dispatch_server import FakeDispatch


async def dispatched_case(client, resident: Resident | None = None, text: str = "小区门口路灯坏了") -> str:
    """A chat report, classified, delivered to dispatch (status dispatched)."""
    result = await client.app[keys.PIPELINE].intake([(resident or Resident()).says(text, complete=True)])
    db = client.app[keys.DB]

    async def is_dispatched() -> bool:
        return (await report(db, result.case_number)).status == Status.DISPATCHED

    await wait_for(is_dispatched, what="dispatched")
    return result.case_number


async def _history(client, case: str) -> list[tuple[str, str | None, str | None]]:
    r = await report(client.app[keys.DB], case)
    async with client.app[keys.DB].session() as s:
        rows = await s.scalars(select(History).where(History.report_id == r.id).order_by(History.id))
        return [(h.actor, h.to_status, h.note) for h in rows]


async def _callbacks(client) -> int:
    async with client.app[keys.DB].session() as s:
        return int(await s.scalar(select(func.count()).select_from(DispatchCallback)) or 0)


@pytest.mark.parametrize(
    ("label", "kw"),
    [
        ("wrong secret", {"secret": "not-the-dispatch-secret"}),
        ("stale timestamp", {"timestamp": int(time.time()) - 3600}),
        ("future timestamp", {"timestamp": int(time.time()) + 3600}),
    ],
)
async def test_bad_signature_is_403_and_changes_nothing(gateway, fake, label, kw):
    client, chan = gateway
    case = await dispatched_case(client)
    before = await _history(client, case)
    resp = await fake.callback(client, case, "accepted", "已派单", **kw)
    assert resp.status == 403, label
    assert (await resp.json())["error"] == "invalid signature"
    assert (await report(client.app[keys.DB], case)).status == Status.DISPATCHED
    assert await _history(client, case) == before and await _callbacks(client) == 0


async def test_tampered_body_or_missing_headers_is_403(gateway, fake):
    client, _ = gateway
    case = await dispatched_case(client)
    body, headers = fake.signed(case, "accepted")
    resp = await client.post("/api/v1/dispatch/callback", data=body.replace(b"accepted", b"resolved"), headers=headers)
    assert resp.status == 403
    resp = await client.post("/api/v1/dispatch/callback", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 403
    assert (await report(client.app[keys.DB], case)).status == Status.DISPATCHED


async def test_accepted_is_applied_recorded_and_told_to_the_resident(gateway, fake, runner):
    client, chan = gateway
    resident = Resident()
    case = await dispatched_case(client, resident)
    resp = await fake.callback(client, case, "accepted", "已派单至城管中队", callback_id="cb-1")
    assert resp.status == 200
    assert await resp.json() == {"case_number": case, "status": "accepted", "duplicate": False, "changed": True}
    assert (await _history(client, case))[-1] == ("dispatch", "accepted", "已派单至城管中队")
    await runner.idle()
    [sent] = chan.sent
    assert sent.recipient == resident.sender and sent.channel == "fakechat"
    assert case in sent.text and "接收" in sent.text
    assert [(n.kind, n.state) for n in await notifications(client.app[keys.DB])] == [("status", "sent")]


async def test_replayed_callback_id_is_idempotent(gateway, fake, runner):
    client, chan = gateway
    case = await dispatched_case(client)
    body, headers = fake.signed(case, "accepted", "已派单", callback_id="cb-same")
    first = await client.post("/api/v1/dispatch/callback", data=body, headers=headers)
    again = await client.post("/api/v1/dispatch/callback", data=body, headers=headers)
    assert first.status == 200 and again.status == 200
    assert (await again.json())["duplicate"] is True
    resp = await fake.callback(client, case, "in_progress", callback_id="cb-same")  # same id, other content
    assert (await resp.json()) == {"case_number": case, "status": "accepted", "duplicate": True, "changed": False}
    await runner.idle()
    assert [h for h in await _history(client, case) if h[0] == "dispatch"] == [("dispatch", "accepted", "已派单")]
    assert len(chan.sent) == 1 and await _callbacks(client) == 1


async def test_illegal_move_is_409_with_a_clear_error(gateway, fake):
    client, _ = gateway
    case = await dispatched_case(client)
    resp = await fake.callback(client, case, "closed", "结案")
    assert resp.status == 409
    body = await resp.json()
    assert body["current"] == "dispatched" and body["requested"] == "closed"
    assert f"report {case} cannot move from dispatched to closed" in body["error"]
    assert "allowed from dispatched" in body["error"]
    assert (await report(client.app[keys.DB], case)).status == Status.DISPATCHED
    assert await _callbacks(client) == 0


async def test_rejection_needs_a_reason_and_tells_the_resident(gateway, fake, runner):
    client, chan = gateway
    case = await dispatched_case(client)
    resp = await fake.callback(client, case, "rejected")
    assert resp.status == 400 and "note" in (await resp.json())["fields"]
    resp = await fake.callback(client, case, "rejected", "不属于本辖区，请拨打12345")
    assert resp.status == 200
    await runner.idle()
    assert chan.sent[-1].text == f"很抱歉，案件 {case} 未予受理：不属于本辖区，请拨打12345"


async def test_returned_goes_back_to_review_and_a_new_approval_is_delivered_again(gateway, fake):
    client, _ = gateway
    case = await dispatched_case(client)
    resp = await fake.callback(client, case, "returned", "分类错误，应为环卫")
    assert resp.status == 200 and (await resp.json())["status"] == "needs_review"
    assert (await _history(client, case))[-1] == ("dispatch", "needs_review", "分类错误，应为环卫")
    await client.app[keys.PIPELINE].change_status(case, Status.READY, "moderator:7", note="改为环卫")
    db = client.app[keys.DB]

    async def two_delivered() -> bool:
        return [d.state for d in await deliveries(db)] == ["delivered", "delivered"]

    await wait_for(two_delivered, what="second delivery")
    first, second = await deliveries(db)
    assert first.delivery_id != second.delivery_id and set(fake.deliveries) == {first.delivery_id, second.delivery_id}


async def test_unknown_case_and_bad_json(gateway, fake):
    client, _ = gateway
    resp = await fake.callback(client, "ZW20260101999999", "accepted")
    assert resp.status == 404
    body, headers = fake.signed("ZW20260101999999", "teleported")
    resp = await client.post("/api/v1/dispatch/callback", data=body, headers=headers)
    assert resp.status == 400 and "status" in (await resp.json())["fields"]


async def test_callback_before_the_delivery_is_recorded_still_applies(gateway, fake):
    client, _ = gateway
    fake.slow_next, fake.slow_s = 1, 0.5  # dispatch answers the webhook late, but calls back at once
    result = await client.app[keys.PIPELINE].intake([Resident().says("路灯坏了", complete=True)])
    db = client.app[keys.DB]
    await wait_for(lambda: _seen(fake), what="the webhook to arrive")
    assert (await report(db, result.case_number)).status == Status.READY
    resp = await fake.callback(client, result.case_number, "accepted")
    assert resp.status == 200 and (await resp.json())["status"] == "accepted"
    statuses = [h[1] for h in await _history(client, result.case_number)]
    assert statuses[-2:] == ["dispatched", "accepted"]


async def _seen(fake: FakeDispatch) -> bool:
    return bool(fake.seen)


async def test_web_reports_are_not_sent_messages_their_status_page_shows_news(gateway, fake, runner):
    client, chan = gateway
    resp = await client.post("/api/v1/reports", json={"text": "路灯坏了", "location": {"address": "民治街道"}})
    case = (await resp.json())["case_number"]
    db = client.app[keys.DB]

    async def is_dispatched() -> bool:
        return (await report(db, case)).status == Status.DISPATCHED

    await wait_for(is_dispatched, what="dispatched")
    assert (await fake.callback(client, case, "accepted", "已派单")).status == 200
    await runner.idle()
    assert chan.sent == [] and await notifications(db) == []
    page = await client.get(f"/api/v1/reports/{case}")
    assert (await page.json())["status"] == "accepted"


async def test_callback_body_arriving_in_pieces_is_read_whole(gateway, fake):
    """A body split across TCP segments (chunked here) must be read to the end before the
    signature check: ``StreamReader.read(n)`` returns what is buffered, not n bytes."""
    client, _ = gateway
    case = await dispatched_case(client)
    body, headers = fake.signed(case, "accepted", "已派单至城管中队", callback_id="cb-pieces")

    async def pieces():
        for i in range(0, len(body), 16):
            yield body[i : i + 16]
            await asyncio.sleep(0.01)

    resp = await client.post("/api/v1/dispatch/callback", data=pieces(), headers=headers)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "accepted"
