"""End to end: a WeChat location message (GCJ-02) lands in the right community of the sample grid,
through the channel, the pipeline and triage; a point outside the district goes to moderators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.db import History, Report
from grid import Datum, GridIndex, Level, wgs84_to_gcj02
from tests.channels import test_wechat as wechat_tests
from tests.channels.test_wechat import OPENID, PATH, all_rows, one, signed
from tests.harness import Prepared

fake = wechat_tests.fake  # the WeChat channel's fixtures: a fake WeChat API and the app on it
make_wx = wechat_tests.make_wx

LOCATION = (
    "<xml><ToUserName><![CDATA[gh_0000city0000]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
    "<CreateTime>1764201630</CreateTime><MsgType><![CDATA[location]]></MsgType>"
    "<Location_X>{lat:.6f}</Location_X><Location_Y>{lng:.6f}</Location_Y><Scale>16</Scale>"
    "<Label><![CDATA[{label}]]></Label><MsgId>{msg_id}</MsgId></xml>"
)
TEXT = (
    "<xml><ToUserName><![CDATA[gh_0000city0000]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
    "<CreateTime>1764201620</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>"
)


def _community_point(index: GridIndex) -> tuple[str, float, float]:
    """A sample community and a point (GCJ-02) inside it that, read wrongly as WGS-84, is not inside it."""
    for unit in index.units:
        if unit.level is not Level.COMMUNITY or unit.geometry is None:
            continue
        spot = unit.geometry.representative_point()
        lat, lng = wgs84_to_gcj02(spot.y, spot.x)
        wrong = index.locate(lat, lng, datum=Datum.WGS84)
        if wrong is None or wrong.step(Level.COMMUNITY) is None or wrong.step(Level.COMMUNITY).code != unit.code:  # type: ignore[union-attr]
            return unit.code, lat, lng
    raise AssertionError("no community whose point moves out of it under the GCJ-02 offset")


async def _post(client: Any, body: str) -> None:
    prepared = signed()(Prepared(PATH, body.encode(), {}, {}))
    resp = await client.post(PATH, data=body.encode(), params=prepared.query)
    assert resp.status == 200, await resp.text()


async def _report(client: Any, runner: Any, lat: float, lng: float) -> Report:
    await _post(client, TEXT.format(openid=OPENID, text="路边垃圾堆了好几天没人清理", msg_id="25001"))
    await _post(client, LOCATION.format(openid=OPENID, lat=lat, lng=lng, label="位置", msg_id="25002"))
    await _post(client, TEXT.format(openid=OPENID, text="提交", msg_id="25003"))
    await runner.idle()
    return await one(client, Report)


async def test_a_wechat_location_message_lands_in_its_community(make_wx: Callable[..., Any], runner: Any) -> None:
    client = await make_wx()
    code, lat, lng = _community_point(GridIndex.sample())
    report = await _report(client, runner, lat, lng)
    assert (report.location_lat, report.location_lng) == (pytest.approx(lat), pytest.approx(lng))  # kept as sent
    path = {step["level"]: step["code"] for step in report.grid_path or []}
    assert path["社区"] == code and path["区"] == "440309"
    assert report.grid_method == "point_in_polygon" and report.grid_confidence == 1.0 and report.grid_version
    assert report.status == "needs_review"  # the placeholder classifier; the grid does not change that


async def test_a_point_outside_the_district_goes_to_moderators_with_the_reason(
    make_wx: Callable[..., Any], runner: Any
) -> None:
    client = await make_wx()
    report = await _report(client, runner, 23.1291, 113.2644)  # Guangzhou
    assert report.grid_method == "outside" and report.grid_code is None and report.grid_path is None
    assert report.status == "needs_review"
    history = await all_rows(client, History)
    assert any(h.to_status == "needs_review" and h.note == "outside every grid unit" for h in history)


async def test_the_public_view_carries_the_path_not_the_confidence(make_wx: Callable[..., Any], runner: Any) -> None:
    client = await make_wx()
    code, lat, lng = _community_point(GridIndex.sample())
    report = await _report(client, runner, lat, lng)
    resp = await client.get(f"/api/v1/reports/{report.case_number}")
    body = await resp.json()
    assert body["grid"]["code"] == report.grid_code and body["grid"]["method"] == "point_in_polygon"
    assert [s["level"] for s in body["grid"]["path"]][:3] == ["市", "区", "街道"]
    assert "confidence" not in body["grid"] and "version" not in body["grid"]
    assert code in [s["code"] for s in body["grid"]["path"]]
