"""A local fake of api.twilio.com: Messages.json (send) and media URLs (download).

twilio's real REST client is pointed at it through ``GATEWAY_TWILIO_API_BASE``. Every call
checks HTTP basic auth with the account SID and auth token (401 otherwise). ``fail`` queues
error answers for the next sends (Twilio's error JSON); ``media`` maps a media id to its bytes,
served as Twilio does: the API URL answers 307 to a media host URL (here ``/cdn/<id>``, which
records whether credentials came along).
"""

from __future__ import annotations

import base64
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ACCOUNT_SID = "AC00000000000000000000000000000000"
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"


@dataclass
class FakeTwilioApi:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    sent: list[dict[str, str]] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    cdn_auth: list[str | None] = field(default_factory=list)  # Authorization seen by the media host
    redirect_host: str = "localhost"  # where the API's media redirect points (a test may point it elsewhere)
    _failures: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)

    def fail(self, status: int, code: int, message: str = "fake error", *, times: int = 1) -> None:
        for _ in range(times):
            self._failures.append((status, {"code": code, "message": message, "status": status}))

    def app(self) -> web.Application:
        app = web.Application()
        base = "/2010-04-01/Accounts/{sid}"
        app.router.add_post(base + "/Messages.json", self._send)
        app.router.add_get(base + "/Messages/{mid}/Media/{media_id}", self._media)
        app.router.add_get("/cdn/{media_id}", self._cdn)
        return app

    def _authorized(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    async def _send(self, request: web.Request) -> web.Response:
        if not self._authorized(request) or request.match_info["sid"] != self.account_sid:
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.sent.append(form)
        if self._failures:
            status, body = self._failures.popleft()
            return web.json_response(body, status=status)
        sid = f"SM{len(self.sent):032d}"
        body = {
            "sid": sid,
            "status": "queued",
            "to": form.get("To"),
            "from": form.get("From"),
            "body": form.get("Body"),
        }
        return web.json_response(body, status=201)

    async def _media(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        media_id = request.match_info["media_id"]
        if media_id not in self.media:
            return web.json_response({"code": 20404, "message": "not found", "status": 404}, status=404)
        # Another host name for the same server, as Twilio redirects to its media CDN.
        raise web.HTTPTemporaryRedirect(f"http://{self.redirect_host}:{request.url.port}/cdn/{media_id}")

    async def _cdn(self, request: web.Request) -> web.Response:
        self.cdn_auth.append(request.headers.get("Authorization"))
        data, ctype = self.media[request.match_info["media_id"]]
        return web.Response(body=data, content_type=ctype)
