"""One typed settings object, read from ``GATEWAY_*`` environment variables and ``.env``.

Secrets are ``SecretStr`` so a repr, a log line or a traceback never shows them. A value that
is required by another (a dispatch URL needs its secret) fails at start-up naming the variable.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from functools import cache, cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from grid.datum import parse_channel_datums

ENV_PREFIX = "GATEWAY_"


class SettingsError(RuntimeError):
    """Start-up configuration is invalid; the message names each variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # --- process and storage ---
    env: Literal["development", "production", "test"] = "development"
    var_dir: Path = Path("var")
    database_url: str = ""  # default: sqlite+aiosqlite:///<var_dir>/gateway.db
    redis_url: str | None = None  # unset: embedded mode (in-process tasks and caches)
    auto_migrate: bool = True  # apply migrations when `gateway serve` starts
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    secret_key: SecretStr | None = None  # signs cookies and status links; required in production
    shutdown_timeout_s: float = 15.0

    # --- intake ---
    case_prefix: str = "ZW"
    session_window_s: int = 300
    max_json_bytes: int = 1 << 20
    max_photo_bytes: int = 5 << 20
    max_photos: int = 6
    sweep_interval_s: float = 30.0  # how often stuck reports are re-enqueued
    stuck_after_s: float = 60.0
    heartbeat_interval_s: float = 2.0  # process lease renewal (gateway/core/leases.py)
    lease_ttl_s: float = 6.0  # a lease not renewed for this long is ended and its work resumed
    task_visibility_timeout_s: int = 900  # Redis redelivers a task not acked by then (> every countdown)
    media_dir: Path | None = None  # default: <var_dir>/media
    media_fetch_max_bytes: int = 20 << 20  # cap of one media download from a channel's API
    contact_location_max_age_s: int = 600  # a LOCATION event this recent locates a new report

    # --- grid (网格; gateway/core/placing.py, docs/grid.md) ---
    grid_file: Path | None = None  # default: <var_dir>/grid/grid.geojson, else the bundled Longhua sample
    grid_snap_m: float = 200.0  # a point this close outside every unit goes to the nearest unit
    grid_address_min_confidence: float = 0.5  # an address match below this does not place a report
    grid_datums: str = ""  # per-channel datum overrides, e.g. "weibo=wgs84,wechat=gcj02"
    map_tile_url: str = ""  # base map tiles for the console map ({z}/{x}/{y}); empty: the grid alone

    # --- classification ---
    model_dir: Path | None = None  # default: the bundled model, trained from the seed corpus
    taxonomy: Path | None = None  # default: the bundled city taxonomy
    classifier: Literal["nlp", "placeholder"] = "nlp"

    # --- channels ---
    wechat_token: SecretStr | None = None
    wechat_aes_key: SecretStr | None = None
    wechat_app_id: str | None = None
    wechat_app_secret: SecretStr | None = None
    wechat_api_base: str = "https://api.weixin.qq.com/cgi-bin/"
    wechat_timestamp_window_s: int = 300
    wechat_allow_plain: bool = False  # accept plain callbacks although an AES key is set (while switching modes)
    wechat_template_id: str | None = None  # template message for news outside the 48 h window
    wechat_template_fields: str = ""  # JSON {"template key": "text|case_number|time"}; see channels/wechat.py
    wechat_template_url: str | None = None  # link of the template message; {case} is replaced
    wechat_accounts: SecretStr | None = None  # JSON {"name": {"token": ..., ...}}: extra accounts
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_api_base: str | None = None
    twilio_trust_forwarded: bool = False  # also check signatures against X-Forwarded-Proto/Host
    weibo_app_key: str | None = None
    weibo_app_secret: SecretStr | None = None
    weibo_access_token: SecretStr | None = None
    weibo_api_base: str = "https://api.weibo.com/2/"
    weibo_timestamp_window_s: int = 300  # pushes with an older or newer timestamp are refused (0: off)
    weibo_reply_url: str = "https://m.api.weibo.com/2/messages/reply.json"  # fan-service reply API
    weibo_media_url: str = "https://upload.api.weibo.com/2/mss/msget"  # fan-service media download
    weibo_poll_interval_s: float = 0.0  # @-mention poller (gateway/tasks/mentions.py); 0 = off
    weibo_poll_max_pages: int = 5  # pages of mentions fetched per run at most
    weibo_poll_page_size: int = 50  # mentions per page (Weibo allows up to 200)
    weibo_poll_timeout_s: float = 10.0  # timeout of one mentions API call
    open311_api_keys: str = ""

    # --- dispatch ---
    dispatch_url: AnyHttpUrl | None = None
    dispatch_secret: SecretStr | None = None
    routing_table: Path | None = None  # YAML: category/district -> dispatch target (adapters/routing.py)
    dispatch_timeout_s: float = 10.0
    dispatch_retry_for_s: float = 86400.0  # failing this long: dead-lettered (`gateway deliveries --dead`)
    dispatch_backoff_base_s: float = 5.0  # exponential backoff with full jitter, doubled per attempt
    dispatch_backoff_cap_s: float = 300.0
    dispatch_alert_interval_s: float = 60.0  # one "dispatch target failing" warning per target this often
    dispatch_mask_pii: bool = True  # mask phone/ID numbers in the text handed to dispatch
    dispatch_callback_window_s: int = 300  # accepted clock skew of a callback's timestamp
    rating_window_s: int = 7 * 86400  # a digit reply this long after `resolved` is a rating

    @field_validator("case_prefix")
    @classmethod
    def _prefix_is_capitals(cls, value: str) -> str:
        if not (1 <= len(value) <= 8 and value.isascii() and value.isalpha() and value.isupper()):
            raise ValueError("must be 1-8 capital letters A-Z")
        return value

    @field_validator("grid_datums")
    @classmethod
    def _datum_pairs(cls, value: str) -> str:
        parse_channel_datums(value)  # ValueError names the bad pair
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://...")
        return value

    @model_validator(mode="after")
    def _required_together(self) -> Settings:
        if self.dispatch_url and not self.dispatch_secret:
            raise ValueError("GATEWAY_DISPATCH_SECRET is required when GATEWAY_DISPATCH_URL is set")
        if self.env == "production" and not self.secret_key:
            raise ValueError("GATEWAY_SECRET_KEY is required when GATEWAY_ENV=production")
        if self.wechat_app_id and not self.wechat_token:
            raise ValueError("GATEWAY_WECHAT_TOKEN is required when GATEWAY_WECHAT_APP_ID is set")
        return self

    @cached_property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.var_dir / 'gateway.db'}"

    @cached_property
    def media_path(self) -> Path:
        return self.media_dir or self.var_dir / "media"

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    @property
    def open311_keys(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.open311_api_keys.split(",") if k.strip())


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning pydantic's error into one that names the environment variables."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = "".join(str(p) for p in err["loc"])
            name = f"{ENV_PREFIX}{loc.upper()}" if loc else "settings"
            lines.append(f"{name}: {err['msg']}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def describe(settings: Settings) -> dict[str, object]:
    """The effective settings with secrets masked, for `gateway serve --check` and logs."""
    out: dict[str, object] = {}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = "***" if value.get_secret_value() else ""
        value = redact(name, value)  # passwords in URLs, key lists (``redact`` below)
        out[f"{ENV_PREFIX}{name.upper()}"] = str(value) if isinstance(value, Path) else value
    return out


def signing_key(settings: Settings, purpose: str) -> bytes:
    """A key for signing ``purpose`` (cookies, rating links), derived from GATEWAY_SECRET_KEY.

    Production requires the secret key. In development, when it is unset, a random key is made
    once and kept in ``<var_dir>/secret.key`` (mode 0600), so links and sessions survive a restart.
    """
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        root = settings.secret_key.get_secret_value().encode()
    else:
        root = _dev_key((Path(settings.var_dir) / "secret.key").resolve())
    return hmac.new(root, purpose.encode(), hashlib.sha256).digest()


@cache  # read once per process: signing happens on request paths (status pages, rating links)
def _dev_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip().encode()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


# ---------------------------------------------------------------- redact
# Masking of secrets in configuration values shown to people (``gateway serve --check``).
#
# ``SecretStr`` settings mask themselves. Others carry secrets inside them: a database or Redis
# URL's password, API keys in a comma-separated list, a token in a webhook URL's query string.
# ``redact`` masks those: URL passwords and query values, and every value whose name says it is
# a key, token, secret or password (issue 13, item 8).

MASK = "***"
_SECRET_NAME = re.compile(r"(^|_)(keys?|tokens?|secrets?|passwords?|passwd|credentials?)$", re.IGNORECASE)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def mask_url(url: str) -> str:
    """``url`` with the password of its user part and the values of its query masked."""
    try:
        parts = urlsplit(url)
        if "@" not in parts.netloc and not parts.query and not parts.fragment:
            return url
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
        query = "&".join(f"{p.split('=', 1)[0]}={MASK}" if "=" in p else p for p in parts.query.split("&") if p)
        return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
    except ValueError:
        return MASK


def redact(name: str, value: object) -> object:
    """The value of setting ``name`` as it may be shown."""
    if type(value).__name__.endswith("Url"):  # pydantic's URL types
        value = str(value)
    if isinstance(value, str) and value and _SECRET_NAME.search(name):
        return MASK
    if isinstance(value, str) and _URL.match(value):
        return mask_url(value)
    return value
