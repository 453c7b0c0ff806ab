"""The edge's short-lived keys (gateway/http/windows.py): in memory (bounded) and in Redis (shared)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from gateway.http.windows import WindowStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_claims_and_counts_expire() -> None:
    clock = Clock()
    store = WindowStore(clock=clock)
    assert await store.claim("q", "a", 10) is None
    assert await store.claim("q", "b", 10) == "a"  # the first value stays while the key lives
    assert [await store.hit("n", 60) for _ in range(3)] == [(1, 60), (2, 60), (3, 60)]
    clock.now += 59.5
    assert await store.hit("n", 60) == (4, 1)  # a fixed window: it does not slide
    clock.now += 1
    assert await store.claim("q", "b", 10) is None and await store.hit("n", 60) == (1, 60)


async def test_memory_is_bounded() -> None:
    store = WindowStore(clock=Clock(), max_keys=100)
    for i in range(1000):
        await store.hit(f"sender{i}", 60)
    assert len(store) == 100


async def test_redis_is_shared_between_processes_and_expires(redis_url: str) -> None:
    clients: list[Any] = [Redis.from_url(redis_url), Redis.from_url(redis_url)]
    one, two = WindowStore(clients[0]), WindowStore(clients[1])
    try:
        assert await one.claim("q", "a", 1) is None
        assert await two.claim("q", "b", 1) == "a"
        assert await one.hit("n", 1) == (1, 1) and (await two.hit("n", 1))[0] == 2
        names = await clients[0].keys("gateway:edge:*")
        assert len(names) == 2 and all([await clients[0].ttl(k) > 0 for k in names])  # every key expires
        await asyncio.sleep(1.2)
        assert await two.claim("q", "b", 1) is None and (await one.hit("n", 1))[0] == 1
    finally:
        for c in clients:
            await c.aclose()
