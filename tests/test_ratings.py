"""gateway/dispatch/ratings.py: a digit reply after `resolved` is a rating (not a new report), the signed web
rating page, and the whole loop from report to rating to stats."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gateway import keys
from gateway.core.lifecycle import Status
from gateway.db import Rating, Report, utcnow
from gateway.dispatch.ratings import parse_rating, rating_url
from tests.dispatch_support import (
    DroppingRunner,
    Process,
    Resident,
    fast_dispatch,
    report,
    wait_for,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", (5, None)),
        (" ５ ", (5, None)),  # full-width digit from a Chinese keyboard
        ("4分", (4, None)),
        ("3星", (3, None)),
        ("2 太慢了", (2, "太慢了")),
        ("1，根本没修", (1, "根本没修")),
        ("5分，很满意！", (5, "很满意！")),
        ("3号楼路灯坏了", None),  # a new report that starts with a digit
        ("6", None),
        ("0", None),
        ("10", None),
        ("", None),
        ("好评", None),
        ("5 " + "很" * 300, None),  # too long for a comment: more likely a new report
    ],
)
def test_parse_rating(text, expected):
    assert parse_rating(text) == expected


async def _count(db, model) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def _ratings(db) -> list[tuple[int, int | None, str | None, str]]:
    async with db.session() as s:
        return [(r.score, r.report_id, r.comment, r.source) for r in await s.scalars(select(Rating))]


async def _until(db, case: str, status: str) -> None:
    async def reached() -> bool:
        return (await report(db, case)).status == status

    await wait_for(reached, what=status)


async def test_full_loop_report_dispatch_callbacks_resident_told_rates_stats(gateway, fake, runner):
    client, chan = gateway
    pipeline, db = client.app[keys.PIPELINE], client.app[keys.DB]
    resident = Resident()
    first = await pipeline.intake([resident.says("小区门口路灯坏了，晚上很黑")])
    await pipeline.intake([resident.says("提交")])  # the close word ends the chat report
    case = first.case_number
    await _until(db, case, Status.DISPATCHED)
    [payload] = fake.deliveries.values()
    assert payload["case_number"] == case and payload["category"]["code"] == "0101"

    assert (await fake.callback(client, case, "accepted", "已派单")).status == 200
    assert (await fake.callback(client, case, "resolved", "已更换灯泡")).status == 200
    await runner.idle()
    assert [m.recipient for m in chan.sent] == [resident.sender] * 2
    assert "已由处置部门接收" in chan.sent[0].text
    assert "处理结果：已更换灯泡" in chan.sent[1].text and "请回复1-5" in chan.sent[1].text

    reports_before = await _count(db, Report)
    answer = await pipeline.intake([resident.says("5")])
    assert answer.case_number == case and not answer.created
    assert answer.reply == f"感谢您对案件 {case} 的评价（5分）！"
    assert await _count(db, Report) == reports_before  # the digit did not open a new report
    assert [(score, source) for score, _, _, source in await _ratings(db)] == [(5, "message")]

    stats = await (await client.get("/api/v1/stats")).json()
    [row] = stats["by_category"]
    assert row["code"] == "0101" and row["count"] == 1 and row["mean_rating"] == 5.0 and row["ratings"] == 1
    assert row["on_time_rate"] == 1.0 and row["median_resolve_s"] is not None
    assert stats["by_department"][0]["mean_rating"] == 5.0


async def test_a_digit_is_a_rating_only_after_resolution_and_only_for_that_resident(make_settings, fake):
    async with Process(make_settings(**fast_dispatch(fake)), runner=DroppingRunner()) as gw:
        resident, neighbour = Resident(), Resident()
        case = await gw.ready_report(resident=resident)
        early = await gw.pipeline.intake([resident.says("5")])
        assert early.created and early.case_number != case  # nothing resolved yet: a new (draft) report
        await gw.pipeline.change_status(case, Status.DISPATCHED, "system")
        await gw.pipeline.change_status(case, Status.RESOLVED, "dispatch", note="已修复")
        other = await gw.pipeline.intake([neighbour.says("4")])
        assert other.created and other.case_number != case
        rated = await gw.pipeline.intake([resident.says("2 太慢了", msg_id="wx-1")])
        assert rated.case_number == case and "督促" in rated.reply
        retry = await gw.pipeline.intake([resident.says("2 太慢了", msg_id="wx-1")])  # provider retry
        assert retry.duplicate and retry.case_number == case
        changed = await gw.pipeline.intake([resident.says("4")])  # the resident changes their mind
        assert changed.case_number == case
        assert [(s, c) for s, _, c, _ in await _ratings(gw.db)] == [(4, None)]


async def test_a_digit_long_after_resolution_is_not_a_rating(make_settings, fake):
    now = [utcnow()]
    settings = make_settings(**fast_dispatch(fake), rating_window_s=3600)
    async with Process(settings, runner=DroppingRunner(), clock=lambda: now[0]) as gw:
        resident = Resident()
        case = await gw.ready_report(resident=resident)
        await gw.pipeline.change_status(case, Status.DISPATCHED, "system")
        await gw.pipeline.change_status(case, Status.RESOLVED, "dispatch")
        now[0] += timedelta(hours=2)
        late = await gw.pipeline.intake([resident.says("5")])
        assert late.case_number != case and await _ratings(gw.db) == []


async def test_web_rating_link(gateway, fake):
    client, _ = gateway
    settings = client.app[keys.SETTINGS]
    resp = await client.post(
        "/api/v1/reports",
        json={"text": "垃圾桶满了没人清", "location": {"address": "民治街道"}},
        headers={"X-Client-Id": "browser-1"},
    )
    case = (await resp.json())["case_number"]
    db = client.app[keys.DB]
    await _until(db, case, Status.DISPATCHED)
    assert (
        await client.get(rating_url(settings, case, "web:someone-else").removeprefix("http://gateway.test"))
    ).status == 403
    link = rating_url(settings, case, "web:browser-1")
    assert link.startswith(f"http://gateway.test/report/{case}/rate?t=")
    path = link.removeprefix("http://gateway.test")
    token = path.split("t=")[1]

    assert (await client.get(f"/report/{case}/rate?t=forged")).status == 403
    assert (await client.get(f"/report/ZW20260101000001/rate?t={token}")).status == 403  # a token is per case
    early = await client.get(path)
    assert early.status == 409 and "尚未处理完毕" in await early.text()

    assert (await fake.callback(client, case, "resolved", "已清运")).status == 200
    form = await client.get(path)
    assert form.status == 200 and 'name="score"' in await form.text()
    bad = await client.post(f"/report/{case}/rate", data={"t": token, "score": "9"})
    assert bad.status == 400 and "请选择1-5分" in await bad.text()
    forged = await client.post(f"/report/{case}/rate", data={"t": "x" * 32, "score": "5"})
    assert forged.status == 403
    ok = await client.post(f"/report/{case}/rate", data={"t": token, "score": "4", "comment": "<b>还行</b>"})
    assert ok.status == 200 and "4分" in await ok.text()
    [(score, _, comment, source)] = await _ratings(db)
    assert (score, comment, source) == (4, "<b>还行</b>", "web")


async def test_only_the_reporters_browser_sees_the_rating_link(gateway, fake):
    client, _ = gateway
    form = await client.get("/report")
    cookie = form.cookies["gw_client"]
    assert cookie["httponly"] and cookie["path"] == "/report"
    resp = await client.post("/report", data={"text": "小区门口井盖丢了"}, allow_redirects=False)
    status_path = resp.headers["Location"].split("?")[0]
    case = status_path.rsplit("/", 1)[1]
    await _until(client.app[keys.DB], case, Status.DISPATCHED)
    assert (await fake.callback(client, case, "resolved", "已补装井盖")).status == 200
    mine = await (await client.get(status_path)).text()
    assert f"/report/{case}/rate?t=" in mine
    client.session.cookie_jar.clear()  # another visitor of the public status page
    theirs = await (await client.get(status_path)).text()
    assert "已补装井盖" in theirs and "/rate?t=" not in theirs
