"""Fixtures of the fault suite: the dispatch target, and a private Redis that a test may restart."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.conftest import unavailable
from tests.fakes.dispatch_server import FakeDispatch
from tests.faults.support import free_port


@pytest.fixture
async def fake() -> AsyncIterator[FakeDispatch]:
    server = await FakeDispatch().start()
    yield server
    await server.down()


class PrivateRedis:
    """A redis-server of the test's own (no persistence), so restarting it disturbs no one else."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except Exception:
                pass
            self.proc.poll()
            subprocess.run(["sleep", "0.05"], check=False)
        raise AssertionError("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    async def restart(self, down_s: float = 1.0) -> None:
        """Kill it (queued tasks are lost: no persistence) and start it again after ``down_s``."""
        self.kill()
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.start)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()
