"""WeChat photos with only a token configured: fetched from ``PicUrl`` (WeChat's image hosts or
the API's own origin, no redirects), the start-up warning, and the console's retry of failed media."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from channels import wechat_api
from channels.base import Account
from channels.errors import ChannelMisconfigured, SendRejected
from channels.wechat import WeChatChannel, signature
from gateway import keys
from gateway.console.auth import create_user
from gateway.core.classify import PlaceholderClassifier
from gateway.db import Media, Report
from gateway.http.app import create_app
from gateway.models import MediaRef, MessageKind
from gateway.runtime import channel_shortcomings
from tests.console.conftest import PASSWORD, login
from tests.harness import FIXTURES, given

TOKEN = "citytoken2026"
NOW = 1764201700
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x01" * 200


class Pictures:
    """WeChat's image host, played locally: /pic/ok, a redirect off it, and a 404."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/pic/{name}", self._pic)
        return app

    async def _pic(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits.append(name)
        if name == "moved":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data")
        if name == "ok":
            return web.Response(body=JPEG, content_type="image/jpeg")
        raise web.HTTPNotFound()


@pytest.fixture
async def pictures(aiohttp_server: Any) -> tuple[Pictures, str]:
    host = Pictures()
    server = await aiohttp_server(host.app())
    return host, str(server.make_url("/")).rstrip("/")


def token_only(base: str) -> Account:
    return WeChatChannel.accounts(given(wechat={"token": TOKEN, "api_base": base + "/cgi-bin/"}))["default"]


def photo(url: str | None) -> MediaRef:
    return MediaRef(kind=MessageKind.IMAGE, provider_id="MEDIA_PHOTO_1", url=url, content_type="image/jpeg")


async def test_token_only_photo_comes_from_picurl(pictures: tuple[Pictures, str]) -> None:
    host, base = pictures
    api = wechat_api.WeChatApi()
    body, ctype = await asyncio.to_thread(api.fetch_media, photo(f"{base}/pic/ok"), token_only(base))
    assert body == JPEG and ctype == "image/jpeg" and host.hits == ["ok"]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://evil.example.com/pic/ok", SendRejected),  # not WeChat's image host
        ("http://mmbiz.qpic.cn.evil.example/pic/ok", SendRejected),  # a lookalike host
        ("file:///etc/passwd", SendRejected),
        (None, ChannelMisconfigured),  # voice and video have no PicUrl
    ],
)
async def test_picurl_elsewhere_is_refused(pictures: tuple[Pictures, str], url: str | None, error: type) -> None:
    host, base = pictures
    with pytest.raises(error):
        await asyncio.to_thread(wechat_api.WeChatApi().fetch_media, photo(url), token_only(base))
    assert host.hits == []


async def test_picurl_redirect_is_not_followed(pictures: tuple[Pictures, str]) -> None:
    host, base = pictures
    with pytest.raises(SendRejected, match="redirect"):
        await asyncio.to_thread(wechat_api.WeChatApi().fetch_media, photo(f"{base}/pic/moved"), token_only(base))
    assert host.hits == ["moved"]


def test_picurl_on_wechat_image_hosts_goes_over_https(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, bool]] = []

    def fake_get(url: str, **kw: Any) -> tuple[bytes, str]:
        seen.append((url, kw["follow_redirects"]))
        return JPEG, "image/jpeg"

    monkeypatch.setattr(wechat_api, "get_capped", fake_get)
    acct = WeChatChannel.accounts(given(wechat={"token": TOKEN}))["default"]
    wechat_api.fetch_picture("http://mmbiz.qpic.cn/mmbiz_jpg/abc/0", acct, cap=1 << 20)
    assert seen == [("https://mmbiz.qpic.cn/mmbiz_jpg/abc/0", False)]


def test_start_up_names_what_a_channel_lacks() -> None:
    chans = {"wechat": WeChatChannel()}
    token_only_acct = WeChatChannel.accounts(given(wechat={"token": TOKEN}))
    [warning] = channel_shortcomings(chans, {("wechat", n): a for n, a in token_only_acct.items()})
    assert "GATEWAY_WECHAT_APP_SECRET" in warning and "PicUrl" in warning
    full = WeChatChannel.accounts(given(wechat={"token": TOKEN, "app_id": "wx1", "app_secret": "s"}))
    assert channel_shortcomings(chans, {("wechat", n): a for n, a in full.items()}) == []


async def post_photo(client: Any, pic_url: str) -> str:
    body = (FIXTURES / "wechat/image.xml").read_bytes().replace(b"http://mmbiz.example.test/pic/1", pic_url.encode())
    query = {"signature": signature(TOKEN, str(NOW), "n1"), "timestamp": str(NOW), "nonce": "n1"}
    resp = await client.post("/channels/wechat", data=body, params=query)
    assert resp.status == 200
    return await resp.text()


@pytest.fixture
def make_app(
    aiohttp_client: Any, make_settings: Callable[..., Any], runner: Any, pictures: tuple[Pictures, str]
) -> Callable[..., Any]:
    async def make(**more: Any) -> Any:
        base = pictures[1]
        settings = make_settings(channels={"wechat": {"token": TOKEN, "api_base": base + "/cgi-bin/"}}, **more)
        client = await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))
        client.app[keys.CHANNELS]["wechat"].clock = lambda: NOW
        return client

    return make


async def test_token_only_account_stores_the_photo_and_warns_at_start_up(
    make_app: Any, runner: Any, pictures: tuple[Pictures, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.runtime"):
        client = await make_app()
    assert any("no app_id/app_secret" in r.getMessage() for r in caplog.records)
    reply = await post_photo(client, pictures[1] + "/pic/ok")
    await runner.idle()
    async with client.app[keys.DB].session() as s:
        [media] = (await s.scalars(select(Media))).all()
        report = await s.scalar(select(Report))
    assert media.state == "stored" and media.sha256 and report is not None
    assert report.case_number in reply


async def test_console_retries_failed_media(make_app: Any, runner: Any, pictures: tuple[Pictures, str]) -> None:
    client = await make_app()
    await post_photo(client, pictures[1] + "/pic/gone")  # 404: failed for good
    await runner.idle()
    async with client.app[keys.DB].session() as s:
        media = await s.scalar(select(Media))
        report = await s.scalar(select(Report))
    assert media is not None and report is not None and media.state == "failed"
    await create_user(client.app[keys.DB], "mod1", PASSWORD, "moderator")
    csrf = await login(client, "mod1")
    page = await client.get(f"/console/reports/{report.case_number}")
    html = await page.text()
    assert "下载失败" in html and "重新下载附件" in html
    # The host has the picture now (in life: the app secret was configured, or WeChat recovered).
    async with client.app[keys.DB].session() as s, s.begin():
        row = await s.get(Media, media.id)
        assert row is not None
        row.url = pictures[1] + "/pic/ok"
    resp = await client.post(
        f"/console/reports/{report.case_number}/actions/media",
        data={"_csrf": csrf},
        headers={"Accept": "application/json"},
    )
    assert resp.status == 200, await resp.text()
    assert "重新下载" in (await resp.json())["message"]
    await runner.idle()
    async with client.app[keys.DB].session() as s:
        row = await s.get(Media, media.id)
    assert row is not None and row.state == "stored" and row.sha256
    again = await client.post(
        f"/console/reports/{report.case_number}/actions/media",
        data={"_csrf": csrf},
        headers={"Accept": "application/json"},
    )
    assert again.status == 400
