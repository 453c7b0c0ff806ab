"""The WeChat Official Account channel through the real app, a real local fake of WeChat's API,
and wechatpy's own crypto playing WeChat's side (tests/fixtures/wechat/, ../shared/conformance/)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from wechatpy.crypto import WeChatCrypto

from channels import wechat_api
from channels.base import Account
from channels.errors import ChannelMisconfigured, SendRejected, SendRetryable
from channels.tokens import MemoryTokenStore
from channels.wechat import WeChatChannel, signature, xml_fields
from gateway import keys
from gateway.core import replies
from gateway.core.classify import PlaceholderClassifier
from gateway.db import Contact, Media, Message, Notification, Report
from gateway.http.app import create_app
from gateway.models import OutboundMessage
from gateway.runtime import channel_view
from tests.fakes.wechat_api import APP_ID, APP_SECRET, FakeWeChatApi
from tests.harness import FIXTURES, IncomingCase, OutgoingCase, Prepared, counts, given, run_incoming

TOKEN = "citytoken2026"
AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")
NOW = 1764201700  # the channel's injected clock; requests are signed with it
OPENID = "oCITIZEN00000000000000000001"
SENDER = f"wechat:{OPENID}"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x01" * 200
AMR = b"#!AMR\n" + b"\x02" * 100
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x03" * 300
PATH = "/channels/wechat"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def fake(aiohttp_server: Any) -> FakeWeChatApi:
    api = FakeWeChatApi()
    api.media["MEDIA_PHOTO_1"] = (JPEG, "image/jpeg")
    api.media["MEDIA_VOICE_1"] = (AMR, "audio/amr")
    api.videos["MEDIA_VIDEO_1"] = MP4
    server = await aiohttp_server(api.app())
    api.base = str(server.make_url("/cgi-bin/"))  # type: ignore[attr-defined]
    return api


def wechat_settings(fake: FakeWeChatApi, **more: Any) -> dict[str, Any]:
    """The channel's own settings (``WeChatSettings``) for a test against the fake API."""
    return {
        "token": TOKEN,
        "aes_key": AES_KEY,
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "api_base": fake.base,  # type: ignore[attr-defined]
        "allow_plain": True,  # most cases are plain mode; test_plain_refused_in_safe_mode covers the default
        **more,
    }


@pytest.fixture
def make_wx(aiohttp_client: Any, make_settings: Callable[..., Any], fake: FakeWeChatApi, runner: Any):
    async def make(wechat: Mapping[str, Any] | None = None, **overrides: Any) -> Any:
        """``wechat``: the channel's settings over ``wechat_settings``; ``overrides``: the gateway's."""
        settings = make_settings(channels={"wechat": wechat_settings(fake, **(wechat or {}))}, **overrides)
        client = await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))
        channel = client.app[keys.CHANNELS]["wechat"]
        channel.clock = lambda: NOW
        channel.api = wechat_api.WeChatApi(tokens=MemoryTokenStore())  # no token shared between tests
        return client

    return make


@pytest.fixture
async def wx(make_wx: Callable[..., Any]) -> Any:
    return await make_wx()


# --------------------------------------------------------------------------- signing (WeChat's side)


_NONCES = itertools.count(1234567)


def signed(token: str = TOKEN, ts: int = NOW, nonce: str | None = None, bad: bool = False) -> Callable[..., Prepared]:
    """Signs like WeChat: a fresh nonce for each request prepared (WeChat's retries repeat the
    prepared query; a signed query reused with another body is a replay, gateway/http/replays.py)."""

    def prep(p: Prepared) -> Prepared:
        once = nonce or str(next(_NONCES))
        sig = signature(token, str(ts), once)
        if bad:
            sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        query = {**p.query, "signature": sig, "timestamp": str(ts), "nonce": once, "openid": OPENID}
        return replace(p, query=query)

    return prep


def encrypted(token: str = TOKEN, aes: str = AES_KEY, app_id: str = APP_ID, ts: int = NOW, nonce: str = "7654321"):
    """Safe mode as WeChat does it, with wechatpy's own WeChatCrypto."""

    def prep(p: Prepared) -> Prepared:
        out = xml_fields(WeChatCrypto(token, aes, app_id).encrypt_message(p.body.decode(), nonce, str(ts)).encode())
        body = (
            "<xml><ToUserName><![CDATA[gh_0000city0000]]></ToUserName>"
            f"<Encrypt><![CDATA[{out['Encrypt']}]]></Encrypt></xml>"
        )
        query = {
            "signature": signature(token, str(ts), nonce),
            "timestamp": str(ts),
            "nonce": nonce,
            "openid": OPENID,
            "encrypt_type": "aes",
            "msg_signature": out["MsgSignature"],
        }
        return replace(p, body=body.encode(), query=query)

    return prep


