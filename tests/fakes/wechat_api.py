"""A local fake of api.weixin.qq.com: token, media/get, message/custom/send, message/template/send.

wechatpy's real client is pointed at it through ``GATEWAY_WECHAT_API_BASE``. Tokens are issued
as ``TOKEN1``, ``TOKEN2`` ... and every call checks its token (40001 when unknown, 42001 when
``expire_tokens`` was called). ``fail`` queues error answers for a path; ``out_of_window``
makes customer-service messages to an openid answer 45015 (48 h window closed).
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

APP_ID = "wx0000000000test"
APP_SECRET = "fake-app-secret-0123456789abcdef"


@dataclass
class FakeWeChatApi:
    app_id: str = APP_ID
    app_secret: str = APP_SECRET
    requests: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    videos: dict[str, bytes] = field(default_factory=dict)
    out_of_window: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    _valid: set[str] = field(default_factory=set)
    _expired: set[str] = field(default_factory=set)
    _failures: dict[str, deque[tuple[int, dict[str, Any]]]] = field(default_factory=lambda: defaultdict(deque))

    def fail(self, path: str, errcode: int | None = None, *, times: int = 1, status: int = 200) -> None:
        """The next ``times`` calls to ``path`` (e.g. "message/custom/send") answer this error."""
        body = {"errcode": errcode, "errmsg": f"fake error {errcode}"} if errcode is not None else {}
        for _ in range(times):
            self._failures[path].append((status, body))

    def expire_tokens(self) -> None:
        self._expired |= self._valid
        self._valid.clear()

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_get("/cgi-bin/media/get", self._media)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom)
        app.router.add_post("/cgi-bin/message/template/send", self._template)
        app.router.add_get("/video/{media_id}", self._video)
        return app

    async def _record(self, request: web.Request, path: str) -> dict[str, Any]:
        body = await request.read()
        entry = {"path": path, "query": dict(request.query), "json": json.loads(body) if body else None}
        self.requests.append(entry)
        return entry

    def _scripted(self, path: str) -> web.Response | None:
        queue = self._failures.get(path)
        if not queue:
            return None
        status, body = queue.popleft()
        return web.json_response(body, status=status)

    def _token_error(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if token in self._valid:
            return None
        code = 42001 if token in self._expired else 40001
        return web.json_response({"errcode": code, "errmsg": "access_token invalid or expired"})

    async def _token(self, request: web.Request) -> web.Response:
        await self._record(request, "token")
        if scripted := self._scripted("token"):
            return scripted
        q = request.query
        if q.get("appid") != self.app_id or q.get("secret") != self.app_secret:
            return web.json_response({"errcode": 40125, "errmsg": "invalid appsecret"})
        self.tokens_issued += 1
        token = f"TOKEN{self.tokens_issued}"
        self._valid.add(token)
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def _media(self, request: web.Request) -> web.Response:
        await self._record(request, "media/get")
        if denied := self._token_error(request) or self._scripted("media/get"):
            return denied
        media_id = request.query.get("media_id", "")
        if media_id in self.videos:  # videos answer a download URL instead of the bytes
            url = str(request.url.with_path(f"/video/{media_id}").with_query(None))
            return web.json_response({"video_url": url})
        if media_id not in self.media:
            return web.json_response({"errcode": 40007, "errmsg": "invalid media_id"})
        data, ctype = self.media[media_id]
        return web.Response(body=data, content_type=ctype)

    async def _video(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        await self._record(request, "video")
        if media_id not in self.videos:
            raise web.HTTPNotFound()
        return web.Response(body=self.videos[media_id], content_type="video/mp4")

    async def _custom(self, request: web.Request) -> web.Response:
        entry = await self._record(request, "message/custom/send")
        if denied := self._token_error(request) or self._scripted("message/custom/send"):
            return denied
        if (entry["json"] or {}).get("touser") in self.out_of_window:
            return web.json_response({"errcode": 45015, "errmsg": "response out of time limit"})
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _template(self, request: web.Request) -> web.Response:
        await self._record(request, "message/template/send")
        if denied := self._token_error(request) or self._scripted("message/template/send"):
            return denied
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": 200228332})
