"""WeChat intake beside a minimal reference handler, in one run on one machine.

WeChat waits 5 s for the passive reply (被动回复), then retries three times and gives up. This
drives ``POST /channels/wechat`` with signed text messages, each from a new resident (distinct
MsgId and sender: every request stores a message and a draft report, the full verify → parse →
intake → commit → reply path), for ``--duration`` seconds at ``--connections`` connections, and
the same load against the reference:

- ``reference``: the minimal handler that does the same honest work, written here: signature
  check and message parse with wechatpy, one INSERT committed before answering (SQLite: sqlite3
  in WAL mode, ``synchronous=FULL`` like the gateway, so both acknowledge only what is on disk;
  PostgreSQL: one asyncpg INSERT from a pool), passive reply rendered by wechatpy;
- ``gateway``: the real app on the same database kind (``classifier=placeholder``: intake, not
  the model; ``--cold`` uses the bundled model and starts the load the moment the port opens).

It prints throughput and p50/p99 of each, the ratios gateway/reference, the RSS of a serving
process and whether it loaded torch, and checks that every answered message was stored.

    python bench/wechat.py                                   # SQLite, 10 s, 32 connections
    python bench/wechat.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test --processes 1,2
    python bench/wechat.py --cold                            # a fresh first start, no warm-up
    python bench/wechat.py --no-gc-freeze                    # start-up objects left to the collector

The load comes from ``wrk`` (a Lua script makes each request distinct) when it is installed
(Debian: ``apt install wrk``), else from an aiohttp client in this process, which costs about as
much CPU as the server it measures: the figures say which.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, TCPConnector, web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for `gateway`
from _load import (  # noqa: E402
    CpuFigures,
    CpuMeter,
    FreshDatabase,
    LagMeter,
    cpu_line,
    cpu_ticks,
    free_port,
    lag_line,
    run_wrk,
)
from _machine import print_machine  # noqa: E402 - bench/ is sys.path[0] when run as a script

from channels.wechat import signature  # noqa: E402

TOKEN = "benchtoken"
QUERIES_PER_SECOND = 8000  # pre-signed queries written for wrk per second of load (never reused)
PATH = "/channels/wechat"
WECHAT_LIMIT_S = 5.0
TEXT = "小区门口的路灯坏了好几天了，晚上很黑"
LUA = """
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  run = args[1]
  queries = {}
  for line in io.lines(args[2]) do queries[#queries + 1] = line end
end
function request()
  counter = counter + 1
  -- a signed query of its own per request (WeChat sends a fresh nonce with every push; the
  -- gateway refuses a signed query replayed with another message)
  local path = queries[((counter - 1) % #queries) + 1]
  local id = string.format("%s%d%09d", run, tid, counter)
  local body = "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[oBENCH" .. id ..
    "]]></FromUserName><CreateTime>" .. os.time() .. "</CreateTime><MsgType><![CDATA[text]]></MsgType>" ..
    "<Content><![CDATA[TEXT]]></Content><MsgId>" .. id .. "</MsgId></xml>"
  return wrk.format("POST", path, {["Content-Type"] = "text/xml"}, body)
end
""".replace("TEXT", TEXT)


@dataclass
class Result:
    label: str
    rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    answered: int = 0  # 2xx answers
    errors: int = 0  # other answers and socket errors
    stored: int = 0
    rss_mib: float = 0.0
    torch: bool = False
    cpu: CpuFigures | None = None  # what the measured load cost in CPU
    lag: LagMeter | None = None  # the gateway's event-loop lag during it (None: not watched)


# --------------------------------------------------------------------------- servers


def reference_app(database_url: str, var_dir: str, sync: str = "FULL") -> web.Application:
    """Signature check, wechatpy parse, one committed INSERT, wechatpy passive reply."""
    from wechatpy import parse_message
    from wechatpy.exceptions import InvalidSignatureException
    from wechatpy.replies import TextReply
    from wechatpy.utils import check_signature

    app = web.Application()
    pg = database_url.startswith("postgresql")
    state: dict[str, Any] = {}

    async def startup(app: web.Application) -> None:
        if pg:
            import asyncpg

            dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
            state["pool"] = await asyncpg.create_pool(dsn, min_size=4, max_size=10)
        else:
            conn = sqlite3.connect(f"{var_dir}/reference.db", isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={sync}")
            state["sqlite"] = conn

    async def cleanup(app: web.Application) -> None:
        if pg:
            await state["pool"].close()
        else:
            state["sqlite"].close()

    async def handler(request: web.Request) -> web.Response:
        q = request.query
        try:
            check_signature(TOKEN, q.get("signature", ""), q.get("timestamp", ""), q.get("nonce", ""))
        except InvalidSignatureException:
            return web.Response(status=403)
        msg = parse_message(await request.read())
        row = (str(msg.id), msg.source, getattr(msg, "content", ""), int(msg.create_time.timestamp()))
        if pg:
            await state["pool"].execute(
                "INSERT INTO ref_messages (msg_id, sender, content, created) VALUES ($1, $2, $3, $4)", *row
            )
        else:
            conn = state["sqlite"]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO ref_messages (msg_id, sender, content, created) VALUES (?, ?, ?, ?)", row)
            conn.execute("COMMIT")
        reply = TextReply(content=f"已收到，编号 {msg.id}", message=msg).render()
        return web.Response(body=reply.encode(), content_type="application/xml")

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_post(PATH, handler)
    return app


def reference_schema(database_url: str, var_dir: str) -> None:
    sql = "CREATE TABLE ref_messages (id {pk}, msg_id TEXT UNIQUE NOT NULL, sender TEXT, content TEXT, created BIGINT)"
    if database_url.startswith("postgresql"):
        asyncio.run(_pg(database_url, [sql.format(pk="BIGSERIAL PRIMARY KEY")]))
    else:
        with sqlite3.connect(f"{var_dir}/reference.db") as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(sql.format(pk="INTEGER PRIMARY KEY"))


async def _pg(url: str, statements: list[str], fetch: str | None = None) -> Any:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for sql in statements:
            await conn.execute(sql)
        return await conn.fetchval(fetch) if fetch else None
    finally:
        await conn.close()


def gateway_app(database_url: str, var_dir: str, cold: bool, gc_freeze: bool = True) -> web.Application:
    from channels.wechat import WeChatSettings
    from gateway.core.classify import PlaceholderClassifier
    from gateway.http.app import create_app
    from gateway.settings import ENV_PREFIX, Settings

    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        del os.environ[name]  # only the values below count
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        var_dir=Path(var_dir),
        database_url=database_url or f"sqlite+aiosqlite:///{var_dir}/gateway.db",
        classifier="nlp" if cold else "placeholder",
        gc_freeze=gc_freeze,
        log_format="json",
        log_level="WARNING",
        channel_settings={
            "wechat": WeChatSettings(
                _env_file=None,  # type: ignore[call-arg]
                token=TOKEN,
                api_base="http://127.0.0.1:9/cgi-bin/",  # never called: text messages only
            )
        },
    )
    return create_app(settings, classifier=None if cold else PlaceholderClassifier(), migrate=True)


def serve(kind: str, port: int, var_dir: str, database_url: str, cold: bool, gc_freeze: bool = True) -> None:
    import logging

    logging.disable(logging.INFO)
    if kind.startswith("reference"):
        app = reference_app(database_url, var_dir, "NORMAL" if kind == "reference-normal" else "FULL")
    else:
        app = gateway_app(database_url, var_dir, cold, gc_freeze)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, reuse_port=True)


def _wait_port(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def _settle(pid: int, timeout: float = 60.0) -> None:
    """Wait until the server process uses under 10% of a CPU for a second (warm-up finished)."""
    hz = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        before = cpu_ticks(pid) or 0
        time.sleep(0.5)
        quiet = quiet + 1 if ((cpu_ticks(pid) or 0) - before) / hz < 0.05 else 0


def _proc_status(pid: int) -> tuple[float, bool]:
    """RSS in MiB and whether the process mapped a torch library."""
    try:
        rss_kib = next(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        torch = "torch" in Path(f"/proc/{pid}/maps").read_text()
    except (OSError, StopIteration):
        return 0.0, False
    return rss_kib / 1024, torch


# --------------------------------------------------------------------------- load


def _query(nonce: str) -> str:
    ts = str(int(time.time()))
    return f"{PATH}?signature={signature(TOKEN, ts, nonce)}&timestamp={ts}&nonce={nonce}"


def load_wrk(port: int, seconds: float, connections: int, run: str, workdir: str) -> Result:
    script = Path(workdir) / "wechat.lua"
    script.write_text(LUA, encoding="utf-8")
    queries = Path(workdir) / f"queries-{run}.txt"
    count = int(QUERIES_PER_SECOND * max(1.0, seconds)) + 1000
    queries.write_text("\n".join(_query(f"{run}n{i}") for i in range(count)) + "\n", encoding="utf-8")
    query = _query(f"{run}n0")
    figures = run_wrk(f"http://127.0.0.1:{port}{query}", connections, seconds, script, [run, str(queries)])
    return Result("", figures.rate, figures.p50_ms, figures.p99_ms, answered=figures.answered, errors=figures.errors)


def _body(i: int, run: str) -> bytes:
    ident = f"{run}{i:09d}"
    return (
        f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[oBENCH{ident}]]>"
        f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{TEXT}]]></Content><MsgId>{ident}</MsgId></xml>"
    ).encode()


async def _load_python(port: int, seconds: float, connections: int, run: str) -> Result:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(10**9))
    deadline = time.perf_counter() + seconds

    async def worker(session: ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            i = next(counter)
            started = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{port}{_query(f'{run}n{i}')}", data=_body(i, run)) as r:
                await r.read()
                if r.status == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

    async with ClientSession(connector=TCPConnector(limit=connections)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        wall = time.perf_counter() - started
    latencies.sort()
    result = Result("", rate=len(latencies) / wall, answered=len(latencies), errors=errors)
    if latencies:
        result.p50_ms = latencies[len(latencies) // 2] * 1000
        result.p99_ms = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000
    return result


def load(client: str, port: int, seconds: float, connections: int, run: str, workdir: str) -> Result:
    if client == "wrk":
        return load_wrk(port, seconds, connections, run, workdir)
    return asyncio.run(_load_python(port, seconds, connections, run))


# --------------------------------------------------------------------------- a target


def stored_count(kind: str, database_url: str, var_dir: str) -> int:
    table = "ref_messages" if kind.startswith("reference") else "messages"
    sql = f"SELECT count(*) FROM {table}"  # noqa: S608 - a constant table name
    if database_url.startswith("postgresql"):
        return int(asyncio.run(_pg(database_url, [], fetch=sql)))
    name = "reference.db" if kind.startswith("reference") else "gateway.db"
    with sqlite3.connect(f"{var_dir}/{name}") as conn:
        return int(conn.execute(sql).fetchone()[0])


def run_target(label: str, kind: str, processes: int, database_url: str, args: argparse.Namespace) -> Result:
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-wechat-") as var_dir:
        if kind.startswith("reference"):
            reference_schema(database_url, var_dir)
        port = free_port()
        servers = []
        try:
            for n in range(processes):
                server = ctx.Process(
                    target=serve,
                    args=(kind, port, var_dir, database_url, args.cold, not args.no_gc_freeze),
                    daemon=True,
                )
                server.start()
                servers.append(server)
                if n == 0 and not (args.cold and kind == "gateway"):
                    _wait_port(port)  # the first process migrates; the others start on a ready schema
            if args.cold and kind == "gateway":
                _wait_port(port)  # a fresh first start: the load begins the moment the port opens
            else:
                for server in servers:
                    _settle(server.pid or 0)  # start-up done: model and grid loaded (the CPU goes quiet)
                load(args.client, port, 2, 8, "9", var_dir)  # warm-up, not measured
            warm = stored_count(kind, database_url, var_dir)
            one_gateway = kind == "gateway" and processes == 1  # /metrics of the one process
            lag = LagMeter(f"http://127.0.0.1:{port}") if one_gateway else None
            with lag or contextlib.nullcontext(), CpuMeter([server.pid or 0 for server in servers]) as meter:
                result = load(args.client, port, args.duration, args.connections, "1", var_dir)
            result.label, result.cpu, result.lag = label, meter.figures, lag
            time.sleep(0.5)
            result.stored = stored_count(kind, database_url, var_dir) - warm
            result.rss_mib, result.torch = _proc_status(servers[0].pid or 0)
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.join(10)
    return result


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per target (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--database-url", default="", help="postgresql+asyncpg://… (default: SQLite files)")
    parser.add_argument("--processes", default="1", help="gateway serving processes, e.g. 1,2 (PostgreSQL)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--cold", action="store_true", help="gateway from a fresh first start, bundled model")
    parser.add_argument(
        "--no-gc-freeze", action="store_true", help="gateway with GATEWAY_GC_FREEZE=false (to see what freezing buys)"
    )
    args = parser.parse_args(argv)
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    counts = [int(p) for p in args.processes.split(",")]
    pg = args.database_url.startswith("postgresql")
    if not pg and counts != [1]:
        parser.error("several serving processes need PostgreSQL (SQLite: one per database file)")
    print_machine()
    print(f"\nWeChat intake: {args.connections} connections, {args.duration:g} s per target, client {args.client}")
    print(f"  database: {'PostgreSQL' if pg else 'SQLite (WAL, synchronous=FULL), temporary files'}")
    print("  every request a new resident's text message (a new draft report in the gateway)")
    if args.no_gc_freeze:
        print("  gateway: GATEWAY_GC_FREEZE=false (start-up objects stay in the garbage collector's reach)")
    if args.cold:
        print("  gateway: fresh first start with the bundled model, load from the moment the port opens")
    if args.client == "python":
        print("  note: the aiohttp client shares the CPUs with the servers; install wrk for lighter load")
    results: list[Result] = []
    # SQLite: a second reference with synchronous=NORMAL (durable against a crash of the process,
    # not of the machine), to show what the fsync per message costs the FULL one.
    normal = [] if pg else [("ref NORMAL", "reference-normal", 1)]
    # PostgreSQL with several processes: the reference with as many, so that the gateway's scaling
    # is read beside what this machine gives the minimal handler (servers, PostgreSQL and the load
    # generator share its cores).
    scaled = [(f"reference ×{n}", "reference", n) for n in counts if n > 1] if pg else []
    targets = [("reference", "reference", 1), *normal, *scaled] + [
        (f"gateway ×{n}" if len(counts) > 1 or n > 1 else "gateway", "gateway", n) for n in counts
    ]
    for label, kind, n in targets:
        if not pg:
            results.append(run_target(label, kind, n, args.database_url, args))
            continue
        with FreshDatabase(args.database_url) as url:  # a database of its own per target
            results.append(run_target(label, kind, n, url, args))
    return 0 if report(results, args) else 1


def report(results: list[Result], args: argparse.Namespace) -> bool:
    print(
        f"\n{'target':<12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'answered':>9} {'stored':>8} {'errors':>7} "
        f"{'RSS MiB':>8} {'torch':>6}"
    )
    for r in results:
        print(
            f"{r.label:<12} {r.rate:>8.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.answered:>9} {r.stored:>8} "
            f"{r.errors:>7} {r.rss_mib:>8.0f} {'yes' if r.torch else 'no':>6}"
        )
    print("\nCPU during the load (the server processes' user + system time; the machine: every process)")
    for r in results:
        print(f"  {r.label:<12} {cpu_line(r.cpu, r.answered)}")
    print("\nthe gateway's event loop during the load: how late it ran a timer (its /metrics, one process)")
    for r in results:
        if r.lag is not None:
            print(f"  {r.label:<12} {lag_line(r.lag.figures)}")
    ref = results[0]
    normal = next((r for r in results if r.label == "ref NORMAL"), None)
    gateways = [r for r in results if r.label.startswith("gateway")]
    refs = {r.label.removeprefix("reference").strip() or "×1": r for r in results if r.label.startswith("reference")}
    ok = True
    print("\nratios (same run)")
    for r in gateways:
        peer = refs.get(r.label.removeprefix("gateway").strip() or "×1", ref)
        print(
            f"  {r.label}/{peer.label}: throughput {r.rate / peer.rate:.2f}, p99 {r.p99_ms / peer.p99_ms:.2f}× "
            f"(p99 {r.p99_ms:.1f} ms = {r.p99_ms / (WECHAT_LIMIT_S * 10):.2f}% of WeChat's 5 s)"
        )
        if r.cpu and peer.cpu and r.cpu.measurable and peer.cpu.measurable and r.answered and peer.answered:
            cost = r.cpu.per_request_us(r.answered) / peer.cpu.per_request_us(peer.answered)
            print(f"  {r.label}/{peer.label}: server CPU per message {cost:.2f}×")
        if normal is not None:
            print(
                f"  {r.label}/ref NORMAL: throughput {r.rate / normal.rate:.2f}, p99 {r.p99_ms / normal.p99_ms:.2f}× "
                "(the reference without an fsync per message; the gateway keeps FULL)"
            )
    if len(gateways) > 1:
        one = gateways[0]
        for r in gateways[1:]:
            print(f"  {r.label}/{one.label}: throughput {r.rate / one.rate:.2f}")
        for label, r in refs.items():
            if label != "×1":
                print(
                    f"  {r.label}/reference: throughput {r.rate / ref.rate:.2f} "
                    "(what this machine gives the minimal handler)"
                )
    for r in results:
        # Every answered message is stored (requests in flight at the end may be stored unanswered).
        if r.stored < r.answered:
            print(f"  LOST: {r.label} answered {r.answered} but stored {r.stored}")
            ok = False
    print("  every answered message stored" if ok else "  some answered messages were not stored")
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
