"""Short-lived keys for the edge's guards: replayed signed queries (``replays``) and flood
counters (``floods``).

One store, two operations, two backends chosen as elsewhere in the gateway: Redis when the app
has one (``GATEWAY_REDIS_URL``, shared by every ``gateway serve`` process), else an in-process
LRU of at most ``MAX_KEYS`` entries (the oldest go first). Every key has a time to live, in
Redis and in memory, so neither grows with the number of senders, addresses or nonces seen.
Each operation is atomic: one event-loop step in memory, one Lua script in Redis.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from gateway import keys

MAX_KEYS = 100_000
_PREFIX = "gateway:edge:"


class WindowStore:
    """Keys with a time to live: first-writer-wins claims and fixed-window counters."""

    def __init__(
        self, redis: Any = None, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.max_keys = max_keys
        self._keys: OrderedDict[str, tuple[str | int, float]] = OrderedDict()  # key -> (value, expires at)

    def __len__(self) -> int:
        return len(self._keys)

    async def claim(self, key: str, value: str, ttl_s: int) -> str | None:
        """Store ``value`` under ``key`` unless the key is alive; the value stored first, or None
        when this call stored it."""
        if self.redis is not None:
            found = await self.redis.eval(_CLAIM_SCRIPT, 1, _PREFIX + key, value, max(1, ttl_s))
            return found.decode() if isinstance(found, bytes) else found
        now = self.clock()
        alive = self._alive(key, now)
        if alive is not None:
            return str(alive[0])
        self._put(key, value, now + ttl_s)
        return None

    async def hit(self, key: str, window_s: int) -> tuple[int, int]:
        """Count one hit in ``key``'s fixed window: the hits so far and the seconds the window has left."""
        if self.redis is not None:
            count, left = await self.redis.eval(_HIT_SCRIPT, 1, _PREFIX + key, max(1, window_s))
            return int(count), max(1, int(left))
        now = self.clock()
        alive = self._alive(key, now)
        count, expires = (int(alive[0]) + 1, alive[1]) if alive is not None else (1, now + window_s)
        self._put(key, count, expires)
        return count, max(1, math.ceil(expires - now))

    def _alive(self, key: str, now: float) -> tuple[str | int, float] | None:
        found = self._keys.pop(key, None)
        return found if found is not None and found[1] > now else None

    def _put(self, key: str, value: str | int, expires: float) -> None:
        self._keys[key] = (value, expires)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)


_CLAIM_SCRIPT = """
local old = redis.call('GET', KEYS[1])
if old then return old end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""

_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local left = redis.call('TTL', KEYS[1])
if left < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); left = tonumber(ARGV[1]) end
return {count, left}
"""

STORE: web.AppKey[WindowStore] = web.AppKey("edge_windows", WindowStore)


async def open_store(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the app's store, on the app's Redis client when it has one (after ``_redis``)."""
    app[STORE] = WindowStore(app.get(keys.REDIS))
    yield
