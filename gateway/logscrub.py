"""No personal data in any log line: a filter on every handler the gateway logs through.

Residents' text, phone numbers and sender ids reach the logs by two roads, both closed here:

- a database error's message: SQLAlchemy appends the statement's parameters (the engines are
  built with ``hide_parameters=True``), and drivers quote values themselves (asyncpg:
  ``invalid input for query argument $3: '13800138000…'``). The message of every exception from
  SQLAlchemy or a driver is withheld; its type, SQLSTATE and SQL text (no values) are kept.
- any other message, exception or extra field: phone, ID card and bank card numbers and e-mail
  addresses are masked (``nlp.pii.mask_pii``), e.g. in a provider's error ("The 'To' number
  +8613800138000 is not valid").

``install`` puts the filter on a handler; ``gateway.logs.setup_logging`` does it for the serve
and worker processes, and tells Celery to keep that handler instead of installing its own.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from nlp.pii import mask_pii

_DB_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "psycopg")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


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


def install(handler: logging.Handler) -> None:
    handler.addFilter(ScrubPersonalData())
    try:  # Celery would replace the root handlers (and this filter) when a worker starts
        from celery.signals import setup_logging

        setup_logging.connect(_keep_our_handlers, weak=False)
    except ImportError:  # pragma: no cover - celery is a dependency
        pass


def _keep_our_handlers(**_: Any) -> None:
    """Connected to Celery's ``setup_logging``: its presence alone stops Celery configuring logging."""
