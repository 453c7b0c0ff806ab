"""Console accounts: argon2 hashes, hardened session cookies, login CSRF and rate limit, API keys, CLI."""

from __future__ import annotations

import io
import re

from sqlalchemy import select

from gateway import keys
from gateway.cli import main
from gateway.console.auth import create_api_key
from gateway.db import ApiKey, ConsoleSession, ConsoleUser
from gateway.http.app import create_app
from tests.conftest import run_sync
from tests.console.conftest import PASSWORD, FakeClassifier, login

FIELD = re.compile(r'name="_csrf" value="([^"]+)"')


async def _login_form(client) -> str:
    return FIELD.search(await (await client.get("/console/login")).text()).group(1)


async def test_password_is_stored_as_argon2id(app_client, users):
    async with app_client.app[keys.DB].session() as s:
        user = await s.scalar(select(ConsoleUser).where(ConsoleUser.username == "mod1"))
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


async def test_login_sets_a_hardened_session_cookie(app_client, users):
    token = await _login_form(app_client)
    resp = await app_client.post(
        "/console/login", data={"_csrf": token, "username": "mod1", "password": PASSWORD}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/"
    cookie = resp.cookies["gw_console"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console"
    assert not cookie["secure"]  # plain http in this test; see the https test below
    # The cookie is signed and the database keeps only the token's hash.
    token_part = cookie.value.rpartition(".")[0]
    async with app_client.app[keys.DB].session() as s:
        stored = (await s.scalars(select(ConsoleSession.token_hash))).all()
    assert len(stored) == 1 and token_part not in stored[0]


async def test_cookie_is_secure_behind_https(aiohttp_client, make_settings, runner):
    app = create_app(
        make_settings(secret_key="k" * 32, public_url="https://gw.example.cn"),
        classifier=FakeClassifier(),
        runner=runner,
    )
    client = await aiohttp_client(app)
    from gateway.console.auth import create_user

    await create_user(client.app[keys.DB], "sec", PASSWORD, "moderator")
    page = await client.get("/console/login")
    assert page.cookies["gw_console_login"]["secure"]
    token = FIELD.search(await page.text()).group(1)
    # The client will not send back a Secure cookie over http: pass the login cookie by hand.
    resp = await client.post(
        "/console/login",
        data={"_csrf": token, "username": "sec", "password": PASSWORD},
        allow_redirects=False,
        cookies={"gw_console_login": page.cookies["gw_console_login"].value},
    )
    assert resp.status == 303 and resp.cookies["gw_console"]["secure"]


async def test_wrong_password_is_refused_then_rate_limited(app_client, users):
    for _ in range(5):
        token = await _login_form(app_client)
        resp = await app_client.post("/console/login", data={"_csrf": token, "username": "mod1", "password": "nope"})
        assert resp.status == 401 and "用户名或密码错误" in await resp.text()
    token = await _login_form(app_client)
    resp = await app_client.post("/console/login", data={"_csrf": token, "username": "mod1", "password": PASSWORD})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert "gw_console" not in resp.cookies


async def test_unknown_user_and_inactive_user_are_refused(app_client, users):
    token = await _login_form(app_client)
    resp = await app_client.post("/console/login", data={"_csrf": token, "username": "ghost", "password": PASSWORD})
    assert resp.status == 401
    async with app_client.app[keys.DB].session() as s, s.begin():
        (await s.scalar(select(ConsoleUser).where(ConsoleUser.username == "mod1"))).active = False
    token = await _login_form(app_client)
    resp = await app_client.post("/console/login", data={"_csrf": token, "username": "mod1", "password": PASSWORD})
    assert resp.status == 401


async def test_login_post_without_its_csrf_token_is_refused(app_client, users):
    await app_client.get("/console/login")
    resp = await app_client.post("/console/login", data={"_csrf": "forged", "username": "mod1", "password": PASSWORD})
    assert resp.status == 403 and "gw_console" not in resp.cookies


async def test_logout_ends_the_session_server_side(app_client, users):
    csrf = await login(app_client, "mod1")
    cookie = app_client.session.cookie_jar.filter_cookies(app_client.make_url("/console/"))["gw_console"].value
    resp = await app_client.post("/console/logout", data={"_csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    # Replaying the old cookie does not work: the session row is gone.
    app_client.session.cookie_jar.clear()
    resp = await app_client.get("/console/", cookies={"gw_console": cookie}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")


async def test_tampered_session_cookie_is_refused(app_client, users):
    await login(app_client, "mod1")
    cookie = app_client.session.cookie_jar.filter_cookies(app_client.make_url("/console/"))["gw_console"].value
    token, _, mac = cookie.rpartition(".")
    app_client.session.cookie_jar.clear()
    forged = f"{token[:-1]}{'A' if token[-1] != 'A' else 'B'}.{mac}"
    resp = await app_client.get("/console/", cookies={"gw_console": forged}, allow_redirects=False)
    assert resp.status == 303


async def test_login_redirects_only_inside_the_console(app_client, users):
    token = await _login_form(app_client)
    resp = await app_client.post(
        "/console/login",
        data={"_csrf": token, "username": "mod1", "password": PASSWORD, "next": "//evil.example/console/"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/"


async def test_api_keys_are_checked_by_scope(app_client):
    db = app_client.app[keys.DB]
    key = await create_api_key(db, "dispatch-system", ["queue:read"])
    assert key.startswith("gwk_")
    ok = await app_client.get("/api/v1/admin/queue", headers={"Authorization": f"Bearer {key}"})
    assert ok.status == 200 and (await ok.json())["total"] == 0
    lacking = await app_client.get("/api/v1/admin/labeled-examples.csv", headers={"X-API-Key": key})
    assert lacking.status == 403
    wrong = key[:-2] + ("xx" if not key.endswith("xx") else "yy")
    assert (await app_client.get("/api/v1/admin/queue", headers={"X-API-Key": wrong})).status == 401
    async with db.session() as s:
        row = await s.scalar(select(ApiKey).where(ApiKey.name == "dispatch-system"))
    assert row.last_used_at is not None and key.split("_", 2)[2] not in row.secret_hash  # the secret may hold "_"


def test_cli_creates_users_and_api_keys(monkeypatch, sqlite_url, capsys):
    monkeypatch.setenv("GATEWAY_DATABASE_URL", sqlite_url)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["user", "add", "alice", "--role", "admin", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "add", "bob", "--password-stdin"]) == 2
    assert "at least" in capsys.readouterr().err
    assert main(["apikey", "add", "open311-client", "--scopes", "open311:write,reports:read"]) == 0
    printed = capsys.readouterr().out.strip()
    assert re.fullmatch(r"gwk_[0-9a-f]{12}_[A-Za-z0-9_-]+", printed)
    assert main(["apikey", "add", "bad", "--scopes", "root"]) == 2

    async def rows():
        from gateway.db import Database

        db = Database(sqlite_url)
        try:
            async with db.session() as s:
                users = (await s.execute(select(ConsoleUser.username, ConsoleUser.role))).all()
                api = (await s.execute(select(ApiKey.name, ApiKey.scopes))).all()
        finally:
            await db.close()
        return users, api

    users, api = run_sync(rows())
    assert users == [("alice", "admin")]
    assert api == [("open311-client", ["open311:write", "reports:read"])]
