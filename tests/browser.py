"""Playwright on Debian's Chromium for page tests outside the console folder (no browser download).

``open_page`` yields a page and the list of problems it logged (page errors, console errors,
unexpected dialogs); screenshots go to ``SHOTS`` (test-output/screenshots/) for reviewers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.conftest import ROOT, unavailable
from tests.console.test_browser import ARGS, CHROMIUM

SHOTS = ROOT / "test-output" / "screenshots"
PHONE = {"width": 390, "height": 844}


@asynccontextmanager
async def open_page(*, viewport: dict[str, int] | None = None, **context: Any) -> AsyncIterator[tuple[Any, list[str]]]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not found: apt-get install chromium (Debian's package)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        ctx = await browser.new_context(viewport=viewport or PHONE, locale="zh-CN", **context)
        page = await ctx.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        )
        page.on("dialog", lambda d: problems.append(f"unexpected dialog: {d.message}"))
        page.set_default_timeout(15000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        try:
            yield page, problems
        finally:
            await browser.close()
