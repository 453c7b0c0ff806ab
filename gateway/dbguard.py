"""Parameters the database cannot take are refused before they reach the driver.

PostgreSQL text cannot hold NUL (U+0000), and no database driver can encode a lone UTF-16
surrogate; both would otherwise surface as a driver error (a 500) whose message quotes the value.
``guard`` makes every statement of an engine raise ``UnstorableValue`` instead, which the
``caller_errors`` middleware answers with a 400. This is the backstop for every query the
request paths build (look-ups by case number, Open311 filters, console forms); inbound messages
are checked earlier, field by field, by ``gateway.admission``.

The engine is also built with ``hide_parameters=True`` (``gateway.db.make_engine``) so that a
database error never carries the resident's text, phone number or sender id into a log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from channels.payload import problem


class UnstorableValue(ValueError):
    """A statement parameter that no database column can store (the caller's fault: a 400)."""


def guard(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _check(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        for value in _values(parameters):
            why = problem(value)
            if why is not None:
                raise UnstorableValue(f"a value {why}")


def _values(parameters: Any) -> Iterator[str]:
    stack = [parameters]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
