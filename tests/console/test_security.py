"""Every console and admin API route is guarded; CSRF-less posts are refused; report text is escaped.

The routes are enumerated from the app, so a new route under /console or /api/v1/admin without a
guard (or without a sample value for its URL parameters below) fails here.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from gateway import keys
from gateway.console.auth import create_api_key
from gateway.db import ApiKey
from tests.console.conftest import login, seed

PREFIXES = ("/console", "/api/v1/admin")
PUBLIC = {("GET", "/console"), ("GET", "/console/login"), ("POST", "/console/login"), ("GET", "/console/static/{name}")}
PARAM = re.compile(r"\{(\w+)\}")


def guarded_routes(app):
    found = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method == "HEAD" or not path.startswith(PREFIXES):
            continue
        guard = getattr(route.handler, "console_guard", None)
        found.append((route.method, path, guard))
    return found


@pytest.fixture
async def world(app_client, users, runner):
    case = await seed(app_client, runner, "小区路灯坏了，电话13812345678")
    key = await create_api_key(app_client.app[keys.DB], "reader", ["reports:read"])
    async with app_client.app[keys.DB].session() as s:
        key_pk = await s.scalar(select(ApiKey.id))
    samples = {
        "case": case,
        "action": "priority",
        "field": "contact_phone",
        "key_id": str(key_pk),
        "name": "console.js",
        "username": "mod1",
        "change": "disable",
    }
    return {"samples": samples, "key": key, "case": case}


def url_for(path: str, samples: dict[str, str]) -> str:
    def fill(m: re.Match[str]) -> str:
        assert m.group(1) in samples, f"add a sample value for URL parameter {{{m.group(1)}}} of {path}"
        return samples[m.group(1)]

    return PARAM.sub(fill, path)


async def test_every_console_route_declares_a_guard(app_client):
    # One request first: a test that ends before the app's start-up sweep has finished its query
    # leaves aiosqlite's worker thread answering a closed loop (an unhandled thread exception).
    assert (await app_client.get("/console/login")).status == 200
    routes = guarded_routes(app_client.app)
    assert len(routes) >= 12
    unguarded = [(m, p) for m, p, g in routes if g is None]
    assert unguarded == [], f"routes without a console guard: {unguarded}"
    public = {(m, p) for m, p, g in routes if g[0] == "public"}
    assert public == PUBLIC, f"only the login page and static files may be public: {public - PUBLIC}"
    for _m, path, guard in routes:
        if path.startswith("/api/v1/admin"):
            assert guard[0] == "scope", f"{path}: the admin API takes API keys with scopes"


async def test_anonymous_requests_are_refused_everywhere(app_client, world):
    for method, path, guard in guarded_routes(app_client.app):
        if guard[0] == "public":
            continue
        resp = await app_client.request(method, url_for(path, world["samples"]), allow_redirects=False)
        if resp.status == 303:
            assert resp.headers["Location"].startswith("/console/login"), (method, path)
        else:
            assert resp.status == 401, (method, path, resp.status)


async def test_wrong_role_and_wrong_scope_are_refused(app_client, world):
    csrf = await login(app_client, "mod1")
    routes = guarded_routes(app_client.app)
    admin_only = [(m, p) for m, p, g in routes if g == ("role", "admin")]
    assert {p for _, p in admin_only} >= {"/console/admin", "/console/reports/{case}/pii/{field}"}
    for method, path in admin_only:
        resp = await app_client.request(
            method, url_for(path, world["samples"]), data={"_csrf": csrf}, allow_redirects=False
        )
        assert resp.status == 403, (method, path, resp.status)
    for method, path, guard in routes:
        if guard[0] != "scope":
            continue
        url = url_for(path, world["samples"])
        # A console session is no API credential; a key without the route's scope is refused.
        assert (await app_client.request(method, url)).status == 401, path
        resp = await app_client.request(method, url, headers={"Authorization": f"Bearer {world['key']}"})
        assert resp.status == 403, (path, resp.status)
        good = await create_api_key(app_client.app[keys.DB], f"k-{guard[1]}-{path[-6:]}", [guard[1]])
        resp = await app_client.request(method, url, headers={"Authorization": f"Bearer {good}"})
        assert resp.status == 200, (path, resp.status)


async def test_the_right_roles_get_through(app_client, world):
    await login(app_client, "admin1")
    for method, path, guard in guarded_routes(app_client.app):
        if method == "GET" and guard[0] == "role":
            resp = await app_client.get(url_for(path, world["samples"]), allow_redirects=False)
            assert resp.status == 200, (path, resp.status)
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
            assert resp.headers["Cache-Control"] == "no-store"


async def test_posts_without_a_valid_csrf_token_are_refused(app_client, world):
    csrf = await login(app_client, "admin1")
    posts = [(m, p) for m, p, g in guarded_routes(app_client.app) if m == "POST" and g[0] == "role"]
    assert posts
    for method, path in posts:
        url = url_for(path, world["samples"])
        for data, headers in (
            ({"priority": "P1"}, {}),
            ({"priority": "P1", "_csrf": "not-the-token"}, {}),
            ({"priority": "P1"}, {"X-CSRF-Token": csrf[:-1]}),
            ({"priority": "P1", "_csrf": csrf}, {"Origin": "https://evil.example"}),
        ):
            resp = await app_client.request(method, url, data=data, headers=headers, allow_redirects=False)
            assert resp.status == 403, (path, data, headers, resp.status)
    # Nothing happened: the report keeps its priority and the session still works.
    resp = await app_client.post(
        f"/console/reports/{world['case']}/actions/priority",
        data={"priority": "P2", "_csrf": csrf},
        headers={"Accept": "application/json"},
    )
    assert resp.status == 200 and (await resp.json())["priority"] == "P2"


XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>"\'&'


async def test_xss_payloads_in_reports_render_as_text(app_client, users, runner):
    case = await seed(
        app_client,
        runner,
        f"路灯 {XSS}",
        title=f"T{XSS}"[:200],
        location={"lat": 22.5, "lng": 114.0, "address": f"A{XSS}"},
    )
    await seed(app_client, runner, f"路灯 {XSS} 又坏了")  # a near-duplicate: its text shows in the merge view
    await login(app_client, "admin1")
    for url in ("/console/", f"/console/reports/{case}"):
        html = await (await app_client.get(url)).text()
        assert "<script>alert" not in html and "<img src=x" not in html, url
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html, url
    resp = await app_client.get(f"/console/reports/{case}/pii/text", headers={"Accept": "application/json"})
    assert resp.content_type == "application/json" and XSS in (await resp.json())["value"]


async def test_static_files_are_served_only_from_the_package(app_client):
    ok = await app_client.get("/console/static/console.js")
    assert ok.status == 200 and ok.content_type == "text/javascript"
    for name in ("..%2Fauth.py", ".hidden.js", "auth.py", "nope.js"):
        assert (await app_client.get(f"/console/static/{name}")).status == 404, name
