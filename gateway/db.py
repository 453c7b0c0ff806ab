"""Tables and the async engine. The same models run on SQLite (embedded) and PostgreSQL.

Schema changes go through Alembic migrations in ``gateway/migrations``; ``tests/test_db.py``
checks that the migrations and these models agree.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.pool import StaticPool

from channels.payload import problem

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ReportView(Protocol):
    """What is read of a report off the ORM: a ``Report``, or a plain row of its columns (triage
    reads its batch that way). Placing and the twin check take either."""

    @property
    def id(self) -> int: ...
    @property
    def case_number(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def title(self) -> str | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def location_lat(self) -> float | None: ...
    @property
    def location_lng(self) -> float | None: ...
    @property
    def location_address(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def duplicate_of(self) -> str | None: ...


class Report(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    case_number: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    account: Mapped[str | None] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text, default="")
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    location_lat: Mapped[float | None] = mapped_column(Float)
    location_lng: Mapped[float | None] = mapped_column(Float)
    location_address: Mapped[str | None] = mapped_column(String(500))
    location_source: Mapped[str | None] = mapped_column(String(16))
    # Where the report lands in the grid (gateway/core/placing.py), filled at triage.
    grid_code: Mapped[str | None] = mapped_column(String(32), index=True)
    grid_level: Mapped[str | None] = mapped_column(String(8))
    grid_path: Mapped[list[dict[str, str]] | None] = mapped_column(JSONType)  # [{level, code, name}] from the root
    grid_method: Mapped[str | None] = mapped_column(String(24))  # point_in_polygon … contact_location, outside, none
    grid_confidence: Mapped[float | None] = mapped_column(Float)
    grid_version: Mapped[str | None] = mapped_column(String(16))  # hash of the grid file it was placed on
    category_code: Mapped[str | None] = mapped_column(String(16))
    category_name: Mapped[str | None] = mapped_column(String(100))
    category_parent: Mapped[str | None] = mapped_column(String(16))
    category_confidence: Mapped[float | None] = mapped_column(Float)
    category_model_version: Mapped[str | None] = mapped_column(String(100))
    category_set_by: Mapped[str | None] = mapped_column(String(16))  # model | rule | moderator | placeholder
    category_candidates: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    category_explanation: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(4), default="P3")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)
    duplicate_of: Mapped[str | None] = mapped_column(String(32))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    session_open: Mapped[bool] = mapped_column(Boolean, default=False)
    session_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set by the pipeline from its clock on every change (no onupdate: an autoflush would stamp wall time).
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    messages: Mapped[list[Message]] = relationship(back_populates="report", order_by="Message.id")
    media: Mapped[list[Media]] = relationship(back_populates="report", order_by="Media.id")
    history: Mapped[list[History]] = relationship(back_populates="report", order_by="History.id")

    __table_args__ = (
        UniqueConstraint("channel", "idempotency_key"),
        Index("ix_reports_open_session", "channel", "sender", "session_open"),
    )


class Message(Base):
    """One inbound message as the channel delivered it; (channel, channel_message_id) is unique."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    channel_message_id: Mapped[str] = mapped_column(String(255))
    account: Mapped[str | None] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    raw: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    report: Mapped[Report | None] = relationship(back_populates="messages")

    __table_args__ = (UniqueConstraint("channel", "channel_message_id"),)


class Media(Base):
    """A photo, voice note or video of a report; the bytes live in the media store by sha256."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(500))
    url: Mapped[str | None] = mapped_column(String(1000))
    sha256: Mapped[str | None] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | stored | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    report: Mapped[Report] = relationship(back_populates="media")


class History(Base):
    """Append-only: who did what to a report, and when."""

    __tablename__ = "report_history"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    report: Mapped[Report] = relationship(back_populates="history")


class CaseCounter(Base):
    """The daily sequence behind case numbers (统一编码), one row per prefix and day."""

    __tablename__ = "case_counters"

    prefix: Mapped[str] = mapped_column(String(8), primary_key=True)
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the mode applies to a new directory
        # One connection per process: SQLite has one writer anyway, and queueing on the pool is
        # fair and wakes at once, while queueing on SQLite's busy handler sleeps in growing steps
        # (p99 of intake fell from about 1.3 s to under 0.2 s under load). Code must therefore never
        # hold two sessions at once; pool_timeout turns such a mistake into an error, not a hang.
        kwargs = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 30, **kwargs}
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True, **kwargs)
        _sqlite_write_transactions(engine)
        if path and path != ":memory:" and not path.startswith("file:"):
            _owner_only(engine, Path(path))
        guard(engine)
        return engine
    engine = create_async_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)
    guard(engine)  # NUL and lone surrogates are refused before the driver sees them (``guard`` below)
    return engine


def _owner_only(engine: AsyncEngine, path: Path) -> None:
    """The database file readable by its owner only (issue 13, item 9): SQLite creates it with
    the process's umask (often world-readable), then gives its -wal and -shm files the same mode."""

    @event.listens_for(engine.sync_engine, "connect")
    def _chmod(dbapi_conn: Any, record: Any) -> None:
        with contextlib.suppress(OSError):
            st = path.stat()
            if st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.chmod(path, 0o600)


