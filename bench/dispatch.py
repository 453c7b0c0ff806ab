"""The dispatch hand-off end to end: report received → signed webhook delivered at dispatch.

    python bench/dispatch.py                          # 300 reports per mode, 8 in flight
    python bench/dispatch.py --modes embedded         # without Redis
    python bench/dispatch.py --requests 1000 --redis-url redis://127.0.0.1:6379/0

A local dispatch server runs in this process (127.0.0.1, a free port): it verifies each webhook's
signature (``adapters.dispatch.verify``) and notes when each case number first arrives. The load
client, also here, keeps ``--concurrency`` reports in flight: each posts a complaint to
``POST /api/v1/reports`` (the moment the report is received) and waits until its case reaches the
dispatch server; that wait is the end-to-end latency (intake, commit, classification with the
bundled model, duplicate check, outbox row, signed POST). Throughput is deliveries per second.

Modes, each on a fresh SQLite file in a temporary directory, each gateway a real process:

- ``baseline: sign+POST``: this process signs a report-shaped body and POSTs it to the same
  dispatch server, the floor that HMAC signing, aiohttp and the loopback cost here;
- ``embedded``: ``gateway serve`` with the in-process task runner (no Redis);
- ``celery``: ``gateway serve`` with ``GATEWAY_REDIS_URL`` (tasks go over Redis) and
  ``gateway worker -c N`` (prefork) running classification and delivery.

Warm-up reports go through first (not measured): they load the model in every process. The
processes are stopped (SIGTERM, then SIGKILL after a bound) before the next mode starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from aiohttp import ClientError, ClientSession, ClientTimeout, DummyCookieJar, TCPConnector, web
from shapely import prepared
from shapely.ops import unary_union

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repository, for `adapters` and `nlp`
from _load import free_port  # noqa: E402
from _machine import print_machine  # noqa: E402 - bench/ is sys.path[0] when run as a script

from adapters import dispatch  # noqa: E402
from grid.index import GridIndex  # noqa: E402
from grid.units import Level  # noqa: E402

LOOPBACK = "127.0.0.1"
HOOK = "/hooks/dispatch"
SECRET = "bench-dispatch-secret"
START_TIMEOUT_S = 120.0  # a gateway must answer /healthz within this (imports, migrations)
STOP_TIMEOUT_S = 30.0  # then SIGKILL
TEXTS = (
    "第{i}号楼门口的路灯坏了三天了，晚上很黑，老人孩子出门不安全",
    "小区北门的路灯不亮了，晚上走路看不见",
    "路边的垃圾桶满了没人清运，味道很大",
    "人行道上的路灯杆歪了，灯也不亮",
    "公园里的路灯一直不亮",
)


SPOT_SPACING_M = 350.0  # more than the duplicate check's 300 m


def _spots() -> list[tuple[float, float]]:
    """Points of a lattice ``SPOT_SPACING_M`` apart that fall inside a grid unit (网格) of the
    bundled sample grid, as (lat, lng) in WGS-84: a report outside every unit would wait for a
    moderator, and two reports at different spots are too far apart for the duplicate check."""
    units = [u.geometry for u in GridIndex.sample().units if u.level is Level.GRID and u.geometry is not None]
    inside = prepared.prep(unary_union(units))
    west, south, east, north = inside.context.bounds
    d_lat = SPOT_SPACING_M / 111_195
    d_lng = d_lat / math.cos(math.radians((south + north) / 2))
    found = []
    lat = south + d_lat / 2
    while lat < north:
        lng = west + d_lng / 2
        while lng < east:
            if inside.contains(shapely.Point(lng, lat)):
                found.append((round(lat, 6), round(lng, 6)))
            lng += d_lng
        lat += d_lat
    return found


SPOTS = _spots()


def payload(i: int) -> dict[str, Any]:
    """A complaint the bundled model routes to dispatch with confidence, in a unit of the grid.
    Report ``i`` stands at spot ``i`` (cycling) with text ``i // len(SPOTS)`` (cycling): two reports
    share a spot only with different texts (the texts are not near duplicates of one another), so
    the duplicate check holds none back for ``len(SPOTS) * len(TEXTS)`` (about 8,800) reports."""
    lat, lng = SPOTS[i % len(SPOTS)]
    text = TEXTS[(i // len(SPOTS)) % len(TEXTS)].format(i=i)
    return {"text": text, "location": {"lat": lat, "lng": lng, "address": f"测试路{i}号"}}


# --------------------------------------------------------------------------- the dispatch server


class Receiver:
    """The dispatch system: verifies signatures, notes the first arrival of each case."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.webhooks = self.bad_signatures = self.duplicates = 0
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post(HOOK, self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, 0).start()
        self.url = f"http://{LOOPBACK}:{self._runner.addresses[0][1]}{HOOK}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def reset(self) -> None:
        self.arrivals.clear()
        self.webhooks = self.bad_signatures = self.duplicates = 0

    async def _hook(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        body = await request.read()
        self.webhooks += 1
        try:
            dispatch.verify([SECRET], request.headers, body)
        except dispatch.SignatureError:
            self.bad_signatures += 1
            return web.json_response({"ok": False}, status=401)
        case = str(json.loads(body).get("case_number", ""))
        if case in self.arrivals:
            self.duplicates += 1
        else:
            self.arrivals[case] = arrived
            waiter = self._waiting.pop(case, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(arrived)
        return web.json_response({"ok": True})

    async def arrival(self, case: str, timeout: float) -> float:
        if case in self.arrivals:  # the webhook can beat the intake's HTTP answer
            return self.arrivals[case]
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[case] = waiter
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiting.pop(case, None)


# --------------------------------------------------------------------------- load


@dataclass
class Result:
    label: str
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    acks_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    checks: dict[str, int] = field(default_factory=dict)
    offered: int = 0  # open loop: reports posted (acked: answered 201)
    acked: int = 0
    intake_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def pct(self, q: float, data: list[float] | None = None) -> float:
        """Nearest-rank percentile."""
        values = sorted(self.latencies_ms if data is None else data)
        if not values:
            return math.nan
        return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


PostOne = Callable[[ClientSession, int], Awaitable[str]]


async def load(post_one: PostOne, receiver: Receiver, first: int, args: argparse.Namespace, result: Result) -> None:
    """Keep ``args.concurrency`` reports in flight until ``args.requests`` (from ``first``) are done."""
    numbers = iter(range(first, first + args.requests))
    deadline = time.perf_counter() + args.max_seconds
    connector = TCPConnector(limit=args.concurrency)
    async with ClientSession(
        connector=connector, cookie_jar=DummyCookieJar(), timeout=ClientTimeout(total=30)
    ) as session:

        async def client() -> None:
            for i in numbers:  # shared iterator: each report is posted once
                if time.perf_counter() > deadline:
                    result.errors.append(f"stopped: --max-seconds {args.max_seconds} reached")
                    return
                t0 = time.perf_counter()
                try:
                    case = await post_one(session, i)
                    acked = time.perf_counter()
                    arrived = await receiver.arrival(case, args.timeout_s)
                except TimeoutError:
                    result.errors.append(f"no webhook within {args.timeout_s} s")
                    continue
                except (ClientError, OSError, RuntimeError) as exc:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                result.latencies_ms.append((arrived - t0) * 1000)
                result.acks_ms.append((acked - t0) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        result.seconds = time.perf_counter() - started


async def load_open(
    post_one: PostOne, receiver: Receiver, first: int, args: argparse.Namespace, result: Result
) -> None:
    """Open loop: post report ``first + k`` at ``k / args.rate`` s whatever the answers; each post's
    send time is when the report was received. Then wait up to ``args.timeout_s`` for the webhooks
    still missing."""
    count = max(1, round(args.rate * args.duration))
    sent: dict[str, float] = {}
    posts: list[asyncio.Task[None]] = []
    connector = TCPConnector(limit=0)
    async with ClientSession(
        connector=connector, cookie_jar=DummyCookieJar(), timeout=ClientTimeout(total=30)
    ) as session:

        async def post(i: int, t0: float) -> None:
            try:
                case = await post_one(session, i)
            except (ClientError, OSError, RuntimeError, TimeoutError) as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}")
                return
            sent[case] = t0
            result.acks_ms.append((time.perf_counter() - t0) * 1000)

        started = time.perf_counter()
        for k in range(count):
            due = started + k / args.rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            posts.append(asyncio.create_task(post(first + k, time.perf_counter())))
        await asyncio.gather(*posts)
        result.intake_seconds = time.perf_counter() - started
        deadline = time.perf_counter() + args.timeout_s
        for case in list(sent):
            try:
                await receiver.arrival(case, max(0.0, deadline - time.perf_counter()))
            except TimeoutError:
                break
    arrived = [receiver.arrivals[c] for c in sent if c in receiver.arrivals]
    result.latencies_ms = [(receiver.arrivals[c] - t0) * 1000 for c, t0 in sent.items() if c in receiver.arrivals]
    result.acked = len(sent)
    result.offered = count
    result.seconds = (max(arrived) - started) if arrived else 0.0
    missing = len(sent) - len(arrived)
    if missing:
        result.errors.append(f"{missing} webhook(s) missing {args.timeout_s} s after the last post")


def baseline_poster(receiver: Receiver) -> PostOne:
    async def post_one(session: ClientSession, i: int) -> str:
        case = f"BASE{i:012d}"
        report = {
            "case_number": case,
            "channel": "web",
            "created_at": "2026-11-27T08:00:00+00:00",
            "text": payload(i)["text"],
            "category": {"code": "0102", "name": "路灯与景观照明", "parent": "01"},
            "priority": "P3",
            "location": payload(i)["location"],
        }
        body = dispatch.encode(dispatch.build_payload(report, deadline="2026-12-04T08:00:00+00:00", department=None))
        headers = dispatch.signed_headers(SECRET, str(uuid.uuid4()), body, int(time.time()))
        async with session.post(receiver.url, data=body, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"dispatch server answered {resp.status}")
        return case

    return post_one


def gateway_poster(base: str) -> PostOne:
    async def post_one(session: ClientSession, i: int) -> str:
        async with session.post(f"{base}/api/v1/reports", json=payload(i)) as resp:
            body = await resp.json()
            if resp.status != 201:
                raise RuntimeError(f"intake answered {resp.status}: {str(body)[:200]}")
        return str(body["case_number"])

    return post_one


# --------------------------------------------------------------------------- gateway processes


def gateway_env(work: Path, port: int, receiver: Receiver, model_dir: Path, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}  # only ours count
    env.update(
        PYTHONPATH=str(ROOT),
        GATEWAY_VAR_DIR=str(work / "var"),
        GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{work / 'var' / 'gateway.db'}",
        GATEWAY_AUTO_MIGRATE="true",
        GATEWAY_CLASSIFIER="nlp",
        GATEWAY_MODEL_DIR=str(model_dir),
        GATEWAY_DISPATCH_URL=receiver.url,
        GATEWAY_DISPATCH_SECRET=SECRET,
        GATEWAY_LOG_LEVEL="WARNING",
        GATEWAY_LOG_FORMAT="text",
        GATEWAY_PUBLIC_URL=f"http://{LOOPBACK}:{port}",
    )
    if redis_url:
        env["GATEWAY_REDIS_URL"] = redis_url
    return env


class Processes:
    """The gateway processes of one mode; logs in the work directory, stopped on exit."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work, self.env = work, env
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        cli = "import sys; from gateway.cli import main; sys.exit(main())"
        log = (self.work / f"{name}.log").open("wb")
        # cwd is the work directory, so no .env of the caller's is read; own session for a clean stop.
        proc = subprocess.Popen(
            [sys.executable, "-c", cli, *args],
            cwd=self.work,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.started.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None:
                raise RuntimeError(f"`gateway {name}` exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.work / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self) -> None:
        for _, proc in reversed(self.started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # graceful: aiohttp drains, Celery warm shutdown
                try:
                    await asyncio.to_thread(proc.wait, STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session: the worker's pool children too
                    await asyncio.to_thread(proc.wait, STOP_TIMEOUT_S)


async def wait_healthy(base: str, procs: Processes) -> None:
    deadline = time.perf_counter() + START_TIMEOUT_S
    async with ClientSession(timeout=ClientTimeout(total=2)) as session:
        while time.perf_counter() < deadline:
            procs.check_alive()
            try:
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            except (ClientError, OSError):
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the gateway did not answer /healthz within {START_TIMEOUT_S} s")


async def measure_gateway(mode: str, label: str, receiver: Receiver, args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="gw-bench-dispatch-") as tmp:
        work, port = Path(tmp), free_port()
        redis_url = args.redis_url if mode == "celery" else None
        procs = Processes(work, gateway_env(work, port, receiver, args.model_dir, redis_url))
        base = f"http://{LOOPBACK}:{port}"
        try:
            procs.start("serve", "serve", "--host", LOOPBACK, "--port", str(port))
            await wait_healthy(base, procs)
            if mode == "celery":
                procs.start("worker", "worker", "-c", str(args.worker_concurrency))
            result = await measure(label, gateway_poster(base), receiver, args)
        except Exception:
            for name, _ in procs.started:
                print(f"--- {name} log (last lines) ---\n{procs.tail(name)}", file=sys.stderr)
            if redis_url:  # our worker is one consumer; more means another worker took our tasks
                print(
                    f"consumers on {redis_url}: {await asyncio.to_thread(_count_consumers, redis_url)}", file=sys.stderr
                )
            raise
        finally:
            await procs.stop()
            receiver.reset()
            if redis_url and args.redis_was_empty:
                await asyncio.to_thread(_empty_redis, redis_url)
    return result


def _count_consumers(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        return _consumers(client, int(client.connection_pool.connection_kwargs.get("db") or 0))
    finally:
        client.close()


def _empty_redis(url: str) -> None:
    """Leave the Redis database as it was found (empty): Celery's queue bindings, a lost task."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    finally:
        client.close()


async def measure(label: str, post_one: PostOne, receiver: Receiver, args: argparse.Namespace) -> Result:
    """Warm-up reports (which load the model in every process), then the measured ones."""
    warm = Result("warm-up")
    warm_args = argparse.Namespace(**{**vars(args), "requests": args.warmup, "concurrency": min(8, args.warmup)})
    await load(post_one, receiver, 0, warm_args, warm)
    if warm.errors:
        raise RuntimeError(f"{label}: warm-up failed: {sorted(set(warm.errors))[:3]}")
    receiver.reset()
    result = Result(label)
    await (load_open if args.rate else load)(post_one, receiver, args.warmup, args, result)
    result.checks = {
        "webhooks": receiver.webhooks,
        "unique": len(receiver.arrivals),
        "bad_signatures": receiver.bad_signatures,
        "duplicates": receiver.duplicates,
    }
    receiver.reset()
    return result


# --------------------------------------------------------------------------- report


def print_results(results: list[Result], requests: int) -> bool:
    ok = True
    print(f"\n{'mode':<28} {'deliv/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'ack p50':>9} {'delivered':>10} {'errors':>7}")
    for r in results:
        ack = f"{r.pct(0.5, r.acks_ms):>9.2f}" if not r.label.startswith("baseline") else f"{'-':>9}"
        print(
            f"{r.label:<28} {r.rate:>9.1f} {r.pct(0.5):>9.2f} {r.pct(0.99):>9.2f} {ack} "
            f"{len(r.latencies_ms):>10} {len(r.errors):>7}"
        )
        for err in sorted(set(r.errors))[:5]:
            print(f"  error: {err}")
    base = results[0]
    print("\nratio to the baseline (deliv/s: share of the baseline's; latency: times the baseline's)")
    for r in results[1:]:
        print(
            f"  {r.label:<28} deliv/s {r.rate / base.rate:.4f}x   "
            f"p50 {r.pct(0.5) / base.pct(0.5):.1f}x   p99 {r.pct(0.99) / base.pct(0.99):.1f}x"
        )
    print("\nchecks at the dispatch server (signature verified, each case once)")
    for r in results:
        c = r.checks
        good = (
            len(r.latencies_ms) == requests == c["unique"]
            and not r.errors
            and c["bad_signatures"] == 0
            and c["duplicates"] == 0
        )
        print(
            f"  {r.label:<28} delivered {c['unique']} of {requests}, webhooks {c['webhooks']}, "
            f"bad signatures {c['bad_signatures']}, duplicates {c['duplicates']} ({'ok' if good else 'NOT OK'})"
        )
        ok &= good
    return ok


def print_open_results(results: list[Result], args: argparse.Namespace) -> bool:
    """Open loop: offered and achieved rates, received → webhook percentiles, each case once."""
    ok = True
    head = f"\n{'mode':<28} {'offered/s':>9} {'intake/s':>9} {'deliv/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}"
    print(head + f" {'ack p50':>9} {'delivered':>10} {'errors':>7}")
    for r in results:
        intake = r.acked / r.intake_seconds if r.intake_seconds else 0.0
        ack = f"{r.pct(0.5, r.acks_ms):>9.2f}" if not r.label.startswith("baseline") else f"{'-':>9}"
        top = max(r.latencies_ms, default=math.nan)
        print(
            f"{r.label:<28} {args.rate:>9.1f} {intake:>9.1f} {r.rate:>9.1f} {r.pct(0.5):>9.2f} {r.pct(0.99):>9.2f} "
            f"{top:>9.2f} {ack} {len(r.latencies_ms):>10} {len(r.errors):>7}"
        )
        for err in sorted(set(r.errors))[:5]:
            print(f"  error: {err}")
    base = results[0]
    print("\nratio to the baseline (latency: times the baseline's)")
    for r in results[1:]:
        print(
            f"  {r.label:<28} p50 {r.pct(0.5) / base.pct(0.5):.1f}x   p99 {r.pct(0.99) / base.pct(0.99):.1f}x   "
            f"max {max(r.latencies_ms, default=math.nan) / max(base.latencies_ms, default=math.nan):.1f}x"
        )
    print("\nchecks at the dispatch server (signature verified; each case delivered once, none missing, none twice)")
    for r in results:
        c = r.checks
        missing = r.offered - len(r.latencies_ms)
        good = (
            r.acked == r.offered == c["unique"] == len(r.latencies_ms)
            and not r.errors
            and c["bad_signatures"] == 0
            and c["duplicates"] == 0
        )
        print(
            f"  {r.label:<28} delivered {c['unique']} of {r.offered}, missing {missing}, webhooks {c['webhooks']}, "
            f"bad signatures {c['bad_signatures']}, duplicates {c['duplicates']} ({'ok' if good else 'NOT OK'})"
        )
        ok &= good
    return ok


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="measured reports per mode (default 300)")
    parser.add_argument("--concurrency", type=int, default=8, help="reports in flight (default 8)")
    parser.add_argument("--warmup", type=int, help="unmeasured reports first (default: a tenth, 5 to 50)")
    parser.add_argument("--rate", type=float, help="open loop: post this many reports per second (else closed loop)")
    parser.add_argument("--duration", type=float, default=60.0, help="open loop: seconds of posting (default 60)")
    parser.add_argument("--modes", default="embedded,celery", help="embedded, celery or both (default both)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="local Redis for celery mode")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="`gateway worker -c` (default 2)")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="longest wait for one webhook (default 60)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="bound on one mode's load (default 600)")
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not (1 <= args.requests <= 100_000 and 1 <= args.concurrency <= 256 and 1 <= args.worker_concurrency <= 16):
        parser.error("--requests must be 1..100000, --concurrency 1..256, --worker-concurrency 1..16")
    if args.rate is not None and not (0 < args.rate <= 2000 and 0 < args.duration <= 3600):
        parser.error("--rate must be in (0, 2000] and --duration in (0, 3600]")
    if not args.modes or set(args.modes) - {"embedded", "celery"}:
        parser.error("--modes takes embedded, celery or embedded,celery")
    if args.warmup is None:
        args.warmup = max(5, min(50, args.requests // 10))
    args.redis_was_empty = "celery" in args.modes and _check_redis(parser, args.redis_url)
    return args


def _check_redis(parser: argparse.ArgumentParser, url: str) -> bool:
    """Celery mode needs a local Redis database that no other worker consumes from (it would take
    the benchmark's tasks) and whose gateway queues are empty (not someone else's backlog).
    True when the database is empty, so the run may empty it again afterwards."""
    import redis

    from gateway.worker import queues

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    kwargs = client.connection_pool.connection_kwargs
    try:
        if kwargs.get("host") not in (LOOPBACK, "localhost", "::1"):
            parser.error("--redis-url must point at a local Redis (127.0.0.1)")
        busy = {q: n for q in queues() if (n := client.llen(q))}
        keys = client.dbsize()
        consumers = _consumers(client, int(kwargs.get("db") or 0))
    except redis.ConnectionError:
        parser.error(f"Redis not reachable at {url}: start it, or run --modes embedded")
    finally:
        client.close()
    if busy or consumers:
        found = f"pending gateway tasks {busy}" if busy else f"{consumers} other client(s) waiting on queues"
        parser.error(f"{url} is in use ({found}): pass another database number")
    return not keys


def _consumers(client: Any, db: int, tries: int = 5) -> int:
    """Clients blocked on a list pop in ``db`` (Celery workers poll with BRPOP), seen over ~1 s."""
    most = 0
    for _ in range(tries):
        found = [c for c in client.client_list() if int(c.get("db", -1)) == db and c.get("cmd") in ("brpop", "blpop")]
        most = max(most, len(found))
        time.sleep(0.2)
    return most


def prepare_model() -> tuple[Path, str]:
    """The bundled model, trained once into var/models (the directory `gateway serve` uses too)."""
    from nlp.loader import ensure_bundled_model

    path = ensure_bundled_model(ROOT / "var" / "models")
    version = json.loads((path / "meta.json").read_text(encoding="utf-8")).get("version", "?")
    return path, str(version)


def print_header(args: argparse.Namespace, version: str) -> None:
    print_machine()
    print("\ndispatch hand-off benchmark: POST /api/v1/reports → signed webhook at a local dispatch server")
    if args.rate:
        count = max(1, round(args.rate * args.duration))
        print(
            f"  open loop: {args.rate:g} reports/s for {args.duration:g} s ({count} per mode), posted whatever the"
            f" answers; {args.warmup} warm-up reports first; webhooks awaited up to {args.timeout_s:g} s after"
        )
    else:
        print(f"  {args.requests} reports per mode, {args.concurrency} in flight, {args.warmup} warm-up reports first")
    print(f"  classifier: the bundled model {version}; database: a fresh SQLite file per mode")
    print(f"  modes: {', '.join(args.modes)}" + (f"; celery over {args.redis_url}" if "celery" in args.modes else ""))
    print(f"  the dispatch server and the load client share this process; everything on {LOOPBACK}")


async def run(args: argparse.Namespace) -> int:
    labels = {"embedded": "embedded (in-process)", "celery": f"celery (redis, worker -c {args.worker_concurrency})"}
    receiver = await Receiver().start()
    try:
        results = [await measure("baseline: sign+POST", baseline_poster(receiver), receiver, args)]
        for mode in args.modes:
            results.append(await measure_gateway(mode, labels[mode], receiver, args))
    finally:
        await receiver.stop()
    ok = print_open_results(results, args) if args.rate else print_results(results, args.requests)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.model_dir, version = prepare_model()
    print_header(args, version)
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
