"""Issue 13, item 1: each hostile request the review answered with a 500 is a 4xx naming the problem.

Every case runs on SQLite and on PostgreSQL (some only failed on PostgreSQL: NUL bytes, overlong
fields). No credentials are needed for any of them, except the signed dispatch callbacks.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import FormData

from adapters import dispatch
from gateway.core.classify import PlaceholderClassifier
from gateway.http.app import create_app

SECRET = "dispatch-secret-for-tests"
TOKEN = "citytoken2026"


@pytest.fixture
async def client(db_url: str, aiohttp_client: Any, make_settings: Callable[..., Any], runner: Any) -> Any:
    # db_url first: the database is torn down after the app.
    settings = make_settings(
        database_url=db_url,
        channels={"wechat": {"token": TOKEN}, "open311": {"api_keys": "k1"}},
        dispatch_url="http://127.0.0.1:9/dispatch",
        dispatch_secret=SECRET,
    )
    app = create_app(settings, classifier=PlaceholderClassifier(), runner=runner)
    return await aiohttp_client(app)


async def expect_4xx(resp: Any, *words: str, status: int = 400) -> str:
    text = await resp.text()
    assert resp.status == status, (resp.status, text[:300])
    for word in words:
        assert word.lower() in text.lower(), (word, text[:300])
    return text


def signed(body: bytes, stamp: str | None = None) -> dict[str, str]:
    stamp = stamp or str(int(time.time()))
    return {
        "Content-Type": "application/json",
        dispatch.TIMESTAMP_HEADER: stamp,
        dispatch.SIGNATURE_HEADER: dispatch.signature(SECRET, stamp, body),
    }


async def post_json(client: Any, raw: str | bytes) -> Any:
    body = io.BytesIO(raw.encode() if isinstance(raw, str) else raw)
    return await client.post("/api/v1/reports", data=body, headers={"Content-Type": "application/json"})


async def test_deeply_nested_json(client: Any) -> None:
    await expect_4xx(await post_json(client, "[" * 100_000 + "]" * 100_000), "nested")
    await expect_4xx(await post_json(client, '{"text": "x", "location": ' + "[" * 500 + "]" * 500 + "}"), "nested")


async def test_integer_of_thousands_of_digits(client: Any) -> None:
    resp = await post_json(client, '{"text": "路灯坏了", "location": {"lat": ' + "9" * 5000 + ', "lng": 1}}')
    await expect_4xx(resp, "number")
    resp = await post_json(client, '{"text": "路灯坏了", "location": {"lat": ' + "9" * 60 + ', "lng": 1}}')
    await expect_4xx(resp, "location.lat")


async def test_lone_surrogate_in_text(client: Any) -> None:
    await expect_4xx(await post_json(client, '{"text": "路灯\\ud800坏了"}'), "text", "surrogate")


@pytest.mark.parametrize(("char", "word"), [("\x00", "control character"), ("\\u0000", "NUL")])
async def test_nul_in_report_text(client: Any, char: str, word: str) -> None:
    await expect_4xx(await post_json(client, '{"text": "路灯' + char + '坏了"}'), word)
    resp = await client.post("/api/v1/reports", data={"text": "路灯\x00坏了"})
    await expect_4xx(resp, "text", "NUL")


async def test_nul_in_a_location_key_that_is_stored_raw(client: Any) -> None:
    body = {"text": "路灯坏了", "location": {"address": "民治", "x\u0000": "\u0000"}}
    await expect_4xx(await post_json(client, json.dumps(body)), "NUL")


async def test_fields_longer_than_their_column(client: Any) -> None:
    resp = await client.post("/api/v1/reports", json={"text": "路灯坏了"}, headers={"X-Client-Id": "c" * 5000})
    assert resp.status == 201  # an over-long client id is cut to fit, not refused
    resp = await client.post("/api/v1/reports", json={"text": "路灯坏了", "title": "t" * 101})
    await expect_4xx(resp, "title")


async def test_multipart_location_as_a_json_string(client: Any) -> None:
    form = FormData()
    form.add_field("text", "路灯坏了")
    form.add_field("location", '"民治街道"')
    await expect_4xx(await client.post("/api/v1/reports", data=form), "location")
    form = FormData()
    form.add_field("text", "路灯坏了")
    form.add_field("location", "[1, 2]")
    await expect_4xx(await client.post("/api/v1/reports", data=form), "location")


async def test_oversize_bodies_under_api_are_413_with_json(client: Any) -> None:
    big = b"text=" + b"x" * (40 << 20)
    resp = await client.post(
        "/api/v1/reports", data=io.BytesIO(big), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    await expect_4xx(resp, '"error"', status=413)
    assert resp.content_type == "application/json"
    resp = await post_json(client, json.dumps({"text": "x" * (1 << 20)}))
    await expect_4xx(resp, "1048576", status=413)


async def test_dispatch_callback_over_64_kib(client: Any) -> None:
    body = json.dumps({"id": "cb1", "case_number": "ZW20261127000001", "status": "accepted", "note": "x" * 70_000})
    resp = await client.post("/api/v1/dispatch/callback", data=body.encode(), headers=signed(body.encode()))
    await expect_4xx(resp, "65536", status=413)


@pytest.mark.parametrize("stamp", ["²", "١٢٣", "9" * 400, " 1", "-1"])
async def test_dispatch_callback_with_a_strange_timestamp(client: Any, stamp: str) -> None:
    body = b'{"id": "cb1", "case_number": "ZW20261127000001", "status": "accepted"}'
    headers = {
        "Content-Type": "application/json",
        dispatch.TIMESTAMP_HEADER: stamp,
        dispatch.SIGNATURE_HEADER: "sha256=0",
    }
    await expect_4xx(
        await client.post("/api/v1/dispatch/callback", data=body, headers=headers), "signature", status=403
    )


@pytest.mark.parametrize("stamp", ["9" * 400, "²", "1e9", "-" + "9" * 30])
async def test_wechat_verification_with_a_strange_timestamp(client: Any, stamp: str) -> None:
    resp = await client.get(
        "/channels/wechat", params={"timestamp": stamp, "nonce": "1", "echostr": "e", "signature": "0"}
    )
    await expect_4xx(resp, "signature", status=403)


async def test_signed_dispatch_callback_with_nul_or_deep_nesting(client: Any) -> None:
    body = json.dumps({"id": "cb\x00", "case_number": "ZW20261127000001", "status": "accepted"}).encode()
    resp = await client.post("/api/v1/dispatch/callback", data=body, headers=signed(body))
    await expect_4xx(resp, "id")
    nested = b'{"id": "cb2", "case_number": "ZW20261127000001", "status": "accepted", "note": ' + b"[" * 10_000
    resp = await client.post("/api/v1/dispatch/callback", data=nested, headers=signed(nested))
    await expect_4xx(resp, "nested")


@pytest.mark.parametrize(
    "query",
    [
        {"end_date": "0001-01-01"},
        {"start_date": "9999-12-31T23:59:59Z", "end_date": "9999-12-31"},
        {"end_date": "0001-01-01T00:00:00+14:00"},
        {"service_request_id": "ZW\x00"},
        {"service_code": "1\x00"},
    ],
)
async def test_open311_list_with_extreme_filters(client: Any, query: dict[str, str]) -> None:
    resp = await client.get("/open311/v2/requests.json", params=query)
    assert resp.status in (200, 400), (resp.status, await resp.text())
    if resp.status == 400:
        assert (await resp.json())[0]["description"]


async def test_open311_post_with_nul(client: Any) -> None:
    body = "api_key=k1&service_code=0101&description=%E8%B7%AF%E7%81%AF%00&lat=22.6&long=114.0"
    resp = await client.post(
        "/open311/v2/requests.json", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    await expect_4xx(resp, "NUL")


async def test_html_form_with_nul_names_the_field(client: Any) -> None:
    form = FormData()
    form.add_field("text", "路灯\x00坏了")
    resp = await client.post("/report", data=form)
    text = await expect_4xx(resp)
    assert "问题描述" in text


async def test_photo_part_and_nul_field_store_nothing(client: Any, tmp_path: Any) -> None:
    form = FormData()
    form.add_field("text", "\x00")
    form.add_field(
        "photos", io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64), filename="a.png", content_type="image/png"
    )
    await expect_4xx(await client.post("/api/v1/reports", data=form), "text")
