"""The ``gateway`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence

from aiohttp import web
from sqlalchemy.exc import OperationalError, ProgrammingError

from gateway.console.commands import register as register_console
from gateway.core.retrain import extend_train_command
from gateway.core.schema import json_schemas
from gateway.db import Database
from gateway.dispatch.outbox import ReplayRefused, settle
from gateway.dispatch.stats import GRID_LEVELS, compute_stats
from gateway.http.app import create_app
from gateway.http.slow_clients import server_options
from gateway.logs import setup_logging
from gateway.migrate import missing_database, not_migrated, upgrade
from gateway.runtime import channel_settings, config_warnings, load_accounts, make_channels, operator
from gateway.settings import SettingsError, describe, load_settings
from gateway.worker import make_celery, queues
from grid.cli import register as register_grid
from nlp.commands import register as register_nlp

log = logging.getLogger("gateway")

DESCRIPTION = """\
Citizen interaction gateway: the 1+N intake of a city grid-management platform.
Configuration comes from GATEWAY_* environment variables and a .env file (see README).
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "needs_db", False):
            problem = missing_database(load_settings().db_url)
            if problem:
                print(f"gateway: {problem}", file=sys.stderr)
                return 2
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except (OperationalError, ProgrammingError) as exc:
        if not _missing_table(exc):
            raise
        print(f"gateway: {not_migrated(load_settings().db_url)}", file=sys.stderr)
        return 2


def _missing_table(exc: Exception) -> bool:
    text = str(exc).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the HTTP gateway (channels, REST API, web form)",
        description="Run the HTTP gateway. Embedded mode (no GATEWAY_REDIS_URL) also runs "
        "background tasks in this process and uses SQLite under var/.",
    )
    serve.add_argument("--host", help="interface to bind (default GATEWAY_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default GATEWAY_PORT or 8080)")
    serve.add_argument("--check", action="store_true", help="print the effective settings (secrets masked) and exit")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser(
        "worker",
        help="run a Celery worker for background tasks (needs GATEWAY_REDIS_URL)",
        description="Run a Celery worker over Redis: classification, media, notifications, "
        "dispatch. Extra arguments after -- go to Celery.",
    )
    worker.add_argument("--queues", "-Q", help="comma-separated queues (default: all)")
    worker.add_argument("--concurrency", "-c", type=int, default=2)
    worker.add_argument("celery_args", nargs=argparse.REMAINDER)
    worker.set_defaults(func=_worker)

    migrate = sub.add_parser("migrate", help="apply database migrations (Alembic) to GATEWAY_DATABASE_URL")
    migrate.add_argument("revision", nargs="?", default="heads", help="target revision (default: heads, all of them)")
    migrate.set_defaults(func=_migrate)

    schema = sub.add_parser("schema", help="print the JSON Schema of a report (or of an inbound message)")
    schema.add_argument("--which", choices=("report", "inbound_message", "all"), default="report")
    schema.set_defaults(func=_schema)

    deliveries = sub.add_parser("deliveries", help="list dispatch deliveries (the outbox), newest first, as JSON lines")
    deliveries.add_argument("--dead", action="store_true", help="only dead-lettered and rejected deliveries")
    deliveries.add_argument("--limit", type=int, default=50)
    deliveries.set_defaults(func=_deliveries, needs_db=True)

    replay = sub.add_parser("replay", help="put dead-lettered or rejected dispatch deliveries back in the outbox")
    replay.add_argument("delivery", nargs="?", help="delivery row id or X-Gateway-Delivery id")
    replay.add_argument("--all-dead", action="store_true", help="every dead-lettered and rejected delivery")
    replay.set_defaults(func=_replay, needs_db=True)

    stats = sub.add_parser("stats", help="handling figures per category, department and grid unit (统一评价), as JSON")
    stats.add_argument("--grid-level", default="街道", choices=GRID_LEVELS, help="level of the per-unit figures")
    stats.set_defaults(func=_stats, needs_db=True)

    register_grid(sub)  # gateway grid import|locate|words (docs/grid.md)

    register_console(sub)  # gateway user add, gateway apikey add

    register_nlp(sub)
    extend_train_command(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.check:
        shown = describe(settings)
        # The effective values where a setting is empty and a default applies.
        shown["GATEWAY_DATABASE_URL"] = shown.get("GATEWAY_DATABASE_URL") or settings.db_url
        shown["GATEWAY_MEDIA_DIR"] = shown.get("GATEWAY_MEDIA_DIR") or str(settings.media_path)
        chans = make_channels()
        for own in channel_settings(chans, settings).values():  # each channel's GATEWAY_<NAME>_*
            shown.update(describe(own))
        accounts = load_accounts(chans, settings)
        print(json.dumps(shown, ensure_ascii=False, indent=2, default=str))
        for warning in config_warnings(settings, chans, accounts):
            print(f"warning: {warning}", file=sys.stderr)
        return 0
    setup_logging(settings.log_level, settings.log_format)
    host, port = args.host or settings.host, args.port or settings.port
    log.info(
        "starting gateway",
        extra={
            "host": host,
            "port": port,
            "mode": "embedded" if settings.embedded else "production",
            "database": settings.db_url.split("@")[-1],
        },
    )
    # aiohttp handles SIGINT/SIGTERM: stops accepting, lets requests finish, then runs cleanup_ctx.
    web.run_app(
        create_app(settings),
        host=host,
        port=port,
        shutdown_timeout=settings.shutdown_timeout_s,
        access_log=None,
        print=None,
        **server_options(settings),  # slow clients: the time a request head may take
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.redis_url:
        print(
            "gateway worker: GATEWAY_REDIS_URL is required (embedded mode runs tasks inside `gateway serve`)",
            file=sys.stderr,
        )
        return 2
    load_accounts(make_channels(), settings)  # a channel's bad setting stops here, named, not at the first task
    setup_logging(settings.log_level, settings.log_format)
    app = make_celery(settings)
    extra = [a for a in args.celery_args if a != "--"]
    argv = [
        "worker",
        "-Q",
        args.queues or ",".join(queues()),
        "-c",
        str(args.concurrency),
        "--loglevel",
        settings.log_level,
        *extra,
    ]
    app.worker_main(argv)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    asyncio.run(upgrade(settings.db_url, args.revision))
    print(f"database at {args.revision}: {settings.db_url.split('@')[-1]}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    schemas = json_schemas()
    out = schemas if args.which == "all" else schemas[args.which]
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


def _deliveries(args: argparse.Namespace) -> int:
    async def run() -> list[dict[str, object]]:
        async with operator(load_settings()) as box:
            return await box.listing(dead=args.dead, limit=args.limit)

    for row in asyncio.run(run()):
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _replay(args: argparse.Namespace) -> int:
    if bool(args.delivery) == bool(args.all_dead):
        print("gateway replay: give a DELIVERY_ID or --all-dead", file=sys.stderr)
        return 2

    async def run() -> list[dict[str, object]]:
        async with operator(load_settings()) as box:
            replayed = await box.replay_dead() if args.all_dead else [await box.replay(args.delivery)]
            await settle(box)
            return await box.listing(ids=[d.id for d in replayed])

    try:
        rows = asyncio.run(run())
    except ReplayRefused as exc:
        print(f"gateway replay: {exc}", file=sys.stderr)
        return 1
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _stats(args: argparse.Namespace) -> int:
    async def run() -> dict[str, object]:
        db = Database(load_settings().db_url)
        try:
            return await compute_stats(db, grid_level=args.grid_level)
        finally:
            await db.close()

    print(json.dumps(asyncio.run(run()), ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
