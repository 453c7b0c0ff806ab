"""The online complaint channel (网上民声) through the real app."""

from __future__ import annotations

import io
import json

from sqlalchemy import func, select

from gateway import keys
from gateway.db import History, Media, Report

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def token_of(created: dict) -> str:
    return created["status_url"].rsplit("?t=", 1)[1]


async def count_reports(client) -> int:
    async with client.app[keys.DB].session() as s:
        return int(await s.scalar(select(func.count()).select_from(Report)) or 0)


async def test_json_complaint_is_created_and_returned_by_case_number(client, runner):
    body = {
        "text": "小区门口路灯坏了三天了",
        "title": "路灯不亮",
        "contact_phone": "13812345678",
        "location": {"lat": 22.653123, "lng": 114.025456, "address": "民治大道88号3栋502"},
    }
    resp = await client.post("/api/v1/reports", json=body)
    assert resp.status == 201
    created = await resp.json()
    case = created["case_number"]
    assert case.startswith("ZW") and case[2:].isdigit() and len(case) == 16
    # The reporter's signed link (bound to the case and the sender); Location is the public view.
    assert created["status_url"].startswith(f"http://gateway.test/api/v1/reports/{case}?t=")
    assert resp.headers["Location"] == f"http://gateway.test/api/v1/reports/{case}"
    assert case in created["message"]
    await runner.idle()

    resp = await client.get(f"/api/v1/reports/{case}")
    assert resp.status == 200
    report = await resp.json()
    assert report["text"] == body["text"] and report["title"] == "路灯不亮"
    assert report["contact_phone"] == "138****5678"  # masked in the public view
    assert report["sender"] is None
    # Coarse in public: 3 decimals, and the grid's district/street/community instead of the door.
    assert report["location"]["lat"] == 22.653 and report["location"]["lng"] == 114.025
    assert report["location"]["address"] == "".join(
        step["name"] for step in report["grid"]["path"] if step["level"] in ("区", "街道", "社区")
    )
    assert report["location"]["address"] and "502" not in json.dumps(report, ensure_ascii=False)
    # The placeholder classifier sends every report to moderators, and says so.
    assert report["status"] == "needs_review"
    assert report["category"]["set_by"] == "placeholder"
    assert [h["to_status"] for h in report["history"]] == ["received", "classified", "needs_review"]

    own = await client.get(created["status_url"].removeprefix("http://gateway.test"))
    assert own.status == 200 and own.headers["Cache-Control"] == "private, no-store"
    mine = await own.json()
    assert mine["location"] == {"lat": 22.653123, "lng": 114.025456, "address": "民治大道88号3栋502", "source": "gps"}
    assert mine["contact_phone"] == "13812345678" and mine["sender"] is None  # their own phone, no identity
    forged = await client.get(f"/api/v1/reports/{case}", params={"t": "0" * 32})
    assert forged.status == 403


async def test_same_idempotency_key_twice_yields_one_report(client):
    headers = {"Idempotency-Key": "form-7f3a"}
    first = await client.post("/api/v1/reports", json={"text": "垃圾没人清理"}, headers=headers)
    second = await client.post("/api/v1/reports", json={"text": "垃圾没人清理"}, headers=headers)
    assert first.status == 201 and second.status == 200
    a, b = await first.json(), await second.json()
    assert a["case_number"] == b["case_number"] and b["duplicate"] is True
    assert await count_reports(client) == 1


async def test_validation_errors_name_each_field(client):
    resp = await client.post(
        "/api/v1/reports", json={"title": 5, "contact_phone": "abc", "location": {"lat": 91}, "colour": "red"}
    )
    assert resp.status == 400
    body = await resp.json()
    assert set(body["fields"]) == {"text", "title", "contact_phone", "location.lat", "colour"}
    assert await count_reports(client) == 0


