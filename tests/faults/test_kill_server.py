"""kill -9 of ``gateway serve`` with 40 posts in flight (in-process tasks, on SQLite and PostgreSQL).

The tasks the dead process held in memory are gone; the restarted process resumes all unfinished
work at start-up (``Sweeping.recover``), not after ``GATEWAY_STUCK_AFTER_S`` (left at its 60 s
default here, so the test fails if only the periodic sweep recovers)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.support import (
    RECOVERY_S,
    Residents,
    assert_nothing_lost_or_duplicated,
    free_port,
    gateway_env,
    report_figure,
    serve,
    wait_all_dispatched,
    wait_up,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


async def test_kill_9_server_under_load(tmp_path, fake, db_url, record_property):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = gateway_env(tmp_path, fake, database_url=db_url)
    residents = Residents(base, 40)
    first = serve(tmp_path, env, port)
    try:
        await wait_up(base, first)
        fake.delay_s = 0.3  # dispatch answers slowly: deliveries are in flight at the kill
        # 40 posts over 2 s: intake answers in milliseconds, so the kill at the 15th answer must
        # still find posts to come (the first answers may wait on the start-up warm-up).
        posting = asyncio.create_task(residents.post(spacing_s=0.05))
        await residents.acked_at_least(15)
        first.kill()
        killed = time.monotonic()
        await posting
        assert 15 <= len(residents.acked) < 40, "the kill came after the load"
    finally:
        first.stop()
    fake.delay_s = 0
    second = serve(tmp_path, env, port)
    try:
        up = await wait_up(base, second)
        moved = await wait_all_dispatched(db_url, residents, fake, timeout=RECOVERY_S + 20)
        await residents.until_all_acked()  # the residents whose post was cut off try again
        await residents.resend_acked()
        await wait_all_dispatched(db_url, residents, fake, timeout=RECOVERY_S + 20)
        await assert_nothing_lost_or_duplicated(db_url, residents, fake)
    finally:
        second.stop()
    report_figure(
        record_property,
        f"kill -9 serve ({db_url.split(':')[0]})",
        recovery_after_restart_s=moved - up,
        after_kill_s=moved - killed,
    )
    assert moved - up <= RECOVERY_S
