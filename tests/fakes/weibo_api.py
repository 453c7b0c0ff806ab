"""A local fake of Weibo's fan-service APIs: ``messages/reply.json`` and ``mss/msget``.

``GATEWAY_WEIBO_REPLY_URL`` / ``GATEWAY_WEIBO_MEDIA_URL`` point at it. Calls need the access
token (21332 otherwise); ``out_of_window`` uids get error 10017-style refusals as the real API
does once 48 h have passed since the fan's last message; ``fail`` queues error answers.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ACCESS_TOKEN = "fake-weibo-access-token-0123456789"
OUT_OF_WINDOW = 21329  # the fake's code for "no message from this fan in the last 48 h"


@dataclass
class FakeWeiboApi:
    access_token: str = ACCESS_TOKEN
    replies: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    out_of_window: set[str] = field(default_factory=set)
    _failures: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)

    def fail(self, status: int, code: int, *, times: int = 1) -> None:
        for _ in range(times):
            self._failures.append((status, {"error": "fake error", "error_code": code, "request": "/2/x"}))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2/messages/reply.json", self._reply)
        app.router.add_get("/2/mss/msget", self._msget)
        return app

    def _error(self, status: int, code: int, text: str) -> web.Response:
        return web.json_response({"error": text, "error_code": code, "request": "/2/..."}, status=status)

    async def _reply(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if form.get("access_token") != self.access_token:
            return self._error(403, 21332, "invalid_access_token")
        self.replies.append({**form, "data": json.loads(form.get("data", "null"))})
        if self._failures:
            status, body = self._failures.popleft()
            return web.json_response(body, status=status)
        if form.get("receiver_id") in self.out_of_window:
            return self._error(400, OUT_OF_WINDOW, "receiver has not messaged within 48 hours")
        return web.json_response({"id": 3000000 + len(self.replies), "result": True})

    async def _msget(self, request: web.Request) -> web.Response:
        if request.query.get("access_token") != self.access_token:
            return self._error(403, 21332, "invalid_access_token")
        fid = request.query.get("fid", "")
        if fid not in self.media:
            return self._error(404, 20101, "file not found")
        data, ctype = self.media[fid]
        return web.Response(body=data, content_type=ctype)