async def test_malformed_json_is_400_and_stores_nothing(client):
    resp = await client.post("/api/v1/reports", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "invalid JSON" in (await resp.json())["fields"]["body"]
    assert await count_reports(client) == 0


async def test_json_over_cap_is_413(aiohttp_client, make_settings, runner):
    from gateway.core.classify import PlaceholderClassifier
    from gateway.http.app import create_app

    app = create_app(make_settings(max_json_bytes=1000), classifier=PlaceholderClassifier(), runner=runner)
    client = await aiohttp_client(app)
    resp = await client.post("/api/v1/reports", json={"text": "很" * 2000})
    assert resp.status == 413
    assert await count_reports(client) == 0


async def test_multipart_with_photos_stores_media_by_hash(client, runner):
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("text", "人行道井盖缺失，很危险")
    form.add_field("address", "民治大道与人民路交叉口")
    form.add_field("photos", PNG, filename="a.png", content_type="image/png")
    form.add_field("photos", PNG, filename="b.png", content_type="image/png")  # same bytes: stored once
    resp = await client.post("/api/v1/reports", data=form)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    case = created["case_number"]
    await runner.idle()
    report = await (await client.get(f"/api/v1/reports/{case}")).json()
    # public: the grid's names (the address placed it in 民治街道), not what the resident typed
    assert report["location"]["address"] == "龙华区民治街道" and report["location"]["source"] == "text"
    mine = await (await client.get(f"/api/v1/reports/{case}", params={"t": token_of(created)})).json()
    assert mine["location"]["address"] == "民治大道与人民路交叉口"
    assert len(report["media"]) == 2 and {m["state"] for m in report["media"]} == {"stored"}
    url = report["media"][0]["url"]
    media = await client.get(url.replace("http://gateway.test", ""))
    assert media.status == 200 and await media.read() == PNG and media.content_type == "image/png"


async def test_multipart_rejects_non_images_and_too_many_photos(aiohttp_client, make_settings, runner):
    import aiohttp

    from gateway.core.classify import PlaceholderClassifier
    from gateway.http.app import create_app

    client = await aiohttp_client(
        create_app(make_settings(max_photos=1), classifier=PlaceholderClassifier(), runner=runner)
    )
    form = aiohttp.FormData()
    form.add_field("text", "噪音扰民")
    form.add_field("photos", b"<svg onload=alert(1)>", filename="x.png", content_type="image/png")
    resp = await client.post("/api/v1/reports", data=form)
    assert resp.status == 400 and "photos" in (await resp.json())["fields"]
    form = aiohttp.FormData()
    form.add_field("text", "噪音扰民")
    form.add_field("photos", PNG, filename="1.png", content_type="image/png")
    form.add_field("photos", PNG, filename="2.png", content_type="image/png")
    resp = await client.post("/api/v1/reports", data=form)
    assert resp.status == 400 and "at most 1" in (await resp.json())["fields"]["photos"]
    assert await count_reports(client) == 0


async def test_multipart_body_over_the_request_cap_is_413(aiohttp_client, make_settings, runner):
    """Text parts were each capped at 64 KB but not in total: a post with many fields was held
    in memory whole. The multipart body as a whole is capped like any other request body."""
    from gateway.core.classify import PlaceholderClassifier
    from gateway.http.app import create_app

    settings = make_settings(max_photos=1, max_photo_bytes=1024)
    app = create_app(settings, classifier=PlaceholderClassifier(), runner=runner)
    client = await aiohttp_client(app)
    parts = [("text", "噪音扰民")] + [(f"f{i}", "x" * 60_000) for i in range(40)]  # over 1 MB + one photo
    body = b"".join(
        f'--B\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode() for name, value in parts
    )
    headers = {"Content-Type": "multipart/form-data; boundary=B"}
    resp = await client.post("/api/v1/reports", data=io.BytesIO(body + b"--B--\r\n"), headers=headers)
    assert resp.status == 413, await resp.text()

    async def chunked():  # no Content-Length: the cap counts what was read
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]
        yield b"--B--\r\n"

    resp = await client.post("/api/v1/reports", data=chunked(), headers=headers)
    assert resp.status == 413, await resp.text()
    assert await count_reports(client) == 0


async def test_unknown_case_is_404_json(client):
    resp = await client.get("/api/v1/reports/ZW20260101999999")
    assert resp.status == 404 and "ZW20260101999999" in (await resp.json())["error"]
    resp = await client.get("/api/v1/reports/not-a-case")
    assert resp.status == 404


