"""Weibo fan-service channel through the real app, signed as Weibo signs (sha1 of the sorted app
secret, timestamp and nonce), with a real local fake of the reply and media APIs."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import select

from channels.base import Account
from channels.errors import ChannelMisconfigured, SendRejected, SendRetryable
from channels.weibo import WeiboChannel, message_id, signature
from channels.weibo_mentions import weibo_media_allowed
from gateway import keys
from gateway.core import replies
from gateway.core.classify import PlaceholderClassifier
from gateway.db import Contact, Media, Message, Notification, Report
from gateway.http.app import create_app
from gateway.models import MediaRef, MessageKind, OutboundMessage
from gateway.tasks.notify import notify
from tests.fakes.weibo_api import ACCESS_TOKEN, FakeWeiboApi
from tests.harness import FIXTURES, IncomingCase, Prepared, given, run_incoming

SECRET = "weibo-app-secret-0123456789"
PATH = "/channels/weibo"
SENDER = "weibo:5100000002"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x01" * 100
AMR = b"#!AMR\n" + b"\x02" * 100


@pytest.fixture
async def fake(aiohttp_server: Any) -> FakeWeiboApi:
    api = FakeWeiboApi()
    api.media["900000102"] = (JPEG, "image/jpeg")
    api.media["900000202"] = (AMR, "audio/amr")
    server = await aiohttp_server(api.app())
    api.base = str(server.make_url("/2/"))  # type: ignore[attr-defined]
    return api


def weibo_settings(fake: FakeWeiboApi, secret: str = SECRET, **more: Any) -> dict[str, Any]:
    """The channel's own settings (``WeiboSettings``) for a test against the fake API."""
    base = fake.base  # type: ignore[attr-defined]
    return {
        "app_key": "1234567890",
        "app_secret": secret,
        "access_token": ACCESS_TOKEN,
        "reply_url": f"{base}messages/reply.json",
        "media_url": f"{base}mss/msget",
        # The cases and the conformance vectors carry fixed (old) timestamps; the window has its own test.
        "timestamp_window_s": 0,
        **more,
    }


@pytest.fixture
def make_weibo(aiohttp_client: Any, make_settings: Callable[..., Any], fake: FakeWeiboApi, runner: Any):
    async def make(secret: str = SECRET) -> Any:
        settings = make_settings(channels={"weibo": weibo_settings(fake, secret)})
        return await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))

    return make


@pytest.fixture
async def weibo(make_weibo: Callable[..., Any]) -> Any:
    return await make_weibo()


_NONCES = itertools.count(83920417)


def signed(secret: str = SECRET, ts: str = "1764206130", nonce: str | None = None, bad: bool = False):
    """Signs like Weibo: a fresh nonce for each push (a signed query reused with another body is
    refused as a replay, gateway/http/replays.py)."""

    def prep(p: Prepared) -> Prepared:
        once = nonce or str(next(_NONCES))
        sig = signature(secret, ts, once)
        if bad:
            sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        return replace(p, query={**p.query, "signature": sig, "timestamp": ts, "nonce": once})

    return prep


async def rows(client: Any, model: Any) -> list[Any]:
    async with client.app[keys.DB].session() as s:
        return list((await s.scalars(select(model).order_by(model.id))).all())


def stored(kind: str, data: bytes):
    async def check(client: Any) -> None:
        [m] = [m for m in await rows(client, Media) if m.kind == kind]
        assert (m.state, m.size, m.provider_id is not None) == ("stored", len(data), True), m.error

    return check


def located(lat: float, lng: float):
    async def check(client: Any) -> None:
        [r] = await rows(client, Report)
        assert (r.location_lat, r.location_lng, r.location_source) == (lat, lng, "gps")

    return check


def opted_out(expected: bool):
    async def check(client: Any) -> None:
        assert [c.opted_out for c in await rows(client, Contact) if c.address == SENDER] == [expected]

    return check


