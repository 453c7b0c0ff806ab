"""The signed web rating page ``/report/{case}/rate?t=TOKEN`` (统一评价 on the web form's channel).

The link comes from ``gateway.dispatch.ratings.rating_url`` and is bound to the case and to who
reported it; an unknown case and a wrong token get the same answer.
"""

from __future__ import annotations

import hmac
from typing import Any, Literal

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select

from channels import payload
from gateway import keys
from gateway.core import replies
from gateway.core.casenumber import is_case_number
from gateway.db import Report
from gateway.dispatch.ratings import MAX_COMMENT, RATED_STATUSES, rating_token, store_rating


class RatingForm(BaseModel):
    """The rating page's form (``POST /report/{case}/rate``); errors are the page's Chinese."""

    model_config = ConfigDict(title="RatingForm", extra="ignore")

    t: str = Field(default="", description="the signed link's token (from the page's `t` query parameter)")
    score: Literal["1", "2", "3", "4", "5"] = Field(description="1 (unhappy) to 5 (very happy)")
    comment: str = Field(default="", max_length=MAX_COMMENT)

    @model_validator(mode="before")
    @classmethod
    def _absent_score(cls, data: Any) -> Any:
        return {"score": None} | dict(data) if isinstance(data, dict) else data

    @field_validator("score", mode="before")
    @classmethod
    def _score(cls, value: Any) -> str:
        if str(value) not in {"1", "2", "3", "4", "5"}:
            raise payload.field_error("请选择1-5分")
        return str(value)

    @field_validator("comment", mode="before")
    @classmethod
    def _comment(cls, value: Any) -> str:
        comment = str(value or "").strip()
        if len(comment) > MAX_COMMENT:
            raise payload.field_error(f"意见请不超过{MAX_COMMENT}字")
        return comment


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
    try:
        rating = RatingForm.model_validate({k: str(form[k]) for k in ("score", "comment") if k in form})
    except ValidationError as exc:
        return _page(request, 400, case=case, token=token, errors=payload.field_errors(exc))
    pipeline = request.app[keys.PIPELINE]
    async with pipeline.unit() as s:
        row = await s.get(Report, report.id, with_for_update=True)
        assert row is not None
        await store_rating(
            s, row, int(rating.score), rating.comment or None, source="web", actor="resident", now=pipeline.clock()
        )
    return _page(request, case=case, message=replies.rating_thanks(case, int(rating.score)))


def routes() -> list[web.AbstractRouteDef]:
    return [web.get("/report/{case}/rate", rate_form), web.post("/report/{case}/rate", rate_submit)]
