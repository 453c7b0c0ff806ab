"""The fault suite's tools: real ``gateway serve`` and ``gateway worker`` processes, a private
Redis, residents posting under load, and the checks every fault test makes.

Every fault test asserts the same two things: no acknowledged report is lost or duplicated (each
resident's post, retried with its ``Idempotency-Key`` until answered, is one report with the case
number it was first given), and the system recovers by itself (every report reaches dispatch,
exactly once per case, within ``RECOVERY_S`` of the restart). The measured recovery time is
printed (``pytest -s``) and recorded as a property of the test (``record_property``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from bench._load import free_port as free_port  # one way to pick a server's port: benchmarks and tests
from gateway.core.lifecycle import Status
from gateway.db import Database, Delivery, Report
from tests.fakes.dispatch_server import FakeDispatch

ROOT = Path(__file__).resolve().parents[2]
RECOVERY_S = 10.0  # every report moves again within this of a restart (issue 13, item 10)
# Urgent (P1) reports go to dispatch whatever the classifier's confidence: each one must arrive.
TEXT = "{n}号楼楼道里有很浓的燃气味，请马上来人"


def gateway_env(tmp: Path, fake: FakeDispatch, **settings: str) -> dict[str, str]:
    """The environment of a gateway process: no setting of the test process leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "GATEWAY_VAR_DIR": str(tmp / "var"),
            "GATEWAY_LOG_FORMAT": "json",
            "GATEWAY_DISPATCH_URL": fake.url,
            "GATEWAY_DISPATCH_SECRET": fake.secret,
            "GATEWAY_DISPATCH_BACKOFF_BASE_S": "0.5",
            "GATEWAY_DISPATCH_BACKOFF_CAP_S": "2",
        }
    )
    env.update({f"GATEWAY_{k.upper()}": v for k, v in settings.items()})
    return env


@dataclass
class Proc:
    """A gateway process in a session of its own, so ``kill`` takes its children too."""

    name: str
    args: list[str]
    env: dict[str, str]
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.cwd / f"{self.name}.log"

    def start(self) -> Proc:
        with open(self.log, "ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", *self.args],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        """``kill -9`` of the process and its children: no shutdown, nothing finished."""
        assert self.proc is not None
        with _suppress_gone():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with _suppress_gone():
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


class _suppress_gone:  # noqa: N801 - used as a context manager
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, *_: Any) -> bool:
        return kind is not None and issubclass(kind, ProcessLookupError)


def serve(tmp: Path, env: dict[str, str], port: int) -> Proc:
    return Proc("serve", ["serve", "--port", str(port)], env, tmp).start()


def worker(tmp: Path, env: dict[str, str]) -> Proc:
    return Proc("worker", ["worker", "-c", "1"], env, tmp).start()


