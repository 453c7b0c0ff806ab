"""The closed loop of issue 6 in one test, through the real app and the real WeChat channel:

a resident reports on WeChat (signed callback XML, ``POST /channels/wechat``) → the report is
classified → delivered to a local dispatch server (which verifies the signature) → dispatch
calls back "accepted" and then "resolved" (signed) → the resident gets two WeChat
customer-service messages (played by the local WeChat API fake) → replies "5" on WeChat →
``GET /api/v1/stats`` and the ``Rating`` row show it.

It runs in two modes: embedded (SQLite, in-process runner, a confident stub classifier, the
report closed by the close word 提交), and production (a ``CeleryRunner`` over real Redis and a
real Celery worker thread running the gateway's task table, which builds its own context from the
same settings and classifies with the bundled model; the report closed by the session's idle
timeout, a countdown task) on SQLite and PostgreSQL. Outcomes are awaited by polling the database
with a bounded deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from adapters import dispatch
from channels import wechat_api
from channels.tokens import MemoryTokenStore
from channels.wechat import signature, xml_fields
from gateway import keys
from gateway.core import replies
from gateway.core.lifecycle import Status
from gateway.db import History, Notification, Rating, Report
from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.tasks.runners import CeleryRunner, InProcessRunner
from tests.dispatch_support import FixedClassifier, fast_dispatch, wait_for
from tests.fakes.dispatch_server import FakeDispatch
from tests.fakes.wechat_api import APP_ID, APP_SECRET, FakeWeChatApi

TOKEN = "looptoken2026"
OURS = "gh_0000city0000"
OPENID = "oLOOP0000000000000000000001"
REPORT_TEXT = "小区门口的路灯坏了，晚上很黑"
DEADLINE_S = 60.0  # a bound on every wait; the loop normally closes in about a second


# --------------------------------------------------------------------------- the resident's WeChat


@dataclass
class WeChatResident:
    """Plays WeChat's servers for one resident: signed callback XML, one MsgId per message."""

    client: TestClient
    openid: str = OPENID
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(24001000000000101))

    @property
    def sender(self) -> str:
        return f"wechat:{self.openid}"

    async def says(self, text: str) -> str:
        """Send a text message; the passive reply's text (被动回复)."""
        now = int(time.time())  # the channel's default clock checks the timestamp window
        msg_id = next(self._ids)
        body = (
            f"<xml><ToUserName><![CDATA[{OURS}]]></ToUserName><FromUserName><![CDATA[{self.openid}]]></FromUserName>"
            f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>"
        )
        # A nonce of its own per message, as WeChat sends: two messages in one second with one
        # nonce would be one signed query with two bodies, which the replay guard refuses.
        nonce = str(msg_id)[-8:]
        query = {"signature": signature(TOKEN, str(now), nonce), "timestamp": str(now), "nonce": nonce}
        resp = await self.client.post("/channels/wechat", data=body.encode(), params={**query, "openid": self.openid})
        answer = await resp.text()
        assert resp.status == 200, answer
        reply = xml_fields(answer.encode())
        assert reply["ToUserName"] == self.openid and reply["FromUserName"] == OURS
        return reply["Content"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def wechat(aiohttp_server: Any) -> FakeWeChatApi:
    api = FakeWeChatApi()
    server = await aiohttp_server(api.app())
    api.base = str(server.make_url("/cgi-bin/"))  # type: ignore[attr-defined]
    return api


@pytest.fixture
async def dispatcher() -> Any:
    server = await FakeDispatch().start()
    yield server
    await server.down()


def loop_settings(make_settings: Callable[..., Settings], wechat: FakeWeChatApi, fake: FakeDispatch, **more: Any):
    """Everything the web process and a worker need, in one settings object."""
    own = {"token": TOKEN, "app_id": APP_ID, "app_secret": APP_SECRET, "api_base": wechat.base}  # type: ignore[attr-defined]
    return make_settings(
        channels={"wechat": own},
        **fast_dispatch(fake),
        **more,
    )


@pytest.fixture(scope="session")
def seed_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled classifier, trained once per session (a few seconds), for the worker to load."""
    from nlp.loader import ensure_bundled_model

    return ensure_bundled_model(tmp_path_factory.mktemp("loop-models"))


# --------------------------------------------------------------------------- the loop


async def _report(db: Any, sender: str) -> Report | None:
    async with db.session() as s:
        return await s.scalar(select(Report).where(Report.sender == sender).order_by(Report.id.desc()).limit(1))


async def _status(db: Any, sender: str, status: str) -> Report | None:
    found = await _report(db, sender)
    return found if found is not None and found.status == status else None


async def _sent(db: Any, count: int) -> list[Notification] | None:
    async with db.session() as s:
        rows = list((await s.scalars(select(Notification).order_by(Notification.id))).all())
    return rows if len(rows) >= count and all(n.state != "pending" for n in rows) else None


async def _count(db: Any, model: Any) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def closed_loop(client: TestClient, wechat: FakeWeChatApi, fake: FakeDispatch, *, close_word: bool) -> Report:
    """Run the whole loop for one WeChat resident and check every step; the final report.

    The chat report ends with the close word (提交), or else when the session window passes
    (the delayed ``close_session`` task)."""
    db = client.app[keys.DB]
    resident = WeChatResident(client)

    # 1. The report: a chat message; the draft is closed and sent on (close word or idle timeout).
    first = await resident.says(REPORT_TEXT)
    draft = await _report(db, resident.sender)
    assert draft is not None and draft.case_number in first and draft.channel == "wechat"
    case = draft.case_number
    if close_word:
        assert await resident.says("提交") == replies.SUBMITTED.format(case=case)

    # 2. Classified and handed to dispatch: one signed webhook, verified by the dispatch server.
    handed = await wait_for(lambda: _status(db, resident.sender, Status.DISPATCHED), DEADLINE_S, "dispatched")
    assert handed.category_code and handed.category_confidence >= 0.9
    [(delivery_id, payload)] = fake.deliveries.items()
    assert payload["case_number"] == case and payload["category"]["code"] == handed.category_code
    assert payload["channel"] == "wechat" and REPORT_TEXT in payload["text"]
    assert fake.seen and all(s.signature_ok and s.delivery_id == delivery_id for s in fake.seen)
    headers = fake.seen[0].headers
    assert headers[dispatch.SIGNATURE_HEADER].startswith("sha256=") and headers[dispatch.TIMESTAMP_HEADER].isdigit()

    # 3. Dispatch calls back: accepted, then resolved (signed; verified by the gateway).
    accepted = await fake.callback(client, case, "accepted", "已派单至城管中队")
    assert accepted.status == 200 and (await accepted.json())["status"] == "accepted"
    resolved = await fake.callback(client, case, "resolved", "已更换灯泡")
    assert resolved.status == 200 and (await resolved.json())["status"] == "resolved"

    # 4. The resident hears of both on WeChat: two customer-service messages (客服消息) at the fake.
    told = await wait_for(lambda: _sent(db, 2), DEADLINE_S, "two notifications sent")
    assert [n.state for n in told] == ["sent", "sent"], [(n.state, n.error) for n in told]
    sent = [c["json"] for c in wechat.calls("message/custom/send")]
    assert [(m["touser"], m["msgtype"]) for m in sent] == [(OPENID, "text")] * 2
    texts = [m["text"]["content"] for m in sent]
    assert texts == [n.text for n in told]
    assert case in texts[0] and "已由处置部门接收" in texts[0]
    assert case in texts[1] and "已更换灯泡" in texts[1] and "请回复1-5" in texts[1]

    # 5. The resident rates 5 by replying on WeChat; the digit opens no new report.
    reports_before = await _count(db, Report)
    assert await resident.says("5") == replies.rating_thanks(case, 5)
    assert await _count(db, Report) == reports_before
    final = await _report(db, resident.sender)
    assert final is not None and final.case_number == case and final.status == Status.RESOLVED
    async with db.session() as s:
        [rating] = (await s.scalars(select(Rating))).all()
    assert (rating.report_id, rating.score, rating.source) == (final.id, 5, "message")

    # 6. The figures show it.
    resp = await client.get("/api/v1/stats")
    assert resp.status == 200
    stats = await resp.json()
    [row] = stats["by_category"]
    assert (row["code"], row["count"], row["ratings"], row["mean_rating"]) == (final.category_code, 1, 1, 5.0)
    assert row["median_accept_s"] is not None and row["median_resolve_s"] is not None and row["on_time_rate"] == 1.0
    assert stats["total"]["mean_rating"] == 5.0 and stats["by_department"][0]["mean_rating"] == 5.0
    return final


# --------------------------------------------------------------------------- embedded


async def test_wechat_report_to_rating_embedded(aiohttp_client, make_settings, wechat, dispatcher, runner):
    settings = loop_settings(make_settings, wechat, dispatcher)
    client = await aiohttp_client(create_app(settings, classifier=FixedClassifier(), runner=runner))
    assert isinstance(client.app[keys.RUNNER], InProcessRunner)
    # A token store of this test's own: the process-wide one may hold another fake's token.
    client.app[keys.CHANNELS]["wechat"].api = wechat_api.WeChatApi(tokens=MemoryTokenStore())
    final = await closed_loop(client, wechat, dispatcher, close_word=True)
    assert final.category_model_version == FixedClassifier.version
    await runner.idle()
    assert runner.failures == []


# --------------------------------------------------------------------------- production mode


@pytest.fixture
async def celery_worker() -> Any:
    """A real Celery worker thread on every gateway queue; call ``start(settings)`` once.

    Stopped and its task context (engine, HTTP session) closed at teardown, so nothing leaks."""
    from celery.contrib.testing.worker import start_worker

    from gateway import worker as worker_module

    started: list[Any] = []

    async def start(settings: Settings) -> Any:
        celery_app = worker_module.make_celery(settings)
        controller = start_worker(
            celery_app, pool="solo", perform_ping_check=False, queues=worker_module.queues(), shutdown_timeout=30
        )
        # The worker thread blocks while it starts and stops; this loop must keep serving the fakes.
        await asyncio.to_thread(controller.__enter__)
        started.append(controller)
        return celery_app

    yield start
    for controller in started:
        await asyncio.to_thread(controller.__exit__, None, None, None)
    await asyncio.to_thread(worker_module.close_worker_context)
    assert worker_module._state.ctx is None and worker_module._state.loop is None


@pytest.mark.redis
async def test_wechat_report_to_rating_on_celery_and_redis(
    db_url, aiohttp_client, make_settings, wechat, dispatcher, redis_url, seed_model, celery_worker
):
    settings = loop_settings(
        make_settings,
        wechat,
        dispatcher,
        database_url=db_url,
        redis_url=redis_url,
        classifier="nlp",
        model_dir=seed_model,
        # The draft closes by idle timeout: a countdown task over Redis. It also leaves no task
        # waiting in the worker at its stop (kombu would restore it on a connection it never closes).
        session_window_s=1,
    )
    await celery_worker(settings)
    client = await aiohttp_client(create_app(settings))  # production wiring: Celery, chosen by GATEWAY_REDIS_URL
    assert isinstance(client.app[keys.RUNNER], CeleryRunner)
    final = await closed_loop(client, wechat, dispatcher, close_word=False)
    async with client.app[keys.DB].session() as s:
        closed = await s.scalar(
            select(History).where(History.report_id == final.id, History.action == "session_closed")
        )
    assert closed is not None and closed.note == "idle timeout"
    # Classified in the worker by the bundled model, which it loaded from the settings.
    assert final.category_set_by == "model" and (final.category_model_version or "").startswith("default-")
    assert (final.category_code or "").startswith("01")  # 市政公用设施 (street lights)
