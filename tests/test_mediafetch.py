"""The ``fetch_media`` task against a small local channel that plays the provider's media API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from sqlalchemy import select

from channels.base import Account, BaseChannel
from channels.errors import SendRejected, SendRetryable
from gateway import keys
from gateway.db import Media, Report
from gateway.models import MediaRef
from gateway.tasks.mediafetch import MAX_FETCH_ATTEMPTS, SupportsMediaFetch, fetch_media
from gateway.tasks.runners import Retry

PNG = b"\x89PNG\r\n\x1a\n" + b"\x07" * 64


class MediaChannel(BaseChannel):
    """Answers from a script: bytes, or an exception to raise."""

    name: ClassVar[str] = "fakechat"

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.asked: list[MediaRef] = []

    def fetch_media(self, ref: MediaRef, acct: Account) -> tuple[bytes, str]:
        self.asked.append(ref)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


@pytest.fixture
async def ctx(client: Any) -> Any:
    task_ctx = client.app[keys.TASK_CONTEXT]
    task_ctx.services["accounts"][("fakechat", "default")] = Account("default")
    task_ctx.services["accounts"][("nofetch", "default")] = Account("default")
    task_ctx.services["channels"]["nofetch"] = BaseChannel()
    return task_ctx


def with_channel(ctx: Any, script: list[Any]) -> MediaChannel:
    channel = MediaChannel(script)
    ctx.services["channels"]["fakechat"] = channel
    return channel


async def media_row(ctx: Any, *, channel: str = "fakechat", kind: str = "image", **fields: Any) -> int:
    now = datetime.now(UTC)
    async with ctx.pipeline.unit() as s:
        report = Report(
            case_number=f"ZW{now:%Y%m%d}{id(fields) % 10**6:06d}",
            channel=channel,
            sender="x:1",
            text="",
            status="received",
            created_at=now,
            updated_at=now,
        )
        s.add(report)
        await s.flush()
        row = Media(report_id=report.id, kind=kind, provider_id="MID-1", state="pending", attempts=0, **fields)
        s.add(row)
        await s.flush()
        return row.id


async def get(ctx: Any, media_id: int) -> Media:
    async with ctx.pipeline.db.session() as s:
        return await s.scalar(select(Media).where(Media.id == media_id))


def test_wechat_channel_has_the_capability() -> None:
    from channels.wechat import WeChatChannel

    assert isinstance(WeChatChannel(), SupportsMediaFetch)
    assert not isinstance(BaseChannel(), SupportsMediaFetch)


async def test_stored_by_hash_with_sniffed_type(ctx: Any) -> None:
    channel = with_channel(ctx, [(PNG, "image/jpeg")])  # the declared type is wrong: the bytes win
    media_id = await media_row(ctx)
    await fetch_media(ctx, media_id)
    row = await get(ctx, media_id)
    assert (row.state, row.attempts, row.size, row.content_type) == ("stored", 1, len(PNG), "image/png")
    assert await ctx.services["media"].get(row.sha256) == (PNG, "image/png")
    assert channel.asked[0].provider_id == "MID-1"
    await fetch_media(ctx, media_id)  # idempotent: a second run asks nothing
    assert len(channel.asked) == 1


async def test_transient_failure_asks_for_a_retry_then_succeeds(ctx: Any) -> None:
    with_channel(ctx, [SendRetryable("HTTP 502"), (b"voice", "audio/amr")])
    media_id = await media_row(ctx, kind="voice")
    with pytest.raises(Retry):
        await fetch_media(ctx, media_id)
    row = await get(ctx, media_id)
    assert (row.state, row.attempts, row.error) == ("pending", 1, "HTTP 502")
    await fetch_media(ctx, media_id)
    row = await get(ctx, media_id)
    assert (row.state, row.attempts, row.error, row.content_type) == ("stored", 2, None, "audio/amr")


async def test_gives_up_after_max_attempts(ctx: Any) -> None:
    with_channel(ctx, [SendRetryable("busy")] * MAX_FETCH_ATTEMPTS)
    media_id = await media_row(ctx)
    for _ in range(MAX_FETCH_ATTEMPTS - 1):
        with pytest.raises(Retry):
            await fetch_media(ctx, media_id)
    await fetch_media(ctx, media_id)  # the last attempt records the failure instead of retrying
    row = await get(ctx, media_id)
    assert (row.state, row.attempts, row.error) == ("failed", MAX_FETCH_ATTEMPTS, "busy")


async def test_permanent_failure_is_not_retried(ctx: Any) -> None:
    with_channel(ctx, [SendRejected("wechat errcode 40007: invalid media_id")])
    media_id = await media_row(ctx)
    await fetch_media(ctx, media_id)
    row = await get(ctx, media_id)
    assert row.state == "failed" and "40007" in row.error


async def test_channel_without_the_capability_fails_the_row(ctx: Any) -> None:
    media_id = await media_row(ctx, channel="nofetch")
    await fetch_media(ctx, media_id)
    assert (await get(ctx, media_id)).state == "failed"


async def test_media_over_the_cap_is_refused(ctx: Any, client: Any) -> None:
    cap = client.app[keys.SETTINGS].media_fetch_max_bytes
    with_channel(ctx, [(b"\x00" * (cap + 1), "video/mp4")])
    media_id = await media_row(ctx, kind="video")
    await fetch_media(ctx, media_id)
    row = await get(ctx, media_id)
    assert row.state == "failed" and "larger" in row.error and row.sha256 is None


async def test_registered_as_a_task_on_the_media_queue(ctx: Any, client: Any) -> None:
    from gateway.tasks.table import QUEUES, TASKS

    assert "fetch_media" in TASKS and QUEUES["fetch_media"] == "media"
    with_channel(ctx, [(PNG, "image/png")])
    media_id = await media_row(ctx)
    runner = client.app[keys.RUNNER]
    await runner.enqueue("fetch_media", media_id)
    await runner.idle()
    assert (await get(ctx, media_id)).state == "stored" and not runner.failures