def _sqlite_write_transactions(engine: AsyncEngine | Engine) -> None:
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    # pysqlite's own BEGIN is deferred: two writers that both read first then deadlock on the
    # lock upgrade and one fails at once with "database is locked". BEGIN IMMEDIATE takes the
    # write lock up front, so concurrent writers queue on busy_timeout instead. WAL keeps
    # readers of other processes unblocked. (SQLAlchemy docs, "Serializable isolation" for pysqlite.)
    @event.listens_for(sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


T = TypeVar("T")


class _Borrowed:
    """The sqlite3 connection of the async pool, lent to the synchronous engine for one call.

    The synchronous engine never closes it (the async pool owns it); every other attribute and
    assignment goes to the connection lent at the time."""

    def __init__(self) -> None:
        object.__setattr__(self, "target", None)

    def __getattr__(self, name: str) -> Any:
        target = object.__getattribute__(self, "target")
        if target is None:
            raise RuntimeError("no SQLite connection lent")
        return getattr(target, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "target":
            object.__setattr__(self, name, value)
        else:
            setattr(self.target, name, value)

    def close(self) -> None:
        """Owned by the async pool: never closed here."""


class Database:
    """The engine and a session factory; one per process."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        info: dict[str, Any] = {}
        self.counter_engine: AsyncEngine | None = None
        if self.engine.dialect.name == "postgresql":
            # Case numbers are bumped on a connection of their own (gateway/core/casenumber.py). A pool of
            # their own means an intake holding a main-pool connection never waits on the main pool
            # for its second one: no deadlock when every main connection is busy.
            self.counter_engine = make_engine(url, pool_size=2, max_overflow=2)
            info["counter_engine"] = self.counter_engine
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, info=info)

        # SQLite: the statements of one ``run_sync`` run in the pooled connection's own thread
        # (aiosqlite's), through a synchronous engine bound to that same sqlite3 connection.
        self._borrowed = _Borrowed()
        self._sqlite_sync: Engine | None = None
        if self.engine.dialect.name == "sqlite":
            self._sqlite_sync = create_engine(
                "sqlite://", creator=lambda: self._borrowed, poolclass=StaticPool, hide_parameters=True
            )
            _sqlite_write_transactions(self._sqlite_sync)
            guard(self._sqlite_sync)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """``fn`` in one transaction on a synchronous connection, committed when it returns.

        The hot path's set-based statements (``gateway/core/intake.py``) run here. On SQLite the
        whole transaction runs in the thread of the process's one aiosqlite connection: one
        thread hop for the batch instead of several per statement (each hop costs 100-250 µs of
        GIL hand-over under load, which was most of intake's time). On PostgreSQL it is
        SQLAlchemy's ``AsyncConnection.run_sync``: asyncpg round trips, no thread.
        """
        async with self.engine.connect() as conn:
            if self._sqlite_sync is None:
                async with conn.begin():
                    return await conn.run_sync(fn)
            raw = await conn.get_raw_connection()
            aio = raw.driver_connection  # aiosqlite.Connection
            if aio is None:
                raise RuntimeError("no SQLite connection")
            sync_engine = self._sqlite_sync

            def in_thread() -> T:
                self._borrowed.target = aio._conn  # the sqlite3 connection, used only in this thread
                try:
                    with sync_engine.begin() as sync_conn:
                        return fn(sync_conn)
                finally:
                    self._borrowed.target = None

            # aiosqlite runs every call of a connection in its one thread, in order; ``_execute``
            # queues a callable there (there is no public API for it; tests/test_db_run_sync.py
            # holds the behaviour).
            result: T = await aio._execute(in_thread)
            return result

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def close(self) -> None:
        if self._sqlite_sync is not None:
            self._sqlite_sync.dispose(close=False)
        await self.engine.dispose()
        if self.counter_engine is not None:
            await self.counter_engine.dispose()


class Contact(Base):
    """A resident as one channel knows them: opt-out, the last time they wrote, their last location."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(255))  # the sender string, e.g. tel:+8613800000000
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # opens reply windows (48 h)
    last_lat: Mapped[float | None] = mapped_column(Float)
    last_lng: Mapped[float | None] = mapped_column(Float)
    last_location_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("channel", "address"),)


class Notification(Base):
    """A message to a resident (status news, rating request); sent by the ``notify`` task."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    account: Mapped[str | None] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))  # status | rating_request | reply
    text: Mapped[str] = mapped_column(Text)
    # pending | sent | delivered | failed | undelivered | skipped
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    external_id: Mapped[str | None] = mapped_column(String(128), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(32))  # boot id of the process sending it now
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Delivery(Base):
    """The dispatch outbox (统一分拨): one row per hand-off of a ready report, written in the same
    transaction as the move to ``ready``; drained by the ``deliver_dispatch`` task (gateway/dispatch/outbox.py)."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(64), unique=True)  # X-Gateway-Delivery, stable across retries
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(64))  # routing table target name
    department: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[str] = mapped_column(String(4), default="P3")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    # pending | delivered | rejected (4xx) | dead (retries exhausted) | cancelled (report moved on)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first failed attempt of this run
    claimed_by: Mapped[str | None] = mapped_column(String(32))  # boot id of the process sending it now
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcessLease(Base):
    """One running ``gateway serve`` or worker process, kept alive by its heartbeat
    (gateway/core/leases.py): work it claimed is released as soon as its lease ends."""

    __tablename__ = "process_leases"

    boot_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # serve | worker
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended: Mapped[str | None] = mapped_column(String(16))  # stopped (clean exit) | reaped (found dead)


class DeliveryAttempt(Base):
    """One try of a delivery: when, what came back, how long it took."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))  # delivered | retryable | rejected
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)


class DispatchCallback(Base):
    """A status callback from dispatch that was applied; its id makes a replayed callback a no-op."""

    __tablename__ = "dispatch_callbacks"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    callback_id: Mapped[str] = mapped_column(String(128), unique=True)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Rating(Base):
    """A resident's rating of how their case was handled (统一评价), 1-5, one per report."""

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), unique=True)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))  # message | web
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --------------------------------------------------------------------------- moderator console


