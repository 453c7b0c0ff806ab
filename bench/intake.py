"""Complaint intake throughput and latency: POST /api/v1/reports against a bare aiohttp handler.

    python bench/intake.py                       # 2000 requests, 16 at a time, SQLite
    python bench/intake.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test

Each target is a real server (``web.AppRunner`` + ``TCPSite`` on a free port of 127.0.0.1) in a
process of its own, loaded from this process by an aiohttp client with at most ``--concurrency``
requests in flight. The targets, in one run:

- ``bare aiohttp``: a handler that reads the JSON body and answers 201 with a JSON object: the
  floor that aiohttp, the loopback network and the client cost on this machine;
- ``gateway (sqlite)``: the real app on embedded defaults (SQLite in a temporary directory,
  in-process task runner), with ``GATEWAY_CLASSIFIER=placeholder`` so the figures measure intake
  (validation, case number, commit, enqueue) and not the NLP model;
- ``gateway (postgresql)`` with ``--database-url``: the same app on a fresh database created on
  that (local) server, migrated, and dropped at the end.

Each target gets warm-up requests first (not counted). After the load the gateway's background
tasks are drained and its reports counted: every 201 must be a stored report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, DummyCookieJar, TCPConnector, web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for `gateway`
from _load import (  # noqa: E402
    CpuFigures,
    CpuMeter,
    FreshDatabase,
    LagMeter,
    WrkFigures,
    cpu_line,
    free_port,
    lag_line,
    local_pg,
    run_wrk,
)
from _machine import print_machine  # noqa: E402 - bench/ is sys.path[0] when run as a script

LOOPBACK = "127.0.0.1"
PATH = "/api/v1/reports"
START_TIMEOUT_S = 120.0  # a server process must be listening within this (imports, migrations)
STOP_TIMEOUT_S = 120.0  # and must drain and report within this after the load
CLASSIFIER_NOTE = (
    "GATEWAY_CLASSIFIER=placeholder: every report goes to needs_review without a model, so the gateway\n"
    "  figures measure intake (validate, case number, commit, enqueue), not classification"
)


@dataclass
class Target:
    label: str
    kind: str  # "bare", "reference" or "gateway"
    database_url: str | None = None
    processes: int = 1  # serving processes sharing the port (SO_REUSEPORT)


@dataclass
class Result:
    label: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: list[str] = field(default_factory=list)
    server: dict[str, Any] = field(default_factory=dict)
    wrk: WrkFigures | None = None  # with --client wrk: its figures instead of latencies
    cpu: CpuFigures | None = None  # what the measured load cost in CPU
    lag: LagMeter | None = None  # the gateway's event-loop lag during it (None: not watched)

    @property
    def answered(self) -> int:
        return self.wrk.answered if self.wrk else len(self.latencies_ms)

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the successful requests' latencies."""
        if self.wrk:
            return {0.5: self.wrk.p50_ms, 0.99: self.wrk.p99_ms}[q]
        data = sorted(self.latencies_ms)
        if not data:
            return math.nan
        return data[min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1))]


# --------------------------------------------------------------------------- servers (child process)


def bare_app() -> web.Application:
    async def create(request: web.Request) -> web.Response:
        data = await request.json()
        return web.json_response({"case_number": "ZW00000000000000", "text": data.get("text", "")}, status=201)

    app = web.Application()
    app.router.add_post(PATH, create)
    return app


