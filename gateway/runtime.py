"""The composition root: the one place that assembles the gateway's runtime.

``gateway serve`` (``gateway/http/app.py``), ``gateway worker`` (``gateway/worker.py``) and the
CLI's outbox commands build the same typed ``Runtime`` here: database, task runner, classifier,
channels and their accounts, the pipeline with every listener passed in (the dispatch outbox's
writer, the ratings filter), and the ``TaskContext`` the tasks run with. Nothing else constructs
a pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession, ClientTimeout
from pydantic import ValidationError

import channels
from channels.base import GIVEN_SETTINGS, Account, BaseChannel, ChannelSettings
from gateway.core.classify import NlpClassifier, PlaceholderClassifier, ReportClassifier
from gateway.core.conversation import Conversation
from gateway.core.leases import KeepAlive, Leases
from gateway.core.pipeline import Pipeline
from gateway.core.placing import Placer
from gateway.core.units import TaskRunner, Units
from gateway.db import Database
from gateway.dispatch.outbox import DeliveryWriter, Outbox
from gateway.dispatch.ratings import Ratings
from gateway.media import LocalMediaStore, MediaStore
from gateway.metrics import Metrics
from gateway.settings import Settings, settings_error
from gateway.tasks import table as task_table
from gateway.tasks.runners import CeleryRunner, InProcessRunner, RedisClaims, Services, TaskContext, celery_app

HTTP_TIMEOUT_S = 30
log = logging.getLogger(__name__)

__all__ = [
    "Runtime",
    "channel_settings",
    "channel_view",
    "config_warnings",
    "load_accounts",
    "make_channels",
    "make_classifier",
    "make_runner",
    "open_runtime",
    "task_table",
]


@dataclass
class Runtime:
    """Everything one process (web or worker) runs with."""

    settings: Settings
    db: Database
    runner: TaskRunner
    classifier: ReportClassifier
    channels: dict[str, BaseChannel]
    accounts: dict[tuple[str, str], Account]
    media: MediaStore
    http: ClientSession
    pipeline: Pipeline
    outbox: Outbox
    ratings: Ratings
    context: TaskContext
    owned_db: bool = False
    owned_http: bool = False

    async def aclose(self) -> None:
        """Close what ``build_runtime`` opened itself (the web app closes its own)."""
        if isinstance(self.pipeline.triage.claims, RedisClaims):
            await self.pipeline.triage.claims.aclose()
        if self.owned_http:
            await self.http.close()
        if self.owned_db:
            await self.db.close()


def make_classifier(settings: Settings) -> ReportClassifier:
    if settings.classifier == "placeholder":
        return PlaceholderClassifier()
    return NlpClassifier(settings.model_dir, settings.taxonomy, settings.var_dir / "models")


def make_runner(settings: Settings, *, max_attempts: int | None = None) -> TaskRunner:
    """Celery over Redis when ``GATEWAY_REDIS_URL`` is set, else the in-process runner."""
    if settings.redis_url:
        return CeleryRunner(celery_app(settings))
    return InProcessRunner() if max_attempts is None else InProcessRunner(max_attempts=max_attempts)


def make_channels() -> dict[str, BaseChannel]:
    """One instance of every registered channel (built-in and from entry points)."""
    return {name: cls() for name, cls in channels.load_channels().items()}


def channel_view(settings: Settings) -> dict[str, Any]:
    """The settings as a channel's ``accounts`` and ``own_settings`` get them: the gateway's values
    (public URL, Redis, media caps) and, under ``GIVEN_SETTINGS``, channels' settings given in code."""
    return {**settings.model_dump(), GIVEN_SETTINGS: settings.channel_settings}


def load_accounts(chans: Mapping[str, BaseChannel], settings: Settings) -> dict[tuple[str, str], Account]:
    """Every configured account of every channel; a channel's bad setting is a ``SettingsError``
    naming its variable (``gateway serve`` and ``gateway worker`` stop at start-up)."""
    found: dict[tuple[str, str], Account] = {}
    values = channel_view(settings)
    for name, channel in chans.items():
        with _naming_variables(type(channel)):
            for acct_name, acct in type(channel).accounts(values).items():
                found[(name, acct_name)] = acct
    return found


def channel_settings(chans: Mapping[str, BaseChannel], settings: Settings) -> dict[str, ChannelSettings]:
    """The own settings of each channel that declares a ``settings_class`` (``gateway serve --check``)."""
    values = channel_view(settings)
    found: dict[str, ChannelSettings] = {}
    for name, channel in chans.items():
        if type(channel).settings_class is not None:
            with _naming_variables(type(channel)):
                found[name] = type(channel).own_settings(values)
    return found


@contextmanager
def _naming_variables(channel: type[BaseChannel]) -> Iterator[None]:
    try:
        yield
    except ValidationError as exc:
        raise settings_error(exc, channel.settings_class or Settings) from None


def build_pipeline(
    settings: Settings,
    db: Database,
    runner: TaskRunner,
    classifier: ReportClassifier,
    chans: Mapping[str, BaseChannel],
    *,
    metrics: Metrics | None = None,
    placer: Placer | None = None,
) -> tuple[Pipeline, Outbox, Ratings]:
    """The pipeline with its listeners: the outbox's writer (every move to ready writes a
    delivery; due deliveries are swept), the ratings filter (a digit reply is a rating) and the
    conversation filter (a greeting or a progress question is answered, not made a report)."""
    units = Units(db, runner)
    writer = DeliveryWriter(units, settings)
    ratings = Ratings(units, settings)
    pipeline = Pipeline(
        db,
        settings,
        runner,
        classifier,
        metrics=metrics,
        intake_filters=[ratings, Conversation(units, settings)],
        transition_listeners=[writer],
        sweepers=[writer],
        outbound_channels=frozenset(n for n, c in chans.items() if c.can_send),
        placer=placer,
        # Over Redis, classification batches of every worker process claim their reports there.
        claims=RedisClaims(settings.redis_url, settings.db_url) if settings.redis_url else None,
    )
    return pipeline, Outbox(pipeline), ratings


