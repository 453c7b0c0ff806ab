"""The gateway command: help for every command, schema, migrate, settings errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, inspect

from gateway.cli import build_parser, main


def test_help_explains_each_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("serve", "worker", "migrate", "schema"):
        assert command in out
    for command in ("serve", "worker", "migrate", "schema"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "usage: gateway " + command in capsys.readouterr().out


def test_schema_prints_the_report_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Report"
    for field in ("case_number", "status", "category", "location", "media", "history"):
        assert field in schema["properties"]


def test_migrate_creates_the_tables(monkeypatch, tmp_path, capsys):
    db = tmp_path / "cli.db"
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    assert main(["migrate"]) == 0
    tables = set(inspect(create_engine(f"sqlite:///{db}")).get_table_names())
    assert {"reports", "messages", "report_history", "case_counters", "alembic_version"} <= tables


def test_bad_settings_exit_2_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("GATEWAY_CASE_PREFIX", "bad prefix")
    assert main(["serve", "--check"]) == 2
    assert "GATEWAY_CASE_PREFIX" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GATEWAY_WECHAT_APP_ID": "wx1"}, "GATEWAY_WECHAT_TOKEN"),  # required together
        ({"GATEWAY_WECHAT_TIMESTAMP_WINDOW_S": "five"}, "GATEWAY_WECHAT_TIMESTAMP_WINDOW_S"),
        ({"GATEWAY_WEIBO_POLL_PAGE_SIZE": "many"}, "GATEWAY_WEIBO_POLL_PAGE_SIZE"),
    ],
)
def test_a_bad_channel_setting_exits_2_naming_the_variable(monkeypatch, capsys, tmp_path, env, named):
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["serve", "--check"]) == 2
    assert named in capsys.readouterr().err
    monkeypatch.setenv("GATEWAY_REDIS_URL", "redis://127.0.0.1:1/0")  # the worker stops before Celery starts
    assert main(["worker"]) == 2
    assert named in capsys.readouterr().err


def test_serve_check_shows_each_channel_setting(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEWAY_TWILIO_FROM", "+8610690000000")
    assert main(["serve", "--check"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["GATEWAY_TWILIO_FROM"] == "+8610690000000"
    assert shown["GATEWAY_WEIBO_POLL_INTERVAL_S"] == 0
    assert shown["GATEWAY_WECHAT_API_BASE"] == "https://api.weixin.qq.com/cgi-bin/"
    assert shown["GATEWAY_OPEN311_API_KEYS"] == ""


def test_serve_check_masks_secrets(monkeypatch, capsys):
    monkeypatch.setenv("GATEWAY_WECHAT_APP_SECRET", "topsecret")
    assert main(["serve", "--check"]) == 0
    out = capsys.readouterr().out
    assert "topsecret" not in out and json.loads(out)["GATEWAY_WECHAT_APP_SECRET"] == "***"


def test_worker_without_redis_is_refused(monkeypatch, capsys):
    monkeypatch.delenv("GATEWAY_REDIS_URL", raising=False)
    assert main(["worker"]) == 2
    assert "GATEWAY_REDIS_URL" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "--help"], capture_output=True, text=True, check=True)
    assert "gateway" in out.stdout
    assert build_parser().prog == "gateway"


def test_grid_commands_are_mounted(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GATEWAY_VAR_DIR", str(tmp_path / "var"))  # no import there: the bundled sample
    assert main(["grid", "locate", "--address", "民治街道上芬社区门口"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["code"] == "440309004008" and found["method"] == "address"
    assert main(["grid", "locate", "23.1291", "113.2644"]) == 1  # Guangzhou: outside every unit
    assert json.loads(capsys.readouterr().out)["found"] is False
    assert main(["grid", "words"]) == 0 and "上芬社区" in capsys.readouterr().out
