"""The plain HTML complaint form at ``/report``, usable from a phone browser without JavaScript."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime

import aiohttp_jinja2
from aiohttp import web

from gateway import keys
from gateway.core.casenumber import CST
from gateway.core.schema import report_json
from gateway.dispatch.ratings import rating_url
from gateway.http import edge
from gateway.http.reports import load_report, read_report_post

STATUS_LABELS = {
    "received": "已接收",
    "classified": "已分类",
    "needs_review": "人工核实中",
    "ready": "待派遣",
    "dispatched": "已派遣",
    "accepted": "已受理",
    "in_progress": "处理中",
    "resolved": "已处理",
    "closed": "已办结",
    "rejected": "未受理",
    "spam": "无效信息",
    "merged": "已合并",
}
FIELD_LABELS = {
    "text": "问题描述",
    "title": "标题",
    "contact_phone": "联系电话",
    "location": "地点",
    "location.lat": "纬度",
    "location.lng": "经度",
    "location.address": "地点",
    "photos": "照片",
}


def _form_context(
    request: web.Request, errors: dict[str, str] | None = None, values: dict[str, str] | None = None
) -> dict[str, object]:
    s = request.app[keys.SETTINGS]
    return {
        "errors": errors or {},
        "values": values or {},
        "labels": FIELD_LABELS,
        "max_photos": s.max_photos,
        "max_photo_mb": s.max_photo_bytes // (1 << 20),
        "form_token": secrets.token_urlsafe(16),
    }


CLIENT_COOKIE = "gw_client"  # identifies a resident's browser: their reports, their rating links


def _client_cookie(request: web.Request, response: web.StreamResponse) -> None:
    if request.cookies.get(CLIENT_COOKIE):
        return
    secure = request.app[keys.SETTINGS].public_url.lower().startswith("https://")
    response.set_cookie(
        CLIENT_COOKIE,
        secrets.token_urlsafe(16),
        max_age=365 * 86400,
        path="/report",
        httponly=True,
        samesite="Lax",
        secure=secure,
    )


async def form(request: web.Request) -> web.Response:
    response = aiohttp_jinja2.render_template("report_form.html", request, _form_context(request))
    _client_cookie(request, response)
    return response


async def submit(request: web.Request) -> web.Response:
    try:
        msg = await read_report_post(request)
    except web.HTTPBadRequest as exc:
        fields = json.loads(exc.text or "{}").get("fields", {})
        # The body is consumed by then: the page names the bad fields and the resident fills them in again.
        return aiohttp_jinja2.render_template("report_form.html", request, _form_context(request, fields), status=400)
    # The hidden per-render token makes a double-tapped submit one report, like Idempotency-Key.
    token = msg.raw.get("form_token")
    key = None
    if isinstance(token, str) and token:
        key = "form:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    result = await edge.intake(request, [msg], idempotency_key=key)
    raise web.HTTPSeeOther(f"/report/{result.case_number}?new=1")


# History entries without a status change that a resident may see; the rest are internal.
ACTION_LABELS = {"session_closed": "已提交", "rated": "已评价", "merged_in": "有相同问题的反映并入本案件"}


def public_steps(history: list[dict[str, object]]) -> list[dict[str, object]]:
    steps = []
    for h in history:
        label = STATUS_LABELS.get(str(h["to_status"])) if h["to_status"] else ACTION_LABELS.get(str(h["action"]))
        if label:
            when = datetime.fromisoformat(str(h["at"])).astimezone(CST).strftime("%Y-%m-%d %H:%M")
            steps.append({**h, "label": label, "when": when})
    return steps


async def status_page(request: web.Request) -> web.Response:
    report = await load_report(request, request.match_info["case"])
    if report is None:
        raise web.HTTPNotFound(text="没有找到该案件编号。")
    data = report_json(report, private=False)
    rated = any(h.action == "rated" for h in report.history)
    # The rating link is for the resident who reported (their browser's cookie), not for any
    # visitor of the status page; residents on chat channels rate by replying with a digit.
    client = request.cookies.get(CLIENT_COOKIE)
    own = bool(client) and report.channel == "web" and report.sender == f"web:{client}"
    ctx = {
        "report": data,
        "created": request.query.get("new") == "1",
        "status_label": STATUS_LABELS.get(report.status, report.status),
        "steps": public_steps(data["history"]),
        # The signed link lets whoever holds the status page rate a resolved case (统一评价).
        "rate_url": rating_url(request.app[keys.SETTINGS], report.case_number, report.sender)
        if own and report.status in ("resolved", "closed") and not rated
        else None,
    }
    return aiohttp_jinja2.render_template("report_status.html", request, ctx)


def routes() -> list[web.AbstractRouteDef]:
    return [web.get("/report", form), web.post("/report", submit), web.get("/report/{case}", status_page)]