def build_runtime(
    settings: Settings,
    *,
    db: Database | None = None,
    runner: TaskRunner | None = None,
    classifier: ReportClassifier | None = None,
    chans: dict[str, BaseChannel] | None = None,
    accounts: dict[tuple[str, str], Account] | None = None,
    media: MediaStore | None = None,
    http: ClientSession | None = None,
    metrics: Metrics | None = None,
) -> Runtime:
    """Build the runtime. The web app passes the resources it already owns (its database, HTTP
    session, metrics, channels); the worker and the CLI let this build them, and ``aclose``
    closes what was built here. Call it inside the event loop that will use it."""
    owned_db, owned_http = db is None, http is None
    db = db if db is not None else Database(settings.db_url)
    http = http if http is not None else ClientSession(timeout=ClientTimeout(total=HTTP_TIMEOUT_S))
    runner = runner if runner is not None else make_runner(settings)
    classifier = classifier if classifier is not None else make_classifier(settings)
    chans = chans if chans is not None else make_channels()
    accounts = accounts if accounts is not None else load_accounts(chans, settings)
    media = media if media is not None else LocalMediaStore(settings.media_path)
    placer = Placer(settings)  # the grid itself is loaded once per process (gateway/core/placing.py)
    pipeline, outbox, ratings = build_pipeline(settings, db, runner, classifier, chans, metrics=metrics, placer=placer)
    services = Services(settings=settings, media=media, http=http, channels=chans, accounts=accounts, outbox=outbox)
    context = TaskContext(pipeline=pipeline, services=services)
    if isinstance(runner, InProcessRunner):
        runner.bind(context)
    return Runtime(
        settings,
        db,
        runner,
        classifier,
        chans,
        accounts,
        media,
        http,
        pipeline,
        outbox,
        ratings,
        context,
        owned_db=owned_db,
        owned_http=owned_http,
    )


def channel_shortcomings(chans: Mapping[str, BaseChannel], accounts: Mapping[tuple[str, str], Account]) -> list[str]:
    """What each configured account lacks to fetch media or send news (``BaseChannel.shortcomings``)."""
    return [w for (name, _), acct in accounts.items() if name in chans for w in chans[name].shortcomings(acct)]


def config_warnings(
    settings: Settings, chans: Mapping[str, BaseChannel], accounts: Mapping[tuple[str, str], Account]
) -> list[str]:
    """What an operator should know before residents write in: logged when ``gateway serve``
    starts and printed by ``gateway serve --check``."""
    found = []
    if not settings.dispatch_url and not settings.routing_table:
        found.append(
            "no dispatch target (GATEWAY_DISPATCH_URL or GATEWAY_ROUTING_TABLE):"
            " ready cases wait in the outbox and are sent once one is configured"
        )
    if settings.secret_key is None or not settings.secret_key.get_secret_value():
        found.append(
            f"GATEWAY_SECRET_KEY is unset: the development key in {settings.var_dir}/secret.key signs"
            " console sessions and rating links"
        )
    return found + channel_shortcomings(chans, accounts)


async def on_serve(runtime: Runtime) -> None:
    """Once when a serving process starts: warn about what is missing (channels configured without
    what they need, no dispatch target, the development key), and make deliveries parked while no
    dispatch target was configured due at once (the first sweep, right after, sends them urgent first)."""
    for warning in config_warnings(runtime.settings, runtime.channels, runtime.accounts):
        log.warning(warning)
    await runtime.outbox.release_parked()


def keep_alive(runtime: Runtime, role: str) -> KeepAlive:
    """The process's lease and heartbeat (``gateway/core/leases.py``). A serving process resumes
    all unfinished work when it starts and when the Celery broker restarts; every process resumes
    the work of any process it finds dead."""
    settings, pipeline = runtime.settings, runtime.pipeline
    leases = Leases(pipeline.units, settings, role)
    epoch = runtime.runner.epoch if isinstance(runtime.runner, CeleryRunner) and role == "serve" else None
    return KeepAlive(
        leases, pipeline.sweeping, settings.heartbeat_interval_s, recover_at_start=role == "serve", epoch=epoch
    )


@asynccontextmanager
async def open_runtime(settings: Settings, **given: Any) -> AsyncIterator[Runtime]:
    """``build_runtime`` for the length of a block."""
    runtime = build_runtime(settings, **given)
    try:
        yield runtime
    finally:
        await runtime.aclose()


@asynccontextmanager
async def operator(settings: Settings) -> AsyncIterator[Outbox]:
    """The outbox outside the server, for the CLI: Celery enqueues in production; embedded mode
    runs the replayed deliveries in this process (``settle`` waits for them)."""
    runner = make_runner(settings, max_attempts=1)
    async with open_runtime(settings, runner=runner, classifier=PlaceholderClassifier()) as rt:
        try:
            yield rt.outbox
        finally:
            await runner.drain(0.1)  # retries not yet due stay in the outbox for the sweeper
