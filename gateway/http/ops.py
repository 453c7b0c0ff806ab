"""Operations endpoints: health, readiness, metrics, the report's JSON Schema, and media
(the OpenAPI document and its viewer: ``gateway/http/openapi.py``)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import func, select, text

from gateway import keys
from gateway.core.schema import json_schemas
from gateway.db import Database, Delivery, Media, Notification, Report, utcnow
from gateway.dispatch.outbox import failing_targets, routing_for
from gateway.http.access import check_ops_access
from gateway.metrics import Metrics

log = logging.getLogger(__name__)


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description="`database` and `redis` (when configured): `ok` or `error: <type>`")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(Health(status="ok").model_dump())


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(3):
            async with request.app[keys.DB].session() as s:
                await s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; say which
        checks["database"] = f"error: {type(exc).__name__}"
    redis = request.app.get(keys.REDIS)
    if redis is not None:
        try:
            async with asyncio.timeout(3):
                await redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return web.json_response(body.model_dump(), status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    check_ops_access(request)
    m = request.app[keys.METRICS]
    async with request.app[keys.DB].session() as s:
        rows = (
            await s.execute(select(Report.channel, Report.status, func.count()).group_by(Report.channel, Report.status))
        ).all()
    m.reports_by_status.clear()
    for channel, status, count in rows:
        m.reports_by_status.labels(channel=channel, status=status).set(count)
    await _background_work(request.app[keys.DB], m)
    await _dispatch_targets(request.app, m)
    body = generate_latest(m.registry)
    resp = web.Response(body=body)
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp


async def _background_work(db: Database, m: Metrics) -> None:
    """The outbox (by state, attempts on pending ones, age of the oldest), notifications and media."""
    async with db.session() as s:
        outbox = (await s.execute(select(Delivery.state, func.count()).group_by(Delivery.state))).all()
        attempts, oldest = (
            await s.execute(
                select(func.coalesce(func.sum(Delivery.attempts), 0), func.min(Delivery.created_at)).where(
                    Delivery.state == "pending"
                )
            )
        ).one()
        notes = (await s.execute(select(Notification.state, func.count()).group_by(Notification.state))).all()
        media = (await s.execute(select(Media.state, func.count()).group_by(Media.state))).all()
    for gauge, found, states in (
        (m.outbox, outbox, ("pending", "delivered", "dead", "rejected")),
        (m.notifications, notes, ("pending", "sent", "failed")),
        (m.media, media, ("pending", "stored", "failed")),
    ):
        gauge.clear()
        counts = {state: 0 for state in states} | {str(state): int(n) for state, n in found}
        for state, n in counts.items():
            gauge.labels(state=state).set(n)
    m.outbox_pending_attempts.set(int(attempts or 0))
    m.outbox_oldest_pending.set((utcnow() - oldest).total_seconds() if oldest else 0)


async def _dispatch_targets(app: web.Application, m: Metrics) -> None:
    """Whether each dispatch target is failing, with how many attempts and for how long."""
    targets = list(routing_for(app[keys.SETTINGS]).targets)
    for gauge in (m.target_failing, m.target_failures, m.target_failing_seconds):
        gauge.clear()
    for h in await failing_targets(app[keys.DB], targets, utcnow()):
        m.target_failing.labels(target=h.target).set(1 if h.failing else 0)
        m.target_failures.labels(target=h.target).set(h.failures)
        m.target_failing_seconds.labels(target=h.target).set(h.failing_s)


async def report_schema(request: web.Request) -> web.Response:
    return web.json_response(json_schemas()["report"], dumps=lambda o: json.dumps(o, ensure_ascii=False))


async def media(request: web.Request) -> web.Response:
    found = await request.app[keys.MEDIA].get(request.match_info["sha256"])
    if found is None:
        raise web.HTTPNotFound()
    data, ctype = found
    return web.Response(
        body=data,
        content_type=ctype,
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics),
        web.get("/api/schema/report.json", report_schema),
        web.get("/media/{sha256:[0-9a-f]{64}}", media),
    ]
