"""What the load benchmarks share: a free port, wrk runs and their figures, a throw-away database.

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