JSON = {"Content-Type": "application/json"}
INCOMING = [
    IncomingCase(
        "valid text, passive reply with the case number",
        PATH,
        fixture="weibo/text.json",
        headers=JSON,
        prep=signed(),
        body_contains=('"result": true', '"receiver_id": 5100000002', "ZW"),
        messages=1,
        reports=1,
        sender=SENDER,
        kind="text",
        text="垃圾桶满了",
    ),
    IncomingCase(
        "image (tovfid fetched via mss/msget)",
        PATH,
        fixture="weibo/image.json",
        prep=signed(),
        messages=1,
        reports=1,
        kind="image",
        check=stored("image", JPEG),
    ),
    IncomingCase(
        "voice", PATH, fixture="weibo/voice.json", prep=signed(), messages=1, kind="voice", check=stored("voice", AMR)
    ),
    IncomingCase(
        "position",
        PATH,
        fixture="weibo/position.json",
        prep=signed(),
        messages=1,
        kind="location",
        check=located(22.543099, 114.057868),
    ),
    IncomingCase(
        "duplicate push (retry)", PATH, fixture="weibo/text.json", prep=signed(), repeat=3, messages=1, reports=1
    ),
    IncomingCase("bad signature", PATH, fixture="weibo/text.json", prep=signed(bad=True), status=403, messages=0),
    IncomingCase(
        "signed with another secret", PATH, fixture="weibo/text.json", prep=signed("x"), status=403, messages=0
    ),
    IncomingCase("no signature", PATH, fixture="weibo/text.json", status=403, messages=0),
    IncomingCase("missing sender_id", PATH, fixture="weibo/missing_sender.json", prep=signed(), status=400, messages=0),
    IncomingCase("bad created_at", PATH, fixture="weibo/bad_date.json", prep=signed(), status=400, messages=0),
    IncomingCase("not JSON", PATH, body="{oops", prep=signed(), status=400, messages=0),
    IncomingCase("unknown event", PATH, fixture="weibo/unknown_event.json", prep=signed(), messages=0, reports=0),
    IncomingCase("unknown message type", PATH, fixture="weibo/unknown_type.json", prep=signed(), messages=0, reports=0),
    IncomingCase(
        "unfollow: no more news to this fan",
        PATH,
        fixture="weibo/unfollow.json",
        prep=signed(),
        messages=0,
        check=opted_out(True),
    ),
    IncomingCase("oversize body", PATH, body="{" + " " * 70000 + "}", prep=signed(), status=413, messages=0),
    IncomingCase(
        "URL verification", PATH, method="GET", query={"echostr": "hello123"}, prep=signed(), body_contains="hello123"
    ),
    IncomingCase(
        "URL verification, bad signature", PATH, method="GET", query={"echostr": "x"}, prep=signed(bad=True), status=403
    ),
]


@pytest.mark.parametrize("case", INCOMING, ids=str)
async def test_incoming(weibo: Any, case: IncomingCase) -> None:
    await run_incoming(weibo, case)


def passive_text(body: str) -> str:
    return json.loads(unquote(json.loads(body)["data"]))["text"]


def fx(name: str) -> bytes:
    return (FIXTURES / "weibo" / name).read_bytes()


async def push(client: Any, body: bytes, **sign: Any) -> Any:
    p = signed(**sign)(Prepared(PATH, body, {}, {}))
    return await client.post(p.path, data=p.body, params=p.query)


async def test_follow_is_welcomed_and_text_photo_location_make_one_report(weibo: Any, runner: Any) -> None:
    resp = await push(weibo, fx("follow.json"))
    assert resp.status == 200 and passive_text(await resp.text()) == replies.WELCOME
    answers = []
    for name in ("text.json", "image.json", "position.json"):
        resp = await push(weibo, fx(name))
        answers.append(passive_text(await resp.text()))
    await runner.idle()
    [report] = await rows(weibo, Report)
    assert report.case_number in answers[0] and report.location_lat == 22.543099
    assert len(await rows(weibo, Media)) == 1 and report.session_open


async def test_a_signed_query_replayed_with_another_body_is_refused(weibo: Any) -> None:
    """Weibo signs the query, not the JSON body: a captured query with a forged body is a 403 and
    stores nothing; the same push again (Weibo's retry) is answered as a duplicate."""
    body = fx("text.json")
    first = await push(weibo, body, nonce="5550001")
    assert first.status == 200
    forged = body.replace("垃圾桶满了".encode(), "伪造的内容".encode())
    assert (await push(weibo, forged, nonce="5550001")).status == 403
    assert len(await rows(weibo, Message)) == 1
    retry = await push(weibo, body, nonce="5550001")
    assert retry.status == 200 and len(await rows(weibo, Message)) == 1
    assert (await push(weibo, forged, nonce="5550002")).status == 200  # its own signature: accepted
    assert len(await rows(weibo, Message)) == 2


