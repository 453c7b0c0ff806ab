"""Console accounts after ``gateway user add``: list, disable and enable, reset a password,
change a role; from the CLI (``gateway user …``) and the admin page, each change audited in
``account_audit`` with who made it. Disabling an account or resetting its password ends its
sessions. The last active admin can be neither disabled nor demoted, so the console always has one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.console.auth import MIN_PASSWORD, ROLES, AuthError, create_user, hash_password
from gateway.db import AccountAudit, ConsoleSession, ConsoleUser, Database, utcnow

CHANGES = ("disable", "enable", "password", "role")


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    active: bool
    created_at: datetime
    last_login_at: datetime | None


async def list_users(db: Database) -> list[Account]:
    async with db.session() as s:
        rows = (await s.scalars(select(ConsoleUser).order_by(ConsoleUser.username))).all()
    return [Account(u.username, u.role, u.active, u.created_at, u.last_login_at) for u in rows]


async def add_user(db: Database, username: str, password: str, role: str, *, actor: str) -> None:
    await create_user(db, username, password, role)
    async with db.session() as s, s.begin():
        s.add(AccountAudit(at=utcnow(), actor=actor, username=username, action="create", detail={"role": role}))


async def change_user(db: Database, username: str, change: str, value: str = "", *, actor: str) -> str:
    """Apply ``change`` (disable, enable, password, role) to ``username``; a short Chinese result.
    Raises ``AuthError`` with the reason when refused."""
    if change not in CHANGES:
        raise AuthError(f"unknown change {change!r}")
    hashed = None
    if change == "password":
        if len(value) < MIN_PASSWORD:
            raise AuthError(f"password must have at least {MIN_PASSWORD} characters")
        hashed = await asyncio.to_thread(hash_password, value)
    if change == "role" and value not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}")
    async with db.session() as s, s.begin():
        user = await s.scalar(select(ConsoleUser).where(ConsoleUser.username == username).with_for_update())
        if user is None:
            raise AuthError(f"no user {username}")
        detail: dict[str, Any] = {}
        if change in ("disable", "role") and user.role == "admin" and user.active and value != "admin":
            await _keep_an_admin(s, user)
        if change == "disable":
            user.active = False
            await _end_sessions(s, user)
        elif change == "enable":
            user.active = True
        elif change == "password":
            user.password_hash = hashed or user.password_hash
            await _end_sessions(s, user)
        else:
            detail = {"from": user.role, "to": value}
            user.role = value
        s.add(AccountAudit(at=utcnow(), actor=actor, username=username, action=change, detail=detail or None))
    return DONE[change].format(username=username, role=ROLE_NAMES.get(value, value))


DONE = {
    "disable": "已停用 {username}，其登录已失效",
    "enable": "已启用 {username}",
    "password": "已重置 {username} 的密码，其登录已失效",
    "role": "已将 {username} 设为{role}",
}
ROLE_NAMES = {"moderator": "审核员", "admin": "管理员"}


async def _keep_an_admin(s: AsyncSession, user: ConsoleUser) -> None:
    others = await s.scalar(
        select(func.count())
        .select_from(ConsoleUser)
        .where(ConsoleUser.role == "admin", ConsoleUser.active.is_(True), ConsoleUser.id != user.id)
    )
    if not others:
        raise AuthError(f"{user.username} is the last active admin")


async def _end_sessions(s: AsyncSession, user: ConsoleUser) -> None:
    await s.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))


async def audit_log(db: Database, limit: int = 200) -> list[AccountAudit]:
    async with db.session() as s:
        return list((await s.scalars(select(AccountAudit).order_by(AccountAudit.id.desc()).limit(limit))).all())
