"""Flood limits per address on the public forms (gateway/http/floods.py); the chat channels'
per-sender limit is shown in tests/channels/test_wechat.py (and SMS below)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from gateway import keys
from gateway.core import replies
from gateway.core.classify import PlaceholderClassifier
from gateway.db import Message, Report
from gateway.http.app import create_app

FIXTURES = Path(__file__).parent / "fixtures"


async def count(client: Any, model: Any) -> int:
    async with client.app[keys.DB].session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def app_client(aiohttp_client: Any, make_settings: Callable[..., Any], runner: Any, **overrides: Any) -> Any:
    settings = make_settings(**overrides)
    return await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))


async def test_json_api_answers_429_with_retry_after(aiohttp_client: Any, make_settings: Any, runner: Any) -> None:
    # The test client comes from 127.0.0.1: loopback must not be exempt for this test.
    client = await app_client(aiohttp_client, make_settings, runner, flood_ip_limit=2, flood_exempt_loopback=False)
    statuses = [(await client.post("/api/v1/reports", json={"text": f"路灯坏了{i}"})).status for i in range(3)]
    assert statuses == [201, 201, 429]
    resp = await client.post("/api/v1/reports", json={"text": "路灯坏了"})
    body = await resp.json()
    assert resp.status == 429 and body["error"] == replies.FLOODED
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert await count(client, Report) == 2


async def test_web_form_and_open311_answer_429(aiohttp_client: Any, make_settings: Any, runner: Any) -> None:
    client = await app_client(
        aiohttp_client,
        make_settings,
        runner,
        flood_ip_limit=1,
        flood_exempt_loopback=False,
        channels={"open311": {"api_keys": "test-key-1"}},
    )
    assert (await client.post("/report", data={"text": "路灯坏了"})).status in (200, 303)
    form = await client.post("/report", data={"text": "路灯坏了"}, allow_redirects=False)
    assert form.status == 429 and replies.FLOODED in await form.text() and form.headers["Retry-After"]
    body = (FIXTURES / "open311" / "post.form").read_bytes()
    o311 = await client.post(
        "/open311/v2/requests.json", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert o311.status == 429 and (await o311.json())[0]["description"] == replies.FLOODED
    assert await count(client, Report) == 1


async def test_loopback_is_exempt_by_default_and_limits_can_be_off(
    aiohttp_client: Any, make_settings: Any, runner: Any
) -> None:
    client = await app_client(aiohttp_client, make_settings, runner, flood_ip_limit=1)
    statuses = [(await client.post("/api/v1/reports", json={"text": f"路灯坏了{i}"})).status for i in range(3)]
    assert statuses == [201, 201, 201]  # a same-host proxy and the benches post from 127.0.0.1
    off = await app_client(aiohttp_client, make_settings, runner, flood_ip_limit=0, flood_exempt_loopback=False)
    assert [(await off.post("/api/v1/reports", json={"text": "x"})).status for _ in range(3)] == [201] * 3


async def test_a_flooding_sms_sender_gets_twiml_and_nothing_is_stored(
    aiohttp_client: Any, make_settings: Any, runner: Any
) -> None:
    token, public = "twilio-token-for-floods", "http://gateway.test"
    client = await app_client(
        aiohttp_client,
        make_settings,
        runner,
        flood_sender_limit=2,
        channels={"sms": {"account_sid": "AC" + "0" * 32, "auth_token": token, "from_": "+8610690000000"}},
    )
    path = "/channels/sms/twilio"
    answers = []
    for i in range(3):
        form = {"From": "+8613812345678", "Body": f"路灯坏了{i}", "MessageSid": f"SM{i:032d}", "NumMedia": "0"}
        sig = RequestValidator(token).compute_signature(public + path, form)
        resp = await client.post(path, data=form, headers={"X-Twilio-Signature": sig})
        assert resp.status == 200
        answers.append(await resp.text())
    assert replies.FLOODED in answers[2] and "<Response>" in answers[2]
    assert all(replies.FLOODED not in a for a in answers[:2])
    assert await count(client, Message) == 2


async def test_processes_share_the_count_through_redis(
    aiohttp_client: Any, make_settings: Any, runner: Any, redis_url: str
) -> None:
    """Production: two `gateway serve` processes behind one balancer count one allowance."""
    shared = {"redis_url": redis_url, "flood_ip_limit": 1, "flood_exempt_loopback": False}
    one = await app_client(aiohttp_client, make_settings, runner, **shared)
    two = await app_client(aiohttp_client, make_settings, runner, **shared)
    assert (await one.post("/api/v1/reports", json={"text": "路灯坏了"})).status == 201
    assert (await two.post("/api/v1/reports", json={"text": "路灯坏了"})).status == 429
