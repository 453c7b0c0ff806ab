"""A dispatch system on localhost, for the outbox and callback tests.

It checks each webhook's signature (``adapters.dispatch.verify`` under its secret), records
every request it sees, keeps each delivery once by ``X-Gateway-Delivery`` (a real receiver
dedupes the same way), and can be told to fail the next N requests, to answer a fixed status,
to be slow, or to be down (its port closed). ``callback`` sends a signed status callback to the
gateway, the way the real dispatch system reports progress.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from adapters import dispatch

PATH = "/hooks/gateway"


@dataclass
class Seen:
    delivery_id: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    answered: int

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class FakeDispatch:
    secret: str = "dispatch-secret-for-tests"
    fail_next: int = 0  # answer the next N requests with `fail_status`
    fail_status: int = 503
    answer_status: int | None = None  # answer every request with this (e.g. 422)
    delay_s: float = 0.0
    slow_next: int = 0  # the next N requests are recorded (and accepted), then answered after `slow_s`
    slow_s: float = 1.0
    seen: list[Seen] = field(default_factory=list)  # every request that reached the server
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)  # accepted, once per id
    order: list[str] = field(default_factory=list)  # case numbers in the order first accepted
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    async def start(self) -> FakeDispatch:
        app = web.Application()
        app.router.add_post(PATH, self._hook)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]
        return self

    async def down(self) -> None:
        """Close the port: the gateway gets connection errors until ``up``."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def up(self) -> None:
        await self.start()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        delivery_id = request.headers.get(dispatch.DELIVERY_HEADER, "")
        try:
            dispatch.verify([self.secret], request.headers, body)
            ok = True
        except dispatch.SignatureError:
            ok = False
        status = self._answer(ok, delivery_id)
        self.seen.append(Seen(delivery_id, dict(request.headers), body, ok, status))
        if status == 200 and delivery_id not in self.deliveries:
            payload = json.loads(body)
            self.deliveries[delivery_id] = payload
            self.order.append(payload.get("case_number", ""))
        if self.slow_next > 0:
            self.slow_next -= 1
            await asyncio.sleep(self.slow_s)
        elif self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.json_response({"ok": status == 200}, status=status)

    def _answer(self, signature_ok: bool, delivery_id: str) -> int:
        if not signature_ok or not delivery_id:
            return 401
        if self.fail_next > 0:
            self.fail_next -= 1
            return self.fail_status
        return self.answer_status or 200

    def signed(
        self,
        case: str,
        status: str,
        note: str | None = None,
        *,
        callback_id: str | None = None,
        secret: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """A callback body and its headers, signed like the webhook (or wrongly, on request)."""
        body = json.dumps(
            {"id": callback_id or uuid.uuid4().hex, "case_number": case, "status": status, "note": note},
            ensure_ascii=False,
        ).encode()
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": "application/json",
            dispatch.TIMESTAMP_HEADER: str(stamp),
            dispatch.SIGNATURE_HEADER: dispatch.signature(secret or self.secret, stamp, body),
        }
        return body, headers

    async def callback(self, client: Any, case: str, status: str, note: str | None = None, **kw: Any) -> Any:
        """POST a signed callback through ``client`` (an aiohttp test client of the gateway)."""
        body, headers = self.signed(case, status, note, **kw)
        return await client.post("/api/v1/dispatch/callback", data=body, headers=headers)
