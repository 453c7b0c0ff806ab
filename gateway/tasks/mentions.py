"""The Weibo @-mention poller: public posts that @-mention the city's account become reports.

Optional and off by default: ``GATEWAY_WEIBO_POLL_INTERVAL_S`` > 0 turns it on; it needs the
Weibo account (``GATEWAY_WEIBO_APP_SECRET``, ``GATEWAY_WEIBO_ACCESS_TOKEN``). These are the
channel's own settings (``WeiboSettings``): the account carries the interval and the bounds of a
run (``poll_interval_s``, ``poll_max_pages``, ``poll_page_size``, ``poll_timeout_s``), as the
``SupportsPolling`` capability (``channels/base.py``) says. The API and the mention's shape are
in ``channels/weibo_mentions.py``.

Running it. Celery beat is not part of the deployment, so the serving process schedules: each
``gateway serve`` (embedded or production) runs ``schedule``, a loop that enqueues the task
``poll_weibo_mentions`` (queue ``default``) every interval through its task runner. In embedded
mode the in-process runner runs the task; in production a ``gateway worker`` does. Several serve
processes each enqueue; a claim row in ``channel_cursors`` (its ``updated_at`` is the start of
the last run) lets one run through per 0.8 × interval and the others return at once.

Bounded. One run fetches at most ``GATEWAY_WEIBO_POLL_MAX_PAGES`` pages of
``GATEWAY_WEIBO_POLL_PAGE_SIZE`` mentions, each call limited by ``GATEWAY_WEIBO_POLL_TIMEOUT_S``
and made in a worker thread (``requests`` blocks). An error is logged and ends the run; the next
run starts again from the stored cursor. Nothing is raised to the runner, whose retries would
only poll sooner than the interval.

Resumable. Weibo lists mentions newest first, so the poller walks down from the newest with
``max_id`` and remembers, per (channel, account), in ``channel_cursors``:

- ``mentions.since_id``: every mention with an id at or below it has been taken in;
- ``mentions.head`` / ``mentions.max_id``: a walk in progress (the newest id it saw, and where it
  goes on). An empty page means the walk reached ``since_id``, which then becomes ``head``.

A page's mentions go through ``Pipeline.intake`` (whole reports, de-duplicated on
``mention:<status id>``) before the cursor moves, so a crash in between only re-reads a page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from channels.base import Account, SupportsPolling
from channels.errors import BadPayload, ChannelError
from gateway.db import ChannelCursor

if TYPE_CHECKING:
    from gateway.core.pipeline import Pipeline
    from gateway.core.units import TaskRunner
    from gateway.tasks.runners import TaskContext

log = logging.getLogger(__name__)

TASK = "poll_weibo_mentions"
CHANNEL, ACCOUNT = "weibo", "default"
SINCE, HEAD, MAX_ID, CLAIM = "mentions.since_id", "mentions.head", "mentions.max_id", "mentions.claim"
CLAIM_SPACING = 0.8  # of the interval: what lets one of several serve processes' polls through
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Walk:
    """The cursor: everything up to ``since_id`` is in; a walk in progress has ``max_id`` set."""

    since_id: int = 0
    head: int = 0
    max_id: int | None = None

    def after(self, ids: list[int]) -> Walk:
        if not ids:  # the walk reached since_id: all up to head is in
            return Walk(since_id=max(self.since_id, self.head))
        below = min(ids) - 1 if self.max_id is None else min(min(ids) - 1, self.max_id)
        return Walk(self.since_id, max(self.head, *ids), below)


@dataclass(frozen=True, slots=True)
class Source:
    """A polled channel's account, with the timeout of one call."""

    channel: SupportsPolling
    acct: Account
    timeout_s: float

    def page(self, *, since_id: int, max_id: int | None, count: int) -> list[dict[str, Any]]:
        return self.channel.poll_page(
            self.acct, since_id=since_id, max_id=max_id, count=count, timeout_s=self.timeout_s
        )


def schedule(
    runner: TaskRunner, accounts: Mapping[tuple[str, str], Account], stop: asyncio.Event
) -> asyncio.Task[None] | None:
    """Start the loop that enqueues a poll every interval, or nothing when the poller is off."""
    interval = _interval(accounts.get((CHANNEL, ACCOUNT)))
    if interval <= 0:
        return None
    log.info("Weibo mentions poller on", extra={"interval_s": interval})
    return asyncio.create_task(_enqueue_forever(runner, interval, stop), name="weibo-mentions")