class ConsoleUser(Base):
    """A moderator or admin of the console (``gateway user add``); the password is an argon2id hash."""

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # moderator | admin
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConsoleSession(Base):
    """A signed-in browser; the cookie carries the token, the table only its sha256."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    """A machine's key (``gateway apikey add``): ``gwk_<key_id>_<secret>``, only the secret's sha256 kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LabeledExample(Base):
    """A moderator-confirmed category of a report: training data for ``gateway train --from-reviews``."""

    __tablename__ = "labeled_examples"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), unique=True)
    text: Mapped[str] = mapped_column(Text)  # title and text as classified, personal data masked
    label: Mapped[str] = mapped_column(String(16))
    model_label: Mapped[str | None] = mapped_column(String(16))  # what the classifier had said
    model_version: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(16))  # confirmed | changed
    moderator: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModeratorNote(Base):
    """An internal note on a report; kept out of ``report_history`` because public views show its notes."""

    __tablename__ = "moderator_notes"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PiiView(Base):
    """Audit log: every time a console user saw an unmasked field of a report."""

    __tablename__ = "pii_views"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64))
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id", ondelete="SET NULL"), index=True)
    field: Mapped[str] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))


# --------------------------------------------------------------------------- channel pollers


class ChannelCursor(Base):
    """Where a channel's poller stopped (e.g. the last Weibo @-mention id), so a restart resumes there."""

    __tablename__ = "channel_cursors"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccountAudit(Base):
    """Audit log of console account changes (created, disabled, enabled, password reset, role)."""

    __tablename__ = "account_audit"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))  # "admin:<username>" or "cli"
    username: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


# ---------------------------------------------------------------- dbguard
# Parameters the database cannot take are refused before they reach the driver.
#
# PostgreSQL text cannot hold NUL (U+0000), and no database driver can encode a lone UTF-16
# surrogate; both would otherwise surface as a driver error (a 500) whose message quotes the value.
# ``guard`` makes every statement of an engine raise ``UnstorableValue`` instead, which the
# ``caller_errors`` middleware answers with a 400. This is the backstop for every query the
# request paths build (look-ups by case number, Open311 filters, console forms); inbound messages
# are checked earlier, field by field, by ``gateway.http.admission``.
#
# The engine is also built with ``hide_parameters=True`` (``gateway.db.make_engine``) so that a
# database error never carries the resident's text, phone number or sender id into a log line.


class UnstorableValue(ValueError):
    """A statement parameter that no database column can store (the caller's fault: a 400)."""


def guard(engine: AsyncEngine | Engine) -> None:
    target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(target, "before_cursor_execute")
    def _check(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        for value in _values(parameters):
            why = problem(value)
            if why is not None:
                raise UnstorableValue(f"a value {why}")


def _values(parameters: Any) -> Iterator[str]:
    stack = [parameters]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
