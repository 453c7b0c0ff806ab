"""The Weibo @-mention poller through the real app, against a local fake of ``statuses/mentions.json``.

Given/when/then: mentions on the fake, one or more runs of the ``poll_weibo_mentions`` task (the
same function workers run), then reports, media, cursor rows and the calls the fake saw.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete, select

from channels.base import Account
from channels.errors import BadPayload, SendRejected
from channels.weibo import WeiboChannel, WeiboSettings
from channels.weibo_mentions import fetch_picture, mention_message
from gateway import keys
from gateway.core.classify import PlaceholderClassifier
from gateway.db import ChannelCursor, Media, Message, Report
from gateway.http.app import create_app
from gateway.models import MediaRef, MessageKind
from gateway.runtime import load_accounts
from gateway.settings import Settings
from gateway.tasks import mentions
from gateway.tasks.runners import InProcessRunner, TaskContext
from gateway.tasks.table import QUEUES, TASKS
from tests.fakes.weibo_api import ACCESS_TOKEN, FakeWeiboApi
from tests.harness import FIXTURES, given

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x03" * 200
UID = 5100000009


@pytest.fixture
async def fake(aiohttp_server: Any) -> FakeWeiboApi:
    api = FakeWeiboApi()
    server = await aiohttp_server(api.app())
    api.base = str(server.make_url("/2/"))  # type: ignore[attr-defined]
    api.origin = str(server.make_url("/")).rstrip("/")  # type: ignore[attr-defined]
    return api


def weibo_settings(fake: FakeWeiboApi, **more: Any) -> dict[str, Any]:
    """The channel's own settings (``WeiboSettings``) for a test against the fake API."""
    base = fake.base  # type: ignore[attr-defined]
    return {
        "app_key": "1234567890",
        "app_secret": "weibo-app-secret-0123456789",
        "access_token": ACCESS_TOKEN,
        "api_base": base,
        "reply_url": f"{base}messages/reply.json",
        "media_url": f"{base}mss/msget",
        **more,
    }


def polled(client: Any, settings: Settings) -> TaskContext:
    """The app's task context with the accounts of ``settings`` (the poller's interval and bounds)."""
    ctx: TaskContext = client.app[keys.TASK_CONTEXT]
    return TaskContext(ctx.pipeline, {**ctx.services, "accounts": load_accounts(client.app[keys.CHANNELS], settings)})


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    """The test's SQLite copy; PostgreSQL too where a test is parametrized with ``ON_BOTH``."""
    return request.getfixturevalue("pg_url" if getattr(request, "param", "sqlite") == "postgres" else "sqlite_url")


ON_BOTH = pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def make_app(aiohttp_client: Any, make_settings: Callable[..., Settings], fake: FakeWeiboApi, database: str):
    """A gateway on the test's database (a second call is a restart on the same database)."""

    async def make(runner: InProcessRunner | None = None, **more: Any) -> Any:
        """``more``: the channel's own settings over ``weibo_settings``."""
        settings = make_settings(database_url=database, channels={"weibo": weibo_settings(fake, **more)})
        app = create_app(settings, classifier=PlaceholderClassifier(), runner=runner or InProcessRunner())
        return await aiohttp_client(app)

    return make


async def poll(client: Any, make_settings: Callable[..., Settings], fake: FakeWeiboApi, **bounds: Any) -> None:
    """One run of the task as a worker runs it, with the poller on (interval small enough that
    the claim lets every sequential run through)."""
    settings = make_settings(channels={"weibo": weibo_settings(fake, poll_interval_s=0.001, **bounds)})
    await TASKS["poll_weibo_mentions"](polled(client, settings))
    await client.app[keys.RUNNER].idle()


async def rows(client: Any, model: Any) -> list[Any]:
    async with client.app[keys.DB].session() as s:
        return list((await s.scalars(select(model))).all())


async def cursor(client: Any) -> mentions.Walk:
    return await mentions.load_walk(client.app[keys.PIPELINE])


def add(fake: FakeWeiboApi, *ids: int) -> None:
    for sid in ids:
        fake.mention(sid, f"@城市管理 第{sid}号路灯不亮了", uid=UID + sid % 3)


# --------------------------------------------------------------------------- runs and the cursor


