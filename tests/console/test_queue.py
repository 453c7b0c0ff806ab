"""The review queue: order, reasons, filters, what a row shows, masking and the audited reveal, overview."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import aiohttp
from sqlalchemy import select

from gateway import keys
from gateway.console.auth import create_api_key, create_user
from gateway.db import PiiView
from gateway.http.app import create_app
from tests.console.conftest import PASSWORD, FakeClassifier, login, seed

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


async def api_queue(client, query: str = "") -> dict:
    key = await create_api_key(client.app[keys.DB], f"q{len(query)}{query[:20]}", ["queue:read"])
    resp = await client.get(f"/api/v1/admin/queue{query}", headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 200
    return await resp.json()


async def test_urgent_first_then_oldest_with_the_reasons(app_client, users, runner):
    normal = await seed(app_client, runner, "路灯不亮了")
    unknown = await seed(app_client, runner, "你好在吗")
    first = await seed(app_client, runner, "井盖没了，民治大道人民路口")
    dup = await seed(app_client, runner, "民治大道人民路口井盖没了")
    rule = await seed(app_client, runner, "楼下有燃气管道")
    urgent = await seed(app_client, runner, "路灯杆倒在路中间")  # newest; a moderator makes it P1
    csrf = await login(app_client, "mod1")
    await app_client.post(f"/console/reports/{urgent}/actions/priority", data={"_csrf": csrf, "priority": "P1"})
    data = await api_queue(app_client)
    order = [i["case_number"] for i in data["items"]]
    assert data["total"] == 6 and order == [urgent, normal, unknown, first, dup, rule]
    reasons = {i["case_number"]: i["reasons"] for i in data["items"]}
    assert reasons[urgent][0] == "urgent"
    assert reasons[rule] == ["rule_conflict"]  # a rule set 10xx while the model's top category is 13
    assert reasons[normal] == ["low_confidence"]
    assert reasons[unknown] == ["unclassified"]
    assert "duplicate" in reasons[dup] and "duplicate" in reasons[first]
    dups = {i["case_number"]: i["duplicates"] for i in data["items"]}
    assert dups[dup][0] == first
    top3 = next(i for i in data["items"] if i["case_number"] == normal)["candidates"]
    assert [c["code"] for c in top3] == ["01", "06", "10"] and top3[0]["confidence"] == 0.55


async def test_filters_by_channel_category_district_and_date(app_client, runner):
    a = await seed(app_client, runner, "路灯不亮", location={"address": "龙华区民治街道"})
    b = await seed(app_client, runner, "垃圾满了", location={"address": "南山区粤海街道"})
    assert [i["case_number"] for i in (await api_queue(app_client, "?category=01"))["items"]] == [a]
    assert [i["case_number"] for i in (await api_queue(app_client, "?category=0604"))["items"]] == [b]
    assert [i["case_number"] for i in (await api_queue(app_client, "?district=南山"))["items"]] == [b]
    assert (await api_queue(app_client, "?channel=sms"))["total"] == 0
    assert (await api_queue(app_client, "?channel=web"))["total"] == 2
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    assert (await api_queue(app_client, f"?from={tomorrow}"))["total"] == 0
    assert (await api_queue(app_client, f"?to={tomorrow}&district=%25"))["total"] == 0  # LIKE wildcards escaped


async def test_a_row_shows_photos_location_candidates_and_masks_numbers(app_client, users, runner):
    form = aiohttp.FormData()
    form.add_field("text", "路灯坏了，我的电话13812345678，身份证110101199003071234")
    form.add_field("contact_phone", "13912345678")
    form.add_field("lat", "22.65")
    form.add_field("lng", "114.02")
    form.add_field("address", "龙华区民治大道")
    form.add_field("photos", PNG, filename="a.png", content_type="image/png")
    resp = await app_client.post("/api/v1/reports", data=form)
    case = (await resp.json())["case_number"]
    await runner.idle()
    await login(app_client, "mod1")
    html = await (await app_client.get("/console/")).text()
    assert re.search(r'<img src="/media/[0-9a-f]{64}"', html)
    assert "22.65000, 114.02000" in html and "geo:" not in html and "龙华区民治大道" in html
    assert "深圳市 / 龙华区 / 龙华街道 / 富康社区" in html and "(point_in_polygon)" in html  # its grid path
    assert "01 市政公用设施" in html and 'value="0.55"' in html and "分类置信度低" in html
    assert "138****5678" in html and "139****5678" in html and "1101**********1234" in html
    for raw in ("13812345678", "13912345678", "110101199003071234"):
        assert raw not in html
    assert 'data-reveal="contact_phone"' not in html  # moderators cannot unmask
    assert (await app_client.get(f"/console/reports/{case}/pii/contact_phone")).status == 403


async def test_admins_reveal_one_field_at_a_time_and_each_view_is_logged(app_client, users, runner):
    case = await seed(app_client, runner, "路灯坏了", contact_phone="13912345678")
    await login(app_client, "admin1")
    html = await (await app_client.get("/console/")).text()
    assert 'data-reveal="contact_phone"' in html and "13912345678" not in html
    for _ in range(2):
        resp = await app_client.get(f"/console/reports/{case}/pii/contact_phone")
        assert (await resp.json())["value"] == "13912345678"
    assert (await app_client.get(f"/console/reports/{case}/pii/password")).status == 404
    async with app_client.app[keys.DB].session() as s:
        views = (await s.execute(select(PiiView.username, PiiView.field))).all()
    assert views == [("admin1", "contact_phone")] * 2
    admin = await (await app_client.get("/console/admin")).text()
    assert case in admin and "contact_phone" in admin


async def test_model_version_and_evaluation_figures_are_shown(aiohttp_client, make_settings, runner, tmp_path):
    model = tmp_path / "model"
    (model / "eval-golden").mkdir(parents=True)
    meta = {
        "format": 1,
        "version": "linear-abc123",
        "calibration": {"top_level_accuracy": 0.91, "coverage": 0.7},
        "train": {"n": 1200},
    }
    (model / "meta.json").write_text(json.dumps(meta))
    (model / "eval-golden" / "metrics.json").write_text(json.dumps({"n": 300, "accuracy": 0.876, "macro_f1": 0.812}))
    settings = make_settings(secret_key="s" * 32, classifier="nlp", model_dir=model)
    client = await aiohttp_client(create_app(settings, classifier=FakeClassifier(), runner=runner))
    await create_user(client.app[keys.DB], "mod1", PASSWORD, "moderator")
    await login(client, "mod1")
    html = await (await client.get("/console/")).text()
    assert "linear-abc123" in html and "0.812" in html and "0.876" in html and "eval-golden (n=300)" in html


async def test_overview_counts_the_queue_and_its_waiting_time(app_client, users, runner):
    a = await seed(app_client, runner, "路灯不亮")
    await seed(app_client, runner, "垃圾满了")
    csrf = await login(app_client, "mod1")
    await app_client.post(f"/console/reports/{a}/actions/confirm", data={"_csrf": csrf})
    html = await (await app_client.get("/console/overview")).text()
    assert re.search(r'id="stat-queue">1<', html) and "1 件已审" in html
    charts = json.loads(re.search(r'id="chart-data">(.*?)</script>', html, re.S).group(1))
    assert len(charts["days"]) == 30
    assert sum(charts["by_channel"]["网上民声"]) == 2  # channels by their Chinese names
    assert charts["queue_size"][-1] == 1
    assert any(k.startswith("01") for k in charts["by_category"])


def _queued(set_by: str, code: str | None, note: str, *, urgent: bool = False):
    from gateway.core.lifecycle import Status
    from gateway.db import History, Report

    report = Report(
        category_code=code,
        category_parent=code[:2] if code else None,
        category_set_by=set_by,
        category_candidates=[{"code": code[:2], "confidence": 0.9}] if code else [],
        urgent=urgent,
    )
    report.history = [
        History(actor="system", action="status", from_status=Status.RECEIVED, to_status=Status.CLASSIFIED),
        History(
            actor="system", action="status", from_status=Status.CLASSIFIED, to_status=Status.NEEDS_REVIEW, note=note
        ),
    ]
    return report


def test_low_confidence_badge_only_below_the_threshold():
    """Only a report the pipeline sent to review for its confidence gets "low confidence"; a
    confident one waiting as a possible duplicate does not (issue 12)."""
    from gateway.console.queue import reasons_of

    keys_of = lambda r: [k for k, _ in reasons_of(r, [])]  # noqa: E731
    assert keys_of(_queued("model", "0102", "low confidence")) == ["low_confidence"]
    assert keys_of(_queued("model", "0102", "possible duplicate of ZW20261130000001")) == []
    assert keys_of(_queued("no_text", None, "low confidence")) == ["no_text", "unclassified"]
    assert keys_of(_queued("not_chinese", None, "low confidence")) == ["not_chinese", "unclassified"]