def decrypt_reply(text: str, token: str = TOKEN, aes: str = AES_KEY, app_id: str = APP_ID) -> dict[str, str]:
    f = xml_fields(text.encode())
    plain = WeChatCrypto(token, aes, app_id).decrypt_message(text, f["MsgSignature"], f["TimeStamp"], f["Nonce"])
    return xml_fields(plain.encode())


async def one(client: Any, model: Any, *where: Any) -> Any:
    async with client.app[keys.DB].session() as s:
        return await s.scalar(select(model).where(*where).order_by(model.id.desc()).limit(1))


async def all_rows(client: Any, model: Any) -> list[Any]:
    async with client.app[keys.DB].session() as s:
        return list((await s.scalars(select(model).order_by(model.id))).all())


# --------------------------------------------------------------------------- incoming cases


def media_stored(kind: str, data: bytes, ctype: str):
    async def check(client: Any) -> None:
        row = await one(client, Media, Media.kind == kind)
        assert row is not None and row.state == "stored", row and (row.state, row.error)
        assert row.size == len(data) and row.content_type == ctype
        assert await client.app[keys.MEDIA].get(row.sha256) == (data, ctype)

    return check


async def location_stored(client: Any) -> None:
    report = await one(client, Report)
    assert (report.location_lat, report.location_lng) == (22.6531, 114.0254)
    assert report.location_address == "广东省深圳市龙华区民治街道" and report.location_source == "gps"


async def contact_located(client: Any) -> None:
    contact = await one(client, Contact, Contact.address == SENDER)
    assert (contact.last_lat, contact.last_lng) == (22.6531, 114.0254) and contact.last_inbound_at is not None


async def contact_opted_out(client: Any) -> None:
    contact = await one(client, Contact, Contact.address == SENDER)
    assert contact.opted_out is True


