"""The README stays true: every setting is in its configuration table, every command in its list."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.cli import build_parser
from gateway.settings import ENV_PREFIX, Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented():
    documented = set(re.findall(r"`(GATEWAY_[A-Z0-9_]+)`", README))
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert fields - documented == set(), "add these to the README's configuration table"
    assert documented - fields == set(), "the README names settings that do not exist"


def test_every_command_is_listed():
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for command in commands:
        assert f"`gateway {command}" in README, f"`gateway {command}` is missing from the README"


def test_quick_start_is_two_commands():
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert lines == ["make run", "make test"]
