"""Shared pieces of the dispatch and closed-loop tests: a confident classifier, a chat channel
that records what residents are sent, the app wired to a fake dispatch server, and waiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from aiohttp import ClientSession
from sqlalchemy import select

from channels.base import Account, BaseChannel
from gateway import keys
from gateway.core.classify import Classification
from gateway.core.pipeline import Pipeline
from gateway.db import Database, Delivery, Notification, Report, utcnow
from gateway.dispatch import outbox, ratings
from gateway.http import channels as channel_routes
from gateway.models import InboundMessage, MessageKind, OutboundMessage, SendResult
from gateway.settings import Settings
from gateway.tasks.runners import InProcessRunner, TaskContext
from tests.fakes.dispatch_server import FakeDispatch

CHAT = "fakechat"


@dataclass
class FixedClassifier:
    """Says every report is `code` with high confidence (P1 reports are urgent)."""

    code: str = "0101"
    name: str = "路灯损坏"
    priority: str = "P3"
    needs_review: bool = False
    version: str = "fixed-test"

    async def classify(self, text: str) -> Classification:
        urgent = self.priority == "P1" or "井盖" in text
        return Classification(
            code="0102" if "井盖" in text else self.code,
            name="井盖缺失" if "井盖" in text else self.name,
            parent=self.code[:2],
            confidence=0.97,
            needs_review=self.needs_review,
            priority="P1" if urgent else self.priority,
            urgent=urgent,
            model_version=self.version,
            set_by="model",
        )


class RecordingChannel(BaseChannel):
    """A chat channel (like WeChat or SMS) whose `send` records instead of calling a provider."""

    name: ClassVar[str] = CHAT
    can_send: ClassVar[bool] = True

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, msg: OutboundMessage, acct: Account) -> SendResult:
        self.sent.append(msg)
        return SendResult(external_id=f"m{len(self.sent)}")


@dataclass
class Resident:
    sender: str = field(default_factory=lambda: f"{CHAT}:{uuid.uuid4().hex[:8]}")

    def says(self, text: str, *, complete: bool = False, msg_id: str | None = None) -> InboundMessage:
        return InboundMessage(
            channel=CHAT,
            channel_message_id=msg_id or uuid.uuid4().hex,
            sender=self.sender,
            received_at=datetime.now(UTC),
            kind=MessageKind.TEXT,
            text=text,
            complete=complete,
        )


def wire_chat(app: Any) -> RecordingChannel:
    """Give a started app the recording chat channel (the task context shares these dicts)."""
    chan = RecordingChannel()
    app[keys.CHANNELS][CHAT] = chan
    app[channel_routes.ACCOUNTS][(CHAT, "default")] = Account("default")
    pipeline = app[keys.PIPELINE]
    pipeline.outbound_channels = pipeline.outbound_channels | {CHAT}
    return chan


def fast_dispatch(fake: Any, **overrides: Any) -> dict[str, Any]:
    """Settings that point at the fake dispatch server and retry quickly."""
    values: dict[str, Any] = {
        "dispatch_url": fake.url,
        "dispatch_secret": fake.secret,
        "dispatch_backoff_base_s": 0.01,
        "dispatch_backoff_cap_s": 0.05,
        "dispatch_timeout_s": 2.0,
        "dispatch_retry_for_s": 0.5,  # then dead-lettered (a day in production)
    }
    values.update(overrides)
    return values


async def wait_for(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, what: str = "condition") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def deliveries(db: Any) -> list[Delivery]:
    async with db.session() as s:
        return list((await s.scalars(select(Delivery).order_by(Delivery.id))).all())


async def report(db: Any, case: str) -> Report:
    async with db.session() as s:
        found = await s.scalar(select(Report).where(Report.case_number == case))
        assert found is not None
        return found


async def notifications(db: Any) -> list[Notification]:
    async with db.session() as s:
        return list((await s.scalars(select(Notification).order_by(Notification.id))).all())


async def settle(runner: InProcessRunner) -> None:
    await runner.idle()


class DroppingRunner:
    """A runner that records what is enqueued and never runs it: the process dies before its queue."""

    def __init__(self) -> None:
        self.enqueued: list[tuple[str, tuple[Any, ...]]] = []

    async def enqueue(self, name: str, *args: Any, delay: float = 0) -> None:
        self.enqueued.append((name, args))

    async def drain(self, timeout: float) -> None:
        return None


class Process:
    """One gateway process (pipeline, outbox, ratings, runner, HTTP session) on shared settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        runner: Any = None,
        classifier: Any = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.db = Database(settings.db_url)
        self.runner = runner if runner is not None else InProcessRunner(max_attempts=1)
        self.pipeline = Pipeline(self.db, settings, self.runner, classifier or FixedClassifier(), clock=clock)
        self.outbox = outbox.install(self.pipeline)
        ratings.install(self.pipeline)

    async def __aenter__(self) -> Process:
        self.http = ClientSession()
        if isinstance(self.runner, InProcessRunner):
            services = {"settings": self.settings, "http": self.http}
            self.runner.bind(TaskContext(pipeline=self.pipeline, services=services))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if isinstance(self.runner, InProcessRunner):
            await self.runner.idle()  # let running tasks end; cancelling one mid-query breaks its connection
        await self.runner.drain(0.5)
        await self.http.close()
        await self.db.close()

    async def ready_report(self, text: str = "小区门口路灯坏了", resident: Resident | None = None) -> str:
        """A whole report, classified at once (to ready with the confident classifier)."""
        result = await self.pipeline.intake([(resident or Resident()).says(text, complete=True)])
        assert result.report_id is not None and result.case_number is not None
        await self.pipeline.classify_report(result.report_id)
        return result.case_number


# Shared fixtures: a test module takes them with ``from tests.dispatch_support import dispatch_server``
# (and ``chat_gateway``); pytest registers them under the names ``fake`` and ``gateway``.


@pytest.fixture(name="fake")
async def dispatch_server() -> Any:
    """The local dispatch system (tests/fakes/dispatch_server.py), up for the test."""
    server = await FakeDispatch().start()
    yield server
    await server.down()


@pytest.fixture(name="gateway")
async def chat_gateway(db_url: str, aiohttp_client: Any, make_settings: Any, fake: Any, runner: Any) -> Any:
    """The app on both databases with fast dispatch retries and a recording chat channel.

    ``db_url`` comes first so that the database is torn down after the app.
    """
    from gateway.http.app import create_app

    settings = make_settings(**fast_dispatch(fake), database_url=db_url)
    app = create_app(settings, classifier=FixedClassifier(), runner=runner)
    client = await aiohttp_client(app)
    return client, wire_chat(app)