def test_message_id_is_stable_and_content_sensitive() -> None:
    data = json.loads(fx("text.json"))
    assert message_id(data) == message_id(dict(data))
    assert message_id(data) != message_id({**data, "text": "另一条"})
    assert message_id(data).startswith("5100000002:20261127011530:")


# --------------------------------------------------------------------------- outbound and media


def account(fake: FakeWeiboApi, **more: Any) -> Account:
    return WeiboChannel.accounts(given(weibo=weibo_settings(fake, **more)))["default"]


SENDS = [
    ("sent", None, None, None),
    ("48 h window closed", None, "5100000002", SendRejected),
    ("rate limited (10023)", (400, 10023), None, SendRetryable),
    ("Weibo 500", (500, 10001), None, SendRetryable),
    ("other API error", (400, 20003), None, SendRejected),
]


@pytest.mark.parametrize(("label", "failure", "closed", "error"), SENDS, ids=[s[0] for s in SENDS])
async def test_send(fake: FakeWeiboApi, label: str, failure: Any, closed: Any, error: Any) -> None:
    if failure:
        fake.fail(*failure)
    if closed:
        fake.out_of_window.add(closed)
    msg = OutboundMessage(channel="weibo", recipient=SENDER, text="案件 ZW2026 已处理完毕。")
    if error:
        with pytest.raises(error):
            await asyncio.to_thread(WeiboChannel().send, msg, account(fake))
    else:
        result = await asyncio.to_thread(WeiboChannel().send, msg, account(fake))
        assert result.external_id == "3000001"
    [call] = fake.replies
    assert (call["receiver_id"], call["type"], call["data"]) == ("5100000002", "text", {"text": msg.text})


async def test_send_without_token_or_to_a_non_uid(fake: FakeWeiboApi) -> None:
    msg = OutboundMessage(channel="weibo", recipient=SENDER, text="x")
    with pytest.raises(ChannelMisconfigured):
        await asyncio.to_thread(WeiboChannel().send, msg, account(fake, access_token=None))
    with pytest.raises(SendRejected):
        await asyncio.to_thread(WeiboChannel().send, replace(msg, recipient="weibo:abc"), account(fake))
    with pytest.raises(SendRejected):  # a wrong token is refused by the API
        await asyncio.to_thread(WeiboChannel().send, msg, account(fake, access_token="wrong"))


async def test_fetch_media(fake: FakeWeiboApi) -> None:
    ref = MediaRef(kind=MessageKind.IMAGE, provider_id="900000102")
    assert await asyncio.to_thread(WeiboChannel().fetch_media, ref, account(fake)) == (JPEG, "image/jpeg")
    for bad in ("900009999", "../etc"):
        with pytest.raises(SendRejected):
            await asyncio.to_thread(WeiboChannel().fetch_media, replace(ref, provider_id=bad), account(fake))


async def test_fetch_media_checks_every_redirect_against_the_allow_list(fake: FakeWeiboApi) -> None:
    ref = MediaRef(kind=MessageKind.IMAGE, provider_id="900000102")
    fake.msget_redirect = "http://169.254.169.254/latest/meta-data/"  # the configured URL is fine, the hop is not
    with pytest.raises(SendRejected, match="host not allowed"):
        await asyncio.to_thread(WeiboChannel().fetch_media, ref, account(fake))
    base = fake.base  # type: ignore[attr-defined]
    fake.msget_redirect = base.removesuffix("2/") + "large/p1.jpg"  # the same origin (a proxy, the fake) is allowed
    fake.pictures["p1.jpg"] = (JPEG, "image/jpeg")
    assert await asyncio.to_thread(WeiboChannel().fetch_media, ref, account(fake)) == (JPEG, "image/jpeg")
    acct = account(fake)
    assert weibo_media_allowed("https://wx1.sinaimg.cn/large/a.jpg", acct)
    assert not weibo_media_allowed("http://wx1.sinaimg.cn/large/a.jpg", acct)  # https only off the API's origin
    assert not weibo_media_allowed("https://sinaimg.cn.evil.example/a.jpg", acct)