async def wait_up(base: str, proc: Proc, timeout: float = 60) -> float:
    """Wait for ``/healthz``; the monotonic time it first answered."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert proc.proc is not None
            if proc.proc.poll() is not None:
                raise AssertionError(f"{proc.name} exited: {proc.tail()}")
            try:
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return time.monotonic()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{proc.name} did not start: {proc.tail()}")


@dataclass
class Residents:
    """``n`` residents, each posting one report with an ``Idempotency-Key`` and retrying it until
    it is answered, as a client of the API should; ``acked`` maps each key to the case number of
    its first 201."""

    base: str
    n: int
    keys: list[str] = field(default_factory=list)
    acked: dict[str, str] = field(default_factory=dict)
    retried: dict[str, str] = field(default_factory=dict)  # an acked post sent again: its answer

    def __post_init__(self) -> None:
        self.keys = [uuid.uuid4().hex for _ in range(self.n)]

    async def post(self, keys: list[str] | None = None, *, spacing_s: float = 0.0) -> None:
        """Post each (still unanswered) report once, all in flight together."""
        keys = [k for k in (keys or self.keys) if k not in self.acked]
        timeout = aiohttp.ClientTimeout(total=20)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._one(session, k, i * spacing_s) for i, k in enumerate(keys)))

    async def _one(self, session: aiohttp.ClientSession, key: str, wait: float) -> None:
        await asyncio.sleep(wait)
        text = TEXT.format(n=self.keys.index(key) + 1)
        try:
            async with session.post(
                f"{self.base}/api/v1/reports", json={"text": text}, headers={"Idempotency-Key": key}
            ) as resp:
                if resp.status in (200, 201):  # 200: a retry of a post already stored
                    case = (await resp.json())["case_number"]
                    if key in self.acked:
                        self.retried[key] = case
                    else:
                        self.acked[key] = case
        except (aiohttp.ClientError, TimeoutError):
            pass  # not acknowledged: the resident tries again

    async def acked_at_least(self, count: int) -> None:
        while len(self.acked) < count:  # noqa: ASYNC110 - polling the load that runs beside
            await asyncio.sleep(0.01)

    async def until_all_acked(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < self.n:
            assert time.monotonic() < deadline, f"{self.n - len(self.acked)} reports never acknowledged"
            await self.post()
            if len(self.acked) < self.n:
                await asyncio.sleep(0.3)

    async def resend_acked(self, count: int = 5) -> None:
        """Send some acknowledged posts again: the same case number comes back."""
        keys = list(self.acked)[:count]
        async with aiohttp.ClientSession() as session:
            for key in keys:
                await self._one(session, key, 0)
        assert all(self.retried.get(k) == self.acked[k] for k in keys), "a retried post got a new case number"


async def wait_all_dispatched(db_url: str, residents: Residents, fake: FakeDispatch, timeout: float) -> float:
    """Wait until every acknowledged report is dispatched; the monotonic time it happened."""
    cases = set(residents.acked.values())
    db = Database(db_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            async with db.session() as s:
                done = await s.scalar(
                    select(func.count())
                    .select_from(Report)
                    .where(Report.case_number.in_(cases), Report.status == Status.DISPATCHED)
                )
            if done == len(cases):
                return time.monotonic()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(cases) - (done or 0)} of {len(cases)} reports not dispatched in {timeout} s"
                )
            await asyncio.sleep(0.1)
    finally:
        await db.close()


async def settle(db_url: str, residents: Residents, fake: FakeDispatch, *, grace_s: float = 30) -> float:
    """The tail of a fault test: every resident acknowledged (retrying cut-off posts), every case
    dispatched, some posts sent again, then nothing lost or duplicated; when all was dispatched."""
    await residents.until_all_acked()
    moved = await wait_all_dispatched(db_url, residents, fake, timeout=RECOVERY_S + grace_s)
    await residents.resend_acked()
    await assert_nothing_lost_or_duplicated(db_url, residents, fake)
    return moved


async def assert_nothing_lost_or_duplicated(db_url: str, residents: Residents, fake: FakeDispatch) -> None:
    """Each post is one report with its first case number; each case reached dispatch once."""
    db = Database(db_url)
    try:
        async with db.session() as s:
            rows = (await s.execute(select(Report.idempotency_key, Report.case_number))).all()
            deliveries = (await s.execute(select(Delivery.report_id, Delivery.state))).all()
    finally:
        await db.close()
    by_key: dict[str | None, list[str]] = {}
    for key, case in rows:
        by_key.setdefault(key, []).append(case)
    assert set(by_key) == set(residents.keys), "a report without a resident's post, or a post without its report"
    assert all(len(c) == 1 for c in by_key.values()), "a post stored twice"
    assert {k: c[0] for k, c in by_key.items()} == residents.acked, "a case number changed"
    assert len(deliveries) == len(rows) and all(state == "delivered" for _, state in deliveries)
    received = sorted(p["case_number"] for p in fake.deliveries.values())
    assert received == sorted(residents.acked.values()), "a case missing at dispatch, or received twice"


def report_figure(record_property: Any, what: str, **figures: float) -> None:
    """Print the figures (``pytest -s``) and record them in the test report."""
    for name, value in figures.items():
        record_property(name, round(value, 2))
    shown = ", ".join(f"{k} {v:.1f} s" for k, v in figures.items())
    print(f"\n[fault] {what}: {shown}")
