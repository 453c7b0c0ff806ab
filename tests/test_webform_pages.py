"""The resident's pages in a phone-sized Chromium: the form's Chinese errors beside the fields
with the input kept, "use my location", and the status page's wording for every status."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from gateway import keys
from gateway.core import replies
from gateway.core.lifecycle import Status
from gateway.db import Report
from gateway.http.webform import form_errors
from tests.browser import SHOTS, open_page


async def test_form_errors_are_chinese_beside_the_field_and_input_is_kept(client: Any) -> None:
    base = str(client.make_url("")).rstrip("/")
    async with open_page() as (page, problems):
        await page.goto(f"{base}/report")
        await page.fill("#title", "路灯不亮")
        await page.fill("#text", "小区门口的路灯坏了好几天，晚上很黑")
        await page.fill("#address", "龙华区民治街道东边社区")
        await page.fill("#contact_phone", "1381234567")  # one digit short
        await page.click("button[type=submit]")
        await page.wait_for_selector("#contact_phone-error")
        assert "电话号码格式不对" in await page.inner_text("#contact_phone-error")
        # Nothing the resident typed is lost.
        assert await page.input_value("#text") == "小区门口的路灯坏了好几天，晚上很黑"
        assert await page.input_value("#address") == "龙华区民治街道东边社区"
        assert await page.input_value("#title") == "路灯不亮"
        assert await page.input_value("#contact_phone") == "1381234567"
        body = await page.inner_text("main")
        assert "not a phone number" not in body and "required" not in body
        await page.screenshot(path=str(SHOTS / "webform-errors.png"), full_page=True)
        await page.fill("#contact_phone", "13812345678")
        await page.click("button[type=submit]")
        await page.wait_for_url("**/report/*?new=1")
        assert "提交成功" in await page.inner_text("main")
        # The page with the errors is answered 400 on purpose; nothing else went wrong.
        assert [p for p in problems if "status of 400" not in p] == [], problems


async def test_use_my_location_fills_coordinates_and_keeps_the_address(client: Any, runner: Any) -> None:
    base = str(client.make_url("")).rstrip("/")
    geo = {"latitude": 22.653123, "longitude": 114.025456, "accuracy": 20}
    async with open_page(geolocation=geo, permissions=["geolocation"]) as (page, problems):
        await page.goto(f"{base}/report")
        await page.fill("#text", "人行道上的井盖松动了")
        await page.fill("#address", "民治大道 88 号门口")
        await page.click("#locate")
        await page.wait_for_function("document.getElementById('lat').value !== ''")
        assert "已附上您的位置" in await page.inner_text("#locate-status")
        await page.screenshot(path=str(SHOTS / "webform-location.png"), full_page=True)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/report/*?new=1")
        case = page.url.rsplit("/", 1)[1].split("?")[0]
        assert not problems, problems
    await runner.idle()
    async with client.app[keys.DB].session() as s:
        report = await s.scalar(select(Report).where(Report.case_number == case))
    assert report is not None and (report.location_lat, report.location_lng) == (22.653123, 114.025456)
    assert report.location_address == "民治大道 88 号门口"
    data = await (await client.get(f"/api/v1/reports/{case}")).json()
    assert data["location"]["lat"] == 22.653 and data["location"]["lng"] == 114.025  # public: coarse


async def test_status_pages_of_a_merged_and_a_spam_case(client: Any, runner: Any) -> None:
    async def post(text: str) -> str:
        resp = await client.post("/api/v1/reports", json={"text": text})
        return str((await resp.json())["case_number"])

    kept, merged, junk = await post("民治大道井盖缺失"), await post("民治大道的井盖不见了"), await post("加微信领红包")
    await runner.idle()
    pipeline = client.app[keys.PIPELINE]
    await pipeline.change_status(merged, "merged", "moderator:mod1")
    async with client.app[keys.DB].session() as s, s.begin():
        await s.execute(update(Report).where(Report.case_number == merged).values(duplicate_of=kept))
    await pipeline.change_status(junk, "spam", "moderator:mod1")
    base = str(client.make_url("")).rstrip("/")
    async with open_page() as (page, problems):
        await page.goto(f"{base}/report/{merged}")
        assert "已合并处理" in await page.inner_text("main")
        await page.screenshot(path=str(SHOTS / "status-merged.png"), full_page=True)
        await page.click(f"a[href='/report/{kept}']")
        await page.wait_for_url(f"**/report/{kept}")
        await page.goto(f"{base}/report/{junk}")
        text = await page.inner_text("main")
        assert "未受理" in text and "无效信息" not in text and "骚扰" not in text and "问题分类" not in text
        await page.screenshot(path=str(SHOTS / "status-spam.png"), full_page=True)
        assert not problems, problems


def test_api_field_errors_become_chinese_form_errors() -> None:
    errors = form_errors(
        {"text": "required", "location.lat": "must be a number", "photos": "at most 6 photos"},
        max_photos=6,
        max_photo_mb=5,
    )
    assert errors == {"text": "请填写问题描述", "lat": "请填写数字", "photos": "最多上传 6 张照片"}


def test_every_status_has_resident_wording() -> None:
    for status in Status:
        label, sentence = replies.resident_status(status, "ZW20261130000001")
        assert label and sentence and "无效" not in label + sentence and "骚扰" not in label + sentence
