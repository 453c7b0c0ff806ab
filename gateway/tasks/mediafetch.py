"""Background media download (the ``fetch_media`` task), for any channel that can fetch media.

The pipeline stores a ``Media`` row (state ``pending``) for every photo, voice note or video a
message carries and enqueues ``fetch_media(media_id)`` after commit; the resident's reply never
waits for a download. This task asks the report's channel for the bytes through the
``SupportsMediaFetch`` capability (``channels/base.py``) (run in a thread: provider SDKs such as wechatpy block), puts
them in the media store by sha256 and marks the row ``stored``.

Errors: a channel raises ``SendRetryable`` for what may pass (network, timeout, 5xx, throttled,
token race) and any other ``ChannelError`` for what will not (media expired, unknown id,
misconfigured account). Transient failures are retried with backoff (``Retry``) up to
``MAX_FETCH_ATTEMPTS`` counted on the row, so the count survives restarts and workers; then the
row is ``failed`` with its last error, and the report keeps its text and location.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from channels.base import SupportsMediaFetch
from channels.errors import ChannelError, SendRetryable
from gateway.db import Media, Report
from gateway.media import sniff_image_type
from gateway.models import MediaRef, MessageKind
from gateway.tasks.runners import Retry, TaskContext

if TYPE_CHECKING:
    from gateway.core.pipeline import Pipeline

log = logging.getLogger(__name__)
MAX_FETCH_ATTEMPTS = 6
DEFAULT_MAX_BYTES = 20 << 20


@dataclass(frozen=True, slots=True)
class _Claim:
    ref: MediaRef
    channel: str
    account: str
    attempts: int


async def fetch_media(ctx: TaskContext, media_id: int) -> None:
    pipeline = ctx.pipeline
    claim = await _claim(pipeline, media_id)
    if claim is None:
        return
    extra = {"media": media_id, "channel": claim.channel, "attempt": claim.attempts}
    channel = ctx.services["channels"].get(claim.channel)
    acct = ctx.services["accounts"].get((claim.channel, claim.account))
    if not isinstance(channel, SupportsMediaFetch) or acct is None:
        log.warning("media not fetched: channel cannot fetch media", extra=extra)
        await _finish(pipeline, media_id, "failed", error=f"channel {claim.channel}/{claim.account} cannot fetch media")
        return
    try:
        data, content_type = await asyncio.to_thread(channel.fetch_media, claim.ref, acct)
    except SendRetryable as exc:
        if claim.attempts >= MAX_FETCH_ATTEMPTS:
            log.warning("media download gave up", extra={**extra, "error": str(exc)})
            await _finish(pipeline, media_id, "failed", error=str(exc))
            return
        log.info("media download will be retried", extra={**extra, "error": str(exc)})
        await _finish(pipeline, media_id, "pending", error=str(exc))
        raise Retry(str(exc)) from exc
    except ChannelError as exc:
        log.warning("media download failed", extra={**extra, "error": str(exc)})
        await _finish(pipeline, media_id, "failed", error=str(exc))
        return
    await _store(ctx, media_id, claim, data, content_type)


async def _store(ctx: TaskContext, media_id: int, claim: _Claim, data: bytes, content_type: str) -> None:
    settings = ctx.services.get("settings")
    cap = getattr(settings, "media_fetch_max_bytes", DEFAULT_MAX_BYTES)
    if len(data) > cap:
        await _finish(ctx.pipeline, media_id, "failed", error=f"media larger than {cap} bytes")
        return
    if claim.ref.kind == MessageKind.IMAGE:
        content_type = sniff_image_type(data) or content_type  # the declared type is not trusted
    stored = await ctx.services["media"].put(data, content_type or "application/octet-stream")
    await _finish(
        ctx.pipeline, media_id, "stored", sha256=stored.sha256, size=stored.size, content_type=stored.content_type
    )
    log.info("media stored", extra={"media": media_id, "sha256": stored.sha256, "size": stored.size})


async def _claim(pipeline: Pipeline, media_id: int) -> _Claim | None:
    """Count an attempt on a pending row; None when there is nothing (more) to do."""
    async with pipeline.unit() as s:
        row = await s.get(Media, media_id, with_for_update=True)
        if row is None or row.state != "pending" or row.sha256:
            return None  # done already, or failed for good: the task is idempotent
        if row.attempts >= MAX_FETCH_ATTEMPTS:
            row.state = "failed"
            row.error = row.error or "gave up after retries"
            return None
        report = await s.get(Report, row.report_id)
        if report is None:
            return None
        row.attempts += 1
        ref = MediaRef(
            kind=MessageKind(row.kind),
            provider_id=row.provider_id,
            url=row.url,
            content_type=row.content_type,
        )
        return _Claim(ref, report.channel, report.account or "default", row.attempts)


async def _finish(
    pipeline: Pipeline,
    media_id: int,
    state: str,
    *,
    error: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    content_type: str | None = None,
) -> None:
    async with pipeline.unit() as s:
        row = await s.get(Media, media_id, with_for_update=True)
        if row is None or row.state == "stored":
            return
        row.state = state
        row.error = error[:2000] if error else None
        if sha256:
            row.sha256, row.size, row.content_type = sha256, size, content_type


__all__ = ["MAX_FETCH_ATTEMPTS", "SupportsMediaFetch", "fetch_media"]
