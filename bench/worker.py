"""One Celery worker's classification throughput: reports/s through ``classify_report``.

    python bench/worker.py                            # 2000 reports, gateway worker -c 2 -Q nlp
    python bench/worker.py --reports 500 --redis-url redis://127.0.0.1:6379/3

``gateway serve`` (Celery runner, no worker yet) takes ``--reports`` complaints on
``POST /api/v1/reports``; each leaves a ``classify_report`` task queued in Redis and the report in
``received``. Then ``gateway worker -c N -Q nlp`` starts and works the backlog off: the figure is
the reports that left ``received`` per second, counted from the first one classified (so the
worker's start-up and model load are not in it) to the last. The worker takes the ``nlp`` queue
only: deliveries (queue ``dispatch``) wait, so this is classification alone (placement, the
model, the duplicate check, the moves to ``ready`` and the outbox rows). The baseline is the
model alone, in this process: ``classify(list)`` over the same texts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from _load import free_port
from _machine import print_machine
from aiohttp import ClientSession, ClientTimeout, DummyCookieJar, TCPConnector
from dispatch import (
    LOOPBACK,
    Processes,
    Receiver,
    _check_redis,
    _empty_redis,
    gateway_env,
    gateway_poster,
    payload,
    prepare_model,
    wait_healthy,
)


def received(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM reports WHERE status = 'received'").fetchone()[0])


async def post_all(base: str, n: int, concurrency: int = 16) -> None:
    post_one = gateway_poster(base)
    numbers = iter(range(n))
    async with ClientSession(
        connector=TCPConnector(limit=concurrency), cookie_jar=DummyCookieJar(), timeout=ClientTimeout(total=60)
    ) as session:

        async def client() -> None:
            for i in numbers:
                await post_one(session, i)

        await asyncio.gather(*(client() for _ in range(concurrency)))


async def measure(args: argparse.Namespace) -> tuple[float, int, float]:
    """(reports/s through classification, reports classified in the window, window seconds)."""
    receiver = Receiver()  # never started: deliveries stay queued (the worker does not take them)
    receiver.url = f"http://{LOOPBACK}:9/unused"
    with tempfile.TemporaryDirectory(prefix="gw-bench-worker-") as tmp:
        work, port = Path(tmp), free_port()
        env = gateway_env(work, port, receiver, args.model_dir, args.redis_url)
        env["GATEWAY_STUCK_AFTER_S"] = "3600"  # no sweeper copies while the backlog waits
        db = work / "var" / "gateway.db"
        procs = Processes(work, env)
        base = f"http://{LOOPBACK}:{port}"
        try:
            procs.start("serve", "serve", "--host", LOOPBACK, "--port", str(port))
            await wait_healthy(base, procs)
            await post_all(base, args.reports)
            waiting = received(db)
            if waiting != args.reports:
                raise RuntimeError(f"{waiting} of {args.reports} reports in received before the worker started")
            procs.start("worker", "worker", "-c", str(args.worker_concurrency), "-Q", "nlp")
            deadline = time.perf_counter() + args.max_seconds
            left = waiting
            while left == waiting:  # start-up and model load
                procs.check_alive()
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"no report classified within {args.max_seconds} s")
                await asyncio.sleep(0.02)
                left = await asyncio.to_thread(received, db)
            t0, first_left = time.perf_counter(), left
            while left:
                procs.check_alive()
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{left} reports still in received after {args.max_seconds} s")
                await asyncio.sleep(0.02)
                left = await asyncio.to_thread(received, db)
            seconds = time.perf_counter() - t0
        except Exception:
            for name, _ in procs.started:
                print(f"--- {name} log (last lines) ---\n{procs.tail(name)}", file=sys.stderr)
            raise
        finally:
            await procs.stop()
            if args.redis_was_empty:
                await asyncio.to_thread(_empty_redis, args.redis_url)
    return first_left / seconds, first_left, seconds


def model_alone(model_dir: Path, n: int) -> float:
    from nlp import load_classifier

    clf = load_classifier(model_dir)
    texts = [payload(i)["text"] for i in range(n)]
    clf.classify(texts[:10])
    started = time.perf_counter()
    clf.classify(texts)
    return n / (time.perf_counter() - started)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=2000, help="reports in the backlog (default 2000)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="local Redis, a database of its own")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="`gateway worker -c` (default 2)")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="bound on the run (default 300)")
    args = parser.parse_args(argv)
    if not (1 <= args.reports <= 100_000 and 1 <= args.worker_concurrency <= 16):
        parser.error("--reports must be 1..100000, --worker-concurrency 1..16")
    args.redis_was_empty = _check_redis(parser, args.redis_url)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.model_dir, version = prepare_model()
    print_machine()
    print(f"\nclassification backlog: {args.reports} reports queued, then `gateway worker -c {args.worker_concurrency}")
    print(f"  -Q nlp` over {args.redis_url}; the bundled model {version}; a fresh SQLite file")
    base = model_alone(args.model_dir, args.reports)
    rate, done, seconds = asyncio.run(measure(args))
    print(f"\n{'what':<44} {'reports/s':>10}")
    print(f"{'baseline: the model alone, classify(list)':<44} {base:>10.1f}")
    print(f"{f'celery worker -c {args.worker_concurrency}, through classification':<44} {rate:>10.1f}")
    print(f"  ({done} reports classified in {seconds:.2f} s; {rate / base:.4f}x the model alone)")
    print(json.dumps({"reports_per_s": round(rate, 1), "model_alone_per_s": round(base, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
