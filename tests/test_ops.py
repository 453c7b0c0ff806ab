"""Operations endpoints: health, readiness (database and Redis), metrics, schemas, request ids."""

from __future__ import annotations

import asyncio
import json
import re
import time

from gateway.core.classify import PlaceholderClassifier
from gateway.http.app import create_app
from gateway.metrics import LOOP_LAG_INTERVAL_S, Metrics, watch_loop_lag


async def test_healthz_and_request_id(client):
    resp = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.status == 200 and (await resp.json())["status"] == "ok"
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await client.get("/healthz", headers={"X-Request-Id": "bad id;drop"})
    assert resp.headers["X-Request-Id"] != "bad id;drop" and len(resp.headers["X-Request-Id"]) == 32


async def test_readyz_checks_database(client):
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["checks"] == {"database": "ok"}


async def test_readyz_checks_redis_when_configured(aiohttp_client, make_settings, runner, redis_url):
    app = create_app(make_settings(redis_url=redis_url), classifier=PlaceholderClassifier(), runner=runner)
    client = await aiohttp_client(app)
    body = await (await client.get("/readyz")).json()
    assert body["checks"] == {"database": "ok", "redis": "ok"}


async def test_readyz_is_503_when_redis_is_down(aiohttp_client, make_settings, runner):
    app = create_app(
        make_settings(redis_url="redis://127.0.0.1:1/0"), classifier=PlaceholderClassifier(), runner=runner
    )
    client = await aiohttp_client(app)
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["checks"]["database"] == "ok" and body["checks"]["redis"].startswith("error")


async def test_metrics_count_requests_reports_and_latency(client, runner):
    await client.post("/api/v1/reports", json={"text": "路灯不亮"})
    await client.post("/api/v1/reports", json={})
    await runner.idle()
    text = await (await client.get("/metrics")).text()
    assert 'gateway_http_requests_total{method="POST",route="/api/v1/reports",status="201"} 1.0' in text
    assert 'gateway_http_requests_total{method="POST",route="/api/v1/reports",status="400"} 1.0' in text
    assert 'gateway_reports_created_total{channel="web"} 1.0' in text
    assert 'gateway_reports{channel="web",status="needs_review"} 1.0' in text
    assert 'gateway_pipeline_seconds_count{stage="intake"} 1.0' in text


async def test_metrics_show_how_late_the_event_loop_runs(client):
    await asyncio.sleep(4 * LOOP_LAG_INTERVAL_S)
    text = await (await client.get("/metrics")).text()
    count = re.search(r"^gateway_event_loop_lag_seconds_count (\S+)$", text, re.M)
    assert count and float(count.group(1)) >= 2, text


async def test_loop_lag_is_the_time_the_loop_spent_elsewhere():
    lag = Metrics().loop_lag
    watch = asyncio.create_task(watch_loop_lag(lag, interval=0.01))
    try:
        await asyncio.sleep(0.03)
        asyncio.get_running_loop().call_soon(_hold, 0.08)  # the watcher's timer waits behind it
        await asyncio.sleep(0.12)
    finally:
        watch.cancel()
    samples = {s.labels.get("le"): s.value for s in lag.collect()[0].samples if s.name.endswith("_bucket")}
    count = next(s.value for s in lag.collect()[0].samples if s.name.endswith("_count"))
    assert count >= 3
    assert samples["0.05"] < count  # one sample waited for the 80 ms callback: over 50 ms


def _hold(seconds: float) -> None:
    """A callback that keeps the event loop for ``seconds`` (CPU-bound work done on the loop)."""
    time.sleep(seconds)


async def test_schema_and_openapi_are_served(client):
    schema = await (await client.get("/api/schema/report.json")).json()
    assert schema["title"] == "Report" and "case_number" in schema["required"]
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.") and "/api/v1/reports" in doc["paths"]
    refs = json.dumps(doc)
    assert "#/$defs/" not in refs  # every reference resolves inside components


async def test_the_classifier_loads_at_start_not_on_the_first_report(aiohttp_client, make_settings, runner, caplog):
    import asyncio
    import logging

    from gateway.core.classify import NlpClassifier

    caplog.set_level(logging.INFO, logger="gateway.http.app")
    classifier = NlpClassifier(None, None, make_settings().var_dir / "models")
    await aiohttp_client(create_app(make_settings(classifier="nlp"), classifier=classifier, runner=runner))
    for _ in range(600):  # the bundled model loads in well under a second; "ready" is logged just after
        if any(r.getMessage() == "classifier ready" for r in caplog.records):
            break
        await asyncio.sleep(0.1)
    assert classifier._model is not None
    assert any(r.getMessage() == "classifier ready" for r in caplog.records)
