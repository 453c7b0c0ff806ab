"""Structured logs: one JSON object a line, carrying the request id and the extra fields."""

from __future__ import annotations

import json
import logging

from gateway.logs import JsonFormatter, request_id


def test_json_lines_carry_request_id_and_extras():
    record = logging.LogRecord("gateway.test", logging.INFO, __file__, 1, "report %s stored", ("ZW1",), None)
    record.case = "ZW20261127000001"
    token = request_id.set("req-42")
    try:
        line = JsonFormatter().format(record)
    finally:
        request_id.reset(token)
    data = json.loads(line)
    assert data["msg"] == "report ZW1 stored" and data["level"] == "info" and data["logger"] == "gateway.test"
    assert data["request_id"] == "req-42" and data["case"] == "ZW20261127000001"


def test_exceptions_are_one_line_of_json():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("g", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exc"]


async def test_access_log_has_request_id(client, caplog):
    caplog.set_level(logging.INFO, logger="gateway.access")
    await client.get("/healthz", headers={"X-Request-Id": "trace-1"})
    records = [r for r in caplog.records if r.name == "gateway.access"]
    assert records and records[-1].route == "/healthz" and records[-1].status == 200
