"""Provider access-token cache, shared between processes through Redis when configured.

WeChat's ``access_token`` is valid for 7200 s and fetching a new one invalidates the previous
one after a short grace period, so every web process and worker must share one token instead
of each fetching its own (https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html).

The stores implement wechatpy's session-storage interface (``get``/``set``/``delete``; see
``wechatpy.session.SessionStorage``) without importing wechatpy, so the WeChat client uses them
directly. They are synchronous on purpose: the SDK calls them from worker threads, never from
the event loop. A token is kept ``REFRESH_MARGIN_S`` less than its lifetime so that a call never
goes out with a token that expires on the way.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

import redis

REFRESH_MARGIN_S = 300
KEY_PREFIX = "gateway:token:"


class TokenStore(Protocol):
    """wechatpy's ``SessionStorage`` interface."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any, ttl: int | None = None) -> None: ...

    def delete(self, key: str) -> None: ...


def _effective_ttl(ttl: int | None) -> int | None:
    if ttl is None or ttl <= 0:
        return None
    return ttl - REFRESH_MARGIN_S if ttl > 2 * REFRESH_MARGIN_S else ttl


class MemoryTokenStore:
    """One process's cache (embedded mode), safe to use from several threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, tuple[Any, float | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return default
            value, expires = item
            if expires is not None and expires <= self._clock():
                del self._data[key]
                return default
            return value

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        if value is None:
            return
        ttl = _effective_ttl(ttl)
        with self._lock:
            self._data[key] = (value, self._clock() + ttl if ttl else None)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)


class RedisTokenStore:
    """Tokens in Redis under ``gateway:token:<key>``, expiring with the token."""

    def __init__(self, client: Any, prefix: str = KEY_PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.client.get(self.prefix + key)
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        if value is None:
            return
        self.client.set(self.prefix + key, json.dumps(value), ex=_effective_ttl(ttl))

    def delete(self, key: str) -> None:
        self.client.delete(self.prefix + key)


@lru_cache(maxsize=8)
def token_store(redis_url: str | None) -> TokenStore:
    """The process-wide store: Redis when ``GATEWAY_REDIS_URL`` is set, else in memory."""
    if not redis_url:
        return MemoryTokenStore()

    return RedisTokenStore(redis.Redis.from_url(redis_url))
