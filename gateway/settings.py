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
from collections.abc import Mapping
from functools import cache, cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    Field,
    InstanceOf,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
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
    # Intake (gateway/core/intake.py): concurrent intakes of a process are committed in batches of
    # at most intake_batch_max; PostgreSQL runs up to intake_parallel_batches at once (SQLite one).
    # Beyond intake_max_in_flight intakes waiting, channels answer at once with what their provider
    # retries (HTTP 503 + Retry-After) instead of queueing past the provider's time-out.
    intake_batch_max: int = Field(default=64, ge=1, le=1000)
    intake_parallel_batches: int = Field(default=4, ge=1, le=64)
    intake_max_in_flight: int = Field(default=512, ge=1)
    # After the start-up warm-up, freeze start-up objects out of the garbage collector (gc.freeze):
    # shorter collection pauses under load. Off in the tests (many apps share one process).
    gc_freeze: bool = True
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
    # Flood limits at the edge (gateway/http/floods.py); 0 turns one off.
    flood_window_s: int = 60
    flood_sender_limit: int = 30  # messages per window from one chat sender (WeChat openid, phone, Weibo uid)
    flood_ip_limit: int = 60  # posts per window from one address to the web form, JSON API and Open311
    flood_exempt_loopback: bool = True  # 127.0.0.1/::1 (a same-host reverse proxy, the benches) skip the IP limit
    # Slow clients (gateway/http/slow_clients.py): a connection that has not sent a whole request
    # head within header_timeout_s (also how long an idle keep-alive connection stays open: above a
    # proxy's usual 60 s), a body silent for read_timeout_s or unfinished after body_timeout_s, is closed.
    header_timeout_s: float = 75.0
    read_timeout_s: float = 30.0
    body_timeout_s: float = 300.0
    # /metrics and /api/v1/stats: open to anyone, or (False) to loopback and the bearer token
    # below; unset: open in development and test, closed in production.
    metrics_public: bool | None = None
    metrics_token: SecretStr | None = None

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
    # Each channel's own settings (``ChannelSettings`` in its module, ``GATEWAY_<NAME>_*``) are
    # its own; these are given in code only (tests, a program embedding the gateway), by channel
    # name, and win over the environment. Never read from the environment.
    channel_settings: Mapping[str, InstanceOf[BaseSettings]] = Field(default_factory=dict, exclude=True)

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

    @field_validator("channel_settings", mode="before")
    @classmethod
    def _given_in_code(cls, value: object) -> object:
        if isinstance(value, Mapping) and all(isinstance(v, BaseSettings) for v in value.values()):
            return value
        raise ValueError("is not read from the environment: a channel's settings are its GATEWAY_<NAME>_* variables")

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
    def metrics_open(self) -> bool:
        return self.metrics_public if self.metrics_public is not None else self.env != "production"


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning pydantic's error into one that names the environment variables."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise settings_error(exc, Settings) from None


def settings_error(exc: ValidationError, settings_class: type[BaseSettings]) -> SettingsError:
    """pydantic's error about ``settings_class`` (the gateway's or a channel's), naming each variable."""
    names = env_names(settings_class)
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        name = names.get(field, (prefix + field).upper()) if field else "settings"
        lines.append(f"{name}: {err['msg']}")
    return SettingsError("invalid configuration:\n  " + "\n  ".join(lines))


def env_names(settings_class: type[BaseSettings]) -> dict[str, str]:
    """The environment variable of each field of ``settings_class`` read from the environment:
    the prefix and the field's name, or the field's own ``validation_alias`` where it has one."""
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    return {
        name: (info.validation_alias if isinstance(info.validation_alias, str) else prefix + name).upper()
        for name, info in settings_class.model_fields.items()
        if not info.exclude
    }


def describe(settings: BaseSettings) -> dict[str, object]:
    """The effective settings (the gateway's or a channel's) with secrets masked, by variable, for
    `gateway serve --check` and logs."""
    out: dict[str, object] = {}
    names = env_names(type(settings))
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = "***" if value.get_secret_value() else ""
        value = redact(name, value)  # passwords in URLs, key lists (``redact`` below)
        out[names[name]] = str(value) if isinstance(value, Path) else value
    return out


def signing_key(settings: Settings, purpose: str) -> bytes:
    """A key for signing ``purpose`` (cookies, rating links), derived from GATEWAY_SECRET_KEY.

    Production requires the secret key. In development, when it is unset, a random key is made
    once and kept in ``<var_dir>/secret.key`` (mode 0600), so links and sessions survive a restart.
    """
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        root = settings.secret_key.get_secret_value().encode()
    else:
        var_dir = str(settings.var_dir)
        root = _dev_key_in(var_dir, "" if os.path.isabs(var_dir) else os.getcwd())
    return _derive(root, purpose)


@cache  # signing runs on request paths (every complaint's owner link): derive each key once
def _derive(root: bytes, purpose: str) -> bytes:
    return hmac.new(root, purpose.encode(), hashlib.sha256).digest()


@cache
def _dev_key_in(var_dir: str, cwd: str) -> bytes:
    """The development key of ``var_dir`` (relative to ``cwd`` unless absolute)."""
    return _dev_key((Path(cwd) / var_dir / "secret.key").resolve())


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
