"""The README stays true: every setting is in its configuration table (a channel's settings in
its channel's section), every command in its list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from channels import builtin_channels
from gateway.cli import build_parser
from gateway.settings import Settings, env_names

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
WITH_SETTINGS = [c for c in builtin_channels() if c.settings_class is not None]


def sections() -> dict[str, set[str]]:
    """The configuration table: each section's heading and the variables its rows name first."""
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    found: dict[str, set[str]] = {}
    heading = ""
    for line in table.splitlines():
        first = line.split("|")[1].strip() if line.startswith("|") else ""
        if first.startswith("**"):
            heading = first
        found.setdefault(heading, set()).update(re.findall(r"`(GATEWAY_[A-Z0-9_]+)`", first))
    return found


def channel_section(module: str) -> str:
    """The heading of a channel's section: it names the channel's module (``channels/wechat.py``)."""
    path = module.replace(".", "/") + ".py"
    [heading] = [h for h in sections() if f"`{path}`" in h] or [f"no section names `{path}`"]
    return heading


def test_every_gateway_setting_is_documented():
    channel_headings = {channel_section(c.__module__) for c in WITH_SETTINGS}
    documented = set().union(*(names for h, names in sections().items() if h not in channel_headings))
    fields = set(env_names(Settings).values())
    assert fields - documented == set(), "add these to the README's configuration table"
    assert documented - fields == set(), "the README names settings that do not exist"


@pytest.mark.parametrize("channel", WITH_SETTINGS, ids=lambda c: c.name)
def test_every_channel_setting_is_documented_in_its_section(channel):
    documented = sections()[channel_section(channel.__module__)]
    fields = set(env_names(channel.settings_class).values())
    assert fields - documented == set(), f"add these to the README's {channel.name} section"
    assert documented - fields == set(), f"the README's {channel.name} section names settings it does not have"


def test_every_command_is_listed():
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for command in commands:
        assert f"`gateway {command}" in README, f"`gateway {command}` is missing from the README"


def test_quick_start_is_two_commands():
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert lines == ["make run", "make test"]
