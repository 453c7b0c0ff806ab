"""What the load benchmarks share: a free port, wrk runs and their figures, the CPU a load cost,
the gateway's event-loop lag during it, a throw-away database.

``from _load import free_port, run_wrk, FreshDatabase`` (bench/ is on sys.path when a script there
is run as ``python bench/NAME.py``).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import re
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A free port for a server this process starts. Picked at random below the kernel's ephemeral
    range (32768-60999 on Linux), where ``bind(0)`` and every outgoing connection take theirs: a
    port the kernel hands out twice to processes that start servers at the same time (tests run
    in parallel) once made one test's requests reach another test's gateway."""
    for _ in range(200):
        port = random.randrange(10_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 10000 and 32000")


@dataclass(frozen=True)
class WrkFigures:
    seconds: float
    answered: int  # 2xx answers
    errors: int  # other answers and socket errors
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        """Answered requests per second."""
        return self.answered / self.seconds if self.seconds else 0.0


def run_wrk(url: str, connections: int, seconds: float, script: Path, script_args: Sequence[str] = ()) -> WrkFigures:
    """wrk with one thread, ``connections`` connections, for ``seconds``, driven by a Lua ``script``."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s"]
    args += ["-s", str(script), url]
    if script_args:
        args += ["--", *script_args]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    total = int(_grab(r"(\d+) requests in", out))
    bad = int(_grab(r"Non-2xx or 3xx responses: (\d+)", out, "0"))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkFigures(
        seconds=float(_grab(r"requests in ([\d.]+)s", out)),
        answered=total - bad,
        errors=bad + (sum(int(g) for g in sock.groups()) if sock else 0),
        p50_ms=_ms(out, "50"),
        p99_ms=_ms(out, "99"),
    )


def _grab(pattern: str, text: str, default: str | None = None) -> str:
    m = re.search(pattern, text)
    if m is None:
        if default is None:
            raise RuntimeError(f"wrk printed no {pattern!r}:\n{text}")
        return default
    return m.group(1)


def _ms(out: str, pct: str) -> float:
    m = re.search(rf"{pct}%\s+([\d.]+)(us|ms|s)\b", out)
    if m is None:
        return math.nan
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


# --------------------------------------------------------------------------- CPU during a load


MIN_CPU_S = 0.2  # less server CPU than this over a load is too few clock ticks for a figure


def cpu_ticks(pid: int) -> int | None:
    """User + system CPU of process ``pid`` so far, in clock ticks (Linux /proc; None if unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def _servers_ticks(pids: Sequence[int]) -> int | None:
    ticks = [cpu_ticks(p) for p in pids]
    return None if any(t is None for t in ticks) else sum(t or 0 for t in ticks)


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of every CPU of the machine so far (/proc/stat); None elsewhere."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    ticks = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


@dataclass(frozen=True)
class CpuFigures:
    """What a load cost in CPU: the server processes' own time and how busy the whole machine was
    (servers, database, load generator: what is left idle is what more processes could use)."""

    server_s: float  # user + system CPU seconds of the server processes
    wall_s: float
    machine_busy: float  # share of all the machine's CPU time that was busy, 0..1

    @property
    def server_cores(self) -> float:
        """The server processes' CPU as a number of CPUs kept busy."""
        return self.server_s / self.wall_s if self.wall_s else 0.0

    @property
    def measurable(self) -> bool:
        """Enough CPU time for a figure: /proc counts in clock ticks (10 ms), a short load in a few."""
        return self.server_s >= MIN_CPU_S

    def per_request_us(self, answered: int) -> float:
        """Server CPU per answered request, in microseconds (NaN when not measurable)."""
        return self.server_s / answered * 1e6 if answered and self.measurable else math.nan


class CpuMeter:
    """``with CpuMeter(pids) as meter: <load>``; then ``meter.figures`` (None where /proc is missing)."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.figures: CpuFigures | None = None

    def __enter__(self) -> CpuMeter:
        self._start = (time.perf_counter(), _servers_ticks(self.pids), _machine_ticks())
        return self

    def __exit__(self, *exc: object) -> None:
        wall0, server0, machine0 = self._start
        server1, machine1 = _servers_ticks(self.pids), _machine_ticks()
        if server0 is None or server1 is None or machine0 is None or machine1 is None:
            return  # a server gone (or no /proc): no figure rather than a wrong one
        hz = os.sysconf("SC_CLK_TCK")
        busy, total = machine1[0] - machine0[0], machine1[1] - machine0[1]
        self.figures = CpuFigures(
            server_s=(server1 - server0) / hz,
            wall_s=time.perf_counter() - wall0,
            machine_busy=busy / total if total else 0.0,
        )


def cpu_line(figures: CpuFigures | None, answered: int) -> str:
    """``  0.97 CPUs  812 µs/request  machine 64% busy`` (``n/a`` without /proc)."""
    if figures is None:
        return "n/a (no /proc here)"
    if not figures.measurable:
        return f"n/a (a load this short used {figures.server_s:.2f} CPU seconds: too few clock ticks)"
    return (
        f"{figures.server_cores:5.2f} CPUs {figures.per_request_us(answered):7.0f} µs/request"
        f"   machine {100 * figures.machine_busy:3.0f}% busy"
    )


# --------------------------------------------------------------------------- event loop lag

LAG_METRIC = "gateway_event_loop_lag_seconds"  # gateway/metrics.py


def lag_histogram(base_url: str) -> dict[str, float] | None:
    """The gateway's event-loop lag histogram from its ``/metrics`` (cumulative bucket counts by
    ``le``, and ``sum`` and ``count``); None when it cannot be read."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=30) as resp:
            text = resp.read().decode("utf-8")
    except OSError:
        return None
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != LAG_METRIC:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                found[sample.labels["le"]] = sample.value
            elif sample.name.endswith(("_sum", "_count")):
                found[sample.name.rsplit("_", 1)[1]] = sample.value
    return found or None


@dataclass(frozen=True)
class LagFigures:
    """The lag the gateway's loop showed during a load: its samples, their mean, and the bucket
    bounds (seconds) under which half, 90% and 99% of them fell."""

    samples: int
    mean_s: float
    p50_le: float
    p90_le: float
    p99_le: float


def lag_between(before: dict[str, float] | None, after: dict[str, float] | None) -> LagFigures | None:
    if not before or not after:
        return None
    count = after["count"] - before["count"]
    if count <= 0:
        return None
    buckets = sorted((float(le), after[le] - before.get(le, 0.0)) for le in after if le not in ("sum", "count"))

    def under(q: float) -> float:
        return next(le for le, n in buckets if n >= q * count)

    return LagFigures(int(count), (after["sum"] - before["sum"]) / count, under(0.5), under(0.9), under(0.99))


class LagMeter:
    """``with LagMeter(base_url) as lag: <load>``; then ``lag.figures``: the gateway's event-loop lag
    during the load, from its ``/metrics`` read before and after (None: no page, or no samples)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.figures: LagFigures | None = None

    def __enter__(self) -> LagMeter:
        self._before = lag_histogram(self.base_url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.figures = lag_between(self._before, lag_histogram(self.base_url))


def lag_line(figures: LagFigures | None) -> str:
    """``mean 1.2 ms; half ≤ 1 ms, 90% ≤ 5 ms, 99% ≤ 10 ms (200 samples)``."""
    if figures is None:
        return "n/a (no samples on /metrics)"

    def ms(seconds: float) -> str:
        return "> 5 s" if math.isinf(seconds) else f"≤ {seconds * 1000:g} ms"

    return (
        f"mean {figures.mean_s * 1000:.1f} ms; half {ms(figures.p50_le)}, 90% {ms(figures.p90_le)}, "
        f"99% {ms(figures.p99_le)} ({figures.samples} samples)"
    )


# --------------------------------------------------------------------------- PostgreSQL database


def local_pg(url: str) -> Any:
    """The parsed URL of a local PostgreSQL server (a benchmark creates and drops databases there)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername != "postgresql+asyncpg":
        raise SystemExit("--database-url must be postgresql+asyncpg://...")
    if parsed.host not in (LOOPBACK, "localhost", "::1"):
        raise SystemExit(
            "--database-url must point at a local server (127.0.0.1): the benchmark creates and drops a database"
        )
    return parsed


async def _pg_admin(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class FreshDatabase:
    """A database of its own on the given server, created here and dropped on exit."""

    def __init__(self, url: str) -> None:
        parsed = local_pg(url)
        self.name = f"gw_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        self.url = parsed.set(database=self.name).render_as_string(hide_password=False)

    def __enter__(self) -> str:
        asyncio.run(_pg_admin(self.admin, f'CREATE DATABASE "{self.name}"'))
        return self.url

    def __exit__(self, *exc: object) -> None:
        asyncio.run(_pg_admin(self.admin, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
