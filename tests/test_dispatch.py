"""adapters/dispatch.py against a real local dispatch server: signing, headers, outcomes, verification."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from adapters import dispatch
from adapters.routing import Target
from tests.fakes.dispatch_server import FakeDispatch

# Computed independently: printf '%s' '1700000000.{"case_number":"ZW20261127000001"}' |
#   openssl dgst -sha256 -hmac 'whsec-test'
VECTOR = (
    "whsec-test",
    1700000000,
    b'{"case_number":"ZW20261127000001"}',
    "sha256=d4eda91a9f670de0a282daeebc8521d08aca161208c2d021dd3d05ace19313df",
)

REPORT = {
    "case_number": "ZW20261127000001",
    "channel": "wechat",
    "sender": "wechat:o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
    "created_at": "2026-11-27T08:00:00+00:00",
    "title": None,
    "text": "路灯坏了，联系我13812345678",
    "contact_phone": "13812345678",
    "category": {"code": "0101", "name": "路灯损坏", "parent": "01", "confidence": 0.9},
    "priority": "P2",
    "urgent": False,
    "location": {"lat": 22.6, "lng": 114.0, "address": "龙华区民治街道", "source": "gps"},
    "media": [{"url": "http://gw.test/media/abc", "state": "stored"}, {"url": None, "state": "pending"}],
}


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def target(fake: FakeDispatch, secret: str | None = None) -> Target:
    return Target("default", fake.url, secret or fake.secret)


def test_signature_matches_the_published_construction():
    secret, stamp, body, expected = VECTOR
    assert dispatch.signature(secret, stamp, body) == expected


def test_payload_masks_pii_and_never_sends_the_sender():
    payload = dispatch.build_payload(
        REPORT,
        deadline="2026-11-28T08:00:00+00:00",
        department="市政管理局",
        mask=lambda s: s.replace("12345678", "****5678"),
    )
    assert "sender" not in payload and "o6_bmjr" not in json.dumps(payload)
    assert payload["text"] == "路灯坏了，联系我138****5678"
    assert payload["contact_phone"] == "138****5678"
    assert payload["category"] == {"code": "0101", "name": "路灯损坏", "parent": "01"}
    assert payload["media"] == ["http://gw.test/media/abc"]
    assert payload["department"] == "市政管理局" and payload["deadline"].startswith("2026-11-28")
    assert payload["received_at"] == REPORT["created_at"] and payload["priority"] == "P2"


async def test_delivery_carries_id_timestamp_and_valid_signature(fake, http):
    body = dispatch.encode({"case_number": "ZW20261127000001"})
    stamp = int(time.time()) - 7  # an injected clock: the header carries exactly its value
    result = await dispatch.send(http, target(fake), "d-1", body, clock=lambda: stamp)
    assert result.outcome is dispatch.Outcome.DELIVERED and result.status_code == 200
    seen = fake.seen[0]
    assert seen.signature_ok  # the fake checks it with its own copy of the secret
    assert seen.headers[dispatch.DELIVERY_HEADER] == "d-1"
    assert seen.headers[dispatch.TIMESTAMP_HEADER] == str(stamp)
    expected = dispatch.signature(fake.secret, stamp, body)
    assert seen.headers[dispatch.SIGNATURE_HEADER] == expected
    assert seen.headers["Content-Type"].startswith("application/json") and seen.body == body


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (500, "retryable"),
        (503, "retryable"),
        (408, "retryable"),
        (429, "retryable"),
        (400, "rejected"),
        (404, "rejected"),
        (422, "rejected"),
    ],
    ids=str,
)
async def test_status_codes_map_to_outcomes(fake, http, status, outcome):
    fake.answer_status = status
    result = await dispatch.send(http, target(fake), "d-2", b"{}")
    assert result.outcome == outcome and result.status_code == status
    assert (result.error is None) == (outcome == "delivered")


async def test_wrong_secret_is_refused_by_the_receiver_and_not_retried(fake, http):
    result = await dispatch.send(http, target(fake, "not-the-secret"), "d-3", b"{}")
    assert not fake.seen[0].signature_ok
    assert result.outcome is dispatch.Outcome.REJECTED and result.status_code == 401


async def test_timeout_and_connection_refused_are_retryable(fake, http):
    fake.delay_s = 1.0
    slow = await dispatch.send(http, target(fake), "d-4", b"{}", timeout_s=0.2)
    assert slow.outcome is dispatch.Outcome.RETRYABLE and slow.status_code is None and "timeout" in slow.error
    await fake.down()
    refused = await dispatch.send(http, target(fake), "d-5", b"{}")
    assert refused.outcome is dispatch.Outcome.RETRYABLE and refused.status_code is None
    assert refused.error


def _headers(secret: str, stamp: int, body: bytes) -> dict[str, str]:
    return {dispatch.TIMESTAMP_HEADER: str(stamp), dispatch.SIGNATURE_HEADER: dispatch.signature(secret, stamp, body)}


@pytest.mark.parametrize(
    ("label", "headers", "ok"),
    [
        ("valid", _headers("s1", 1000, b"{}"), True),
        ("second secret", _headers("s2", 1000, b"{}"), True),
        ("wrong secret", _headers("other", 1000, b"{}"), False),
        ("other body", _headers("s1", 1000, b"{ }"), False),
        ("too old", _headers("s1", 1000 - 301, b"{}"), False),
        ("from the future", _headers("s1", 1000 + 301, b"{}"), False),
        ("no signature", {dispatch.TIMESTAMP_HEADER: "1000"}, False),
        ("bad timestamp", {**_headers("s1", 1000, b"{}"), dispatch.TIMESTAMP_HEADER: "x"}, False),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_verify_checks_secret_body_and_window(label, headers, ok):
    try:
        dispatch.verify(["s1", "s2"], headers, b"{}", window_s=300, now=1000)
    except dispatch.SignatureError:
        assert not ok, label
    else:
        assert ok, label


async def test_a_redirect_is_not_a_delivery(aiohttp_server, http):
    """A moved webhook URL answers 301/302; following it turns the POST into a GET whose 200
    said nothing about the report, which was then marked delivered and never reached dispatch.
    A redirect is the operator's to fix (the URL): rejected, dead-lettered, replayable."""
    from aiohttp import web

    got: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        got.append(request.method)
        raise web.HTTPFound("/landing")

    async def landing(request: web.Request) -> web.Response:
        got.append(request.method)
        return web.Response(text="welcome")

    app = web.Application()
    app.router.add_post("/hooks/gateway", moved)
    app.router.add_get("/landing", landing)
    server = await aiohttp_server(app)
    result = await dispatch.send(http, Target("default", str(server.make_url("/hooks/gateway")), "s"), "d-6", b"{}")
    assert result.outcome is dispatch.Outcome.REJECTED and result.status_code == 302
    assert got == ["POST"]  # the signed delivery was not sent on anywhere
