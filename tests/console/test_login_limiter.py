"""Issue 13, item 6: the login limiter counts before it checks, backs off instead of locking,
keeps a moderator's known browser out of an attacker's reach, and has bounded memory."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from gateway.console import auth
from gateway.console.throttle import MAX_KEYS, LoginThrottle
from tests.console.conftest import PASSWORD

FIELD = re.compile(r'name="_csrf" value="([^"]+)"')


async def _token(client) -> str:
    return FIELD.search(await (await client.get("/console/login")).text()).group(1)


async def _try(client, username: str, password: str, cookies=None):
    token = await _token(client)
    return await client.post(
        "/console/login",
        data={"_csrf": token, "username": username, "password": password},
        allow_redirects=False,
        cookies=cookies,
    )


async def test_parallel_guesses_are_counted_before_the_password_check(app_client, users, monkeypatch):
    checked = 0
    real = auth.verify_password

    def counting(stored, password):
        nonlocal checked
        checked += 1
        return real(stored, password)

    monkeypatch.setattr(auth, "verify_password", counting)
    token = await _token(app_client)
    results = await asyncio.gather(
        *(
            app_client.post("/console/login", data={"_csrf": token, "username": "mod1", "password": f"guess{i}"})
            for i in range(40)
        )
    )
    statuses = sorted(r.status for r in results)
    assert checked <= 5, f"{checked} passwords checked"
    assert statuses.count(429) >= 35 and all(int(r.headers["Retry-After"]) > 0 for r in results if r.status == 429)


async def test_an_anonymous_client_cannot_lock_a_moderator_out_of_their_browser(app_client, users):
    # The moderator logged in from this browser before: it carries a device cookie.
    resp = await _try(app_client, "mod1", PASSWORD)
    assert resp.status == 303
    device = resp.cookies[auth.DEVICE_COOKIE].value
    # An attacker fails on purpose, many times, without the cookie.
    app_client.session.cookie_jar.clear()
    attacker = app_client
    statuses = [(await _try(attacker, "mod1", "wrong-password")).status for _ in range(8)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    # Still refused to anyone unknown, even with the right password ...
    assert (await _try(attacker, "mod1", PASSWORD)).status == 429
    # ... but the moderator's own browser gets in.
    attacker.session.cookie_jar.clear()
    assert (await _try(app_client, "mod1", PASSWORD, cookies={auth.DEVICE_COOKIE: device})).status == 303


async def test_a_device_cookie_of_another_user_does_not_help(app_client, users):
    resp = await _try(app_client, "mod1", PASSWORD)
    device = resp.cookies[auth.DEVICE_COOKIE].value
    for _ in range(5):
        assert (await _try(app_client, "admin1", "nope", cookies={auth.DEVICE_COOKIE: device})).status == 401
    assert (await _try(app_client, "admin1", PASSWORD, cookies={auth.DEVICE_COOKIE: device})).status == 429


async def test_back_off_grows_with_each_refused_attempt():
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    waits = [await throttle.attempt({"user:x": 2}) for _ in range(4)]
    assert waits == [0, 0, 30, 30]  # the 2nd attempt was the last free one; then 30 s
    gaps = []
    for _ in range(4):  # each attempt let through after the back-off doubles the next one
        now[0] += waits[-1]
        assert await throttle.attempt({"user:x": 2}) == 0
        waits.append(await throttle.attempt({"user:x": 2}))
        gaps.append(waits[-1])
    assert gaps == [60, 120, 240, 480]
    now[0] += 900 + 480  # a quiet window forgets
    assert await throttle.attempt({"user:x": 2}) == 0 and await throttle.attempt({"user:x": 2}) == 0


async def test_memory_does_not_grow_with_every_user_name_tried():
    throttle = LoginThrottle()
    for i in range(MAX_KEYS + 5000):
        await throttle.attempt({f"user:name{i}": 5})
    assert len(throttle) == MAX_KEYS


@pytest.mark.redis
async def test_redis_backend_lets_exactly_the_limit_through_in_parallel(redis_url):
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        throttle = LoginThrottle(client)
        user, ip = f"user:{uuid.uuid4().hex}", f"ip:{uuid.uuid4().hex}"
        waits = await asyncio.gather(*(throttle.attempt({user: 5, ip: 20}) for _ in range(40)))
        assert sum(1 for w in waits if w == 0) == 5 and all(0 < w <= 30 for w in waits if w), waits
        await throttle.succeeded([user])
        assert await throttle.attempt({user: 5}) == 0
    finally:
        await client.aclose()
