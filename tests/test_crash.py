"""Killing the server right after a 201 loses nothing: the report is there after a restart, and the
sweeper finishes the work the dead process had queued in memory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.faults.support import free_port


def start_server(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GATEWAY_VAR_DIR": str(tmp_path / "var"),
        "GATEWAY_CLASSIFIER": "placeholder",
        "GATEWAY_SWEEP_INTERVAL_S": "0.5",
        "GATEWAY_STUCK_AFTER_S": "0",
        "GATEWAY_LOG_FORMAT": "text",
    }
    env.pop("GATEWAY_DATABASE_URL", None)
    env.pop("GATEWAY_REDIS_URL", None)
    with open(tmp_path / "server.log", "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


async def wait_up(session: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text(errors='replace')[-2000:]}")  # noqa: ASYNC240
        try:
            async with session.get(f"{base}/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_report_survives_kill_after_201(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        proc = start_server(tmp_path, port)
        try:
            await wait_up(session, base, proc, tmp_path / "server.log")
            async with session.post(f"{base}/api/v1/reports", json={"text": "小区路灯全部不亮了"}) as resp:
                assert resp.status == 201
                case = (await resp.json())["case_number"]
            proc.send_signal(signal.SIGKILL)  # no graceful shutdown, no chance to finish tasks
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        proc = start_server(tmp_path, port)
        try:
            await wait_up(session, base, proc, tmp_path / "server.log")
            async with session.get(f"{base}/api/v1/reports/{case}") as resp:
                assert resp.status == 200
                report = await resp.json()
            assert report["text"] == "小区路灯全部不亮了"
            # If the first process died before classifying, the restarted one's sweeper does it.
            deadline = time.monotonic() + 20
            while report["status"] == "received" and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                async with session.get(f"{base}/api/v1/reports/{case}") as resp:
                    report = await resp.json()
            assert report["status"] == "needs_review"
        finally:
            proc.send_signal(signal.SIGTERM)  # graceful this time
            assert proc.wait(timeout=30) == 0
