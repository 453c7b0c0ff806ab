"""The signed web rating page ``/report/{case}/rate?t=TOKEN`` (统一评价 on the web form's channel).

The link comes from ``gateway.dispatch.ratings.rating_url`` and is bound to the case and to who
reported it; an unknown case and a wrong token get the same answer.
"""

from __future__ import annotations

import hmac

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from gateway import keys
from gateway.core import replies
from gateway.core.casenumber import is_case_number
from gateway.db import Report
from gateway.dispatch.ratings import MAX_COMMENT, RATED_STATUSES, rating_token, store_rating


def _page(request: web.Request, status: int = 200, **ctx: object) -> web.Response:
    return aiohttp_jinja2.render_template("report_rate.html", request, ctx, status=status)


async def _checked(request: web.Request, token: str) -> Report:
    case = request.match_info["case"]
    settings = request.app[keys.SETTINGS]
    report = None
    if is_case_number(case):
        async with request.app[keys.DB].session() as s:
            report = await s.scalar(select(Report).where(Report.case_number == case))
    # One answer for an unknown case and a wrong token: the page does not confirm case numbers.
    expected = rating_token(settings, case, report.sender) if report is not None else ""
    if report is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise web.HTTPForbidden(text=replies.RATING_BAD_LINK)
    return report


async def rate_form(request: web.Request) -> web.Response:
    token = request.query.get("t", "")
    report = await _checked(request, token)
    if report.status not in RATED_STATUSES:
        return _page(
            request, 409, case=report.case_number, message=replies.RATING_NOT_YET.format(case=report.case_number)
        )
    return _page(request, case=report.case_number, token=token, errors={})


async def rate_submit(request: web.Request) -> web.Response:
    form = await request.post()
    token = str(form.get("t", ""))
    report = await _checked(request, token)
    case = report.case_number
    if report.status not in RATED_STATUSES:
        return _page(request, 409, case=case, message=replies.RATING_NOT_YET.format(case=case))
    score_raw, comment = str(form.get("score", "")), str(form.get("comment", "")).strip()
    errors = {}
    if score_raw not in {"1", "2", "3", "4", "5"}:
        errors["score"] = "请选择1-5分"
    if len(comment) > MAX_COMMENT:
        errors["comment"] = f"意见请不超过{MAX_COMMENT}字"
    if errors:
        return _page(request, 400, case=case, token=token, errors=errors)
    pipeline = request.app[keys.PIPELINE]
    async with pipeline.unit() as s:
        row = await s.get(Report, report.id, with_for_update=True)
        assert row is not None
        await store_rating(
            s, row, int(score_raw), comment or None, source="web", actor="resident", now=pipeline.clock()
        )
    return _page(request, case=case, message=replies.rating_thanks(case, int(score_raw)))


def routes() -> list[web.AbstractRouteDef]:
    return [web.get("/report/{case}/rate", rate_form), web.post("/report/{case}/rate", rate_submit)]
