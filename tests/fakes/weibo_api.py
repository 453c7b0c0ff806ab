"""A local fake of Weibo's fan-service APIs: ``messages/reply.json`` and ``mss/msget``, and of
``statuses/mentions.json`` (plus a picture host, ``/large/{name}``) for the @-mention poller.

``GATEWAY_WEIBO_REPLY_URL`` / ``GATEWAY_WEIBO_MEDIA_URL`` point at it. Calls need the access
token (21332 otherwise); ``out_of_window`` uids get error 10017-style refusals as the real API
does once 48 h have passed since the fan's last message; ``fail`` queues error answers.

Mentions: ``mention(...)`` adds a post; the endpoint pages like Weibo's (newest first, ``since_id``
exclusive, ``max_id`` inclusive, ``count`` and ``page``), records every call in
``mention_calls``, answers the queued ``mention_failures`` first and waits ``mention_delay_s``
before answering (to provoke client timeouts).
"""

from __future__ import annotations

import asyncio
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
    mentions: list[dict[str, Any]] = field(default_factory=list)
    mention_calls: list[dict[str, str]] = field(default_factory=list)
    mention_failures: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    mention_delay_s: float = 0.0
    pictures: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    msget_redirect: str | None = None  # mss/msget answers 302 to this URL instead of the file

    def fail(self, status: int, code: int, *, times: int = 1) -> None:
        for _ in range(times):
            self._failures.append((status, {"error": "fake error", "error_code": code, "request": "/2/x"}))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2/messages/reply.json", self._reply)
        app.router.add_get("/2/mss/msget", self._msget)
        app.router.add_get("/2/statuses/mentions.json", self._mentions)
        app.router.add_get("/{size}/{name}", self._picture)  # like wx1.sinaimg.cn/large/<pic_id>.jpg
        return app

    def mention(self, sid: int, text: str, uid: int = 5100000009, **more: Any) -> dict[str, Any]:
        """Add a post that @-mentions the account, shaped like Weibo's status objects."""
        status = {
            "id": sid,
            "idstr": str(sid),
            "created_at": "Fri Nov 27 09:15:30 +0800 2026",
            "text": text,
            "user": {"id": uid, "idstr": str(uid), "screen_name": f"fan{uid}"},
            "geo": None,
            "pic_ids": [],
            **more,
        }
        self.mentions.append(status)
        return status

    async def _mentions(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.mention_calls.append(q)
        if q.get("access_token") != self.access_token:
            return self._error(403, 21332, "invalid_access_token")
        if self.mention_delay_s:
            await asyncio.sleep(self.mention_delay_s)
        if self.mention_failures:
            status, body = self.mention_failures.popleft()
            return web.json_response(body, status=status)
        since, top = int(q.get("since_id") or 0), int(q.get("max_id") or 0) or None
        count, page = min(int(q.get("count") or 20), 200), int(q.get("page") or 1)
        found = sorted(
            (m for m in self.mentions if m["id"] > since and (top is None or m["id"] <= top)),
            key=lambda m: m["id"],
            reverse=True,
        )
        chunk = found[(page - 1) * count : page * count]
        return web.json_response({"statuses": chunk, "total_number": len(found), "previous_cursor": 0})

    async def _picture(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if request.match_info["size"] != "large" or name not in self.pictures:
            return web.Response(status=404)
        data, ctype = self.pictures[name]
        return web.Response(body=data, content_type=ctype)

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
        if self.msget_redirect is not None:
            raise web.HTTPFound(self.msget_redirect)
        if fid not in self.media:
            return self._error(404, 20101, "file not found")
        data, ctype = self.media[fid]
        return web.Response(body=data, content_type=ctype)
