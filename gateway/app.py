"""``create_app(settings)``: the only way the aiohttp application is built (tests use it too)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import ClientSession, ClientTimeout, web

import channels
from gateway import (
    api,
    channel_routes,
    dispatch_routes,
    keys,
    media_gc,
    mentions,
    open311_routes,
    ops,
    outbox,
    ratings,
    webform,
)
from gateway.bodies import body_caps
from gateway.caller_errors import caller_errors
from gateway.classify import NlpClassifier, PlaceholderClassifier, ReportClassifier
from gateway.console import install as install_console
from gateway.db import Database
from gateway.media import LocalMediaStore
from gateway.metrics import Metrics
from gateway.middlewares import json_errors, request_context
from gateway.migrate import upgrade
from gateway.page_headers import page_headers
from gateway.pipeline import Pipeline
from gateway.settings import Settings
from gateway.tasks import CeleryRunner, InProcessRunner, TaskContext, TaskRunner

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"


def make_classifier(settings: Settings) -> ReportClassifier:
    if settings.classifier == "placeholder":
        return PlaceholderClassifier()
    return NlpClassifier(settings.model_dir, settings.taxonomy, settings.var_dir / "models")


def create_app(
    settings: Settings,
    *,
    classifier: ReportClassifier | None = None,
    runner: TaskRunner | None = None,
    migrate: bool | None = None,
) -> web.Application:
    multipart_cap = settings.max_photos * settings.max_photo_bytes + (1 << 20)
    middlewares = [request_context, json_errors, caller_errors, body_caps, page_headers]  # see each module
    app = web.Application(middlewares=middlewares, client_max_size=multipart_cap)
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[keys.MEDIA] = LocalMediaStore(settings.media_path)
    found = channels.load_channels()
    app[keys.CHANNELS] = {name: cls() for name, cls in found.items()}
    app[channel_routes.ACCOUNTS] = channel_routes.load_accounts(app[keys.CHANNELS], settings.model_dump())
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    app.cleanup_ctx.append(_database(settings, settings.auto_migrate if migrate is None else migrate))
    app.cleanup_ctx.append(_redis(settings))
    app.cleanup_ctx.append(_http_client)
    app.cleanup_ctx.append(_pipeline(settings, classifier or make_classifier(settings), runner))
    app.cleanup_ctx.append(media_gc.periodic())  # orphaned media files removed (issue 13, item 4)
    app.router.add_routes(
        ops.routes()
        + api.routes()
        + webform.routes()
        + open311_routes.routes()
        + channel_routes.routes()
        + dispatch_routes.routes()
        + ratings.routes()
    )
    install_console(app)  # /console/ and /api/v1/admin: own Jinja env, state and guarded routes
    return app


def _database(settings: Settings, migrate: bool):  # noqa: ANN202 - cleanup_ctx factory
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if migrate:
            await upgrade(settings.db_url)
        db = Database(settings.db_url)
        app[keys.DB] = db
        yield
        await db.close()

    return ctx


def _redis(settings: Settings):  # noqa: ANN202
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if not settings.redis_url:
            yield
            return
        from redis.asyncio import Redis

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


def _pipeline(settings: Settings, classifier: ReportClassifier, runner: TaskRunner | None):  # noqa: ANN202
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        chosen = runner
        if chosen is None:
            if settings.redis_url:
                from gateway.worker import make_celery

                chosen = CeleryRunner(make_celery(settings))
            else:
                chosen = InProcessRunner()
        pipeline = Pipeline(app[keys.DB], settings, chosen, classifier, metrics=app[keys.METRICS])
        pipeline.outbound_channels = frozenset(n for n, c in app[keys.CHANNELS].items() if c.can_send)
        outbox.install(pipeline)  # dispatch outbox: a delivery row with every move to ready
        ratings.install(pipeline)  # digit replies after `resolved` are ratings
        task_ctx = TaskContext(
            pipeline=pipeline,
            services={
                "settings": settings,
                "media": app[keys.MEDIA],
                "http": app[keys.HTTP],
                "channels": app[keys.CHANNELS],
                "accounts": app[channel_routes.ACCOUNTS],
            },
        )
        if isinstance(chosen, InProcessRunner):
            chosen.bind(task_ctx)
        app[keys.RUNNER] = chosen
        app[keys.PIPELINE] = pipeline
        app[keys.TASK_CONTEXT] = task_ctx
        stop = asyncio.Event()
        sweeper = asyncio.create_task(_sweep_forever(pipeline, settings.sweep_interval_s, stop), name="sweeper")
        poller = mentions.schedule(chosen, settings, stop)  # Weibo @-mentions; None when off (the default)
        # Load (on first start: train) the model now, in a thread, so the first resident does not wait.
        warm = classifier.warm_up() if isinstance(classifier, NlpClassifier) else None
        warming = asyncio.create_task(warm, name="classifier-warm-up") if warm is not None else None
        if warming is not None:
            warming.add_done_callback(_log_warm_up)
        yield
        # Let a sweep that is mid-query finish: cancelling it would abandon a query running in
        # aiosqlite's thread. Cancel only if it overruns the shutdown timeout.
        stop.set()
        if poller is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(poller, timeout=settings.shutdown_timeout_s)
        try:
            await asyncio.wait_for(sweeper, timeout=settings.shutdown_timeout_s)
        except TimeoutError:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await chosen.drain(settings.shutdown_timeout_s)

    return ctx


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