async def test_html_form_submits_and_shows_status_page_escaped(client, runner):
    page = await client.get("/report")
    html = await page.text()
    assert page.status == 200 and 'name="text"' in html and 'enctype="multipart/form-data"' in html
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("text", "<script>alert('x')</script> 路面塌陷")
    form.add_field("form_token", "tok-1")
    resp = await client.post("/report", data=form, allow_redirects=False)
    assert resp.status == 303
    location = resp.headers["Location"]
    # A double-tapped submit of the same rendered form is the same report.
    form2 = aiohttp.FormData()
    form2.add_field("text", "<script>alert('x')</script> 路面塌陷")
    form2.add_field("form_token", "tok-1")
    resp2 = await client.post("/report", data=form2, allow_redirects=False)
    assert resp2.headers["Location"] == location
    await runner.idle()
    status = await client.get(location)
    html = await status.text()
    assert status.status == 200 and "&lt;script&gt;" in html and "<script>alert" not in html
    assert await count_reports(client) == 1


async def test_html_form_errors_are_shown_in_chinese(client):
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("text", "")
    resp = await client.post("/report", data=form)
    assert resp.status == 400
    assert "问题描述" in await resp.text()


async def test_history_is_appended_for_every_status_change(client, runner):
    resp = await client.post("/api/v1/reports", json={"text": "路灯不亮"})
    case = (await resp.json())["case_number"]
    await runner.idle()
    async with client.app[keys.DB].session() as s:
        report = await s.scalar(select(Report).where(Report.case_number == case))
        rows = (await s.scalars(select(History).where(History.report_id == report.id).order_by(History.id))).all()
        media = await s.scalar(select(func.count()).select_from(Media))
    assert [(h.from_status, h.to_status) for h in rows] == [
        (None, "received"),
        ("received", "classified"),
        ("classified", "needs_review"),
    ]
    assert media == 0
    assert json.dumps(rows[1].data)  # the classification's data is recorded


async def test_public_history_hides_moderator_names_and_internal_notes(client, runner):
    from gateway.db import History

    resp = await client.post("/api/v1/reports", json={"text": "路灯不亮"})
    case = (await resp.json())["case_number"]
    await runner.idle()
    pipeline = client.app[keys.PIPELINE]
    async with pipeline.unit() as s:
        report = await s.scalar(select(Report).where(Report.case_number == case))
        s.add(History(report_id=report.id, actor="moderator:zhangsan", action="note", note="内部备注：疑似重复"))
        await pipeline.transition(s, report, "rejected", "moderator:zhangsan", note="不属于受理范围")
    data = await (await client.get(f"/api/v1/reports/{case}")).json()
    actors = {h["actor"] for h in data["history"]}
    notes = [h["note"] for h in data["history"] if h["note"]]
    assert "moderator:zhangsan" not in actors and "moderator" in actors
    assert notes == ["不属于受理范围"]  # the classifier's explanation and internal notes stay internal


async def test_status_page_shows_resident_steps_in_china_time_and_a_rating_link_when_resolved(client, runner):
    client.session.cookie_jar.update_cookies({"gw_client": "browser-7"})  # the reporter's browser
    resp = await client.post("/api/v1/reports", json={"text": "井盖丢失"})
    case = (await resp.json())["case_number"]
    await runner.idle()
    pipeline = client.app[keys.PIPELINE]
    page = await (await client.get(f"/report/{case}")).text()
    assert "人工核实中" in page and "为本次处理打分" not in page
    for status in ("ready", "dispatched", "accepted", "resolved"):
        await pipeline.change_status(case, status, "dispatch", note="已更换井盖" if status == "resolved" else None)
    async with client.app[keys.DB].session() as s:
        created = (await s.scalar(select(Report).where(Report.case_number == case))).created_at
    from gateway.core.casenumber import CST

    page = await (await client.get(f"/report/{case}")).text()
    assert created.astimezone(CST).strftime("%Y-%m-%d %H:%M") in page
    assert "已处理：已更换井盖" in page and "为本次处理打分" in page
    assert f"/report/{case}/rate?t=" in page


async def test_public_view_masks_personal_numbers_in_the_text(client, runner):
    text = "我的电话13812345678，身份证440301199001011234，小区路灯坏了"
    case = (await (await client.post("/api/v1/reports", json={"text": text})).json())["case_number"]
    await runner.idle()
    public = await (await client.get(f"/api/v1/reports/{case}")).json()
    page = await (await client.get(f"/report/{case}")).text()
    for shown in (public["text"], page):
        assert "13812345678" not in shown and "440301199001011234" not in shown
    assert "小区路灯坏了" in public["text"]
    async with client.app[keys.DB].session() as s:
        assert (await s.scalar(select(Report).where(Report.case_number == case))).text == text  # stored as written