async def _enqueue_forever(runner: TaskRunner, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await runner.enqueue(TASK)
        except Exception:
            log.exception("could not enqueue the Weibo mentions poll")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def poll_weibo_mentions(ctx: TaskContext) -> None:
    """The task: one bounded run, unless the poller is off or another process polled just now."""
    acct = ctx.services["accounts"].get((CHANNEL, ACCOUNT))
    interval = _interval(acct)
    if acct is None or interval <= 0:
        return  # turned off since this was enqueued
    channel = ctx.services["channels"].get(CHANNEL)
    if not acct.get("access_token") or not acct.get("api_base"):
        log.warning("Weibo mentions poller is on but the Weibo account or its access token is missing")
        return
    if not isinstance(channel, SupportsPolling):
        log.warning("Weibo mentions poller is on but the weibo channel cannot be polled")
        return
    api = Source(channel, acct, float(acct.get("poll_timeout_s", 10.0)))
    try:
        if not await claim(ctx.pipeline, interval * CLAIM_SPACING):
            log.info("Weibo mentions polled recently by another process; skipped")
            return
        await poll_once(
            ctx.pipeline,
            api,
            max_pages=int(acct.get("poll_max_pages", 5)),
            page_size=int(acct.get("poll_page_size", 50)),
        )
    except Exception:
        log.exception("Weibo mentions poll failed; the next run retries from the cursor")


def _interval(acct: Account | None) -> float:
    """The account's ``poll_interval_s`` (``SupportsPolling``); 0 when the account is not polled."""
    return float(acct.get("poll_interval_s", 0.0)) if acct is not None else 0.0


async def poll_once(pipeline: Pipeline, api: Source, *, max_pages: int, page_size: int) -> int:
    """Fetch at most ``max_pages`` pages, take their mentions in, move the cursor; new reports made."""
    walk = await load_walk(pipeline)
    created = 0
    for _ in range(max_pages):
        extra = {"since_id": walk.since_id, "max_id": walk.max_id}
        try:
            statuses = await asyncio.to_thread(api.page, since_id=walk.since_id, max_id=walk.max_id, count=page_size)
        except ChannelError as exc:
            log.warning("Weibo mentions API failed; cursor kept", extra={**extra, "error": str(exc)})
            break
        ids = [i for i in map(api.channel.poll_item_id, statuses) if i is not None and i > walk.since_id]
        if statuses and not ids:
            log.error("Weibo mentions page without usable ids; cursor kept", extra={**extra, "count": len(statuses)})
            break
        created += await _take_in(pipeline, api.channel, statuses)
        walk = walk.after(ids)
        await _save(pipeline, walk)
        if not ids:
            break
    if created:
        log.info("Weibo mentions taken in", extra={"reports": created, "since_id": walk.since_id})
    return created


async def _take_in(pipeline: Pipeline, channel: SupportsPolling, statuses: list[dict[str, Any]]) -> int:
    created = 0
    for status in sorted(statuses, key=lambda s: channel.poll_item_id(s) or 0):  # oldest first
        try:
            msg = channel.poll_message(status, ACCOUNT)
        except BadPayload as exc:
            log.warning("Weibo mention skipped", extra={"status_id": channel.poll_item_id(status), "error": str(exc)})
            continue
        if msg is not None:
            created += (await pipeline.intake([msg])).created
    return created


# --------------------------------------------------------------------------- cursor storage


async def load_walk(pipeline: Pipeline, account: str = ACCOUNT) -> Walk:
    async with pipeline.db.session() as s:
        rows = await s.execute(
            select(ChannelCursor.name, ChannelCursor.value).where(
                ChannelCursor.channel == CHANNEL, ChannelCursor.account == account
            )
        )
        values = {name: value for name, value in rows.all()}
    max_id = values.get(MAX_ID) or ""
    return Walk(int(values.get(SINCE) or 0), int(values.get(HEAD) or 0), int(max_id) if max_id else None)


async def _save(pipeline: Pipeline, walk: Walk, account: str = ACCOUNT) -> None:
    values = {
        SINCE: str(walk.since_id),
        HEAD: str(walk.head or ""),
        MAX_ID: "" if walk.max_id is None else str(walk.max_id),
    }
    now = pipeline.clock()
    insert = sqlite_insert if pipeline.db.dialect == "sqlite" else pg_insert
    async with pipeline.unit() as s:
        for name, value in values.items():
            stmt = insert(ChannelCursor).values(
                channel=CHANNEL, account=account, name=name, value=value, updated_at=now
            )
            await s.execute(
                stmt.on_conflict_do_update(
                    index_elements=["channel", "account", "name"], set_={"value": value, "updated_at": now}
                )
            )


async def claim(pipeline: Pipeline, spacing_s: float, account: str = ACCOUNT) -> bool:
    """True for the one caller that may poll now: the last run started ``spacing_s`` ago or more."""
    now = pipeline.clock()
    insert = sqlite_insert if pipeline.db.dialect == "sqlite" else pg_insert
    async with pipeline.unit() as s:
        await s.execute(
            insert(ChannelCursor)
            .values(channel=CHANNEL, account=account, name=CLAIM, value="", updated_at=_EPOCH)
            .on_conflict_do_nothing(index_elements=["channel", "account", "name"])
        )
        result = await s.execute(
            update(ChannelCursor)
            .where(
                ChannelCursor.channel == CHANNEL,
                ChannelCursor.account == account,
                ChannelCursor.name == CLAIM,
                ChannelCursor.updated_at <= now - timedelta(seconds=spacing_s),
            )
            .values(updated_at=now)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]
