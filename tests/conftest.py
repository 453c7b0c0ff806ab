"""Shared fixtures: settings on a temporary SQLite file, real PostgreSQL and Redis, the app.

Services: tests marked ``postgres``/``redis`` use the machine's real servers (127.0.0.1). Where a
server is unreachable they skip with the reason, except under ``CI=true`` where they fail: CI
must never count a skipped service test as a pass. ``../shared`` (datasets, conformance
vectors) follows the same rule through ``shared_dir``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.core.classify import PlaceholderClassifier
from gateway.core.placing import load_grid, warm
from gateway.http.app import create_app
from gateway.migrate import upgrade
from gateway.settings import Settings
from gateway.tasks.runners import InProcessRunner
from grid.index import SAMPLE_PATH
from tests.harness import own_settings

ROOT = Path(__file__).resolve().parent.parent
# CI services set CI=true; people and other runners write CI=1 or CI=yes: all of them mean CI.
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}
PG_HOST, PG_PORT = os.environ.get("TEST_PG_HOST", "127.0.0.1"), int(os.environ.get("TEST_PG_PORT", "5432"))
PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def unavailable(reason: str) -> None:
    """Skip, or fail under CI (CI=true, 1 or yes), when something a test needs is missing."""
    if IN_CI:
        pytest.fail(f"{reason} (CI: a missing service, dependency or ../shared is a failure, not a skip)")
    pytest.skip(reason)


def require_module(name: str) -> Any:
    """Import an optional dependency, or skip (fail under CI) naming it: ``pytest.importorskip``
    would skip silently under CI too."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(f"{name} is not installed ({exc}): install the extra that provides it")


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even when an event loop is running here
    (session fixtures are first requested from inside async tests)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = Path(os.environ.get("GATEWAY_SHARED_DIR") or ROOT.parent / "shared")  # as bench/ reads it
    if not path.is_dir():
        unavailable(f"{path} not found: tests that read ../shared (datasets, conformance vectors) need it")
    return path


@pytest.fixture(scope="session")
def conformance_dir(shared_dir: Path) -> Path:
    return shared_dir / "conformance"


# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per test session; each test gets a copy (fast, isolated)."""
    path = tmp_path_factory.mktemp("dbtemplate") / "template.db"
    run_sync(upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "gateway.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated, dropped at the end."""
    if not _reachable(PG_HOST, PG_PORT):
        unavailable(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}")
    import asyncpg

    name = f"gw_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_sync(admin(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    run_sync(upgrade(url))
    yield url
    run_sync(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate_all(url: str) -> None:
    """Empty every table. A connection a test leaked (idle in transaction) would block TRUNCATE
    forever, so wait a little, then end such connections and say so."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine

    from gateway.db import Base

    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    engine = create_async_engine(url)
    try:
        for attempt in range(2):
            try:
                async with engine.begin() as conn:
                    await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                    await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
                return
            except DBAPIError:
                if attempt:
                    raise
                async with engine.begin() as conn:
                    ended = (
                        await conn.execute(
                            text(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                            )
                        )
                    ).all()
                import warnings

                warnings.warn(f"a test left {len(ended)} PostgreSQL connection(s) open; ended them", stacklevel=1)
    finally:
        await engine.dispose()


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """The session's PostgreSQL database, emptied after each test."""
    yield pg_database
    run_sync(_truncate_all(pg_database))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Run a test on both databases."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database number of its own for this test process, flushed after each test."""
    host, port = "127.0.0.1", 6379
    if not _reachable(host, port):
        unavailable(f"Redis not reachable at {host}:{port}")
    import redis

    # One database per xdist worker (gw0 -> 1, gw1 -> 2, ...), so parallel workers never take
    # each other's Celery tasks; a plain run uses database 15.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    db = 1 + int(worker[2:]) % 14 if worker.startswith("gw") else 15
    url = f"{REDIS_URL}/{db}"
    yield url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


# --------------------------------------------------------------------------- app


@pytest.fixture(scope="session")
def grid_loaded() -> None:
    """The sample grid and its gazetteer (jieba), loaded once per test process: a test's first
    report must not wait for them (the app warms them up in the background, as in production)."""
    warm(load_grid(SAMPLE_PATH))


@pytest.fixture
def make_settings(tmp_path: Path, sqlite_url: str, grid_loaded: None) -> Callable[..., Settings]:
    """Settings for a test: SQLite copy, var/ under tmp_path, placeholder classifier, no .env."""

    def make(channels: Mapping[str, Mapping[str, Any]] | None = None, **overrides: Any) -> Settings:
        """``channels``: each channel's own settings by channel name (``tests.harness.own_settings``)."""
        values: dict[str, Any] = {
            "var_dir": tmp_path / "var",
            "database_url": sqlite_url,
            "classifier": "placeholder",
            "auto_migrate": False,
            "log_format": "text",
            "public_url": "http://gateway.test",
            "gc_freeze": False,  # many apps share a test process: freezing would keep their cycles
        }
        values.update(overrides)
        return Settings(_env_file=None, channel_settings=own_settings(channels), **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def runner() -> InProcessRunner:
    return InProcessRunner(max_attempts=3)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, runner: InProcessRunner) -> TestClient:
    """The real app on the test's settings, with an in-process runner the test can wait on."""
    app = create_app(settings, classifier=PlaceholderClassifier(), runner=runner)
    return await aiohttp_client(app)


# The local dispatch system and a chat-channel app, as fixtures ``fake`` and ``gateway`` for the
# dispatch tests (a module's own ``fake`` fixture, e.g. a WeChat API fake, takes precedence).
from tests.dispatch_support import chat_gateway, dispatch_server  # noqa: E402, F401