async def test_first_run_stores_every_mention_as_a_report_and_the_cursor(
    make_app: Any, make_settings: Any, fake: FakeWeiboApi
) -> None:
    origin = fake.origin  # type: ignore[attr-defined]
    fake.pictures["p1.jpg"] = (JPEG, "image/jpeg")
    fake.mention(101, "@城市管理 垃圾桶满了", uid=UID)
    fake.mention(102, "@城市管理 井盖缺了", uid=UID, geo={"type": "Point", "coordinates": [22.5431, 114.0579]})
    fake.mention(
        103, "@城市管理 看图", uid=UID + 1, pic_ids=["p1"], pic_urls=[{"thumbnail_pic": f"{origin}/thumbnail/p1.jpg"}]
    )
    client = await make_app()

    await poll(client, make_settings, fake)

    reports = sorted(await rows(client, Report), key=lambda r: r.id)
    assert [(r.channel, r.sender, r.session_open) for r in reports] == [
        ("weibo", f"weibo:{UID}", False),
        ("weibo", f"weibo:{UID}", False),  # same author, separate posts: separate reports
        ("weibo", f"weibo:{UID + 1}", False),
    ]
    assert [r.text for r in reports] == ["@城市管理 垃圾桶满了", "@城市管理 井盖缺了", "@城市管理 看图"]
    assert (reports[1].location_lat, reports[1].location_lng, reports[1].location_source) == (22.5431, 114.0579, "gps")
    assert sorted(m.channel_message_id for m in await rows(client, Message)) == [
        "mention:101",
        "mention:102",
        "mention:103",
    ]
    [media] = await rows(client, Media)  # the picture is downloaded (large size) by fetch_media
    assert (media.url, media.provider_id, media.state, media.size) == (
        f"{origin}/large/p1.jpg",
        "p1",
        "stored",
        len(JPEG),
    )
    assert await cursor(client) == mentions.Walk(since_id=103)
    assert [(c["since_id"], c.get("max_id"), c["access_token"]) for c in fake.mention_calls] == [
        ("0", None, ACCESS_TOKEN),
        ("0", "100", ACCESS_TOKEN),  # walks down below the oldest it saw until a page is empty
    ]


async def test_second_run_without_new_mentions_stores_nothing(
    make_app: Any, make_settings: Any, fake: FakeWeiboApi
) -> None:
    add(fake, 201, 202)
    client = await make_app()
    await poll(client, make_settings, fake)
    calls = len(fake.mention_calls)

    await poll(client, make_settings, fake)

    assert len(await rows(client, Report)) == 2
    assert [c["since_id"] for c in fake.mention_calls[calls:]] == ["202"]  # one call, from the cursor
    assert await cursor(client) == mentions.Walk(since_id=202)


@ON_BOTH
async def test_a_restart_continues_from_the_stored_cursor(
    make_app: Any, make_settings: Any, fake: FakeWeiboApi
) -> None:
    add(fake, 301, 302)
    first = await make_app()
    await poll(first, make_settings, fake)
    await first.close()
    add(fake, 303, 304)
    calls = len(fake.mention_calls)

    again = await make_app()  # a fresh app (new process) on the same database
    await poll(again, make_settings, fake)

    assert sorted(m.channel_message_id for m in await rows(again, Message)) == [f"mention:{i}" for i in range(301, 305)]
    assert fake.mention_calls[calls]["since_id"] == "302"
    assert await cursor(again) == mentions.Walk(since_id=304)


async def test_repolling_from_scratch_makes_no_second_report(
    make_app: Any, make_settings: Any, fake: FakeWeiboApi
) -> None:
    add(fake, 401, 402)
    client = await make_app()
    await poll(client, make_settings, fake)
    async with client.app[keys.PIPELINE].unit() as s:
        await s.execute(delete(ChannelCursor))  # the cursor lost: every mention is read again

    await poll(client, make_settings, fake)

    assert len(await rows(client, Report)) == 2  # de-duplicated on mention:<id>
    assert await cursor(client) == mentions.Walk(since_id=402)


