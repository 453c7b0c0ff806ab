"""Account management after `gateway user add`: list, disable, enable, reset password, change role,
from the CLI and the admin page, every change audited; the last active admin stays."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from sqlalchemy import select

from gateway import keys
from gateway.cli import main
from gateway.console.auth import AuthError
from gateway.console.users import audit_log, change_user, list_users
from gateway.db import AccountAudit, ConsoleSession
from tests.browser import SHOTS, open_page
from tests.console.conftest import PASSWORD, login

DESKTOP = {"width": 1280, "height": 900}


async def test_disable_ends_sessions_and_the_last_admin_stays(app_client: Any, users: Any) -> None:
    db = app_client.app[keys.DB]
    await login(app_client, "mod1")
    async with db.session() as s:
        assert await s.scalar(select(ConsoleSession.id))
    assert "已停用 mod1" in await change_user(db, "mod1", "disable", actor="admin:admin1")
    async with db.session() as s:
        assert await s.scalar(select(ConsoleSession.id)) is None
    assert (await app_client.get("/console/", allow_redirects=False)).status == 303  # logged out
    with pytest.raises(AuthError, match="last active admin"):
        await change_user(db, "admin1", "role", "moderator", actor="cli")
    await change_user(db, "mod1", "enable", actor="cli")
    await change_user(db, "mod1", "role", "admin", actor="cli")
    await change_user(db, "admin1", "role", "moderator", actor="cli")  # another admin exists now
    assert {(u.username, u.role, u.active) for u in await list_users(db)} == {
        ("mod1", "admin", True),
        ("admin1", "moderator", True),
    }
    assert [(a.action, a.username, a.actor) for a in reversed(await audit_log(db))] == [
        ("disable", "mod1", "admin:admin1"),
        ("enable", "mod1", "cli"),
        ("role", "mod1", "cli"),
        ("role", "admin1", "cli"),
    ]


def test_cli_user_commands(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    assert main(["migrate"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "ops1", "--role", "admin", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "mod9", "--password-stdin"]) == 0
    assert main(["user", "disable", "mod9"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("another long password\n"))
    assert main(["user", "passwd", "mod9", "--password-stdin"]) == 0
    assert main(["user", "role", "mod9", "--role", "admin"]) == 0
    assert main(["user", "disable", "nobody"]) == 2
    capsys.readouterr()
    assert main(["user", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("mod9\tadmin\tdisabled") and listed[1].startswith("ops1\tadmin\tactive")

    async def actions() -> list[tuple[str, str]]:
        from gateway.db import Database

        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
        try:
            async with db.session() as s:
                rows = (await s.scalars(select(AccountAudit).order_by(AccountAudit.id))).all()
                return [(a.action, a.username) for a in rows if a.actor == "cli"]
        finally:
            await db.close()

    assert asyncio.run(actions()) == [
        ("create", "ops1"),
        ("create", "mod9"),
        ("disable", "mod9"),
        ("password", "mod9"),
        ("role", "mod9"),
    ]


async def test_admin_page_manages_accounts(app_client: Any, users: Any) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    async with open_page(viewport=DESKTOP) as (page, problems):
        await page.goto(f"{base}/console/login")
        await page.fill("#username", "admin1")
        await page.fill("#password", PASSWORD)
        await page.press("#password", "Enter")
        await page.wait_for_url(f"{base}/console/")
        await page.goto(f"{base}/console/admin")
        row = page.locator("tr[data-user='mod1']")
        await row.locator("button[data-change='disable']").click()
        await page.wait_for_selector("p.ok")
        assert "已停用 mod1" in await page.inner_text("p.ok")
        assert "停用" in await page.locator("tr[data-user='mod1'] td").nth(2).inner_text()
        await page.locator("tr[data-user='mod1'] input[name=password]").fill("a brand new password")
        await page.locator("tr[data-user='mod1'] button[data-change='password']").click()
        await page.wait_for_selector("p.ok")
        await page.locator("tr[data-user='admin1'] select[name=role]").select_option("moderator")
        await page.locator("tr[data-user='admin1'] button[data-change='role']").click()
        await page.wait_for_selector("p.error")
        assert "最后一个启用的管理员" in await page.inner_text("p.error")
        audit = await page.inner_text("table.audit")
        assert "管理员 admin1" in audit and "停用" in audit and "重置密码" in audit
        await page.screenshot(path=str(SHOTS / "console-accounts.png"), full_page=True)
        assert not problems, problems
