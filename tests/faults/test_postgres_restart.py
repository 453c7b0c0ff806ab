"""PostgreSQL "restarts" under load. Restarting the machine's server would disturb every other
test, and a private one cannot be started here as root (``initdb`` refuses), so the restart is
simulated the way clients see one: every connection of the gateway's database is terminated
(``pg_terminate_backend``), twice, a second apart. Requests caught by it fail without an answer
or with a 5xx (not acknowledged: the resident sends again), tasks fail and are retried,
heartbeats fail (and nobody is reaped for it), and everything moves on by itself."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from tests.faults.support import (
    RECOVERY_S,
    Residents,
    free_port,
    gateway_env,
    report_figure,
    serve,
    settle,
    wait_up,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(150)]


async def _terminate_all(pg_url: str) -> int:
    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await conn.close()


async def test_postgres_connections_killed_under_load(tmp_path, fake, pg_url, record_property):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = gateway_env(tmp_path, fake, database_url=pg_url)
    residents = Residents(base, 40)
    proc = serve(tmp_path, env, port)
    try:
        await wait_up(base, proc)
        fake.delay_s = 0.2
        posting = asyncio.create_task(residents.post(spacing_s=0.02))
        await residents.acked_at_least(15)
        assert await _terminate_all(pg_url) > 0
        await asyncio.sleep(1.0)
        await _terminate_all(pg_url)
        restarted = time.monotonic()
        await posting
        fake.delay_s = 0
        moved = await settle(pg_url, residents, fake)
    finally:
        proc.stop()
    report_figure(record_property, "PostgreSQL connections killed", recovery_after_restart_s=moved - restarted)
    assert moved - restarted <= RECOVERY_S
