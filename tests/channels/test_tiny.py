"""A new channel is its module, its test file, its fixtures and one registry line: the tiny
channel (``tests/channels/tiny.py``) reaches residents' reports through the real app with no
change anywhere in gateway/ (docs/channels.md walks through it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

import channels
from gateway.core.classify import PlaceholderClassifier
from gateway.http.app import create_app
from tests.channels.tiny import TinyChannel, signature
from tests.harness import IncomingCase, Prepared, run_incoming

SECRET = "tiny-secret"
PATH = "/channels/tiny"


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    builtin = channels.builtin_channels
    monkeypatch.setattr(channels, "builtin_channels", lambda: (*builtin(), TinyChannel))  # the registry line
    monkeypatch.setenv("GATEWAY_TINY_SECRET", SECRET)  # the channel's own settings class reads it


@pytest.fixture
async def tiny(registered: None, aiohttp_client: Any, make_settings: Callable[..., Any], runner: Any) -> Any:
    return await aiohttp_client(create_app(make_settings(), classifier=PlaceholderClassifier(), runner=runner))


def signed(secret: str = SECRET) -> Callable[[Prepared], Prepared]:
    def prep(p: Prepared) -> Prepared:
        return replace(p, headers={**p.headers, "X-Tiny-Signature": signature(secret, p.body)})

    return prep


INCOMING = [
    IncomingCase(
        "valid message becomes a report",
        PATH,
        fixture="tiny/text.json",
        prep=signed(),
        messages=1,
        reports=1,
        text="路灯坏了",
        sender="tiny:resident-1",
        external_id="t-1",
    ),
    IncomingCase(
        "a retry is stored once", PATH, fixture="tiny/text.json", prep=signed(), repeat=2, messages=1, reports=1
    ),
    IncomingCase("bad signature", PATH, fixture="tiny/text.json", prep=signed("wrong"), status=403, messages=0),
    IncomingCase("missing field", PATH, fixture="tiny/missing_text.json", prep=signed(), status=400, messages=0),
]


@pytest.mark.parametrize("case", INCOMING, ids=str)
async def test_incoming(tiny: Any, case: IncomingCase) -> None:
    await run_incoming(tiny, case)


async def test_unconfigured_channel_has_no_endpoint(
    registered: None, monkeypatch: pytest.MonkeyPatch, aiohttp_client: Any, make_settings: Callable[..., Any]
) -> None:
    monkeypatch.delenv("GATEWAY_TINY_SECRET")
    client = await aiohttp_client(create_app(make_settings(), classifier=PlaceholderClassifier()))
    assert (await client.post(PATH, data=b"{}")).status == 404
