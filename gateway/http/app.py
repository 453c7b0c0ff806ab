"""``create_app(settings)``: the only way the aiohttp application is built (tests use it too)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import ClientSession, ClientTimeout, web
from redis.asyncio import Redis

from gateway import keys
from gateway.console import install as install_console
from gateway.core.classify import NlpClassifier, ReportClassifier
from gateway.core.pipeline import Pipeline
from gateway.core.units import TaskRunner
from gateway.db import Database
from gateway.http import channels as channel_routes
from gateway.http import dispatch as dispatch_routes
from gateway.http import media_gc, openapi, ops, rating, webform, windows
from gateway.http import open311 as open311_routes
from gateway.http import reports as api
from gateway.http.bodies import body_caps
from gateway.http.caller_errors import caller_errors
from gateway.http.middlewares import json_errors, request_context
from gateway.http.page_headers import page_headers
from gateway.http.slow_clients import read_deadline
from gateway.media import LocalMediaStore
from gateway.metrics import Metrics, watch_loop_lag
from gateway.migrate import upgrade
from gateway.runtime import Runtime, keep_alive, load_accounts, make_channels, make_classifier, on_serve, open_runtime
from gateway.settings import Settings
from gateway.tasks import mentions

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


def create_app(
    settings: Settings,
    *,
    classifier: ReportClassifier | None = None,
    runner: TaskRunner | None = None,
    migrate: bool | None = None,
) -> web.Application:
    multipart_cap = settings.max_photos * settings.max_photo_bytes + (1 << 20)
    # See each module; read_deadline (slow clients) watches the body reads of body_caps and the handlers.
    middlewares = [request_context, json_errors, caller_errors, read_deadline, body_caps, page_headers]
    app = web.Application(middlewares=middlewares, client_max_size=multipart_cap)
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[keys.MEDIA] = LocalMediaStore(settings.media_path)
    chans = make_channels()
    app[keys.CHANNELS] = chans
    app[channel_routes.ACCOUNTS] = load_accounts(chans, settings)
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    app.cleanup_ctx.append(_database(settings, settings.auto_migrate if migrate is None else migrate))
    app.cleanup_ctx.append(_redis(settings))
    app.cleanup_ctx.append(windows.open_store)  # replay and flood keys, on that Redis when set
    app.cleanup_ctx.append(_http_client)
    app.cleanup_ctx.append(_pipeline(settings, classifier or make_classifier(settings), runner))
    app.cleanup_ctx.append(media_gc.periodic())  # orphaned media files removed (issue 13, item 4)
    app.router.add_routes(
        ops.routes()
        + openapi.routes()
        + api.routes()
        + webform.routes()
        + open311_routes.routes()
        + channel_routes.routes()
        + dispatch_routes.routes()
        + rating.routes()
    )
    install_console(app)  # /console/ and /api/v1/admin: own Jinja env, state and guarded routes
    return app


def _database(settings: Settings, migrate: bool) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if migrate:
            await upgrade(settings.db_url)
        db = Database(settings.db_url)
        app[keys.DB] = db
        yield
        await db.close()

    return ctx


def _redis(settings: Settings) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if not settings.redis_url:
            yield
            return
        client = Redis.from_url(settings.redis_url)
        app[keys.REDIS] = client
        yield
        await client.aclose()

    return ctx


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    session = ClientSession(timeout=ClientTimeout(total=30))
    app[keys.HTTP] = session
    yield
    await session.close()


def _pipeline(settings: Settings, classifier: ReportClassifier, runner: TaskRunner | None) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_runtime(
            settings,
            db=app[keys.DB],
            runner=runner,
            classifier=classifier,
            chans=app[keys.CHANNELS],
            accounts=app[channel_routes.ACCOUNTS],
            media=app[keys.MEDIA],
            http=app[keys.HTTP],
            metrics=app[keys.METRICS],
        ) as runtime:
            app[keys.RUNNER] = runtime.runner
            app[keys.PIPELINE] = runtime.pipeline
            app[keys.TASK_CONTEXT] = runtime.context
            async for _ in _background(app, runtime):
                yield

    return ctx


async def _background(app: web.Application, runtime: Runtime) -> AsyncIterator[None]:
    """The serving process's own loops: the sweeper, the Weibo poller's schedule, the model warm-up,
    the event loop's lag on ``/metrics``."""
    settings, pipeline, chosen, classifier = runtime.settings, runtime.pipeline, runtime.runner, runtime.classifier
    stop = asyncio.Event()
    await on_serve(runtime)  # start-up warnings; deliveries parked while dispatch was unset go now
    # The lease and heartbeat: what a crash left resumes at once, not after GATEWAY_STUCK_AFTER_S.
    alive = keep_alive(runtime, "serve")
    await alive.start()
    heart = asyncio.create_task(alive.run(stop), name="heartbeat")
    lag = asyncio.create_task(watch_loop_lag(app[keys.METRICS].loop_lag), name="loop-lag")
    sweeper = asyncio.create_task(_sweep_forever(pipeline, settings.sweep_interval_s, stop), name="sweeper")
    poller = mentions.schedule(chosen, runtime.accounts, stop)  # Weibo @-mentions; None when off (the default)
    # Load (on first start: train) the model now, in a thread, so the first resident does not wait.
    warm = classifier.warm_up() if isinstance(classifier, NlpClassifier) else None
    warming = asyncio.create_task(warm, name="classifier-warm-up") if warm is not None else None
    if warming is not None:
        warming.add_done_callback(_log_warm_up)
    # The grid and its gazetteer (once per process; later apps find them loaded).
    placer = pipeline.placer
    grid_warming = asyncio.create_task(placer.warm_up(), name="grid-warm-up") if placer is not None else None
    if grid_warming is not None:
        # Before the port opens: loading the gazetteer's dictionary is one C call (jieba's
        # marshal.load) that holds the GIL for about 0.6 s, which stalled every request of a fresh
        # start's first seconds (p99 580 ms). It runs once per process; the model keeps loading
        # in the background (its load lets the event loop in every few milliseconds).
        await asyncio.wait([grid_warming])
    warm_ups = [t for t in (warming, grid_warming) if t is not None]
    freezing = asyncio.create_task(_freeze_when_warm(warm_ups), name="gc-freeze") if settings.gc_freeze else None
    yield
    for watcher in (freezing, lag):
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    # Let a sweep that is mid-query finish: cancelling it would abandon a query running in
    # aiosqlite's thread. Cancel only if it overruns the shutdown timeout.
    stop.set()
    if poller is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(poller, timeout=settings.shutdown_timeout_s)
    for loop_task in (sweeper, heart):
        try:
            await asyncio.wait_for(loop_task, timeout=settings.shutdown_timeout_s)
        except TimeoutError:
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
    await chosen.drain(settings.shutdown_timeout_s)
    if grid_warming is not None:  # a thread cannot be cancelled; let it finish rather than leave it pending
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(grid_warming), timeout=settings.shutdown_timeout_s)


