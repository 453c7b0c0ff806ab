"""The plain HTML complaint form at ``/report``, usable from a phone browser without JavaScript."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from pathlib import Path

import aiohttp_jinja2
from aiohttp import web

from gateway import keys
from gateway.core import replies
from gateway.core.casenumber import CST
from gateway.core.conversation import ACTION_STEPS
from gateway.core.schema import report_json
from gateway.dispatch.ratings import rating_url
from gateway.http import edge
from gateway.http.floods import Flooded, check_address
from gateway.http.reports import load_report, read_report_post

# The resident's wording for each status lives in gateway/core/replies.py (RESIDENT_STATUS).
STATUS_LABELS = {status: label for status, (label, _) in replies.RESIDENT_STATUS.items()}
FIELD_LABELS = {
    "text": "问题描述",
    "title": "标题",
    "contact_phone": "联系电话",
    "location": "地点",
    "location.lat": "纬度",
    "location.lng": "经度",
    "location.address": "地点",
    "address": "地点",
    "lat": "纬度",
    "lng": "经度",
    "photos": "照片",
    "body": "提交内容",
}

FORM_FIELDS = ("title", "text", "address", "lat", "lng", "contact_phone")
# The API's field names (channels/web.py) → the form's inputs.
_ERROR_FIELDS = {"location": "address", "location.address": "address", "location.lat": "lat", "location.lng": "lng"}
# The API's English messages (for integrators) → what a resident reads beside the field.
_ERROR_TEXTS = (
    ("required", "请填写{label}"),
    ("not a phone number", "电话号码格式不对：请填写11位手机号，或带区号的固定电话"),
    ("must be a number", "请填写数字"),
    ("must be between", "超出范围，请检查"),
    ("lat and lng go together", "纬度和经度要一起填写，也可以只填地点"),
    ("give lat/lng or an address", "请填写地点"),
    ("at most", "最多上传 {max_photos} 张照片"),
    ("each photo at most", "每张照片不能超过 {max_photo_mb} MB"),
    ("only JPEG", "只能上传 JPG、PNG、GIF 或 WebP 格式的照片"),
    ("too long", "内容太长，请精简后再提交"),
    ("field too long", "内容太长，请精简后再提交"),
)


def form_errors(fields: dict[str, str], *, max_photos: int, max_photo_mb: int) -> dict[str, str]:
    """The API's field errors as the form's: Chinese, keyed by the form's input names."""
    out: dict[str, str] = {}
    for name, message in fields.items():
        field = _ERROR_FIELDS.get(name, name)
        texts = [zh for prefix, zh in _ERROR_TEXTS if str(message).startswith(prefix)]
        text = texts[-1] if texts else "填写有误，请检查"
        label = FIELD_LABELS.get(field, "")
        out.setdefault(field, text.format(label=label, max_photos=max_photos, max_photo_mb=max_photo_mb))
    return out


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
        await check_address(request)
    except Flooded as exc:
        ctx = _form_context(request, {"body": replies.FLOODED})
        resp = aiohttp_jinja2.render_template("report_form.html", request, ctx, status=429)
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    typed: dict[str, str] = {}
    try:
        msg = await read_report_post(request, typed)
    except web.HTTPBadRequest as exc:
        fields = json.loads(exc.text or "{}").get("fields", {})
        # Chinese beside each field, and what the resident typed is kept (photos are chosen again).
        s = request.app[keys.SETTINGS]
        errors = form_errors(fields, max_photos=s.max_photos, max_photo_mb=s.max_photo_bytes // (1 << 20))
        values = {k: v for k, v in typed.items() if k in FORM_FIELDS}
        ctx = _form_context(request, errors, values)
        return aiohttp_jinja2.render_template("report_form.html", request, ctx, status=400)
    # The hidden per-render token makes a double-tapped submit one report, like Idempotency-Key.
    token = msg.raw.get("form_token")
    key = None
    if isinstance(token, str) and token:
        key = "form:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    result = await edge.intake(request, [msg], idempotency_key=key)
    raise web.HTTPSeeOther(f"/report/{result.case_number}?new=1")


# History entries without a status change that a resident may see; the rest are internal.
ACTION_LABELS = ACTION_STEPS


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
    label, sentence = replies.resident_status(report.status, report.duplicate_of)
    rated = any(h.action == "rated" for h in report.history)
    # The rating link and the exact location are for the resident who reported (their browser's
    # cookie), not for any visitor of the status page; residents on chat channels rate by replying.
    client = request.cookies.get(CLIENT_COOKIE)
    own = bool(client) and report.channel == "web" and report.sender == f"web:{client}"
    data = report_json(report, private=False, owner=own)
    ctx = {
        "report": data,
        "created": request.query.get("new") == "1",
        "status_label": label,
        "status_sentence": sentence,
        # A merged case links to the case it joined; spam and rejected cases show no category
        # (the spam category's own name is not for residents).
        "merged_into": report.duplicate_of if report.status == "merged" else None,
        "show_category": report.status not in ("spam", "rejected", "merged"),
        "steps": public_steps(data["history"]),
        # The signed link lets whoever holds the status page rate a resolved case (统一评价).
        "rate_url": rating_url(request.app[keys.SETTINGS], report.case_number, report.sender)
        if own and report.status in ("resolved", "closed") and not rated
        else None,
    }
    return aiohttp_jinja2.render_template("report_status.html", request, ctx)


LOCATE_JS = Path(__file__).parent / "static" / "report_locate.js"


async def locate_js(request: web.Request) -> web.Response:
    """The form's one script ("use my location"): a file, so the page's CSP allows only 'self'."""
    return web.Response(
        body=LOCATE_JS.read_bytes(),
        content_type="application/javascript",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/report", form),
        web.post("/report", submit),
        web.get("/report/{case}", status_page),
        web.get("/static/report_locate.js", locate_js),
    ]
