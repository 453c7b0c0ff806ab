"""Prometheus metrics, on a registry per app so several apps (tests) never collide."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# How often the serving process checks how late its event loop runs (``watch_loop_lag``).
LOOP_LAG_INTERVAL_S = 0.05


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "gateway_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "gateway_http_request_seconds", "HTTP request latency by route", ["route"], registry=self.registry
        )
        self.reports_created = Counter(
            "gateway_reports_created", "Reports created by channel", ["channel"], registry=self.registry
        )
        self.intake_refused = Counter(
            "gateway_intake_refused",
            "Intakes answered 503 because too many were in flight (intake_max_in_flight)",
            ["channel"],
            registry=self.registry,
        )
        self.report_transitions = Counter(
            "gateway_report_transitions",
            "Report status changes by channel and new status",
            ["channel", "status"],
            registry=self.registry,
        )
        self.reports_by_status = Gauge(
            "gateway_reports",
            "Reports in the database by channel and status (refreshed on scrape)",
            ["channel", "status"],
            registry=self.registry,
        )
        self.pipeline_seconds = Histogram(
            "gateway_pipeline_seconds",
            "Pipeline stage latency",
            ["stage"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.loop_lag = Histogram(
            "gateway_event_loop_lag_seconds",
            "How late the serving process's event loop ran a timer due every "
            f"{LOOP_LAG_INTERVAL_S:g} s: how long a request's next step waits for the loop's other work",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        # The background work, refreshed on scrape from the database (gateway/http/ops.py).
        self.outbox = Gauge(
            "gateway_outbox_deliveries",
            "Dispatch deliveries by state (pending, delivered, dead, rejected, cancelled)",
            ["state"],
            registry=self.registry,
        )
        self.outbox_pending_attempts = Gauge(
            "gateway_outbox_pending_attempts",
            "Delivery attempts already made on deliveries still pending",
            registry=self.registry,
        )
        self.outbox_oldest_pending = Gauge(
            "gateway_outbox_oldest_pending_seconds",
            "Age of the oldest pending delivery (0 when none)",
            registry=self.registry,
        )
        self.target_failing = Gauge(
            "gateway_dispatch_target_failing",
            "1 while the last attempts at a dispatch target failed (pending deliveries are being retried)",
            ["target"],
            registry=self.registry,
        )
        self.target_failures = Gauge(
            "gateway_dispatch_target_consecutive_failures",
            "Failed attempts of the target's longest-failing pending delivery",
            ["target"],
            registry=self.registry,
        )
        self.target_failing_seconds = Gauge(
            "gateway_dispatch_target_failing_seconds",
            "How long the target's oldest failing pending delivery has been failing (0 when none)",
            ["target"],
            registry=self.registry,
        )
        self.notifications = Gauge(
            "gateway_notifications", "Notifications to residents by state", ["state"], registry=self.registry
        )
        self.media = Gauge(
            "gateway_media", "Media downloads by state (pending, stored, failed)", ["state"], registry=self.registry
        )


async def watch_loop_lag(lag: Histogram, interval: float = LOOP_LAG_INTERVAL_S) -> None:
    """Observe, every ``interval``, how late the running loop got back to a timer that was due:
    the time the loop spent on other callbacks first. Runs until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        lag.observe(max(0.0, loop.time() - due))