def reference_app(database_url: str | None, workdir: str) -> web.Application:
    """The minimal honest handler: parse and check the JSON, one committed INSERT, 201 with an id.

    SQLite in WAL mode with ``synchronous=FULL`` like the gateway (both acknowledge only what is
    on disk); PostgreSQL through an asyncpg pool."""
    state: dict[str, Any] = {}
    table = "CREATE TABLE IF NOT EXISTS ref_reports (id {pk}, text TEXT NOT NULL, phone TEXT, lat REAL, lng REAL)"

    async def startup(app: web.Application) -> None:
        if database_url:
            import asyncpg

            pool = await asyncpg.create_pool(
                database_url.replace("postgresql+asyncpg://", "postgresql://"), max_size=10
            )
            await pool.execute(table.format(pk="BIGSERIAL PRIMARY KEY"))
            state["pool"] = pool
        else:
            conn = sqlite3.connect(f"{workdir}/reference.db", isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(table.format(pk="INTEGER PRIMARY KEY"))
            state["sqlite"] = conn

    async def create(request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            return web.json_response({"error": "invalid JSON"}, status=400)
        text, loc = data.get("text"), data.get("location") or {}
        if not isinstance(text, str) or not 0 < len(text) <= 4000 or not isinstance(loc, dict):
            return web.json_response({"error": "text required"}, status=400)
        row = (text, data.get("contact_phone"), loc.get("lat"), loc.get("lng"))
        if database_url:
            sql = "INSERT INTO ref_reports (text, phone, lat, lng) VALUES ($1, $2, $3, $4) RETURNING id"
            rid = await state["pool"].fetchval(sql, *row)
        else:
            conn = state["sqlite"]
            conn.execute("BEGIN IMMEDIATE")
            rid = conn.execute("INSERT INTO ref_reports (text, phone, lat, lng) VALUES (?, ?, ?, ?)", row).lastrowid
            conn.execute("COMMIT")
        return web.json_response({"id": rid, "status": "received"}, status=201)

    app = web.Application()
    app.on_startup.append(startup)
    app.router.add_post(PATH, create)
    return app


def gateway_app(database_url: str | None, workdir: str) -> tuple[web.Application, Any]:
    from gateway.http.app import create_app
    from gateway.logs import setup_logging
    from gateway.settings import ENV_PREFIX, Settings
    from gateway.tasks.runners import InProcessRunner

    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        del os.environ[name]  # only the values below count: no Redis, no dispatch from the caller's env
    os.environ["GATEWAY_CLASSIFIER"] = "placeholder"
    var = Path(workdir) / "var"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        var_dir=var,
        database_url=database_url or f"sqlite+aiosqlite:///{var / 'gateway.db'}",
        auto_migrate=True,
        log_level="WARNING",
        log_format="text",
        public_url=f"http://{LOOPBACK}",
    )
    var.mkdir(parents=True, exist_ok=True)
    setup_logging(settings.log_level, settings.log_format)
    runner = InProcessRunner()
    return create_app(settings, runner=runner), runner


async def report_counts(app: web.Application) -> dict[str, int]:
    from sqlalchemy import func, select

    from gateway import keys
    from gateway.db import Report

    async with app[keys.DB].session() as s:
        rows = await s.execute(select(Report.status, func.count()).group_by(Report.status))
        return {status: int(n) for status, n in rows.all()}


async def serve(target: Target, workdir: str, conn: Connection, port: int) -> None:
    tasks = None
    if target.kind == "bare":
        app = bare_app()
    elif target.kind == "reference":
        app = reference_app(target.database_url, workdir)
    else:
        app, tasks = gateway_app(target.database_url, workdir)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, LOOPBACK, port, reuse_port=True)
        await site.start()
        conn.send(("ready", runner.addresses[0][1]))
        loop = asyncio.get_running_loop()
        # Wait for the parent's "stop" (or its death: poll returns on EOF too), bounded.
        await loop.run_in_executor(None, conn.poll, 3600.0)
        try:
            conn.recv()  # "stop"
        except EOFError:
            return  # the parent is gone: nobody to report to
        stats: dict[str, Any] = {}
        if tasks is not None:
            started = time.perf_counter()
            await tasks.idle(timeout=STOP_TIMEOUT_S / 2)
            stats = {"drain_s": time.perf_counter() - started}
            # Count once every server process has drained (they share one database).
            conn.send(("drained", stats["drain_s"]))
            await loop.run_in_executor(None, conn.poll, STOP_TIMEOUT_S)
            stats["reports"] = await report_counts(app)
    finally:
        await runner.cleanup()
    conn.send(("done", stats))


def serve_process(target: Target, workdir: str, conn: Connection, port: int) -> None:
    """Child process entry: run one server until the parent says stop."""
    asyncio.run(serve(target, workdir, conn, port))


# --------------------------------------------------------------------------- load (this process)


def payload(i: int) -> dict[str, Any]:
    return {
        "text": f"第{i}号：小区{i % 97}栋门口的路灯坏了三天了，晚上很黑，老人孩子出门不安全，请尽快修理。",
        "title": "路灯不亮",
        "contact_phone": f"138{i % 100_000_000:08d}",
        "location": {"lat": 22.6 + (i % 100) / 1000, "lng": 114.0 + (i % 100) / 1000, "address": "龙华区民治街道"},
    }


