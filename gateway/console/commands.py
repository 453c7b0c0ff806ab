"""``gateway user add|list|disable|enable|passwd|role`` and ``gateway apikey add``: console
accounts (changes audited as actor ``cli``, ``gateway/console/users.py``) and machine keys."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

from gateway.console.auth import ROLES, SCOPES, AuthError, check_new_user, create_api_key
from gateway.console.users import add_user, change_user, list_users
from gateway.db import Database
from gateway.settings import load_settings


def register(sub: Any) -> None:
    user = sub.add_parser("user", help="console accounts (moderators, admins)")
    user_sub = user.add_subparsers(title="user commands", metavar="ACTION")
    add = user_sub.add_parser("add", help="create a console user (asks for the password)")
    add.add_argument("username")
    add.add_argument("--role", choices=ROLES, default="moderator")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.set_defaults(func=_user_add, needs_db=True)
    listing = user_sub.add_parser("list", help="list console users: name, role, active, last login")
    listing.set_defaults(func=_user_list, needs_db=True)
    for name, help_text in (("disable", "disable a user (ends their sessions)"), ("enable", "enable a user again")):
        cmd = user_sub.add_parser(name, help=help_text)
        cmd.add_argument("username")
        cmd.set_defaults(func=_user_change, change=name, needs_db=True)
    passwd = user_sub.add_parser("passwd", help="reset a user's password (asks for it; ends their sessions)")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    passwd.set_defaults(func=_user_change, change="password", needs_db=True)
    role = user_sub.add_parser("role", help="change a user's role")
    role.add_argument("username")
    role.add_argument("--role", choices=ROLES, required=True)
    role.set_defaults(func=_user_change, change="role", needs_db=True)

    key = sub.add_parser("apikey", help="API keys for machines (dispatch system, Open311 clients)")
    key_sub = key.add_subparsers(title="apikey commands", metavar="ACTION")
    kadd = key_sub.add_parser("add", help="create an API key and print it once")
    kadd.add_argument("name")
    kadd.add_argument("--scopes", required=True, help=f"comma-separated, of: {', '.join(sorted(SCOPES))}")
    kadd.set_defaults(func=_apikey_add, needs_db=True)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AuthError("the passwords differ")
    return first


async def _with_db(url: str, fn: Any, *args: Any) -> Any:
    db = Database(url)
    try:
        return await fn(db, *args)
    finally:
        await db.close()


def _user_add(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        check_new_user(args.username, "x" * 64, args.role)
        password = _read_password(args)
        asyncio.run(_with_db(settings.db_url, _add, args.username, password, args.role))
    except AuthError as exc:
        print(f"gateway user add: {exc}", file=sys.stderr)
        return 2
    print(f"created {args.role} {args.username}")
    return 0


async def _add(db: Database, username: str, password: str, role: str) -> None:
    await add_user(db, username, password, role, actor=CLI_ACTOR)


def _user_list(args: argparse.Namespace) -> int:
    for u in asyncio.run(_with_db(load_settings().db_url, list_users)):
        seen = u.last_login_at.isoformat(timespec="minutes") if u.last_login_at else "never"
        print(f"{u.username}\t{u.role}\t{'active' if u.active else 'disabled'}\tlast login {seen}")
    return 0


def _user_change(args: argparse.Namespace) -> int:
    settings = load_settings()
    value = getattr(args, "role", "") or ""
    try:
        if args.change == "password":
            value = _read_password(args)

        async def run(db: Database) -> str:
            return await change_user(db, args.username, args.change, value, actor=CLI_ACTOR)

        asyncio.run(_with_db(settings.db_url, run))
    except AuthError as exc:
        print(f"gateway user {args.change}: {exc}", file=sys.stderr)
        return 2
    print(f"{args.change}: {args.username}")
    return 0


CLI_ACTOR = "cli"


def _apikey_add(args: argparse.Namespace) -> int:
    settings = load_settings()
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    try:
        key = asyncio.run(_with_db(settings.db_url, create_api_key, args.name, scopes))
    except AuthError as exc:
        print(f"gateway apikey add: {exc}", file=sys.stderr)
        return 2
    print(key)
    print(f"API key {args.name} ({', '.join(scopes)}): shown once, store it now", file=sys.stderr)
    return 0
