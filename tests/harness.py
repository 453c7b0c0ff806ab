"""The shared channel test harness (courier's handlertest, in pytest).

A channel's test file is mostly a list of ``IncomingCase``/``OutgoingCase`` values run through
``run_incoming``/``run_outgoing`` against the real app (``aiohttp_client``) and a real local
fake of the provider's API. Each case says what goes in (fixture file or body, headers, a
``prep`` hook that signs it validly or not) and what must come out (status, body substring,
the stored messages and report, and the secrets that must not show in logs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

import channels
from channels.base import GIVEN_SETTINGS, ChannelSettings
from gateway import keys
from gateway.db import Message, Report

FIXTURES = Path(__file__).parent / "fixtures"


# --------------------------------------------------------------------------- a channel's settings


def own_settings(given: Mapping[str, Mapping[str, Any] | ChannelSettings] | None = None) -> dict[str, ChannelSettings]:
    """Every registered channel's own settings for a test, by channel name: the values given for it
    (field names of its ``settings_class``) or its settings object, the rest from the process
    environment but never from a ``.env`` file. ``make_settings(channels=...)`` puts them in the
    gateway's settings (``Settings.channel_settings``). A channel or a field that does not exist
    fails, so that a typo cannot leave a test running on defaults."""
    given = given or {}
    declared = {n: c.settings_class for n, c in channels.load_channels(plugins=False).items() if c.settings_class}
    if unknown := set(given) - set(declared):
        raise TypeError(f"no channel with settings is named {sorted(unknown)}")
    out: dict[str, ChannelSettings] = {}
    for name, kind in declared.items():
        values = given.get(name, {})
        if isinstance(values, ChannelSettings):
            out[name] = values
            continue
        if wrong := set(values) - set(kind.model_fields):
            raise TypeError(f"{kind.__name__} has no field {sorted(wrong)}")
        out[name] = kind(_env_file=None, **values)  # type: ignore[call-arg]
    return out


def given(**values: Mapping[str, Any]) -> dict[str, Any]:
    """What a channel's ``accounts`` gets (``gateway.runtime.channel_view``) when only channels'
    settings matter, for a channel's unit tests: ``WeChatChannel.accounts(given(wechat={"token": T}))``."""
    return {GIVEN_SETTINGS: own_settings(values)}


# --------------------------------------------------------------------------- incoming cases


@dataclass(frozen=True)
class Prepared:
    path: str
    body: bytes
    headers: dict[str, str]
    query: dict[str, str]


@dataclass(frozen=True)
class IncomingCase:
    label: str
    path: str
    method: str = "POST"
    body: bytes | str | None = None
    fixture: str | None = None  # file under tests/fixtures/, or an absolute path (../shared vectors)
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    prep: Callable[[Prepared], Prepared] | None = None  # e.g. sign validly or invalidly
    status: int = 200
    body_contains: str | tuple[str, ...] = ()
    messages: int | None = None  # messages stored after the case (None: not checked)
    reports: int | None = None  # reports stored after the case
    text: str | None = None  # the stored report's text contains this
    sender: str | None = None  # the stored message's sender
    external_id: str | None = None  # the stored message's channel_message_id
    kind: str | None = None
    repeat: int = 1  # send the same request this many times (retries)
    check: Callable[[Any], Any] | None = None  # extra async check(client) for what no field covers

    def __str__(self) -> str:
        return self.label


def load_body(case: IncomingCase) -> bytes:
    if case.fixture:
        path = Path(case.fixture)
        return (path if path.is_absolute() else FIXTURES / case.fixture).read_bytes()
    if isinstance(case.body, str):
        return case.body.encode()
    return case.body or b""


async def counts(client: TestClient) -> tuple[int, int]:
    async with client.app[keys.DB].session() as s:
        messages = await s.scalar(select(func.count()).select_from(Message))
        reports = await s.scalar(select(func.count()).select_from(Report))
    return int(messages or 0), int(reports or 0)


async def run_incoming(client: TestClient, case: IncomingCase) -> None:
    prepared = Prepared(case.path, load_body(case), dict(case.headers), dict(case.query))
    if case.prep:
        prepared = case.prep(prepared)
    text = ""
    for _ in range(case.repeat):
        resp = await client.request(
            case.method, prepared.path, data=prepared.body or None, headers=prepared.headers, params=prepared.query
        )
        text = await resp.text()
        assert resp.status == case.status, f"{case.label}: status {resp.status}, body {text[:500]!r}"
    wanted = (case.body_contains,) if isinstance(case.body_contains, str) else case.body_contains
    for piece in wanted:
        assert piece in text, f"{case.label}: {piece!r} not in body {text[:500]!r}"
    runner = client.app[keys.RUNNER]
    if hasattr(runner, "idle"):
        await runner.idle()
    n_messages, n_reports = await counts(client)
    if case.messages is not None:
        assert n_messages == case.messages, f"{case.label}: {n_messages} messages stored, want {case.messages}"
    if case.reports is not None:
        assert n_reports == case.reports, f"{case.label}: {n_reports} reports stored, want {case.reports}"
    if case.text is not None or case.sender is not None or case.external_id is not None or case.kind is not None:
        async with client.app[keys.DB].session() as s:
            msg = await s.scalar(select(Message).order_by(Message.id.desc()).limit(1))
            assert msg is not None, f"{case.label}: no message stored"
            if case.sender is not None:
                assert msg.sender == case.sender, f"{case.label}: sender {msg.sender!r}"
            if case.external_id is not None:
                assert msg.channel_message_id == case.external_id, f"{case.label}: id {msg.channel_message_id!r}"
            if case.kind is not None:
                assert msg.kind == case.kind, f"{case.label}: kind {msg.kind!r}"
            if case.text is not None:
                report = await s.get(Report, msg.report_id) if msg.report_id else None
                assert report is not None and case.text in report.text, (
                    f"{case.label}: report text {report and report.text!r}"
                )
    if case.check is not None:
        await case.check(client)


@dataclass(frozen=True)
class OutgoingCase:
    """An outbound send against a local fake provider API.

    ``responses`` maps "METHOD /path" to (status, body) the fake answers; ``expect_requests``
    lists what the fake must have received; ``error`` is the exception class ``send`` must raise
    (None: it must succeed); ``secrets`` must not appear in the captured logs.
    """

    label: str
    text: str
    recipient: str
    responses: Mapping[str, tuple[int, Any]] = field(default_factory=dict)
    expect_path: str | None = None
    expect_body_contains: tuple[str, ...] = ()
    error: type[Exception] | None = None
    external_id: str | None = None
    secrets: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.label