async def _freeze_when_warm(warm_ups: list[asyncio.Task[None]]) -> None:
    """Once the model and the grid are loaded, move every object alive then (the gazetteer, the
    grid's polygons, the model: millions of objects that live as long as the process) out of the
    cyclic garbage collector's reach (``gc.freeze``). Its full collections then walk only what
    requests create, not the whole start-up heap: WeChat intake's p99 at 32 connections is about
    39 ms with it and 110 ms without (``bench/wechat.py`` and ``bench/wechat.py --no-gc-freeze``).
    Freezing is O(1); no collection runs here."""
    if warm_ups:
        await asyncio.wait(warm_ups)  # not gather: cancelling this must not cancel the warm-ups
    gc.freeze()
    log.info("start-up objects frozen out of the garbage collector", extra={"objects": gc.get_freeze_count()})


def _log_warm_up(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("classifier failed to load; reports wait in `received` until it does", exc_info=task.exception())
    elif not task.cancelled():
        log.info("classifier ready")


async def _sweep_forever(pipeline: Pipeline, interval: float, stop: asyncio.Event) -> None:
    """Pick up what a crash or restart left (see ``Pipeline.sweep``) until ``stop`` is set."""
    while not stop.is_set():
        try:
            count = await pipeline.sweep()
            if count:
                log.info("sweeper re-enqueued work", extra={"count": count})
        except Exception:
            log.exception("sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
