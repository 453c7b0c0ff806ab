"""Issue 13, item 2: no personal data in any log line, even when the database fails.

A run on PostgreSQL triggers database errors whose values are a resident's text, phone number and
sender id (a column overflow, a driver-side type error, an unhandled error in an API request) and
a provider error quoting a phone number; the log output of the gateway's own handler is grepped.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from gateway.db import Database, Report
from gateway.logs import setup_logging

PHONE = "13912345678"
SENDER = "wechat:oPrivateOpenid0000000000001"
WORDS = "张三住在民治街道101号"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    setup_logging("INFO", "json")
    buf = io.StringIO()
    root.handlers[0].setStream(buf)  # type: ignore[attr-defined]
    yield buf
    root.handlers[:] = saved
    root.setLevel(level)


def assert_private(output: str) -> None:
    for secret in (PHONE, SENDER, WORDS, "oPrivateOpenid"):
        assert secret not in output, f"{secret!r} is in the logs:\n{output}"


@pytest.mark.postgres
async def test_database_errors_log_no_parameters(pg_url: str, log_output: io.StringIO) -> None:
    log = logging.getLogger("gateway.test")
    db = Database(pg_url)
    try:
        try:  # a value longer than its column (String(200))
            async with db.session() as s, s.begin():
                s.add(
                    Report(
                        case_number="ZW20261130000001",
                        channel="wechat",
                        sender=SENDER,
                        title=(WORDS + PHONE) * 20,
                        text=f"{WORDS} 电话 {PHONE}",
                        status="received",
                        created_at=datetime.now(UTC),
                        updated_at=datetime.now(UTC),
                    )
                )
        except Exception:
            log.exception("intake failed")
        try:  # the driver quotes a value it cannot encode in its own message
            async with db.session() as s:
                await s.execute(text("SELECT :v::int"), {"v": f"{PHONE} {WORDS}"})
        except Exception:
            log.exception("query failed")
    finally:
        await db.close()
    log.warning(
        "notification not sent", extra={"error": f"Twilio 400 error 21211: The 'To' number +86{PHONE} is not valid"}
    )
    log.info("plain message with a phone %s", PHONE)
    output = log_output.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    assert len(lines) == 4 and "exc" in lines[0] and "exc" in lines[1]
    assert "sqlstate=22001" in lines[0]["exc"] and "INSERT INTO reports" in lines[0]["exc"]  # still useful
    assert_private(output)


async def test_an_unhandled_error_in_a_request_logs_no_personal_data(client: Any, log_output: io.StringIO) -> None:
    async def boom(request: Any) -> Any:
        raise RuntimeError(f"could not store {WORDS} for {SENDER}, phone {PHONE}")

    client.app.router._frozen = False  # the test adds one route to a running app
    client.app.router.add_post("/api/v1/boom", boom)
    resp = await client.post("/api/v1/boom")
    assert resp.status == 500
    output = log_output.getvalue()
    assert "unhandled error" in output and "RuntimeError" in output
    assert PHONE not in output and "139****5678" in output
