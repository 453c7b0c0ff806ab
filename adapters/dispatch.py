"""The dispatch webhook (统一分拨): build the payload, sign it, send it, classify the outcome.

Contract (DESIGN.md, "Dispatch webhook"): ``POST`` the report as JSON with the headers

- ``X-Gateway-Delivery``: the delivery id, the same on every retry (the receiver dedupes on it);
- ``X-Gateway-Timestamp``: unix seconds at signing time;
- ``X-Gateway-Signature: sha256=HEX``: HMAC-SHA256 under the target's secret of
  ``"{timestamp}.{body}"``.

Callbacks from dispatch are signed the same way; ``verify`` checks them (constant-time compare,
timestamp window against replays). The outcome of a send is one of

- ``delivered``: 2xx;
- ``retryable``: timeout, connection error, 5xx, 408 and 429 (Saleor and GitHub webhooks treat
  these as transient too);
- ``rejected``: any other status (a 4xx means the receiver refuses this body; retrying the same
  body would not help, an operator must look and replay). Redirects are not followed: a 3xx
  is rejected too (the configured URL is wrong).

This module knows nothing about storage: the outbox (``gateway/dispatch/outbox.py``) records attempts.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from adapters.routing import Target

DELIVERY_HEADER = "X-Gateway-Delivery"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
SIGNATURE_HEADER = "X-Gateway-Signature"
USER_AGENT = "citizen-gateway-dispatch/1"
RETRYABLE_STATUSES = frozenset({408, 429})
MAX_RESPONSE_EXCERPT = 500


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    RETRYABLE = "retryable"
    REJECTED = "rejected"


class SignatureError(Exception):
    """A callback's signature or timestamp does not check out (answer 403, change nothing)."""


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: Outcome
    status_code: int | None
    latency_ms: float
    error: str | None = None
    retry_after_s: float | None = None  # what a 429/503 asked for, if it said


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signed_headers(secret: str, delivery_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify(
    secrets: Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    window_s: int = 300,
    now: float | None = None,
) -> None:
    """Raise ``SignatureError`` unless ``body`` is signed by one of ``secrets`` within the window."""
    stamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    # ASCII digits only: "²".isdigit() is true but int() refuses it; 12 digits reach the year 33658.
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or not given.startswith("sha256="):
        raise SignatureError("missing or malformed signature headers")
    current = time.time() if now is None else now
    if abs(current - int(stamp)) > window_s:
        raise SignatureError("timestamp outside the accepted window")
    matched = False
    for secret in secrets:
        # compare every secret (no early exit) so timing does not tell which one is close
        matched |= hmac.compare_digest(signature(secret, stamp, body).encode(), given.encode())
    if not matched:
        raise SignatureError("signature does not match")


def encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def build_payload(
    report: Mapping[str, Any],
    *,
    deadline: str | None,
    department: str | None,
    mask: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """The webhook body from a report's JSON (``gateway.schema.report_json``, private view).

    ``mask`` hides personal data in free text (phone, ID numbers) unless the deployment is
    allowed to pass it on; the resident's channel identity (``sender``) is never sent.
    """
    hide = mask or (lambda s: s)
    category = report.get("category") or {}
    return {
        "case_number": report["case_number"],
        "channel": report["channel"],
        "received_at": report["created_at"],
        "title": hide(report["title"]) if report.get("title") else None,
        "text": hide(report.get("text") or ""),
        "contact_phone": hide(report["contact_phone"]) if report.get("contact_phone") else None,
        "category": {"code": category.get("code"), "name": category.get("name"), "parent": category.get("parent")},
        "priority": report.get("priority"),
        "urgent": bool(report.get("urgent")),
        "deadline": deadline,
        "department": department,
        "location": report.get("location"),
        "grid": report.get("grid"),  # the grid path (网格) and how it was found, or null
        "media": [m["url"] for m in report.get("media", []) if m.get("url")],
    }


def classify_status(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status >= 500 or status in RETRYABLE_STATUSES:
        return Outcome.RETRYABLE
    return Outcome.REJECTED


async def send(
    session: aiohttp.ClientSession,
    target: Target,
    delivery_id: str,
    body: bytes,
    *,
    timeout_s: float = 10.0,
    clock: Callable[[], float] = time.time,
) -> AttemptResult:
    """POST one signed delivery and say what happened; never raises for transport problems."""
    headers = signed_headers(target.secret, delivery_id, body, int(clock()))
    started = time.perf_counter()
    try:
        async with session.post(
            target.url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,  # a followed 301/302 becomes a GET: its 200 is no delivery
        ) as resp:
            text = await resp.text(errors="replace")
            status = resp.status
            retry_after = _retry_after(resp.headers.get("Retry-After"))
    except TimeoutError:
        return AttemptResult(Outcome.RETRYABLE, None, _ms(started), f"timeout after {timeout_s:g} s")
    except (aiohttp.ClientError, OSError) as exc:
        return AttemptResult(Outcome.RETRYABLE, None, _ms(started), f"{type(exc).__name__}: {exc}"[:500])
    except asyncio.CancelledError:
        raise
    outcome = classify_status(status)
    error = None if outcome is Outcome.DELIVERED else f"HTTP {status}: {text[:MAX_RESPONSE_EXCERPT]}"
    return AttemptResult(outcome, status, _ms(started), error, retry_after)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None  # the HTTP-date form is rare on webhooks; our own backoff applies then
