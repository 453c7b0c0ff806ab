"""A new channel is its module, its test file, its fixtures and one registry line: the tiny
channel (``tests/channels/tiny.py``) reaches residents' reports through the real app, its
settings are read, checked and masked, with no change anywhere in gateway/ (docs/channels.md
walks through it)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import channels
from gateway.cli import main
from gateway.core.classify import PlaceholderClassifier
from gateway.http.app import create_app
from gateway.runtime import load_accounts
from gateway.settings import Settings
from tests.channels.tiny import TinyChannel, signature
from tests.harness import IncomingCase, Prepared, run_incoming

SECRET = "tiny-secret"
PATH = "/channels/tiny"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    builtin = channels.builtin_channels
    monkeypatch.setattr(channels, "builtin_channels", lambda: (*builtin(), TinyChannel))  # the registry line
    monkeypatch.delenv("GATEWAY_TINY_SECRET", raising=False)


@pytest.fixture
async def tiny(registered: None, aiohttp_client: Any, make_settings: Callable[..., Any], runner: Any) -> Any:
    settings = make_settings(channels={"tiny": {"secret": SECRET}})  # the channel's own settings, by field
    return await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))


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
    registered: None, aiohttp_client: Any, make_settings: Callable[..., Any]
) -> None:
    client = await aiohttp_client(create_app(make_settings(), classifier=PlaceholderClassifier()))
    assert (await client.post(PATH, data=b"{}")).status == 404


def test_its_settings_are_its_variables_shown_masked(
    registered: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEWAY_TINY_SECRET", SECRET)  # what an operator sets; nothing given in code
    [acct] = [a for (name, _), a in load_accounts({"tiny": TinyChannel()}, Settings(_env_file=None)).items()]
    assert acct.get("secret") == SECRET
    assert main(["serve", "--check"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["GATEWAY_TINY_SECRET"] == "***" and SECRET not in out


def test_nothing_outside_its_files_knows_the_tiny_channel() -> None:
    own = {"tests/channels/tiny.py", "tests/channels/test_tiny.py", "docs/channels.md"}
    mentions = re.compile(r"TinyChannel|TinySettings|GATEWAY_TINY_|channels[./]tiny\b|fixtures/tiny")
    found = [
        str(path.relative_to(ROOT))
        for package in ("gateway", "channels", "adapters", "nlp", "grid", "tests", "docs", "bench")
        for path in (ROOT / package).rglob("*")
        if path.suffix in (".py", ".md", ".toml", ".yaml", ".json", ".cfg")
        and str(path.relative_to(ROOT)) not in own
        and not str(path.relative_to(ROOT)).startswith("tests/fixtures/tiny/")
        and mentions.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert found == []
