"""Console fixtures: the real app with a fake classifier, users, a logged-in client, seeded reports."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway import keys
from gateway.console.auth import create_user
from gateway.core.classify import Classification
from gateway.db import Report
from gateway.http.app import create_app
from gateway.models import InboundMessage, MessageKind

PASSWORD = "correct horse battery"
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
_CSRF_FIELD = re.compile(r'name="_csrf" value="([^"]+)"')

# text keyword -> (code, name, parent, confidence, urgent, set_by, candidates)
_RULES: list[tuple[str, tuple[str, str, str | None, float, bool, str, list[tuple[str, str, float]]]]] = [
    (
        "路灯",
        (
            "0102",
            "路灯与景观照明",
            "01",
            0.55,
            False,
            "model",
            [("01", "市政公用设施", 0.55), ("06", "市容环境", 0.3), ("10", "突发事件与其他事项", 0.1)],
        ),
    ),
    (
        "垃圾",
        (
            "0604",
            "暴露垃圾与垃圾满溢",
            "06",
            0.48,
            False,
            "model",
            [("06", "市容环境", 0.48), ("03", "市容环卫设施", 0.4), ("99", "其他或无法判断", 0.05)],
        ),
    ),
    (
        "燃气",
        (
            "1003",
            "燃气泄漏与燃气管道破裂",
            "10",
            0.4,
            False,
            "rule",
            [("13", "住房、物业与公用事业", 0.5), ("10", "突发事件与其他事项", 0.4), ("01", "市政公用设施", 0.05)],
        ),
    ),
    (
        "井盖",
        (
            "0101",
            "井盖与雨水箅子",
            "01",
            0.5,
            False,
            "model",
            [("01", "市政公用设施", 0.5), ("02", "交通设施", 0.3), ("10", "突发事件与其他事项", 0.15)],
        ),
    ),
]


class FakeClassifier:
    """Keyword table standing in for the nlp model; always sends reports to review."""

    async def classify(self, text: str) -> Classification:
        for word, (code, name, parent, conf, urgent, set_by, cands) in _RULES:
            if word in text:
                return Classification(
                    code=code,
                    name=name,
                    parent=parent,
                    confidence=conf,
                    needs_review=True,
                    priority="P1" if urgent else "P3",
                    urgent=urgent,
                    model_version="fake-1",
                    set_by=set_by,
                    candidates=[{"code": c, "name": n, "confidence": p} for c, n, p in cands],
                    explanation=f"fake: keyword {word}",
                )
        return Classification(None, None, None, 0.0, True, "P3", False, "fake-1", "placeholder")


@pytest.fixture
def console_settings(make_settings):
    return make_settings(secret_key="test-console-secret")


@pytest.fixture
async def app_client(aiohttp_client, console_settings, runner) -> TestClient:
    app = create_app(console_settings, classifier=FakeClassifier(), runner=runner)
    return await aiohttp_client(app)


@pytest.fixture
async def users(app_client) -> dict[str, str]:
    db = app_client.app[keys.DB]
    await create_user(db, "mod1", PASSWORD, "moderator")
    await create_user(db, "admin1", PASSWORD, "admin")
    return {"moderator": "mod1", "admin": "admin1"}


async def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token."""
    page = await client.get("/console/login")
    token = _CSRF_FIELD.search(await page.text()).group(1)
    resp = await client.post(
        "/console/login",
        data={"_csrf": token, "username": username, "password": password, "next": "/console/"},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    queue = await client.get("/console/")
    assert queue.status == 200
    return _CSRF_META.search(await queue.text()).group(1)


@dataclass
class Seeded:
    case: str
    text: str


async def seed(client: TestClient, runner: Any, text: str, **fields: Any) -> str:
    resp = await client.post("/api/v1/reports", json={"text": text, **fields})
    assert resp.status == 201, await resp.text()
    await runner.idle()
    return (await resp.json())["case_number"]


async def seed_sms(client: TestClient, runner: Any, text: str, phone: str = "+8613812345678") -> str:
    """A report from a channel that can answer the resident (so status news become notifications)."""
    msg = InboundMessage(
        channel="sms",
        channel_message_id=f"SM{uuid.uuid4().hex}",
        sender=f"tel:{phone}",
        received_at=datetime.now().astimezone(),
        kind=MessageKind.TEXT,
        text=text,
        complete=True,
    )
    result = await client.app[keys.PIPELINE].intake([msg])
    await runner.idle()
    return result.case_number


async def report(client: TestClient, case: str) -> Report:
    async with client.app[keys.DB].session() as s:
        return await s.scalar(select(Report).where(Report.case_number == case))