async def test_status_news_reaches_the_fan_through_the_reply_api(weibo: Any, runner: Any, fake: FakeWeiboApi) -> None:
    await push(weibo, fx("text.json"))
    await runner.idle()
    [report] = await rows(weibo, Report)
    ctx = weibo.app[keys.TASK_CONTEXT]
    async with ctx.pipeline.unit() as s:
        n = Notification(
            report_id=report.id, channel="weibo", account="default", recipient=SENDER, kind="status", text="进展"
        )
        s.add(n)
    await notify(ctx, n.id)
    [n] = await rows(weibo, Notification)
    assert (n.state, n.external_id) == ("sent", "3000001")
    assert fake.replies[-1]["receiver_id"] == "5100000002"


# --------------------------------------------------------------------------- conformance (../shared)

WEIBO_PUSHES = {
    "weibo_fans_text.json": ("text", "私信或留言内容"),
    "weibo_fans_position.json": ("location", None),
    "weibo_fans_image.json": ("image", None),
    "weibo_fans_voice.json": ("voice", None),
    "weibo_fans_event_follow.json": (None, None),
    "weibo_fans_event_subscribe.json": (None, None),
}


async def test_conformance_verify_get(make_weibo: Callable[..., Any], conformance_dir: Path) -> None:
    vector = json.loads((conformance_dir / "weibo_fans_verify_get.query.json").read_text())
    client = await make_weibo(secret=vector["app_secret"])
    resp = await client.get(PATH, params=vector["query"])
    assert resp.status == 200 and await resp.text() == vector["expected_response_body"]
    bad = {**vector["query"], "nonce": "213674822"}
    assert (await client.get(PATH, params=bad)).status == 403


@pytest.mark.parametrize("name", sorted(WEIBO_PUSHES))
async def test_conformance_pushes(
    make_weibo: Callable[..., Any], conformance_dir: Path, runner: Any, fake: FakeWeiboApi, name: str
) -> None:
    vector = json.loads((conformance_dir / "weibo_fans_verify_get.query.json").read_text())
    q = vector["query"]
    fake.media["821804469"] = (JPEG if "image" in name else AMR, "image/jpeg" if "image" in name else "audio/amr")
    client = await make_weibo(secret=vector["app_secret"])
    body = (conformance_dir / name).read_bytes()
    sign = {"secret": vector["app_secret"], "ts": q["timestamp"], "nonce": q["nonce"]}
    resp = await push(client, body, **sign)
    assert resp.status == 200
    assert (await push(client, body, **sign)).status == 200  # retried push
    assert (await push(client, body, secret="wrong")).status == 403
    await runner.idle()
    kind, text = WEIBO_PUSHES[name]
    messages = await rows(client, Message)
    if kind is None:  # follow/subscribe: a welcome, no report, the fan is a contact
        assert messages == [] and passive_text(await resp.text()) == replies.WELCOME
        assert [c.address for c in await rows(client, Contact)] == ["weibo:2489518277"]
        return
    [msg] = messages
    assert (msg.kind, msg.sender) == (kind, "weibo:2489518277")
    [report] = await rows(client, Report)
    if text:
        assert report.text == text
    if kind == "location":
        assert (report.location_lat, report.location_lng) == (39.982525, 116.308586)
    if kind in ("image", "voice"):
        [media] = await rows(client, Media)
        assert (media.provider_id, media.state) == ("821804469", "stored")


async def test_stale_timestamps_are_refused(
    make_settings: Callable[..., Any], fake: FakeWeiboApi, aiohttp_client: Any, runner: Any
) -> None:
    settings = make_settings(channels={"weibo": weibo_settings(fake, timestamp_window_s=300)})
    client = await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))
    client.app[keys.CHANNELS]["weibo"].clock = lambda: 1764206130.0
    body = (FIXTURES / "weibo" / "text.json").read_bytes()
    for ts, status in (("1764206130000", 200), ("1764206100", 200), ("1764205000", 403), ("1764207000000", 403)):
        prepared = signed(ts=ts)(Prepared("/channels/weibo", body, {}, {}))
        resp = await client.post("/channels/weibo", data=body, params=prepared.query)
        assert resp.status == status, (ts, await resp.text())