FAILURES = [
    ("Weibo 500", lambda f: f.mention_failures.append((500, {"error": "busy", "error_code": 10001}))),
    ("rate limited", lambda f: f.mention_failures.append((403, {"error": "limit", "error_code": 10023}))),
    ("token expired", lambda f: f.mention_failures.append((401, {"error": "expired_token", "error_code": 21327}))),
    ("unexpected shape", lambda f: f.mention_failures.append((200, {"unexpected": "shape"}))),
    ("timeout", lambda f: setattr(f, "mention_delay_s", 1.0)),
]


@pytest.mark.parametrize(("label", "breaks"), FAILURES, ids=[f[0] for f in FAILURES])
async def test_an_api_error_or_timeout_leaves_the_cursor_for_the_next_run(
    make_app: Any, make_settings: Any, fake: FakeWeiboApi, label: str, breaks: Callable[[FakeWeiboApi], None]
) -> None:
    add(fake, 501, 502)
    runner = InProcessRunner()
    client = await make_app(runner=runner)
    await poll(client, make_settings, fake)
    add(fake, 503)
    breaks(fake)

    await poll(client, make_settings, fake, poll_timeout_s=0.2)

    assert len(await rows(client, Report)) == 2
    assert await cursor(client) == mentions.Walk(since_id=502)
    assert runner.failures == []  # logged, not raised: the task runner does not retry it
    fake.mention_delay_s = 0.0

    await poll(client, make_settings, fake)  # the next run picks up where the cursor is

    assert len(await rows(client, Report)) == 3
    assert await cursor(client) == mentions.Walk(since_id=503)


@ON_BOTH
async def test_the_bound_on_pages_is_respected_and_the_walk_resumes(
    make_app: Any, make_settings: Any, fake: FakeWeiboApi
) -> None:
    add(fake, 601, 602, 603, 604, 605)
    client = await make_app()
    bounds = {"poll_max_pages": 2, "poll_page_size": 2}

    await poll(client, make_settings, fake, **bounds)

    assert [(c["count"], c.get("max_id")) for c in fake.mention_calls] == [("2", None), ("2", "603")]
    assert len(await rows(client, Report)) == 4
    assert await cursor(client) == mentions.Walk(since_id=0, head=605, max_id=601)  # mid-walk

    await poll(client, make_settings, fake, **bounds)

    assert [c.get("max_id") for c in fake.mention_calls[2:]] == ["601", "600"]
    assert len(await rows(client, Report)) == 5
    assert await cursor(client) == mentions.Walk(since_id=605)


async def test_a_malformed_mention_is_skipped_and_the_others_taken_in(
    make_app: Any, make_settings: Any, fake: FakeWeiboApi
) -> None:
    add(fake, 701)
    fake.mention(702, "no author", user=None)
    fake.mention(703, "bad date", created_at="yesterday")
    fake.mention(704, "deleted", deleted="1")
    client = await make_app()

    await poll(client, make_settings, fake)

    assert [m.channel_message_id for m in await rows(client, Message)] == ["mention:701"]
    assert await cursor(client) == mentions.Walk(since_id=704)


# --------------------------------------------------------------------------- off, on, and one at a time


async def test_off_by_default_means_no_call(make_app: Any, fake: FakeWeiboApi) -> None:
    assert WeiboSettings.model_fields["poll_interval_s"].default == 0
    add(fake, 801)
    client = await make_app()  # the Weibo account is configured; the poller is not turned on
    ctx: TaskContext = client.app[keys.TASK_CONTEXT]

    await TASKS["poll_weibo_mentions"](ctx)  # even a stray task does nothing
    await asyncio.sleep(0.2)

    assert fake.mention_calls == [] and await rows(client, Report) == [] and await rows(client, ChannelCursor) == []


async def test_the_serving_process_enqueues_polls_every_interval(make_app: Any, fake: FakeWeiboApi) -> None:
    assert QUEUES["poll_weibo_mentions"] == "default"
    add(fake, 901)
    client = await make_app(poll_interval_s=0.05)
    for _ in range(200):
        if len(fake.mention_calls) >= 4 and await rows(client, Report):
            break
        await asyncio.sleep(0.02)
    assert [m.channel_message_id for m in await rows(client, Message)] == ["mention:901"]
    add(fake, 902)
    for _ in range(200):
        if len(await rows(client, Report)) == 2:
            break
        await asyncio.sleep(0.02)
    assert len(await rows(client, Report)) == 2

    await client.close()
    calls = len(fake.mention_calls)
    await asyncio.sleep(0.2)
    assert len(fake.mention_calls) == calls  # the loop stops with the app


