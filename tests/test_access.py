"""Who may read /metrics and /api/v1/stats (gateway/http/access.py): open in development,
closed in production unless ``GATEWAY_METRICS_PUBLIC``; closed, a direct local client or the token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.core.classify import PlaceholderClassifier
from gateway.http.app import create_app

ROUTES = ("/metrics", "/api/v1/stats")
PROXIED = {"X-Forwarded-For": "203.0.113.9"}  # what a reverse proxy adds: not a local client


async def make(aiohttp_client: Any, make_settings: Callable[..., Any], runner: Any, **overrides: Any) -> Any:
    settings = make_settings(**overrides)
    return await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))


async def statuses(client: Any, headers: dict[str, str]) -> list[int]:
    return [(await client.get(route, headers=headers)).status for route in ROUTES]


async def test_production_closes_them_to_remote_clients(aiohttp_client: Any, make_settings: Any, runner: Any) -> None:
    client = await make(aiohttp_client, make_settings, runner, env="production", secret_key="k" * 32)
    assert await statuses(client, PROXIED) == [403, 403]
    assert await statuses(client, {}) == [200, 200]  # Prometheus on the same host
    stats = await client.get("/api/v1/stats", headers=PROXIED)
    assert stats.content_type == "application/json"  # the API's errors stay JSON


async def test_the_token_opens_them(aiohttp_client: Any, make_settings: Any, runner: Any) -> None:
    client = await make(
        aiohttp_client, make_settings, runner, env="production", secret_key="k" * 32, metrics_token="scrape-me"
    )
    assert await statuses(client, {**PROXIED, "Authorization": "Bearer scrape-me"}) == [200, 200]
    assert await statuses(client, {**PROXIED, "Authorization": "Bearer wrong"}) == [403, 403]


async def test_the_setting_decides_and_development_defaults_open(
    aiohttp_client: Any, make_settings: Any, runner: Any
) -> None:
    dev = await make(aiohttp_client, make_settings, runner)
    assert await statuses(dev, PROXIED) == [200, 200]
    shut = await make(aiohttp_client, make_settings, runner, metrics_public=False)
    assert await statuses(shut, PROXIED) == [403, 403]
    opened = await make(
        aiohttp_client, make_settings, runner, env="production", secret_key="k" * 32, metrics_public=True
    )
    assert await statuses(opened, PROXIED) == [200, 200]
