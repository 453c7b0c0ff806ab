"""Issue 13, item 8: ``gateway serve --check`` masks every secret, not only the SecretStr ones."""

from __future__ import annotations

import json

from gateway.cli import main
from gateway.settings import mask_url

SECRETS = {
    "GATEWAY_DATABASE_URL": ("postgresql+asyncpg://gateway:db-Pa55word@db:5432/gateway", "db-Pa55word"),
    "GATEWAY_REDIS_URL": ("redis://:redis-Pa55word@redis:6379/0", "redis-Pa55word"),
    "GATEWAY_OPEN311_API_KEYS": ("open311-key-one,open311-key-two", "open311-key"),
    "GATEWAY_DISPATCH_URL": ("https://hook:dispatch-pw@dispatch.example/hook?token=url-token-9", "url-token-9"),
    "GATEWAY_DISPATCH_SECRET": ("dispatch-hmac-secret", "dispatch-hmac-secret"),
    "GATEWAY_WECHAT_ACCOUNTS": ('{"b": {"token": "wx-acct-token"}}', "wx-acct-token"),
    "GATEWAY_TWILIO_AUTH_TOKEN": ("twilio-auth-token", "twilio-auth-token"),
    "GATEWAY_WEIBO_ACCESS_TOKEN": ("weibo-access-token", "weibo-access-token"),
    "GATEWAY_SECRET_KEY": ("the-secret-key", "the-secret-key"),
}


def test_serve_check_shows_no_secret(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name, (value, _) in SECRETS.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", "--check"]) == 0
    out = capsys.readouterr().out
    for name, (_, secret) in SECRETS.items():
        assert secret not in out, f"{name} shows {secret!r}"
    shown = json.loads(out)
    assert set(SECRETS) <= set(shown), "every setting is listed, the channels' own too"
    assert shown["GATEWAY_TWILIO_AUTH_TOKEN"] == shown["GATEWAY_WEIBO_ACCESS_TOKEN"] == "***"
    assert shown["GATEWAY_DATABASE_URL"] == "postgresql+asyncpg://gateway:***@db:5432/gateway"  # still useful
    assert shown["GATEWAY_REDIS_URL"] == "redis://:***@redis:6379/0"
    assert shown["GATEWAY_OPEN311_API_KEYS"] == "***"
    assert "dispatch.example/hook?token=***" in shown["GATEWAY_DISPATCH_URL"]
    assert "dispatch-pw" not in out


def test_mask_url_keeps_what_is_not_secret():
    assert mask_url("sqlite+aiosqlite:///var/gateway.db") == "sqlite+aiosqlite:///var/gateway.db"
    assert mask_url("https://api.weixin.qq.com/cgi-bin/") == "https://api.weixin.qq.com/cgi-bin/"
    assert mask_url("redis://user@h/0") == "redis://***@h/0"