async def load(url: str, start: int, count: int, concurrency: int) -> tuple[float, list[float], list[str]]:
    """Post ``count`` complaints with at most ``concurrency`` in flight; (seconds, latencies ms, errors)."""
    latencies: list[float] = []
    errors: list[str] = []
    numbers = iter(range(start, start + count))
    connector = TCPConnector(limit=concurrency)
    async with ClientSession(
        connector=connector, cookie_jar=DummyCookieJar(), timeout=ClientTimeout(total=30)
    ) as session:

        async def worker() -> None:
            for i in numbers:  # shared iterator: each number is posted once
                t0 = time.perf_counter()
                try:
                    async with session.post(url, json=payload(i), headers={"X-Client-Id": f"bench-{i}"}) as resp:
                        body = await resp.read()
                except (TimeoutError, OSError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                if resp.status != 201:
                    errors.append(f"HTTP {resp.status}: {body[:200]!r}")
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, errors


def run_target(target: Target, args: argparse.Namespace) -> Result:
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as workdir:
        port = free_port()
        procs, pipes = [], []
        try:
            for _ in range(target.processes):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=serve_process, args=(target, workdir, child, port), daemon=True)
                proc.start()
                child.close()  # so that a crashed server reads as EOF here instead of a silent wait
                procs.append(proc)
                pipes.append(parent)
                _receive(parent, target, "ready", START_TIMEOUT_S)  # one at a time: the first migrates
            url = f"http://{LOOPBACK}:{port}{PATH}"
            _, warm, _ = asyncio.run(load(url, 0, args.warmup, args.concurrency))
            measured: WrkFigures | None = None
            one_gateway = target.kind == "gateway" and target.processes == 1  # /metrics of the one process
            lag = LagMeter(f"http://{LOOPBACK}:{port}") if one_gateway else None
            with lag or contextlib.nullcontext(), CpuMeter([proc.pid or 0 for proc in procs]) as meter:
                if args.client == "wrk":
                    measured = wrk_load(url, args, workdir)
                    seconds, latencies = measured.seconds, []
                    errors = [f"HTTP non-2xx or socket error × {measured.errors}"] * bool(measured.errors)
                else:
                    seconds, latencies, errors = asyncio.run(load(url, args.warmup, args.requests, args.concurrency))
            for parent in pipes:
                parent.send("stop")
            if target.kind == "gateway":
                for parent in pipes:
                    _receive(parent, target, "drained", STOP_TIMEOUT_S)
                for parent in pipes:
                    parent.send("count")
            done = [_receive(parent, target, "done", STOP_TIMEOUT_S) for parent in pipes]
            stats = max(done, key=lambda d: sum(d.get("reports", {}).values()))  # one shared database
            answered = measured.answered if measured else len(latencies)
            stats["posted"] = len(warm) + answered  # warm-up posts are stored reports too
        finally:
            for proc in procs:
                proc.join(10)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(10)
    return Result(target.label, args.requests, seconds, latencies, errors, stats, measured, meter.figures, lag)


WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[BODY]]
"""


def wrk_load(url: str, args: argparse.Namespace, workdir: str) -> WrkFigures:
    """``--duration`` seconds of wrk (one thread, ``--concurrency`` connections) posting one complaint."""
    script = Path(workdir) / "post.lua"
    script.write_text(WRK_LUA.replace("BODY", json.dumps(payload(7), ensure_ascii=False)), encoding="utf-8")
    return run_wrk(url, args.concurrency, args.duration, script)


def _receive(conn: Connection, target: Target, what: str, timeout: float) -> Any:
    try:
        if conn.poll(timeout):
            tag, value = conn.recv()
            if tag == what:
                return value
    except EOFError:
        pass
    raise RuntimeError(f"{target.label}: the server process did not report {what!r} (see its error above)")


# --------------------------------------------------------------------------- PostgreSQL database


# --------------------------------------------------------------------------- report


def print_results(results: list[Result]) -> bool:
    """Print the table, the ratios and the stored-report check; True when every figure is sound."""
    ok = True
    print(f"\n{'target':<22} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for r in results:
        print(f"{r.label:<22} {r.rate:>9.1f} {r.percentile(0.50):>9.2f} {r.percentile(0.99):>9.2f} {len(r.errors):>7}")
        ok &= not r.errors
        for err in sorted(set(r.errors))[:5]:
            print(f"  error: {err}")
    bare = results[0]
    print("\nratio gateway/bare (throughput: share of bare req/s; latency: times slower)")
    for r in results[1:]:
        print(
            f"  {r.label:<20} throughput {r.rate / bare.rate:.3f}x   "
            f"p50 {r.percentile(0.50) / bare.percentile(0.50):.1f}x   "
            f"p99 {r.percentile(0.99) / bare.percentile(0.99):.1f}x"
        )
    print("\nCPU during the load (the server processes' user + system time; the machine: every process)")
    for r in results:
        print(f"  {r.label:<22} {cpu_line(r.cpu, r.answered)}")
    if bare.cpu and bare.cpu.measurable:
        # A server kept busy on its CPUs answers at most (its CPUs / its CPU per request): a share of
        # bare's throughput needs about the inverse share of bare's CPU per request.
        floor = bare.cpu.per_request_us(bare.answered)
        for r in results[1:]:
            if r.cpu and r.cpu.measurable and r.answered:
                print(f"  {r.label:<22} server CPU per request {r.cpu.per_request_us(r.answered) / floor:.1f}× bare's")
    print("\nthe gateway's event loop during the load: how late it ran a timer (its /metrics, one process)")
    for r in results:
        if r.lag is not None:
            print(f"  {r.label:<22} {lag_line(r.lag.figures)}")
    print("\nratio gateway/reference (same database; throughput share, p99 times slower)")
    refs = {r.label.split("(")[1].split(")")[0]: r for r in results if r.label.startswith("reference")}
    gateways = [r for r in results if "reports" in r.server]
    for r in gateways:
        db = r.label.split("(")[1].split(")")[0].split(" ")[0]
        ref = refs.get(db)
        if ref is not None:
            p99 = r.percentile(0.99) / ref.percentile(0.99)
            print(f"  {r.label:<20} throughput {r.rate / ref.rate:.3f}x   p99 {p99:.1f}x")
    one = next((r for r in gateways if r.label == "gateway (postgresql)"), None)
    for r in gateways:
        if one is not None and r is not one and r.label.startswith("gateway (postgresql"):
            print(f"  {r.label} / {one.label}: throughput {r.rate / one.rate:.2f}x")
    print("\nafter the load")
    for r in gateways:
        stored = sum(r.server["reports"].values())
        expected = r.server["posted"]
        status = ", ".join(f"{k} {v}" for k, v in sorted(r.server["reports"].items()))
        verdict = "ok" if stored >= expected else "MISMATCH"  # wrk: requests in flight at its end may be stored
        print(f"  {r.label:<20} reports stored {stored} of {expected} answered 201 ({verdict}; {status}); ", end="")
        print(f"background tasks drained in {r.server['drain_s']:.2f} s")
        ok &= stored >= expected
    return ok


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per target (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--warmup", type=int, help="unmeasured requests first (default: a tenth, at most 200)")
    parser.add_argument("--database-url", help="also run on PostgreSQL: postgresql+asyncpg://USER@127.0.0.1:5432/DB")
    parser.add_argument("--processes", default="1", help="gateway processes on PostgreSQL, e.g. 1,2 (default 1)")
    parser.add_argument(
        "--client", choices=["python", "wrk"], default="python", help="load generator (wrk: lighter, by --duration)"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per target with --client wrk")
    args = parser.parse_args(argv)
    args.processes = [int(n) for n in str(args.processes).split(",")]
    if args.client == "wrk" and not shutil.which("wrk"):
        parser.error("--client wrk: wrk is not installed (Debian: apt install wrk)")
    if not (1 <= args.requests <= 1_000_000 and 1 <= args.concurrency <= 1024):
        parser.error("--requests must be 1..1000000 and --concurrency 1..1024")
    if args.warmup is None:
        args.warmup = min(200, args.requests // 10)
    if args.database_url:
        local_pg(args.database_url)
    return args


def print_header(args: argparse.Namespace) -> None:
    print_machine()
    print(f"\nintake benchmark: POST {PATH}, {args.requests} requests per target, concurrency {args.concurrency}")
    print(f"  {args.warmup} warm-up requests per target first, not measured")
    print(f"  {CLASSIFIER_NOTE}")
    print("  embedded gateway (in-process task runner): its background tasks share its process during the load")
    if args.client == "wrk":
        print(
            f"  load: wrk, one thread, {args.concurrency} connections, {args.duration} s per target (after the warm-up)"
        )
    else:
        print(f"  each server runs in its own process on {LOOPBACK}; the aiohttp client runs in this one")
    print("  reference: parse and check the JSON, one committed INSERT (SQLite WAL synchronous=FULL, like the gateway)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_header(args)
    targets = [
        Target("bare aiohttp", "bare"),
        Target("reference (sqlite)", "reference"),
        Target("gateway (sqlite)", "gateway"),
    ]
    results = [run_target(t, args) for t in targets]
    if args.database_url:
        pg_targets = [Target("reference (postgresql)", "reference")] + [
            Target("gateway (postgresql)" if n == 1 else f"gateway (postgresql ×{n})", "gateway", processes=n)
            for n in args.processes
        ]
        for target in pg_targets:  # each on a database of its own, created here and dropped after
            fresh = FreshDatabase(args.database_url)
            with fresh as url:
                target.database_url = url
                results.append(run_target(target, args))
            print(f"  database {fresh.name} created, migrated and dropped")
    return 0 if print_results(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
