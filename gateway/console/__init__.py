"""The moderator console at ``/console/`` and the machine admin API at ``/api/v1/admin``.

``install(app)`` (called once by ``create_app``) sets up the console's own Jinja2 environment
(autoescaping, templates in ``gateway/console/templates``), its state (signing key, login rate
limiter) and its routes. Every route is wrapped by a guard from ``auth``; see
``tests/console/test_security.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway import keys
from gateway.console import labels, views
from gateway.console.auth import CONSOLE, make_state, public
from gateway.console.queue import LOCAL_TZ

TEMPLATES = Path(__file__).parent / "templates"


def routes() -> list[web.AbstractRouteDef]:
    v = views
    return [
        web.get("/console", _to_console),
        web.get("/console/", v.queue_page),
        web.get("/console/login", v.login_page),
        web.post("/console/login", v.login_submit),
        web.post("/console/logout", v.logout),
        web.get("/console/overview", v.overview_page),
        web.get("/console/map", v.map_page),
        web.get("/console/reports/{case}", v.report_page),
        web.post("/console/reports/{case}/actions/{action}", v.action),
        web.get("/console/reports/{case}/pii/{field}", v.reveal),
        web.get("/console/admin", v.admin_page),
        web.post("/console/admin/apikeys/{key_id:\\d+}/revoke", v.revoke_key),
        web.post("/console/admin/users/{username}/{change:disable|enable|password|role}", v.change_account),
        web.get("/console/static/{name}", v.static),
        web.get("/api/v1/admin/queue", v.api_queue),
        web.get("/api/v1/admin/labeled-examples.csv", v.api_examples),
    ]


@public
async def _to_console(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/console/")


def _local_time(value: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    return value.astimezone(LOCAL_TZ).strftime(fmt) if value else ""


def install(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        app_key=views.JINJA,
        filters={"local": _local_time},
        default_helpers=False,
    )
    env.undefined = jinja2.StrictUndefined
    env.globals.update(labels.GLOBALS)
    app.cleanup_ctx.append(_state)
    app.router.add_routes(routes())


async def _state(app: web.Application) -> AsyncIterator[None]:
    app[CONSOLE] = make_state(app[keys.SETTINGS], app.get(keys.REDIS))
    yield
