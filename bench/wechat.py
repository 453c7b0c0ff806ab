"""How fast the WeChat callback answers, next to a bare aiohttp handler on the same machine.

WeChat waits 5 s for the passive reply (被动回复) and then retries; this drives
``POST /channels/wechat`` with signed text messages (distinct MsgId and sender each, so every
request stores a message and a draft report: the full verify → parse → intake → commit → ack
path) at increasing concurrency, and prints throughput and p50/p99 latency beside a bare
aiohttp handler that only reads the body and answers ``success``. Each server runs in its own
process; the client is this process.

    .venv/bin/python bench/wechat.py [--requests 400] [--concurrency 1,8,32,64] [--database-url URL]

Default database: a fresh SQLite file (embedded mode). Pass a ``postgresql+asyncpg://`` URL for
the production backend. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, TCPConnector, web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.wechat import signature  # noqa: E402

TOKEN = "benchtoken"
WECHAT_LIMIT_S = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(kind: str, port: int, var_dir: str, database_url: str) -> None:
    import logging

    logging.disable(logging.INFO)
    if kind == "bare":

        async def handler(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(text="success")

        app = web.Application()
        app.router.add_post("/channels/wechat", handler)
    else:
        from channels.wechat import WeChatSettings
        from gateway.core.classify import PlaceholderClassifier
        from gateway.http.app import create_app
        from gateway.settings import Settings

        wechat = WeChatSettings(
            _env_file=None,  # type: ignore[call-arg]
            token=TOKEN,
            api_base="http://127.0.0.1:9/cgi-bin/",  # never called: text messages only
        )
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            var_dir=Path(var_dir),
            database_url=database_url or f"sqlite+aiosqlite:///{var_dir}/bench.db",
            classifier="placeholder",
            log_format="text",
            log_level="WARNING",
            channel_settings={"wechat": wechat},
        )
        app = create_app(settings, classifier=PlaceholderClassifier(), migrate=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _body(i: int, run: str) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[oBENCH{run}{i:08d}]]>"
        f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[小区门口路灯不亮，第{i}号]]></Content><MsgId>{run}{i:010d}</MsgId></xml>"
    ).encode()


async def _drive(port: int, n: int, concurrency: int, run: str) -> tuple[list[float], float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(session: ClientSession) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            ts, nonce = str(int(time.time())), str(i)
            params = {"signature": signature(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}
            started = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{port}/channels/wechat", data=_body(i, run), params=params) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}")
            latencies.append(time.perf_counter() - started)

    async with ClientSession(connector=TCPConnector(limit=concurrency)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per concurrency level")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"python {platform.python_version()}, database: {args.database_url or 'sqlite (temporary file)'}")
    results: dict[str, dict[int, tuple[list[float], float]]] = {}
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as var_dir:
        for kind in ("bare", "gateway"):
            port = _free_port()
            server = ctx.Process(target=_serve, args=(kind, port, var_dir, args.database_url), daemon=True)
            server.start()
            try:
                _wait_port(port)
                asyncio.run(_drive(port, 20, 4, "9"))  # warm up (migrations done, connections open)
                results[kind] = {c: asyncio.run(_drive(port, args.requests, c, str(c))) for c in levels}
            finally:
                server.terminate()
                server.join(10)
    print(
        f"{'conc':>5} {'gw req/s':>9} {'gw p50 ms':>10} {'gw p99 ms':>10} {'bare req/s':>11} "
        f"{'bare p50':>9} {'bare p99':>9} {'p99 ratio':>10}"
    )
    worst = 0.0
    for c in levels:
        gw, gw_wall = results["gateway"][c]
        bare, bare_wall = results["bare"][c]
        worst = max(worst, _pct(gw, 0.99))
        print(
            f"{c:>5} {len(gw) / gw_wall:>9.0f} {_pct(gw, 0.5):>10.2f} {_pct(gw, 0.99):>10.2f} "
            f"{len(bare) / bare_wall:>11.0f} {_pct(bare, 0.5):>9.2f} {_pct(bare, 0.99):>9.2f} "
            f"{_pct(gw, 0.99) / max(_pct(bare, 0.99), 1e-9):>10.1f}"
        )
    print(
        f"worst gateway p99: {worst:.1f} ms = {worst / (WECHAT_LIMIT_S * 10):.2f}% of WeChat's 5 s limit"
        f" (mean of all: {statistics.mean(x for r in results['gateway'].values() for x in r[0]) * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    main()
