"""Console accounts, sessions, CSRF, login rate limiting, API keys, and the route guards.

- Passwords: argon2id (argon2-cffi's RFC 9106 defaults), verified in a thread; an unknown user
  is checked against a dummy hash so that timing does not tell which usernames exist.
- Sessions are server-side rows (``console_sessions``). The cookie holds a random token and its
  HMAC under ``GATEWAY_SECRET_KEY``; the table holds the token's sha256 only. Cookies are
  HttpOnly, SameSite=Strict, path ``/console`` and Secure when ``GATEWAY_PUBLIC_URL`` is https.
- CSRF: every unsafe request carries the session's token (form field ``_csrf`` or header
  ``X-CSRF-Token``), and a foreign ``Origin`` is refused. The login form, before a session
  exists, uses a signed double-submit cookie.
- Every console route is wrapped by ``guard(role)``, ``public`` or ``api_guard(scope)``; each sets
  ``console_guard`` on the handler, which ``tests/console/test_security.py`` checks for every
  route under ``/console`` and ``/api/v1/admin``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import html
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from gateway import keys
from gateway.console.throttle import DEVICE_LIMIT, IP_LIMIT, USER_LIMIT, LoginThrottle
from gateway.db import ApiKey, ConsoleSession, ConsoleUser, Database, utcnow
from gateway.settings import Settings, signing_key

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ROLES = ("moderator", "admin")
_RANK = {"moderator": 1, "admin": 2}
# Scopes a machine key may hold; "admin" implies every other one.
SCOPES = frozenset({"admin", "queue:read", "reviews:read", "reports:read", "open311:write", "dispatch"})
SESSION_COOKIE = "gw_console"
LOGIN_COOKIE = "gw_console_login"
COOKIE_PATH = "/console"
SESSION_IDLE = timedelta(hours=8)
SESSION_MAX = timedelta(hours=12)
DEVICE_COOKIE = "gw_console_device"
DEVICE_MAX_AGE_S = 180 * 86400
_USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
MIN_PASSWORD = 10
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_hasher = PasswordHasher()


class AuthError(ValueError):
    """A user or key could not be created (bad name, weak password, unknown role or scope)."""


# --------------------------------------------------------------------------- state


@dataclass
class ConsoleState:
    secret: bytes
    secure_cookies: bool
    limiter: LoginThrottle
    cache: dict[str, Any] = field(default_factory=dict)  # taxonomy, model info (read once)

    def sign(self, token: str) -> str:
        mac = hmac.new(self.secret, token.encode(), hashlib.sha256).hexdigest()
        return f"{token}.{mac}"

    def unsign(self, value: str) -> str | None:
        token, _, mac = value.rpartition(".")
        if not token or not hmac.compare_digest(self.sign(token), value):
            return None
        return token


CONSOLE = web.AppKey("console", ConsoleState)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("console_principal")


def make_state(settings: Settings, redis: Any = None) -> ConsoleState:
    secret = signing_key(settings, "console-session")
    secure = settings.public_url.lower().startswith("https://")
    return ConsoleState(secret=secret, secure_cookies=secure, limiter=LoginThrottle(redis))


# --------------------------------------------------------------------------- users and keys


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_hex(16))


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def check_new_user(username: str, password: str, role: str) -> None:
    if not _USERNAME_RE.match(username):
        raise AuthError("username: 2-64 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"password must have at least {MIN_PASSWORD} characters")


async def create_user(db: Database, username: str, password: str, role: str) -> ConsoleUser:
    check_new_user(username, password, role)
    hashed = await asyncio.to_thread(hash_password, password)
    async with db.session() as s, s.begin():
        if await s.scalar(select(ConsoleUser.id).where(ConsoleUser.username == username)):
            raise AuthError(f"user {username} exists")
        user = ConsoleUser(username=username, password_hash=hashed, role=role, active=True)
        s.add(user)
    return user


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(db: Database, name: str, scopes: list[str]) -> str:
    """Store a new key and return it in full (shown once): ``gwk_<key_id>_<secret>``."""
    unknown = sorted(set(scopes) - SCOPES)
    if not name.strip() or len(name) > 100:
        raise AuthError("name: 1-100 characters")
    if not scopes or unknown:
        extra = f"; unknown: {', '.join(unknown)}" if unknown else ""
        raise AuthError(f"scopes must be some of {', '.join(sorted(SCOPES))}{extra}")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    async with db.session() as s, s.begin():
        if await s.scalar(select(ApiKey.id).where(ApiKey.name == name)):
            raise AuthError(f"API key {name} exists")
        s.add(ApiKey(name=name, key_id=key_id, secret_hash=_secret_hash(secret), scopes=sorted(set(scopes))))
    return f"gwk_{key_id}_{secret}"


async def check_api_key(db: Database, presented: str, scope: str) -> tuple[ApiKey | None, bool]:
    """The key that ``presented`` is (or None) and whether it holds ``scope``."""
    m = re.fullmatch(r"gwk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})", presented)
    if m is None:
        return None, False
    async with db.session() as s, s.begin():
        key = await s.scalar(select(ApiKey).where(ApiKey.key_id == m.group(1)))
        if key is None or key.revoked_at is not None:
            return None, False
        if not hmac.compare_digest(key.secret_hash, _secret_hash(m.group(2))):
            return None, False
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
            key.last_used_at = now
        return key, scope in key.scopes or "admin" in key.scopes


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: str
    csrf: str
    session_id: int

    @property
    def actor(self) -> str:
        """The history actor; schema.py shows "moderator…" actors by name in public views."""
        return f"moderator:{self.username}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can(self, role: str) -> bool:
        return _RANK.get(self.role, 0) >= _RANK[role]


def _state(request: web.Request) -> ConsoleState:
    return request.config_dict[CONSOLE]


def _set_cookie(request: web.Request, resp: web.StreamResponse, name: str, value: str, max_age: int | None) -> None:
    resp.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=_state(request).secure_cookies,
        max_age=max_age,
    )


async def authenticate(request: web.Request, username: str, password: str) -> tuple[ConsoleUser | None, int]:
    """The user, or None and the seconds to wait when the rate limit is reached."""
    limiter = _state(request).limiter
    ip = request.remote or "?"
    # Counted before the password check (gateway/console/throttle.py); a known browser has its own count.
    device = _device_of(request, username.lower())
    limits = {
        f"ip:{ip}": IP_LIMIT,
        **({f"device:{device}": DEVICE_LIMIT} if device else {f"user:{username.lower()}": USER_LIMIT}),
    }
    wait = await limiter.attempt(limits)
    if wait:
        log.warning("console login rate-limited", extra={"username": username[:64], "ip": ip})
        return None, wait
    async with request.config_dict[keys.DB].session() as s:
        user = await s.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
    ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        log.info("console login failed", extra={"username": username[:64], "ip": ip})
        return None, 0
    await limiter.succeeded([k for k in limits if not k.startswith("ip:")])
    return user, 0


def _device_of(request: web.Request, username: str) -> str | None:
    """The id of this browser's device cookie when it was issued to ``username``, else None."""
    raw = request.cookies.get(DEVICE_COOKIE)
    token = _state(request).unsign(raw) if raw else None
    if token is None or not token.startswith("device:"):
        return None
    _, name, device = token.split(":", 2) if token.count(":") >= 2 else ("", "", "")
    return device if name == username and device else None


