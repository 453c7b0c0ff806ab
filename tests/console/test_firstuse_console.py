"""The console in Chinese throughout, and figures that say what they count, in Chromium."""

from __future__ import annotations

import re
from typing import Any

from gateway import keys
from gateway.console.labels import HISTORY_ACTIONS, STATUSES
from gateway.core.lifecycle import Status
from gateway.dispatch.stats import COUNTS, compute_stats
from tests.browser import SHOTS, open_page
from tests.console.conftest import PASSWORD, seed, seed_sms

DESKTOP = {"width": 1280, "height": 900}
_ENGLISH_WORD = re.compile(r"\b(needs_review|ready|dispatched|received|classified|session_closed|status|sms|web)\b")


async def test_console_history_chips_overview_and_403_are_chinese(app_client: Any, users: Any, runner: Any) -> None:
    pipeline = app_client.app[keys.PIPELINE]
    case = await seed_sms(app_client, runner, "小区门口路灯坏了三天")
    await seed(app_client, runner, "公园垃圾桶满了")
    await pipeline.change_status(case, "ready", "moderator:mod1")  # dispatch is not configured here
    await runner.idle()
    base = str(app_client.make_url("")).rstrip("/")
    async with open_page(viewport=DESKTOP) as (page, problems):
        await page.goto(f"{base}/console/login")
        await page.fill("#username", "mod1")
        await page.fill("#password", PASSWORD)
        await page.press("#password", "Enter")
        await page.wait_for_url(f"{base}/console/")
        await page.goto(f"{base}/console/reports/{case}")
        header = await page.inner_text(f"#item-{case} header")
        assert "短信" in header and "待派遣" in header
        history = await page.inner_text("table.history")
        assert "待派遣" in history and "系统" in history and "审核员 mod1" in history
        assert not _ENGLISH_WORD.search(history) and "low confidence" not in history, history
        await page.screenshot(path=str(SHOTS / "console-report-chinese.png"), full_page=True)

        await page.goto(f"{base}/console/overview")
        notice = await page.inner_text("#dispatch-undelivered")
        assert "还没有案件送达派遣系统" in notice and "1 件在等待送达" in notice
        table = await page.inner_text("table.depts")
        assert "转派遣" in table and "已送达" in table and "待送达" in table and "默认" in table
        legend = await page.inner_text("body")
        assert "短信" in legend and "网上民声" in legend
        await page.screenshot(path=str(SHOTS / "console-overview-counts.png"), full_page=True)

        response = await page.goto(f"{base}/console/admin")
        assert response is not None and response.status == 403
        text = await page.inner_text("body")
        assert "无权访问" in text and "管理员" in text and "forbidden" not in text
        await page.screenshot(path=str(SHOTS / "console-403.png"))
        assert [p for p in problems if "status of 403" not in p] == [], problems


async def test_stats_say_what_they_count_and_split_delivered_from_waiting(
    app_client: Any, users: Any, runner: Any
) -> None:
    case = await seed(app_client, runner, "路灯不亮")
    await app_client.app[keys.PIPELINE].change_status(case, "ready", "moderator:mod1")
    await runner.idle()
    stats = await compute_stats(app_client.app[keys.DB])
    assert stats["counts"] == COUNTS and set(COUNTS) <= set(stats["total"])
    assert (stats["total"]["count"], stats["total"]["delivered"], stats["total"]["waiting"]) == (1, 0, 1)


def test_every_status_and_history_action_has_a_chinese_label() -> None:
    assert set(STATUSES) == {str(s) for s in Status}
    for action in ("received", "session_closed", "confirm", "recategorize", "merge", "spam", "reject", "status"):
        assert action in HISTORY_ACTIONS