@ON_BOTH
async def test_polls_started_together_run_once(make_app: Any, make_settings: Any, fake: FakeWeiboApi) -> None:
    add(fake, 1001)
    client = await make_app()
    settings = make_settings(channels={"weibo": weibo_settings(fake, poll_interval_s=60)})
    ctx = polled(client, settings)

    await asyncio.gather(*(TASKS["poll_weibo_mentions"](ctx) for _ in range(3)))  # e.g. three serve processes
    await TASKS["poll_weibo_mentions"](ctx)  # and one more within the interval

    assert len(fake.mention_calls) == 2  # one run: a page and the empty page after it
    assert len(await rows(client, Report)) == 1


# --------------------------------------------------------------------------- the mention's shape


def test_a_weibo_mention_becomes_one_complete_report_message() -> None:
    status = json.loads((FIXTURES / "weibo" / "mention.json").read_text(encoding="utf-8"))

    msg = mention_message(status, "default")

    assert msg is not None
    assert (msg.channel, msg.channel_message_id, msg.sender, msg.account) == (
        "weibo",
        "mention:5100000000000123",
        "weibo:5100000002",
        "default",
    )
    assert (msg.complete, msg.kind, msg.received_at.isoformat()) == (
        True,
        MessageKind.IMAGE,
        "2026-11-27T01:15:30+00:00",
    )
    assert msg.text.startswith("@深圳城市管理 福田区彩田路口的井盖")
    assert msg.location is not None and (msg.location.lat, msg.location.lng) == (22.543099, 114.057868)
    [pic] = msg.media
    assert (pic.provider_id, pic.url) == (
        "006abcDEly1hxyz0000001j30u0140abc",
        "http://wx1.sinaimg.cn/large/006abcDEly1hxyz0000001j30u0140abc.jpg",
    )
    assert "followers_count" not in msg.raw["user"]  # the author's profile is not kept


@pytest.mark.parametrize(
    "change",
    [{"user": None}, {"id": "abc", "idstr": None}, {"created_at": "2026-11-27"}],
    ids=["no user", "no id", "bad date"],
)
def test_a_malformed_mention_is_bad_payload(change: dict[str, Any]) -> None:
    status = json.loads((FIXTURES / "weibo" / "mention.json").read_text(encoding="utf-8"))
    with pytest.raises(BadPayload):
        mention_message({**status, **change}, "default")


def test_a_mention_without_geo_or_pictures_is_text() -> None:
    status = json.loads((FIXTURES / "weibo" / "mention.json").read_text(encoding="utf-8"))
    bare = {k: v for k, v in status.items() if "pic" not in k} | {"geo": None}
    msg = mention_message(bare, "default")
    assert msg is not None and (msg.kind, msg.media, msg.location) == (MessageKind.TEXT, (), None)


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/large/p1.jpg",
        "http://127.0.0.1:1/large/p1.jpg",
        "file:///etc/passwd",
        "http://sinaimg.cn.evil/x",
    ],
)
async def test_pictures_are_fetched_only_from_weibo_hosts(fake: FakeWeiboApi, url: str) -> None:
    acct = WeiboChannel.accounts(given(weibo=weibo_settings(fake)))["default"]
    with pytest.raises(SendRejected):
        await asyncio.to_thread(fetch_picture, url, acct)


async def test_the_weibo_channel_fetches_a_mention_picture_by_its_url(fake: FakeWeiboApi) -> None:
    origin = fake.origin  # type: ignore[attr-defined]
    fake.pictures["p1.jpg"] = (JPEG, "image/jpeg")
    acct: Account = WeiboChannel.accounts(given(weibo=weibo_settings(fake)))["default"]
    ref = MediaRef(kind=MessageKind.IMAGE, provider_id="p1", url=f"{origin}/large/p1.jpg")
    assert await asyncio.to_thread(WeiboChannel().fetch_media, ref, acct) == (JPEG, "image/jpeg")
