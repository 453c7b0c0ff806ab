"""The public status page shows a coarse location; the reporter's browser sees what they typed
(the JSON view and its signed link: tests/test_api.py; Open311: tests/test_open311.py)."""

from __future__ import annotations

from typing import Any

from gateway.http.webform import CLIENT_COOKIE

TYPED = "民治大道88号3栋502室"


async def test_status_page_shows_the_typed_address_to_the_reporter_only(client: Any, runner: Any) -> None:
    mine = {CLIENT_COOKIE: "browser-of-the-reporter"}
    form = {"text": "楼道灯坏了", "address": TYPED, "lat": "22.653123", "lng": "114.025456"}
    resp = await client.post("/report", data=form, cookies=mine, allow_redirects=False)
    assert resp.status == 303
    page = resp.headers["Location"].split("?")[0]
    await runner.idle()
    own = await (await client.get(page, cookies=mine)).text()
    assert TYPED in own
    public = await (await client.get(page, cookies={CLIENT_COOKIE: "someone-else"})).text()
    assert TYPED not in public and "地点：龙华区" in public  # the grid's district, street and community
    data = await (await client.get("/api/v1/reports/" + page.rsplit("/", 1)[1])).json()
    assert (data["location"]["lat"], data["location"]["lng"]) == (22.653, 114.025)