CASES = [
    IncomingCase(
        "text",
        PATH,
        fixture="wechat/text.xml",
        prep=signed(),
        body_contains=("案件编号", OPENID),
        messages=1,
        reports=1,
        text="路灯坏了",
        sender=SENDER,
        external_id="24001000000000001",
        kind="text",
    ),
    IncomingCase(
        "image",
        PATH,
        fixture="wechat/image.xml",
        prep=signed(),
        body_contains="已收到照片",
        messages=1,
        reports=1,
        kind="image",
        check=media_stored("image", JPEG, "image/jpeg"),
    ),
    IncomingCase(
        "voice with recognition",
        PATH,
        fixture="wechat/voice_recognition.xml",
        prep=signed(),
        body_contains="案件编号",
        reports=1,
        text="垃圾桶满了",
        kind="voice",
        check=media_stored("voice", AMR, "audio/amr"),
    ),
    IncomingCase(
        "voice without recognition",
        PATH,
        fixture="wechat/voice.xml",
        prep=signed(),
        body_contains="已收到语音",
        reports=1,
        kind="voice",
    ),
    IncomingCase(
        "video",
        PATH,
        fixture="wechat/video.xml",
        prep=signed(),
        body_contains="已收到视频",
        reports=1,
        kind="video",
        check=media_stored("video", MP4, "video/mp4"),
    ),
    IncomingCase(
        "shortvideo",
        PATH,
        fixture="wechat/shortvideo.xml",
        prep=signed(),
        body_contains="已收到视频",
        reports=1,
        kind="video",
    ),
    IncomingCase(
        "location",
        PATH,
        fixture="wechat/location.xml",
        prep=signed(),
        body_contains="已收到位置",
        reports=1,
        kind="location",
        check=location_stored,
    ),
    IncomingCase("link", PATH, fixture="wechat/link.xml", prep=signed(), reports=1, text="道路积水严重", kind="link"),
    IncomingCase(
        "subscribe event: welcome",
        PATH,
        fixture="wechat/event_subscribe.xml",
        prep=signed(),
        body_contains="随手拍",
        messages=0,
        reports=0,
    ),
    IncomingCase(
        "unsubscribe event",
        PATH,
        fixture="wechat/event_unsubscribe.xml",
        prep=signed(),
        body_contains="success",
        messages=0,
        reports=0,
        check=contact_opted_out,
    ),
    IncomingCase(
        "menu CLICK",
        PATH,
        fixture="wechat/event_click.xml",
        prep=signed(),
        body_contains="success",
        messages=0,
        reports=0,
    ),
    IncomingCase(
        "menu VIEW",
        PATH,
        fixture="wechat/event_view.xml",
        prep=signed(),
        body_contains="success",
        messages=0,
        reports=0,
    ),
    IncomingCase(
        "LOCATION event",
        PATH,
        fixture="wechat/event_location.xml",
        prep=signed(),
        body_contains="success",
        messages=0,
        reports=0,
        check=contact_located,
    ),
    IncomingCase(
        "unknown event",
        PATH,
        fixture="wechat/event_unknown.xml",
        prep=signed(),
        body_contains="success",
        messages=0,
        reports=0,
    ),
    IncomingCase(
        "unknown message kind",
        PATH,
        fixture="wechat/unknown_msgtype.xml",
        prep=signed(),
        body_contains="暂不支持",
        messages=0,
        reports=0,
    ),
    IncomingCase(
        "duplicate (WeChat retries)", PATH, fixture="wechat/text.xml", prep=signed(), repeat=3, messages=1, reports=1
    ),
    IncomingCase(
        "bad signature", PATH, fixture="wechat/text.xml", prep=signed(bad=True), status=403, messages=0, reports=0
    ),
    IncomingCase(
        "other token", PATH, fixture="wechat/text.xml", prep=signed(token="not-ours"), status=403, messages=0, reports=0
    ),
    IncomingCase("no signature", PATH, fixture="wechat/text.xml", status=403, messages=0, reports=0),
    IncomingCase(
        "stale timestamp", PATH, fixture="wechat/text.xml", prep=signed(ts=NOW - 301), status=403, messages=0, reports=0
    ),
    IncomingCase(
        "future timestamp",
        PATH,
        fixture="wechat/text.xml",
        prep=signed(ts=NOW + 301),
        status=403,
        messages=0,
        reports=0,
    ),
    IncomingCase(
        "missing field",
        PATH,
        fixture="wechat/missing_field.xml",
        prep=signed(),
        status=400,
        body_contains="FromUserName",
        messages=0,
        reports=0,
    ),
    IncomingCase(
        "location that is not a place (NaN, out of range)",
        PATH,
        body=(FIXTURES / "wechat" / "location.xml")
        .read_text()
        .replace("22.653100", "nan")
        .replace("114.025400", "999"),
        prep=signed(),
        status=400,
        body_contains="Location_X",
        messages=0,
        reports=0,
    ),
    IncomingCase("malformed XML", PATH, fixture="wechat/malformed.xml", prep=signed(), status=400, messages=0),
    IncomingCase("entity expansion", PATH, fixture="wechat/billion_laughs.xml", prep=signed(), status=400, messages=0),
    IncomingCase("external entity", PATH, fixture="wechat/xxe.xml", prep=signed(), status=400, messages=0),
    IncomingCase(
        "oversize body", PATH, body="<xml>" + "x" * (64 * 1024) + "</xml>", prep=signed(), status=413, messages=0
    ),
    IncomingCase(
        "safe mode",
        PATH,
        fixture="wechat/text.xml",
        prep=encrypted(),
        body_contains="<Encrypt>",
        messages=1,
        reports=1,
        text="路灯坏了",
        external_id="24001000000000001",
    ),
    IncomingCase(
        "safe mode, bad msg_signature",
        PATH,
        fixture="wechat/text.xml",
        prep=lambda p: replace(encrypted()(p), query={**encrypted()(p).query, "msg_signature": "0" * 40}),
        status=403,
        messages=0,
    ),
    IncomingCase(
        "safe mode, other AES key",
        PATH,
        fixture="wechat/text.xml",
        prep=encrypted(aes=base64.b64encode(b"z" * 32).decode().rstrip("=")),
        status=403,
        messages=0,
    ),
    IncomingCase(
        "encrypt_type=aes without msg_signature",
        PATH,
        fixture="wechat/text.xml",
        prep=lambda p: replace(signed()(p), query={**signed()(p).query, "encrypt_type": "aes"}),
        status=403,
        messages=0,
    ),
    IncomingCase("unknown account", f"{PATH}/nosuch", fixture="wechat/text.xml", prep=signed(), status=404, messages=0),
    IncomingCase(
        "URL verification",
        PATH,
        method="GET",
        query={"echostr": "8264417001394468713"},
        prep=signed(),
        body_contains="8264417001394468713",
    ),
    IncomingCase(
        "URL verification, bad signature", PATH, method="GET", query={"echostr": "1"}, prep=signed(bad=True), status=403
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_incoming(wx: Any, case: IncomingCase) -> None:
    await run_incoming(wx, case)


async def test_safe_mode_reply_is_encrypted_and_wechatpy_decrypts_it(wx: Any) -> None:
    prepared = encrypted()(
        Prepared(PATH, (Path(__file__).parent.parent / "fixtures/wechat/image.xml").read_bytes(), {}, {})
    )
    resp = await wx.post(PATH, data=prepared.body, params=prepared.query)
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "application/xml"
    assert "已收到" not in text  # nothing readable outside the envelope
    reply = decrypt_reply(text)
    assert reply["MsgType"] == "text" and reply["ToUserName"] == OPENID and reply["FromUserName"] == "gh_0000city0000"
    report = await one(wx, Report)
    assert reply["Content"] == replies.ask_description(["image"], report.case_number)


async def test_an_overlong_sender_is_a_bad_payload_not_a_crash(wx: Any) -> None:
    body = (Path(__file__).parent.parent / "fixtures/wechat/text.xml").read_bytes()
    body = body.replace(OPENID.encode(), b"o" * 300)
    prepared = signed()(Prepared(PATH, body, {}, {}))
    resp = await wx.post(PATH, data=body, params=prepared.query)
    assert resp.status == 400 and "sender" in await resp.text()
    assert await counts(wx) == (0, 0)


async def test_plain_refused_in_safe_mode(make_wx: Any) -> None:
    """With an AES key, only the encrypted form is taken: a plain body's signature covers nothing."""
    client = await make_wx({"allow_plain": False})
    body = (Path(__file__).parent.parent / "fixtures/wechat/text.xml").read_bytes()
    plain = signed()(Prepared(PATH, body, {}, {}))
    resp = await client.post(PATH, data=plain.body, params=plain.query)
    assert resp.status == 403
    assert await counts(client) == (0, 0)
    safe = encrypted()(Prepared(PATH, body, {}, {}))
    resp = await client.post(PATH, data=safe.body, params=safe.query)
    assert resp.status == 200 and await counts(client) == (1, 1)


# --------------------------------------------------------------------------- stitching end to end


async def post(client: Any, fixture: str, *, times: int = 1) -> str:
    """Deliver a fixture ``times`` times (WeChat's retries); the first passive reply's text."""
    body = (Path(__file__).parent.parent / "fixtures/wechat" / fixture).read_bytes()
    prepared = signed()(Prepared(PATH, body, {}, {}))
    texts = []
    for _ in range(times):
        resp = await client.post(PATH, data=body, params=prepared.query)
        text = await resp.text()
        assert resp.status == 200, text
        texts.append(xml_fields(text.encode())["Content"] if text.startswith("<xml>") else text)
    if times > 1 and not fixture.startswith("event_"):
        assert all("无需重复发送" in t for t in texts[1:]), texts  # a retry names the case, nothing new
    return texts[0]


async def test_photo_text_location_retried_make_one_report_then_submit_closes_it(wx: Any, runner: Any) -> None:
    first = await post(wx, "image.xml", times=3)
    second = await post(wx, "text.xml", times=3)
    third = await post(wx, "location.xml", times=3)
    await runner.idle()
    report = await one(wx, Report)
    assert first == replies.ask_description(["image"], report.case_number)
    assert report.case_number in first  # the first reply of a session already names the case
    assert second == replies.ASK_LOCATION.format(case=report.case_number)
    assert third == replies.GOT_MORE.format(case=report.case_number)
    assert len(await all_rows(wx, Report)) == 1 and len(await all_rows(wx, Message)) == 3
    assert "路灯坏了" in report.text and (report.location_lat, report.location_lng) == (22.6531, 114.0254)
    [photo] = await all_rows(wx, Media)
    assert photo.report_id == report.id and photo.state == "stored" and photo.sha256
    assert report.session_open is True and report.status == "received"

    done = await post(wx, "submit.xml")
    await runner.idle()
    assert done == replies.SUBMITTED.format(case=report.case_number)
    report = await one(wx, Report)
    assert report.session_open is False and report.status == "needs_review"  # classified (placeholder)


async def test_a_signed_query_replayed_with_another_body_is_refused(wx: Any) -> None:
    """Plain mode signs timestamp and nonce only: a captured query with a forged body is a 403
    and stores nothing, while WeChat's own retry (same query, same MsgId) gets the first case."""
    fixtures = Path(__file__).parent.parent / "fixtures/wechat"
    body = (fixtures / "text.xml").read_bytes()
    captured = signed()(Prepared(PATH, body, {}, {})).query
    first = await wx.post(PATH, data=body, params=captured)
    assert first.status == 200
    case = (await one(wx, Report)).case_number
    forged = body.replace(b"<MsgId>", b"<MsgId>9").replace("路灯坏了".encode(), "伪造的内容".encode())
    assert forged != body
    replayed = await wx.post(PATH, data=forged, params=captured)
    assert replayed.status == 403
    assert len(await all_rows(wx, Message)) == 1 and "伪造" not in (await one(wx, Report)).text
    retry = await wx.post(PATH, data=body, params=captured)  # WeChat's retry after 5 s without an answer
    assert retry.status == 200 and case in xml_fields((await retry.text()).encode())["Content"]
    fresh = signed()(Prepared(PATH, forged, {}, {})).query  # the same body under its own signature passes
    assert (await wx.post(PATH, data=forged, params=fresh)).status == 200
    assert len(await all_rows(wx, Message)) == 2


async def test_a_flooding_sender_is_answered_on_the_channel_and_nothing_is_stored(make_wx: Callable[..., Any]) -> None:
    client = await make_wx(flood_sender_limit=3)
    body = (Path(__file__).parent.parent / "fixtures/wechat" / "text.xml").read_bytes()
    texts = []
    for i in range(5):
        msg = body.replace(b"<MsgId>", f"<MsgId>{i}".encode())
        resp = await client.post(PATH, data=msg, params=signed()(Prepared(PATH, msg, {}, {})).query)
        assert resp.status == 200
        texts.append(xml_fields((await resp.text()).encode())["Content"])
    assert texts[3:] == [replies.FLOODED] * 2 and replies.FLOODED not in texts[:3]
    assert len(await all_rows(client, Message)) == 3


async def test_contacts_and_stitching_on_both_databases(make_wx: Callable[..., Any], db_url: str) -> None:
    client = await make_wx(database_url=db_url)
    for fixture in ("event_subscribe.xml", "event_location.xml", "image.xml", "text.xml", "location.xml"):
        await post(client, fixture, times=2)
    [report] = await all_rows(client, Report)
    [contact] = await all_rows(client, Contact)
    assert contact.address == SENDER and contact.last_lat == 22.6531 and not contact.opted_out
    assert len(await all_rows(client, Message)) == 3 and "路灯坏了" in report.text


async def test_idle_timeout_closes_the_session(make_wx: Callable[..., Any], runner: Any) -> None:
    client = await make_wx(session_window_s=1)
    await post(client, "image.xml")
    await post(client, "text.xml")
    for _ in range(100):
        report = await one(client, Report)
        if not report.session_open and report.status != "received":
            break
        await asyncio.sleep(0.05)
    assert report.session_open is False and report.status == "needs_review"
    assert "路灯坏了" in report.text


async def test_recent_location_event_locates_a_report_without_location(wx: Any) -> None:
    await post(wx, "event_location.xml")
    await post(wx, "text.xml")
    report = await one(wx, Report)
    assert (report.location_lat, report.location_lng) == (22.6531, 114.0254)
    contact = await one(wx, Contact, Contact.address == SENDER)
    assert contact.last_inbound_at is not None


async def test_accounts_from_json_setting(make_wx: Callable[..., Any]) -> None:
    extra = {"district2": {"token": "district-token", "app_id": "wx2", "app_secret": "s2"}}
    client = await make_wx({"accounts": json.dumps(extra)})
    accounts = client.app[keys.CHANNELS]["wechat"].accounts(channel_view(client.app[keys.SETTINGS]))
    assert set(accounts) == {"default", "district2"}
    assert accounts["district2"].redacted()["token"] == "***"
    case = IncomingCase(
        "second account", f"{PATH}/district2", fixture="wechat/text.xml", prep=signed(token="district-token"), reports=1
    )
    await run_incoming(client, case)
    message = await one(client, Message)
    assert message.account == "district2"
    wrong = await client.post(f"{PATH}/district2", data=b"<xml/>", params=signed()(Prepared("", b"", {}, {})).query)
    assert wrong.status == 403  # the default account's token does not open another account


def test_no_token_means_no_account() -> None:
    assert WeChatChannel.accounts(given(wechat={"token": None})) == {}


# --------------------------------------------------------------------------- notifications


def account(fake: FakeWeChatApi, **more: Any) -> Account:
    own = {"token": TOKEN, "app_id": APP_ID, "app_secret": APP_SECRET, "api_base": fake.base, **more}  # type: ignore[attr-defined]
    return WeChatChannel.accounts(given(wechat=own))["default"]


OUTGOING = [
    OutgoingCase(
        "customer-service message",
        "案件 ZW20261127000001 已由处置部门接收。",
        OPENID,
        expect_path="message/custom/send",
        expect_body_contains=("ZW20261127000001", OPENID),
        secrets=(APP_SECRET, "TOKEN1"),
    ),
    OutgoingCase(
        "system busy is retryable",
        "x",
        OPENID,
        responses={"message/custom/send": (200, {"errcode": -1})},
        error=SendRetryable,
    ),
    OutgoingCase(
        "quota is retryable",
        "x",
        OPENID,
        responses={"message/custom/send": (200, {"errcode": 45009})},
        error=SendRetryable,
    ),
    OutgoingCase(
        "HTTP 502 is retryable", "x", OPENID, responses={"message/custom/send": (502, None)}, error=SendRetryable
    ),
    OutgoingCase("out of the 48 h window, no template", "x", "wechat:oLATE", error=SendRejected),
    OutgoingCase(
        "unsubscribed is rejected",
        "x",
        OPENID,
        responses={"message/custom/send": (200, {"errcode": 43004})},
        error=SendRejected,
    ),
    OutgoingCase(
        "bad app secret is misconfiguration",
        "x",
        OPENID,
        responses={"token": (200, {"errcode": 40125})},
        error=ChannelMisconfigured,
        secrets=(APP_SECRET, "TOKEN1"),
    ),
    OutgoingCase(
        "expired token is refreshed once",
        "x",
        OPENID,
        responses={"message/custom/send": (200, {"errcode": 42001})},
        expect_path="message/custom/send",
    ),
]


@pytest.mark.parametrize("case", OUTGOING, ids=str)
async def test_outgoing(fake: FakeWeChatApi, case: OutgoingCase, caplog: pytest.LogCaptureFixture) -> None:
    fake.out_of_window.add("oLATE")
    for path, (status, body) in case.responses.items():
        fake.fail(path, (body or {}).get("errcode"), status=status)
    api = wechat_api.WeChatApi(tokens=MemoryTokenStore())
    msg = OutboundMessage(channel="wechat", recipient=case.recipient, text=case.text)
    caplog.set_level(logging.DEBUG)
    if case.error is not None:
        with pytest.raises(case.error):
            await asyncio.to_thread(api.send, msg, account(fake))
    else:
        result = await asyncio.to_thread(api.send, msg, account(fake))
        assert result.status == "sent" and result.external_id == case.external_id
    if case.expect_path:
        sent = fake.calls(case.expect_path)[-1]["json"]
        body = json.dumps(sent, ensure_ascii=False)
        assert all(piece in body for piece in case.expect_body_contains), body
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("aiohttp"))  # not the fake's
    for secret in case.secrets:
        assert secret not in ours


async def test_out_of_window_falls_back_to_template(fake: FakeWeChatApi) -> None:
    fake.out_of_window.add(OPENID)
    api = wechat_api.WeChatApi(tokens=MemoryTokenStore())
    acct = account(fake, template_id="TPL-STATUS", template_url="https://gw.example.test/r/{case}")
    msg = OutboundMessage(channel="wechat", recipient=SENDER, text="案件 ZW20261127000001 已处理完毕。")
    result = await asyncio.to_thread(api.send, msg, acct)
    assert result.external_id == "200228332" and result.detail == {"api": "template"}
    sent = fake.calls("message/template/send")[-1]["json"]
    assert sent["template_id"] == "TPL-STATUS" and sent["touser"] == OPENID
    assert sent["url"] == "https://gw.example.test/r/ZW20261127000001"
    assert sent["data"]["first"]["value"] == msg.text and sent["data"]["keyword1"]["value"] == "ZW20261127000001"


async def test_token_error_retries_once_only(fake: FakeWeChatApi) -> None:
    fake.fail("message/custom/send", 40001, times=5)
    api = wechat_api.WeChatApi(tokens=MemoryTokenStore())
    msg = OutboundMessage(channel="wechat", recipient=SENDER, text="x")
    with pytest.raises(SendRetryable):
        await asyncio.to_thread(api.send, msg, account(fake))
    assert len(fake.calls("message/custom/send")) == 2 and fake.tokens_issued == 2


async def test_expired_token_is_fetched_again(fake: FakeWeChatApi) -> None:
    api = wechat_api.WeChatApi(tokens=MemoryTokenStore())
    msg = OutboundMessage(channel="wechat", recipient=SENDER, text="x")
    await asyncio.to_thread(api.send, msg, account(fake))
    fake.expire_tokens()
    await asyncio.to_thread(api.send, msg, account(fake))
    assert fake.tokens_issued == 2 and len(fake.calls("message/custom/send")) == 3


async def test_status_change_notifies_the_resident_through_the_task(wx: Any, runner: Any, fake: FakeWeChatApi) -> None:
    await post(wx, "text.xml")
    await post(wx, "submit.xml")
    await runner.idle()
    report = await one(wx, Report)
    pipeline = wx.app[keys.PIPELINE]
    for status in ("ready", "dispatched", "accepted"):
        await pipeline.change_status(report.case_number, status, "test")
    await runner.idle()
    notification = await one(wx, Notification)
    assert notification.state == "sent", notification.error
    [sent] = fake.calls("message/custom/send")
    assert sent["json"]["touser"] == OPENID and report.case_number in sent["json"]["text"]["content"]


@pytest.mark.redis
async def test_token_shared_between_processes_through_redis(fake: FakeWeChatApi, redis_url: str) -> None:
    import redis

    from channels.tokens import RedisTokenStore

    web_process = wechat_api.WeChatApi(tokens=RedisTokenStore(redis.Redis.from_url(redis_url)))
    worker = wechat_api.WeChatApi(tokens=RedisTokenStore(redis.Redis.from_url(redis_url)))
    msg = OutboundMessage(channel="wechat", recipient=SENDER, text="x")
    await asyncio.to_thread(web_process.send, msg, account(fake))
    await asyncio.to_thread(worker.send, msg, account(fake))
    assert fake.tokens_issued == 1
    assert {c["query"]["access_token"] for c in fake.calls("message/custom/send")} == {"TOKEN1"}


# --------------------------------------------------------------------------- conformance vectors (../shared)


@pytest.mark.shared
@pytest.mark.parametrize(
    ("name", "kind", "check"),
    [
        ("wechat_oa_text.xml", "text", {"text": "this is a test"}),
        ("wechat_oa_image.xml", "image", {"media": "media_id"}),
        ("wechat_oa_voice.xml", "voice", {"media": "media_id"}),
        ("wechat_oa_voice_recognition.xml", "voice", {"text": "腾讯微信团队"}),
        ("wechat_oa_video.xml", "video", {"media": "media_id"}),
        ("wechat_oa_location.xml", "location", {"lat": 23.134521, "lng": 113.358803, "label": "位置信息"}),
        ("wechat_oa_link.xml", "link", {"text": "公众平台官网链接"}),
        ("wechat_oa_event_subscribe.xml", "event", {"event": "subscribe"}),
        ("wechat_oa_event_subscribe_qrscene.xml", "event", {"event": "subscribe"}),
        ("wechat_oa_event_location_report.xml", "event", {"event": "LOCATION", "lat": 23.137466}),
        ("wechat_oa_event_menu_click.xml", "event", {"event": "CLICK"}),
    ],
)
def test_conformance_docs_samples_parse(conformance_dir: Path, name: str, kind: str, check: dict[str, Any]) -> None:
    from channels.wechat import to_message

    msg = to_message(xml_fields((conformance_dir / name).read_bytes()), "default")
    assert msg.kind == kind
    if "text" in check:
        assert check["text"] in msg.text
    if "media" in check:
        assert msg.media[0].provider_id == check["media"]
    if "event" in check:
        assert msg.event == check["event"]
    if "lat" in check:
        assert msg.location is not None and msg.location.lat == check["lat"]
    if "lng" in check:
        assert msg.location.lng == check["lng"] and msg.location.label == check["label"]


@pytest.mark.shared
async def test_conformance_docs_samples_through_the_app(wx: Any, conformance_dir: Path) -> None:
    for name, status, reply in [
        ("wechat_oa_text.xml", 200, "案件编号"),
        ("wechat_oa_event_subscribe.xml", 200, "随手拍"),
    ]:
        body = (conformance_dir / name).read_bytes()
        resp = await wx.post(PATH, data=body, params=signed()(Prepared(PATH, body, {}, {})).query)
        assert resp.status == status and reply in await resp.text()


def _vector_accounts(vectors: dict[str, Any]) -> str:
    capture = vectors["wechat_oa_text_cleartext_capture.request.json"]
    safe = vectors["wechat_oa_text_safemode_capture.request.json"]
    compat = vectors["wechat_oa_text_compatmode_official_sample.xml"]
    wecom = vectors["wecom_text_encrypted_wechatpy_vector.xml"]
    return json.dumps(
        {
            "capture": {"token": capture["token"]},
            "safe": {"token": safe["token"], "aes_key": safe["encoding_aes_key"], "app_id": safe["app_id"]},
            "compat": {"token": compat["token"], "aes_key": compat["encoding_aes_key"], "app_id": compat["app_id"]},
            "wecom": {"token": wecom["token"], "aes_key": wecom["encoding_aes_key"], "app_id": wecom["receive_id"]},
        }
    )


@pytest.mark.shared
async def test_conformance_captures_and_crypto_vectors(make_wx: Callable[..., Any], conformance_dir: Path) -> None:
    vectors = json.loads((conformance_dir / "VECTORS.json").read_text())
    client = await make_wx({"accounts": _vector_accounts(vectors)})
    channel = client.app[keys.CHANNELS]["wechat"]

    async def deliver(account: str, query: dict[str, str], body: str | bytes, method: str = "POST") -> tuple[int, str]:
        channel.clock = lambda: int(query["timestamp"])
        resp = await client.request(method, f"{PATH}/{account}", params=query, data=body or None)
        return resp.status, await resp.text()

    capture = json.loads((conformance_dir / "wechat_oa_text_cleartext_capture.request.json").read_text())
    assert (await deliver("capture", capture["query"], capture["body"]))[0] == 200
    msg = await one(client, Message)
    assert (msg.text, msg.sender, msg.channel_message_id) == (
        "测试",
        "wechat:o1YYd0mJxkRO0eCi7haWLDVMalts",
        "22994982940022977",
    )
    assert (await deliver("capture", {**capture["query"], "nonce": "1"}, capture["body"]))[0] == 403

    safe = json.loads((conformance_dir / "wechat_oa_text_safemode_capture.request.json").read_text())
    assert (await deliver("safe", safe["query"], safe["body"]))[0] == 200  # same MsgId: a retry of the capture
    status, text = await deliver("safe", safe["query"], safe["body"])
    v = vectors["wechat_oa_text_safemode_capture.request.json"]
    assert status == 200 and "测试" not in text
    assert (
        decrypt_reply(text, v["token"], v["encoding_aes_key"], v["app_id"])["ToUserName"]
        == "o1YYd0mJxkRO0eCi7haWLDVMalts"
    )
    assert len(await all_rows(client, Message)) == 1

    c = vectors["wechat_oa_text_compatmode_official_sample.xml"]
    query = {
        "timestamp": c["timestamp"],
        "nonce": c["nonce"],
        "msg_signature": c["msg_signature"],
        "encrypt_type": "aes",
    }
    assert (
        await deliver("compat", query, (conformance_dir / "wechat_oa_text_compatmode_official_sample.xml").read_bytes())
    )[0] == 200
    assert (await one(client, Message)).text == "abcdteT"

    w = vectors["wecom_text_encrypted_wechatpy_vector.xml"]
    body = (conformance_dir / "wecom_text_encrypted_wechatpy_vector.xml").read_bytes()
    query = {"timestamp": w["timestamp"], "nonce": w["nonce"], "msg_signature": w["msg_signature"]}
    assert (await deliver("wecom", query, body))[0] == 200
    msg = await one(client, Message)
    assert (msg.text, msg.sender) == ("test", "wechat:messense")

    u = w["url_verify_case"]
    query = {
        "timestamp": u["timestamp"],
        "nonce": u["nonce"],
        "msg_signature": u["msg_signature"],
        "echostr": u["echostr"],
    }
    assert await deliver("wecom", query, b"", "GET") == (200, u["expected_decrypted_echostr"])
    assert (await deliver("wecom", {**query, "nonce": u["negative_nonce"]}, b"", "GET"))[0] == 403


def test_memory_token_store_expires_before_the_token_does() -> None:
    now = [1000.0]
    store = MemoryTokenStore(clock=lambda: now[0])
    store.set("wx_access_token", "T1", 7200)
    now[0] += 7200 - 301
    assert store.get("wx_access_token") == "T1"
    now[0] += 2
    assert store.get("wx_access_token") is None  # refreshed 5 minutes early
    store.set("k", None)
    assert store.get("k", "dflt") == "dflt"