async def start_session(request: web.Request, user: ConsoleUser, resp: web.StreamResponse) -> None:
    token, now = secrets.token_urlsafe(32), utcnow()
    async with request.config_dict[keys.DB].session() as s, s.begin():
        await s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
        s.add(
            ConsoleSession(
                token_hash=_secret_hash(token),
                user_id=user.id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                expires_at=now + SESSION_MAX,
                last_seen_at=now,
            )
        )
        row = await s.get(ConsoleUser, user.id)
        if row is not None:
            row.last_login_at = now
    _set_cookie(request, resp, SESSION_COOKIE, _state(request).sign(token), int(SESSION_MAX.total_seconds()))
    device = _state(request).sign(f"device:{user.username.lower()}:{secrets.token_urlsafe(12)}")
    _set_cookie(request, resp, DEVICE_COOKIE, device, DEVICE_MAX_AGE_S)  # this browser is known to the limiter
    resp.del_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    log.info("console login", extra={"username": user.username, "ip": request.remote})


async def load_principal(request: web.Request) -> Principal | None:
    raw = request.cookies.get(SESSION_COOKIE)
    token = _state(request).unsign(raw) if raw else None
    if token is None:
        return None
    now = utcnow()
    async with request.config_dict[keys.DB].session() as s:
        row = (
            await s.execute(
                select(ConsoleSession, ConsoleUser)
                .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
                .where(ConsoleSession.token_hash == _secret_hash(token))
            )
        ).first()
        if row is None:
            return None
        sess, user = row
        if not user.active or sess.expires_at <= now or now - sess.last_seen_at > SESSION_IDLE:
            return None
        if now - sess.last_seen_at > timedelta(minutes=1):
            sess.last_seen_at = now
            await s.commit()
    return Principal(user.id, user.username, user.role, sess.csrf_token, sess.id)


async def end_session(request: web.Request, principal: Principal, resp: web.StreamResponse) -> None:
    async with request.config_dict[keys.DB].session() as s, s.begin():
        await s.execute(delete(ConsoleSession).where(ConsoleSession.id == principal.session_id))
    resp.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def new_login_token(request: web.Request) -> tuple[str, str]:
    """A login form's nonce (for its cookie) and token (for the form): a signed double submit."""
    nonce = secrets.token_urlsafe(24)
    return nonce, _state(request).sign(nonce).rpartition(".")[2]


