"""Settings: GATEWAY_* environment, .env, secrets that never print, errors that name variables."""

from __future__ import annotations

import pytest

from channels import builtin_channels
from channels.sms import TwilioSettings
from channels.wechat import WeChatSettings
from gateway.settings import Settings, SettingsError, describe, env_names, load_settings


def test_defaults_are_embedded_mode(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = Settings(_env_file=None)
    assert s.embedded and s.db_url == "sqlite+aiosqlite:///var/gateway.db"
    assert s.case_prefix == "ZW" and s.port == 8080


def test_environment_and_dotenv_are_read(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("GATEWAY_CASE_PREFIX=LH\nGATEWAY_SESSION_WINDOW_S=90\n")
    monkeypatch.setenv("GATEWAY_REDIS_URL", "redis://127.0.0.1:6379/0")
    s = load_settings()
    assert (s.case_prefix, s.session_window_s, s.embedded) == ("LH", 90, False)


def test_secrets_never_print(monkeypatch):
    monkeypatch.setenv("GATEWAY_DISPATCH_URL", "https://dispatch.example/hook")
    monkeypatch.setenv("GATEWAY_DISPATCH_SECRET", "s3cr3t-value")
    monkeypatch.setenv("GATEWAY_WECHAT_APP_SECRET", "wx-secret-value")
    s = load_settings(_env_file=None)
    for shown in (repr(s), str(s), str(describe(s))):
        assert "s3cr3t-value" not in shown and "wx-secret-value" not in shown
    assert describe(s)["GATEWAY_DISPATCH_SECRET"] == "***"
    assert s.dispatch_secret.get_secret_value() == "s3cr3t-value"
    wechat = WeChatSettings(_env_file=None)  # a channel's own settings mask theirs the same way
    for shown in (repr(wechat), str(wechat), str(describe(wechat))):
        assert "wx-secret-value" not in shown
    assert describe(wechat)["GATEWAY_WECHAT_APP_SECRET"] == "***"
    assert wechat.app_secret.get_secret_value() == "wx-secret-value"


def test_channel_settings_keep_their_variable_names(monkeypatch):
    monkeypatch.setenv("GATEWAY_TWILIO_FROM", "+8610690000000")  # `from` is a keyword: the field is `from_`
    monkeypatch.setenv("GATEWAY_WECHAT_TOKEN", "tok")
    assert TwilioSettings(_env_file=None).from_ == "+8610690000000"
    assert env_names(TwilioSettings)["from_"] == "GATEWAY_TWILIO_FROM"
    assert describe(TwilioSettings(_env_file=None))["GATEWAY_TWILIO_FROM"] == "+8610690000000"
    assert WeChatSettings(_env_file=None).token.get_secret_value() == "tok"


def test_the_gateway_settings_name_no_channel_variable():
    gateway = set(env_names(Settings).values())
    for channel in builtin_channels():
        if channel.settings_class is not None:
            prefix = channel.settings_class.model_config["env_prefix"]
            assert [v for v in gateway if v.startswith(prefix)] == [], f"{channel.name} owns {prefix}*"


def test_channel_settings_are_given_in_code_not_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("GATEWAY_CHANNEL_SETTINGS", '{"wechat": {"token": "t"}}')
    with pytest.raises(SettingsError, match="GATEWAY_CHANNEL_SETTINGS"):
        load_settings(_env_file=None)
    monkeypatch.delenv("GATEWAY_CHANNEL_SETTINGS")
    given = WeChatSettings(_env_file=None, token="t")
    assert load_settings(_env_file=None, channel_settings={"wechat": given}).channel_settings["wechat"] is given
    assert "GATEWAY_CHANNEL_SETTINGS" not in describe(load_settings(_env_file=None))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"GATEWAY_DISPATCH_URL": "https://d.example/x"}, "GATEWAY_DISPATCH_SECRET"),
        ({"GATEWAY_ENV": "production"}, "GATEWAY_SECRET_KEY"),
        ({"GATEWAY_CASE_PREFIX": "zw1"}, "GATEWAY_CASE_PREFIX"),
        ({"GATEWAY_PORT": "eighty"}, "GATEWAY_PORT"),
        ({"GATEWAY_DATABASE_URL": "mysql://x"}, "GATEWAY_DATABASE_URL"),
    ],
)
def test_bad_configuration_fails_naming_the_variable(monkeypatch, env, named):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert named in str(err.value)


def test_signing_keys_are_per_purpose_and_the_dev_key_persists(tmp_path):
    from gateway.settings import signing_key

    dev = Settings(_env_file=None, var_dir=tmp_path)
    first = signing_key(dev, "console-session")
    assert first == signing_key(Settings(_env_file=None, var_dir=tmp_path), "console-session")  # survives restart
    assert first != signing_key(dev, "rating-link")
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    prod = Settings(_env_file=None, var_dir=tmp_path, env="production", secret_key="k" * 32)
    assert signing_key(prod, "console-session") != first
