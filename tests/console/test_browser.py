"""The console in a real browser: Playwright driving Debian's Chromium (no browser download).

A moderator logs in, works through a queue of five reports with the keyboard only (confirm,
change category in the picker, merge, spam, reject), and the database is checked afterwards.
Screenshots of the queue and overview pages go to test-output/screenshots/ for reviewers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from gateway import keys
from gateway.db import History, LabeledExample, Report
from tests.conftest import ROOT, unavailable
from tests.console.conftest import PASSWORD, seed

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / "test-output" / "screenshots"
REJECT_REASON_1 = "反映内容不清楚，无法核实，请补充具体地点和问题后重新反映"


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not found: apt-get install chromium (Debian's package)")
    return CHROMIUM


@pytest.fixture
async def browser_page(chromium):
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(chromium), args=ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        )
        page.on("dialog", lambda d: problems.append(f"unexpected dialog: {d.message}"))
        page.set_default_timeout(15000)
        yield page, problems
        await browser.close()


async def count_items(page, n: int) -> None:
    from playwright.async_api import expect  # locator waits: no string eval, which the console's CSP forbids

    await expect(page.locator("#queue .item")).to_have_count(n)


async def test_moderator_works_through_the_queue_by_keyboard(app_client, users, runner, browser_page):
    page, problems = browser_page
    target = await seed(app_client, runner, "民治大道与人民路交叉口井盖缺失，晚上看不见", contact_phone="13912345678")
    await app_client.app[keys.PIPELINE].change_status(target, "ready", "system")
    texts = [
        "小区门口路灯不亮三天了，联系电话13812345678",
        "公园里垃圾桶满了没人清理",
        "民治大道与人民路交叉口井盖缺失了，晚上看不见很危险",
        "加微信领红包，点击链接马上到账",
        "你好在吗",
    ]
    cases = [
        await seed(app_client, runner, t, location={"lat": 22.6, "lng": 114.03, "address": "龙华区民治街道"})
        for t in texts
    ]
    base = str(app_client.make_url("")).rstrip("/")

    await page.goto(f"{base}/console/")
    assert "/console/login" in page.url
    await page.fill("#username", "mod1")
    await page.fill("#password", PASSWORD)
    await page.press("#password", "Enter")
    await page.wait_for_url(f"{base}/console/")
    await count_items(page, 5)
    assert await page.locator("#queue .item.selected").get_attribute("data-case") == cases[0]
    assert "138****5678" in await page.inner_text("#queue")  # masked for moderators
    assert "13812345678" not in await page.content()
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "queue.png"), full_page=True)

    await page.keyboard.press("c")  # confirm the model's category (路灯, 0102)
    await count_items(page, 4)
    await page.keyboard.press("e")  # change category through the searchable picker
    await page.wait_for_selector("#dlg-picker[open]")
    await page.keyboard.type("垃圾收集")
    await page.wait_for_selector("#picker-list li[data-code='0302'][aria-selected='true']")
    await page.keyboard.press("Enter")
    await count_items(page, 3)
    await page.keyboard.press("m")  # merge: the near-duplicate is suggested side by side
    await page.wait_for_selector("#dlg-merge[open]")
    assert await page.input_value("#merge-target") == target
    assert "井盖缺失" in await page.inner_text("#merge-list")
    await page.screenshot(path=str(SHOTS / "merge.png"))
    await page.keyboard.press("Enter")
    await count_items(page, 2)
    await page.keyboard.press("s")  # spam
    await count_items(page, 1)
    await page.keyboard.press("r")  # reject with the first preset reason
    await page.wait_for_selector("#dlg-reject[open]")
    await page.keyboard.press("1")
    await page.keyboard.press("Enter")
    await count_items(page, 0)
    await page.wait_for_selector("#queue .empty")
    assert await page.inner_text("#queue-count") == "0"

    await page.goto(f"{base}/console/overview")
    await page.wait_for_selector(".chart svg rect")
    await page.wait_for_selector(".chart[data-series='queue_size'] svg polyline", state="attached")
    await page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
    assert problems == []

    async with app_client.app[keys.DB].session() as s:
        rows = {r.case_number: r for r in (await s.scalars(select(Report).where(Report.case_number.in_(cases))))}
        labels = dict((await s.execute(select(LabeledExample.report_id, LabeledExample.label))).all())
        actors = (await s.scalars(select(History.actor).where(History.actor.like("moderator:%")))).all()
    confirmed, changed, merged, spam, rejected = (rows[c] for c in cases)
    assert (confirmed.status, confirmed.category_code, confirmed.category_set_by) == ("ready", "0102", "moderator")
    assert (changed.status, changed.category_code) == ("ready", "0302")
    assert (merged.status, merged.duplicate_of) == ("merged", target)
    assert spam.status == "spam"
    assert rejected.status == "rejected"
    assert labels == {confirmed.id: "0102", changed.id: "0302"}
    assert set(actors) == {"moderator:mod1"} and len(actors) >= 6  # five moves + the merged-in entry
    async with app_client.app[keys.DB].session() as s:
        note = await s.scalar(select(History.note).where(History.report_id == rejected.id, History.action == "reject"))
    assert note == REJECT_REASON_1