def set_login_cookie(request: web.Request, resp: web.StreamResponse, nonce: str) -> None:
    _set_cookie(request, resp, LOGIN_COOKIE, nonce, 3600)


def check_login_csrf(request: web.Request, presented: str) -> bool:
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    return bool(nonce) and _state(request).unsign(f"{nonce}.{presented}") == nonce and _same_origin(request)


# --------------------------------------------------------------------------- guards


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not every browser sends it on same-origin posts; the token still applies
        return True
    allowed = {f"{request.scheme}://{request.host}"}
    public = urlsplit(request.config_dict[keys.SETTINGS].public_url)
    allowed.add(f"{public.scheme}://{public.netloc}")
    return origin in allowed


async def _csrf_ok(request: web.Request, principal: Principal) -> bool:
    presented = request.headers.get("X-CSRF-Token")
    if presented is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get("_csrf")
        presented = value if isinstance(value, str) else None
    return bool(presented) and hmac.compare_digest(presented or "", principal.csrf) and _same_origin(request)


_REFUSAL_PAGE = (
    '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · 诉求审核台</title>'
    '<link rel="icon" href="data:,"><link rel="stylesheet" href="/console/static/console.css"></head>'
    '<body><main class="refusal">'
    '<h1>{title}</h1><p>{text}</p><p><a href="/console/">返回审核台</a></p></main></body></html>'
)
_REFUSAL_TITLES = {401: "请先登录", 403: "无权访问"}


def refusal(request: web.Request, status: int, message: str, zh: str = "") -> web.Response:
    """JSON (``message``) for machines; a short Chinese page (``zh``) for a moderator's browser."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    if wants_json or request.path.startswith("/api/"):
        return web.json_response({"error": message}, status=status, headers=HEADERS)
    page = _REFUSAL_PAGE.format(title=_REFUSAL_TITLES.get(status, "无法完成"), text=html.escape(zh or message))
    return web.Response(text=page, status=status, content_type="text/html", headers=HEADERS)


def secure(resp: web.StreamResponse) -> web.StreamResponse:
    for name, value in HEADERS.items():
        resp.headers.setdefault(name, value)
    return resp


def guard(role: str) -> Callable[[Handler], Handler]:
    """A console page or action for ``role`` and above; unsafe methods need the CSRF token."""
    if role not in _RANK:
        raise ValueError(role)

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            principal = await load_principal(request)
            if principal is None:
                if request.method in SAFE_METHODS and "application/json" not in request.headers.get("Accept", ""):
                    raise web.HTTPSeeOther(f"/console/login?next={quote(request.path_qs, safe='')}", headers=HEADERS)
                return refusal(request, 401, "login required", "登录已过期，请重新登录。")
            if not principal.can(role):
                log.warning("console role refused", extra={"username": principal.username, "path": request.path})
                return refusal(
                    request,
                    403,
                    "forbidden: this needs the admin role",
                    "此页面仅限管理员使用。如需权限，请联系管理员。",
                )
            if request.method not in SAFE_METHODS and not await _csrf_ok(request, principal):
                log.warning("console CSRF refused", extra={"username": principal.username, "path": request.path})
                return refusal(request, 403, "forbidden: missing or wrong CSRF token", "页面已过期，请刷新页面后重试。")
            request[PRINCIPAL] = principal
            return secure(await handler(request))

        guarded.console_guard = ("role", role)  # type: ignore[attr-defined]
        return guarded

    return wrap


def public(handler: Handler) -> Handler:
    """A console route open to anyone (the login page, static files)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        return secure(await handler(request))

    wrapped.console_guard = ("public", None)  # type: ignore[attr-defined]
    return wrapped


def api_guard(scope: str) -> Callable[[Handler], Handler]:
    """An admin API route for machine keys holding ``scope`` (``Authorization: Bearer gwk_…``)."""
    if scope not in SCOPES:
        raise ValueError(scope)

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            auth = request.headers.get("Authorization", "")
            presented = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("X-API-Key", "")
            key, allowed = (
                await check_api_key(request.config_dict[keys.DB], presented, scope) if presented else (None, False)
            )
            if key is None:
                resp = refusal(request, 401, "a valid API key is required")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
                return resp
            if not allowed:
                log.warning("API key scope refused", extra={"key": key.name, "scope": scope, "path": request.path})
                return refusal(request, 403, f"this key lacks the scope {scope}")
            return secure(await handler(request))

        guarded.console_guard = ("scope", scope)  # type: ignore[attr-defined]
        return guarded

    return wrap


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]
