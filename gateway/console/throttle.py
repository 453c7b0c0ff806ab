"""The console's login limiter: attempts are counted before the password is checked.

Issue 13, item 6. Three rules, one mechanism (a counter per key with a time to live):

- **Count first.** Each attempt increments its counters before the (slow, threaded) password
  check, atomically (one event-loop step in memory, one Lua script in Redis), so 40 parallel guesses
  for one user get at most ``USER_LIMIT`` checks, not 40.
- **Per IP and per user, with back-off, not a lock.** Once a counter reaches its limit, one
  attempt is let through per back-off period (30 s, doubling with each attempt, at most
  ``MAX_BACKOFF_S``); a window without attempts forgets the counter. The per-user counter
  applies only to clients the console does not know: a browser where the user logged in before
  carries a signed device cookie (``gw_console_device``, bound to the user name) and is counted
  on its own, so an anonymous client failing on purpose cannot lock a moderator out of their
  usual browser (OWASP's "device cookies"). Refused attempts are not checked and not counted.
- **Bounded memory.** Without Redis, counters live in an LRU dictionary of at most
  ``MAX_KEYS`` entries (the oldest go first); in Redis every key has a time to live.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

WINDOW_S = 900
USER_LIMIT, IP_LIMIT, DEVICE_LIMIT = 5, 20, 5
BACKOFF_BASE_S = 30
MAX_BACKOFF_S = 3600
MAX_KEYS = 10_000
_PREFIX = "gateway:login:"


class LoginThrottle:
    """Counters per key; Redis-backed when the app has Redis."""

    def __init__(self, redis: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.clock = clock
        # key -> (attempts, blocked until, forgotten at): forgotten after a window without attempts
        self._counters: OrderedDict[str, tuple[int, float, float]] = OrderedDict()

    async def attempt(self, limits: dict[str, int]) -> int:
        """Count one attempt on each key in turn; the seconds to wait (0: go ahead and check the
        password). The first key that refuses ends the count: a refused attempt does not use up
        the next key's allowance (parallel attempts refused per user must not lock out the IP's
        next, legitimate one, whatever order they reach Redis in)."""
        for key, limit in limits.items():
            wait = await self._hit(key, limit)
            if wait:
                return wait
        return 0

    async def succeeded(self, keys: list[str]) -> None:
        """A correct password: these keys' counters start again."""
        for key in keys:
            if self.redis is not None:
                await self.redis.delete(_PREFIX + key, f"{_PREFIX}{key}:blocked")
            self._counters.pop(key, None)

    def __len__(self) -> int:
        return len(self._counters)

    async def _hit(self, key: str, limit: int) -> int:
        if self.redis is not None:
            return await self._hit_redis(_PREFIX + key, limit)
        now = self.clock()
        count, blocked_until, expires = self._counters.pop(key, (0, 0.0, 0.0))
        if expires <= now:
            count, blocked_until = 0, 0.0
        wait = 0
        if now < blocked_until:  # refused, not checked: it does not count
            wait = math.ceil(blocked_until - now)
        else:
            count += 1
            if count >= limit:  # the last free attempt, or the one let through after a back-off
                blocked_until = now + backoff(count - limit)
        self._counters[key] = (count, blocked_until, max(now + WINDOW_S, blocked_until))
        while len(self._counters) > MAX_KEYS:
            self._counters.popitem(last=False)
        return wait

    async def _hit_redis(self, name: str, limit: int) -> int:
        args = (limit, BACKOFF_BASE_S, WINDOW_S + MAX_BACKOFF_S, MAX_BACKOFF_S)
        return int(await self.redis.eval(_HIT_SCRIPT, 2, name, f"{name}:blocked", *args))


# The in-memory ``_hit`` as one atomic Redis step: parallel attempts cannot slip between the
# check and the count, and the first block is always the shortest.
_HIT_SCRIPT = """
local left = redis.call('TTL', KEYS[2])
if left > 0 then return left end
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local limit = tonumber(ARGV[1])
if count >= limit then
  local wait = tonumber(ARGV[2]) * 2 ^ math.min(count - limit, 16)
  redis.call('SET', KEYS[2], 1, 'EX', math.floor(math.min(wait, tonumber(ARGV[4]))))
end
return 0
"""


def backoff(over: int) -> int:
    """Seconds between attempts once a limit is reached: 30 s, doubling, at most an hour."""
    return int(min(MAX_BACKOFF_S, BACKOFF_BASE_S * 2 ** min(over, 16)))
