"""Slow clients are cut off (gateway/http/slow_clients.py): partial headers, a stalled body, a
body trickled a byte at a time. The app runs as ``gateway serve`` runs it (``server_options``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select

from gateway import keys
from gateway.core.classify import PlaceholderClassifier
from gateway.db import Report
from gateway.http.app import create_app
from gateway.http.slow_clients import server_options

HEAD = b"POST /api/v1/reports HTTP/1.1\r\nHost: gateway.test\r\nContent-Type: application/json\r\n"


@pytest.fixture
async def served(make_settings: Callable[..., Any], runner: Any) -> AsyncIterator[tuple[web.Application, int]]:
    settings = make_settings(header_timeout_s=1.0, read_timeout_s=0.6, body_timeout_s=2.5)
    app = create_app(settings, classifier=PlaceholderClassifier(), runner=runner)
    app_runner = web.AppRunner(app, **server_options(settings))
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = app_runner.addresses[0][1]
    yield app, port
    await app_runner.cleanup()


async def closed_after(reader: asyncio.StreamReader, limit: float) -> float:
    """Seconds until the server closes the connection (it answers nothing first, or a 4xx/5xx)."""
    started = time.monotonic()
    async with asyncio.timeout(limit):
        while await reader.read(65536):
            pass
    return time.monotonic() - started


async def reports(app: web.Application) -> int:
    async with app[keys.DB].session() as s:
        return int(await s.scalar(select(func.count()).select_from(Report)) or 0)


async def test_partial_headers_are_cut_off(served: tuple[web.Application, int]) -> None:
    _, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEAD)  # no blank line: the head never ends
    assert await closed_after(reader, 5) < 3
    writer.close()


async def test_a_stalled_body_is_cut_off_and_nothing_is_stored(served: tuple[web.Application, int]) -> None:
    app, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEAD + b"Content-Length: 100\r\n\r\n" + b'{"text": "')
    assert await closed_after(reader, 5) < 3
    writer.close()
    assert await reports(app) == 0


async def test_a_trickled_body_is_cut_off_at_the_body_deadline(served: tuple[web.Application, int]) -> None:
    app, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEAD + b"Content-Length: 1000\r\n\r\n")

    async def trickle() -> None:
        for _ in range(1000):  # one byte every 0.2 s: never idle for read_timeout_s
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.2)

    sender = asyncio.create_task(trickle())
    try:
        took = await closed_after(reader, 8)
    finally:
        sender.cancel()
    assert 2 <= took < 5
    writer.close()
    assert await reports(app) == 0


async def test_a_normal_post_is_untouched(served: tuple[web.Application, int]) -> None:
    app, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = '{"text": "路灯坏了"}'.encode()
    writer.write(HEAD + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    await asyncio.sleep(0.3)  # the body comes later than the head, within the read timeout
    writer.write(body)
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.startswith(b"HTTP/1.1 201")
    writer.close()
    assert await reports(app) == 1
