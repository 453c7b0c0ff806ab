"""Hostile-input checks shared by every parser: one JSON reader and one text check.

Everything a resident or a provider sends passes through here before it is stored, so that a
malformed value is a ``BadPayload`` naming the problem (a 4xx), never a crash in the parser, the
database driver or the JSON encoder of a response:

- JSON nested deeper than ``MAX_DEPTH`` (CPython's parser recurses: 100,000 ``[`` is a
  ``RecursionError``), integers of more than ``MAX_INT_DIGITS`` digits (CPython refuses more than
  4,300 with a ``ValueError``, and ``float()`` of a long one overflows), ``NaN``/``Infinity``
  (not JSON, and PostgreSQL's ``jsonb`` refuses them);
- text that cannot be stored or encoded: NUL (PostgreSQL text refuses U+0000) and lone UTF-16
  surrogates such as ``"\\ud800"`` (not encodable as UTF-8).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from channels.errors import BadPayload

MAX_DEPTH = 32
MAX_INT_DIGITS = 64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"number of more than {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(body: bytes | str) -> Any:
    """Parse JSON or raise ``BadPayload`` saying why not (never RecursionError/ValueError)."""
    try:
        data = json.loads(body or b"null", parse_int=_parse_int, parse_constant=_parse_constant)
    except RecursionError:
        raise BadPayload("invalid JSON: nested too deeply", fields={"body": "nested too deeply"}) from None
    except UnicodeDecodeError:
        raise BadPayload("invalid JSON: not UTF-8", fields={"body": "not UTF-8"}) from None
    except json.JSONDecodeError as exc:
        raise BadPayload(f"invalid JSON: {exc}", fields={"body": "invalid JSON"}) from None
    except ValueError as exc:  # from the hooks above
        raise BadPayload(f"invalid JSON: {exc}", fields={"body": str(exc)}) from None
    if _depth(data) > MAX_DEPTH:
        raise BadPayload(f"invalid JSON: nested more than {MAX_DEPTH} levels", fields={"body": "nested too deeply"})
    check_text(data, "body")
    return data


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (U+0000)"
    return "contains a lone surrogate (not valid Unicode)"


def check_text(value: Any, name: str) -> None:
    """Raise ``BadPayload`` naming the first string (key or value) in ``value`` that cannot be stored."""
    for path, text in _strings(value, name):
        why = problem(text)
        if why is not None:
            path = _UNSTORABLE.sub("\ufffd", path) or "body"  # the name may be what is wrong
            raise BadPayload(f"{path}: {why}", fields={path: why})


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            for key, child in item.items():
                yield where, str(key)
                stack.append((child, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, list | tuple):
            stack.extend((child, where) for child in item)


# Pydantic's own wording for the checks a model does itself, in ours.
_MESSAGES = {"missing": "required", "extra_forbidden": "unknown field"}


def field_error(message: str, *, field: str | None = None) -> PydanticCustomError:
    """A model's validation error with our message, under ``field`` instead of the failing
    field's own name where a rule spans fields (``field_errors`` reads both)."""
    return PydanticCustomError("field", "{message}", {"message": message, **({"field": field} if field else {})})


def field_errors(exc: ValidationError) -> dict[str, str]:
    """A model's validation errors as ``{field: message}`` (``location.lat`` for nested fields),
    the shape of ``BadPayload.fields``; unknown fields come last, sorted."""
    errors: dict[str, str] = {}
    unknown: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        ctx = error.get("ctx") or {}
        key = str(ctx.get("field") or ".".join(str(part) for part in error["loc"]) or "body")
        message = str(ctx.get("message") or _MESSAGES.get(error["type"], error["msg"]))
        (unknown if error["type"] == "extra_forbidden" else errors)[key] = message
    return errors | dict(sorted(unknown.items()))
