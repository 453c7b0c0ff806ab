"""What an operator meets first on the command line: `serve --check` shows effective values and
warns; a command run away from the database says so in one line instead of a traceback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gateway.cli import main

VARS = ("GATEWAY_DATABASE_URL", "GATEWAY_MEDIA_DIR", "GATEWAY_DISPATCH_URL", "GATEWAY_ROUTING_TABLE")


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh directory with none of the gateway's settings in the environment."""
    for name in (*VARS, "GATEWAY_SECRET_KEY", "GATEWAY_VAR_DIR", "GATEWAY_WECHAT_TOKEN", "GATEWAY_WECHAT_APP_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_serve_check_prints_effective_values_and_warnings(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_WECHAT_TOKEN", "tok")
    assert main(["serve", "--check"]) == 0
    captured = capsys.readouterr()
    shown = json.loads(captured.out)
    assert shown["GATEWAY_DATABASE_URL"] == "sqlite+aiosqlite:///var/gateway.db"
    assert shown["GATEWAY_MEDIA_DIR"] == "var/media"
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert any("GATEWAY_DISPATCH_URL" in w for w in warnings)
    assert any("GATEWAY_SECRET_KEY is unset" in w for w in warnings)
    assert any("GATEWAY_WECHAT_APP_SECRET" in w for w in warnings)
    assert not (elsewhere / "var").exists()  # a check creates nothing


@pytest.mark.parametrize("argv", [["stats"], ["deliveries"], ["user", "add", "mod1", "--password-stdin"]])
def test_command_away_from_the_database_is_one_clear_line(
    elsewhere: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gateway migrate" in err
    assert str(elsewhere / "var" / "gateway.db") in err
    assert not (elsewhere / "var" / "gateway.db").exists()  # no empty database left behind


def test_database_without_tables_is_one_clear_line(elsewhere: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (elsewhere / "var").mkdir()
    sqlite3.connect(elsewhere / "var" / "gateway.db").close()  # exists, never migrated
    assert main(["stats"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run `gateway migrate`" in err and "Traceback" not in err


def test_schema_output_names_its_dialect(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--which", "all"]) == 0
    schemas = json.loads(capsys.readouterr().out)
    for schema in schemas.values():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
