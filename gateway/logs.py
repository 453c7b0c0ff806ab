"""Structured logs: one JSON object a line, with the request id of the request being served."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from celery import signals as celery_signals

from nlp.pii import mask_pii

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # already formatted (and scrubbed) by gateway.logs
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    install_scrubber(handler)  # no personal data in any line (below)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # our middleware logs requests


# ---------------------------------------------------------------- logscrub
# No personal data in any log line: a filter on every handler the gateway logs through.
#
# Residents' text, phone numbers and sender ids reach the logs by two roads, both closed here:
#
# - a database error's message: SQLAlchemy appends the statement's parameters (the engines are
#   built with ``hide_parameters=True``), and drivers quote values themselves (asyncpg:
#   ``invalid input for query argument $3: '13800138000…'``). The message of every exception from
#   SQLAlchemy or a driver is withheld; its type, SQLSTATE and SQL text (no values) are kept.
# - any other message, exception or extra field: phone, ID card and bank card numbers and e-mail
#   addresses are masked (``nlp.pii.mask_pii``), e.g. in a provider's error ("The 'To' number
#   +8613800138000 is not valid").
#
# ``install`` puts the filter on a handler; ``gateway.logs.setup_logging`` does it for the serve
# and worker processes, and tells Celery to keep that handler instead of installing its own.

_DB_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "psycopg")


def _is_database_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in _DB_MODULES


def _describe(exc: BaseException) -> str:
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    if not _is_database_error(exc):
        return f"{name}: {mask_pii(str(exc))}"
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    statement = getattr(exc, "statement", None)
    sql = f" [SQL: {' '.join(str(statement).split())[:300]}]" if statement else ""
    return f"{name}: (message withheld: it may quote resident data) sqlstate={state}{sql}"


def format_exception(exc: BaseException) -> str:
    """The traceback of ``exc`` and its causes, with every message made safe to log."""
    chain, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        chain.append(current)
        seen.add(id(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts = []
    for item in reversed(chain):
        parts.append("Traceback (most recent call last):\n" + "".join(traceback.format_tb(item.__traceback__)))
        parts.append(_describe(item) + "\n")
    return "".join(parts).rstrip("\n")


class ScrubPersonalData(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = mask_pii(message), ()
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = format_exception(record.exc_info[1])
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = mask_pii(record.exc_text)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and not key.startswith("_"):
                record.__dict__[key] = _scrub(value)
        return True


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask_pii(value)
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    return value


def install_scrubber(handler: logging.Handler) -> None:
    handler.addFilter(ScrubPersonalData())
    # Celery would replace the root handlers (and this filter) when a worker starts.
    celery_signals.setup_logging.connect(_keep_our_handlers, weak=False)


def _keep_our_handlers(**_: Any) -> None:
    """Connected to Celery's ``setup_logging``: its presence alone stops Celery configuring logging."""
