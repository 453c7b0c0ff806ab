"""Console request handlers: login, the queue, a report, actions, PII reveal, overview, admin, API."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import select

from gateway import keys
from gateway.console import auth, overview
from gateway.console import map as grid_map
from gateway.console.actions import ActionError, ActionInput, perform
from gateway.console.auth import CONSOLE, AuthError, api_guard, guard, principal_of, public
from gateway.console.queue import LOCAL_TZ, QueueFilter, channels_in_queue, load_item, load_queue
from gateway.console.users import audit_log, change_user
from gateway.core import replies
from gateway.core.reviews import examples_csv
from gateway.db import ApiKey, ConsoleUser, ModeratorNote, PiiView, Report, utcnow
from nlp.taxonomy import load_taxonomy

log = logging.getLogger(__name__)
JINJA = web.AppKey("console_jinja", jinja2.Environment)
STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}
REVEALABLE = ("text", "contact_phone", "sender")


def _render(request: web.Request, name: str, ctx: dict[str, Any], status: int = 200) -> web.Response:
    principal = request.get(auth.PRINCIPAL)
    base = {"me": principal, "csrf": principal.csrf if principal else "", "path": request.path}
    return aiohttp_jinja2.render_template(name, request, {**base, **ctx}, status=status, app_key=JINJA)


def _safe_next(value: object) -> str:
    text = value if isinstance(value, str) else ""
    return text if text.startswith("/console/") and not text.startswith("//") and "\\" not in text else "/console/"


async def taxonomy(request: web.Request) -> Any:
    cache = request.config_dict[CONSOLE].cache
    if "taxonomy" not in cache:
        cache["taxonomy"] = await asyncio.to_thread(load_taxonomy, request.config_dict[keys.SETTINGS].taxonomy)
    return cache["taxonomy"]


def picker_entries(tax: Any) -> list[dict[str, str]]:
    """The taxonomy as the searchable picker lists it: subcategories under their category."""
    if tax is None:
        return []
    out = []
    for cat in tax.categories:
        out.append({"code": cat.code, "name": cat.name, "parent": "", "kw": cat.name_en})
        for sub in cat.subcategories:
            kw = " ".join((*sub.keywords[:12], sub.name_en))
            out.append({"code": sub.code, "name": sub.name, "parent": cat.name, "kw": kw})
    return out


# --------------------------------------------------------------------------- login


def _login_form(request: web.Request, nxt: str, error: str = "", status: int = 200) -> web.Response:
    nonce, token = auth.new_login_token(request)
    resp = _render(request, "login.html", {"next": nxt, "error": error, "login_csrf": token}, status=status)
    auth.set_login_cookie(request, resp, nonce)
    return resp


@public
async def login_page(request: web.Request) -> web.Response:
    return _login_form(request, _safe_next(request.query.get("next")))


@public
async def login_submit(request: web.Request) -> web.Response:
    form = await request.post()
    nxt = _safe_next(form.get("next"))
    token = form.get("_csrf")
    if not isinstance(token, str) or not auth.check_login_csrf(request, token):
        return _login_form(request, nxt, "页面已过期，请重新登录。", 403)
    username, password = str(form.get("username", ""))[:64], str(form.get("password", ""))[:256]
    user, wait = await auth.authenticate(request, username, password)
    if wait:
        resp = _login_form(request, nxt, "登录失败次数过多，请稍后再试。", 429)
        resp.headers["Retry-After"] = str(wait)
        return resp
    if user is None:
        return _login_form(request, nxt, "用户名或密码错误。", 401)
    resp = web.HTTPSeeOther(nxt)
    await auth.start_session(request, user, resp)
    raise resp


@guard("moderator")
async def logout(request: web.Request) -> web.Response:
    resp = web.HTTPSeeOther("/console/login")
    await auth.end_session(request, principal_of(request), resp)
    raise resp


# --------------------------------------------------------------------------- queue and report


@guard("moderator")
async def queue_page(request: web.Request) -> web.Response:
    db = request.config_dict[keys.DB]
    flt = QueueFilter.from_query(request.query)
    items, total = await load_queue(db, flt)
    tax = await taxonomy(request)
    ctx = {
        "items": items,
        "total": total,
        "filter": flt.as_query(),
        "channels": await channels_in_queue(db),
        "categories": [(c.code, c.name) for c in tax.categories] if tax else [],
        "picker": picker_entries(tax),
        "reject_reasons": replies.REJECT_REASONS,
        "model": _model(request),
    }
    return _render(request, "queue.html", ctx)


def _model(request: web.Request) -> dict[str, Any]:
    cache = request.config_dict[CONSOLE].cache
    if "model" not in cache:
        cache["model"] = overview.model_info(request.config_dict[keys.SETTINGS])
    model: dict[str, Any] = cache["model"]
    return model


@guard("moderator")
async def report_page(request: web.Request) -> web.Response:
    db = request.config_dict[keys.DB]
    item = await load_item(db, request.match_info["case"])
    if item is None:
        raise web.HTTPNotFound(text="no such report")
    async with db.session() as s:
        notes = (
            await s.scalars(
                select(ModeratorNote).where(ModeratorNote.report_id == item.report.id).order_by(ModeratorNote.id)
            )
        ).all()
    tax = await taxonomy(request)
    ctx = {
        "item": item,
        "notes": notes,
        "picker": picker_entries(tax),
        "reject_reasons": replies.REJECT_REASONS,
        "model": _model(request),
        "unit_map": await _unit_map(request, item.report),
    }
    return _render(request, "report.html", ctx)


async def _unit_map(request: web.Request, report: Report) -> grid_map.UnitMap | None:
    placer = request.config_dict[keys.PIPELINE].placer
    return await asyncio.to_thread(grid_map.unit_map, report, placer) if placer is not None else None


@guard("moderator")
async def map_page(request: web.Request) -> web.Response:
    """The grid with the open cases on it (``gateway/console/map.py``)."""
    placer = request.config_dict[keys.PIPELINE].placer
    if placer is None:
        raise web.HTTPNotFound(text="no grid in this deployment")
    flt = grid_map.MapFilter.from_query(request.query)
    tile_url = request.config_dict[keys.SETTINGS].map_tile_url
    view = await grid_map.build_map(request.config_dict[keys.DB], placer, flt, tile_url)
    tax = await taxonomy(request)
    categories = [(c.code, c.name) for c in tax.categories] if tax else []
    ctx = {"m": view, "categories": categories, "names": dict(categories), "statuses": grid_map.OPEN}
    return _render(request, "map.html", ctx)


@guard("moderator")
async def action(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    wants_json = "application/json" in request.headers.get("Accept", "")
    case, name = request.match_info["case"], request.match_info["action"]
    try:
        result = await perform(
            request.config_dict[keys.PIPELINE],
            await taxonomy(request),
            case,
            name,
            ActionInput.from_form(form),
            principal_of(request),
        )
    except ActionError as exc:
        if wants_json:
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.Response(text=str(exc), status=exc.status)
    except ValueError as exc:  # the lifecycle refused the move (IllegalTransition)
        return (
            web.json_response({"error": str(exc)}, status=409)
            if wants_json
            else web.Response(text=str(exc), status=409)
        )
    if wants_json:
        return web.json_response(result, dumps=_dumps)
    raise web.HTTPSeeOther(_safe_next(form.get("next")))


@guard("admin")
async def reveal(request: web.Request) -> web.Response:
    """One unmasked field of a report, for admins; each call is written to ``pii_views``."""
    field = request.match_info["field"]
    if field not in REVEALABLE:
        raise web.HTTPNotFound(text="unknown field")
    who = principal_of(request)
    async with request.config_dict[keys.DB].session() as s, s.begin():
        report = await s.scalar(select(Report).where(Report.case_number == request.match_info["case"]))
        if report is None:
            raise web.HTTPNotFound(text="no such report")
        value = {
            "text": "\n".join(p for p in (report.title, report.text) if p),
            "contact_phone": report.contact_phone,
            "sender": report.sender,
        }[field]
        s.add(PiiView(username=who.username, report_id=report.id, field=field, ip=request.remote))
    log.info("pii revealed", extra={"case": report.case_number, "field": field, "username": who.username})
    return web.json_response({"case_number": report.case_number, "field": field, "value": value}, dumps=_dumps)


# --------------------------------------------------------------------------- overview and admin


@guard("moderator")
async def overview_page(request: web.Request) -> web.Response:
    tax = await taxonomy(request)
    names = {c.code: c.name for c in tax.categories} if tax else {}
    data = await overview.build_overview(request.config_dict[keys.DB], datetime.now(LOCAL_TZ).date(), names)
    return _render(request, "overview.html", {"o": data, "charts": data.charts(), "model": _model(request)})


@guard("admin")
async def admin_page(request: web.Request) -> web.Response:
    async with request.config_dict[keys.DB].session() as s:
        users = (await s.scalars(select(ConsoleUser).order_by(ConsoleUser.username))).all()
        api_keys = (await s.scalars(select(ApiKey).order_by(ApiKey.name))).all()
        views = (
            await s.execute(
                select(PiiView, Report.case_number)
                .outerjoin(Report, Report.id == PiiView.report_id)
                .order_by(PiiView.id.desc())
                .limit(200)
            )
        ).all()
    ctx = {
        "users": users,
        "api_keys": api_keys,
        "views": views,
        "audit": await audit_log(request.config_dict[keys.DB]),
        "message": request.query.get("done", ""),
        "error": request.query.get("error", ""),
    }
    return _render(request, "admin.html", ctx)


@guard("admin")
async def change_account(request: web.Request) -> web.Response:
    """Disable, enable, reset the password of, or change the role of a console account (audited)."""
    form = await request.post()
    value = form.get("role") or form.get("password") or ""
    who = principal_of(request)
    try:
        done = await change_user(
            request.config_dict[keys.DB],
            request.match_info["username"],
            request.match_info["change"],
            value if isinstance(value, str) else "",
            actor=f"admin:{who.username}",
        )
    except AuthError as exc:
        log.info("account change refused", extra={"username": who.username, "error": str(exc)})
        raise web.HTTPSeeOther("/console/admin?" + urlencode({"error": account_error(str(exc))})) from None
    log.info("account changed", extra={"username": who.username, "change": request.match_info["change"]})
    raise web.HTTPSeeOther("/console/admin?" + urlencode({"done": done}))


def account_error(message: str) -> str:
    """The refusal in Chinese for the admin page (the English one is logged)."""
    if "last active admin" in message:
        return "这是最后一个启用的管理员账号，不能停用或降为审核员"
    if "password must have" in message:
        return "密码至少需要 10 个字符"
    if message.startswith("no user"):
        return "没有这个账号"
    return "操作未完成，请检查后重试"


@guard("admin")
async def revoke_key(request: web.Request) -> web.Response:
    async with request.config_dict[keys.DB].session() as s, s.begin():
        key = await s.get(ApiKey, int(request.match_info["key_id"]))
        if key is None:
            raise web.HTTPNotFound(text="no such key")
        key.revoked_at = key.revoked_at or utcnow()
    log.info("api key revoked", extra={"key": key.name, "username": principal_of(request).username})
    raise web.HTTPSeeOther("/console/admin")


# --------------------------------------------------------------------------- machine API


class QueueItemOut(BaseModel):
    """A report waiting for a moderator (``GET /api/v1/admin/queue``)."""

    case_number: str
    channel: str
    text: str = Field(description="masked as the console shows it")
    priority: str
    category: str | None
    candidates: list[dict[str, Any]] = Field(description="the classifier's best categories: code, name, confidence")
    reasons: list[str] = Field(description="why it waits for review")
    duplicates: list[str] = Field(description="case numbers of likely duplicates")
    created_at: str


class QueueOut(BaseModel):
    total: int
    items: list[QueueItemOut]


@api_guard("queue:read")
async def api_queue(request: web.Request) -> web.Response:
    items, total = await load_queue(request.config_dict[keys.DB], QueueFilter.from_query(request.query))
    out = [
        QueueItemOut(
            case_number=i.case_number,
            channel=i.report.channel,
            text=i.text,
            priority=i.report.priority,
            category=i.report.category_code,
            candidates=i.candidates,
            reasons=[k for k, _ in i.reasons],
            duplicates=[d.case_number for d in i.duplicates],
            created_at=i.report.created_at.isoformat(),
        )
        for i in items
    ]
    return web.json_response(QueueOut(total=total, items=out).model_dump(), dumps=_dumps)


@api_guard("reviews:read")
async def api_examples(request: web.Request) -> web.Response:
    body = await examples_csv(request.config_dict[keys.DB], for_spreadsheets=True)  # opened in spreadsheets
    return web.Response(text=body, content_type="text/csv", charset="utf-8")


@public
async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        raise web.HTTPNotFound()
    body = await asyncio.to_thread(path.read_bytes)
    return web.Response(
        body=body,
        content_type=STATIC_TYPES[path.suffix],
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=3600"},
    )


def _dumps(obj: Any) -> str:

    return json.dumps(obj, ensure_ascii=False, default=str)
