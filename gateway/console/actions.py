"""What a moderator can do to a report; each action is one transaction and one history entry.
Refusals (``ActionError``) are in Chinese: the console shows them to the moderator as they are.

Triage actions (confirm, change category, merge, spam, reject, send to dispatch) take a report
out of ``needs_review``; a report that someone else has handled meanwhile is refused with 409.
Priority and notes apply to any open report. Status moves go through ``Pipeline.transition``, so
the lifecycle is enforced, the resident hears of a rejection (with the reason) or a merge (with
the case it joined), and the dispatch outbox picks up reports that become ``ready``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from gateway.console.labels import STATUSES
from gateway.core.duplicates import MERGE_TARGETS
from gateway.core.lifecycle import OPEN, Status
from gateway.core.reviews import record_example
from gateway.core.units import after_commit
from gateway.db import History, Media, ModeratorNote, Report

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from gateway.console.auth import Principal
    from gateway.core.pipeline import Pipeline
    from nlp.taxonomy import Taxonomy

log = logging.getLogger(__name__)

PRIORITIES = ("P1", "P2", "P3", "P4")
TRIAGE = frozenset({"confirm", "category", "merge", "spam", "reject", "dispatch"})
ACTIONS = TRIAGE | {"priority", "note", "media"}
MAX_REASON, MAX_NOTE = 200, 2000


def _status(status: str) -> str:
    return STATUSES.get(status, status)


class ActionError(ValueError):
    """An action that cannot be applied; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ActionInput:
    category: str = ""
    priority: str = ""
    target: str = ""
    reason: str = ""
    note: str = ""

    @classmethod
    def from_form(cls, form: Any) -> ActionInput:
        def get(name: str) -> str:
            value = form.get(name, "")
            return value.strip() if isinstance(value, str) else ""

        return cls(get("category"), get("priority").upper(), get("target").upper(), get("reason"), get("note"))


@dataclass
class _Ctx:
    s: AsyncSession
    pipeline: Pipeline
    taxonomy: Taxonomy | None
    report: Report
    who: Principal
    data: ActionInput


async def perform(
    pipeline: Pipeline, taxonomy: Taxonomy | None, case: str, action: str, data: ActionInput, who: Principal
) -> dict[str, Any]:
    """Apply ``action`` to report ``case`` as ``who``; returns the report's new state."""
    if action not in ACTIONS:
        raise ActionError(f"没有这个操作：{action}", 404)
    async with pipeline.unit() as s:
        report = await s.scalar(select(Report).where(Report.case_number == case).with_for_update())
        if report is None:
            raise ActionError(f"没有案件 {case}", 404)
        if action in TRIAGE and report.status != Status.NEEDS_REVIEW:
            raise ActionError(f"案件 {case} 已被处理（{_status(report.status)}），请刷新", 409)
        if report.status not in OPEN:
            raise ActionError(f"案件 {case} 已结束（{_status(report.status)}）", 409)
        ctx = _Ctx(s, pipeline, taxonomy, report, who, data)
        message = await _HANDLERS[action](ctx)
        result = {
            "case_number": report.case_number,
            "status": report.status,
            "priority": report.priority,
            "category": report.category_code,
            "message": message,
        }
    log.info("console action", extra={"case": case, "action": action, "moderator": who.username})
    return result


async def _confirm(c: _Ctx) -> str:
    r = c.report
    if not r.category_code or r.category_set_by == "placeholder":
        raise ActionError("还没有分类可确认，请先选择分类")
    await record_example(
        c.s, r, r.category_code, model_label=r.category_code, moderator=c.who.username, source="confirmed"
    )
    r.category_set_by = "moderator"
    await c.pipeline.transition(c.s, r, Status.READY, c.who.actor, action="confirm", data={"category": r.category_code})
    return f"已确认分类 {r.category_code} {r.category_name or ''}，已转派遣"


async def _category(c: _Ctx) -> str:
    r, code = c.report, c.data.category
    tax = c.taxonomy
    if tax is None or code not in tax:
        raise ActionError(f"没有这个分类：{code}")
    previous = r.category_code if r.category_set_by != "placeholder" else None
    await record_example(
        c.s,
        r,
        code,
        model_label=previous,
        moderator=c.who.username,
        source="confirmed" if code == previous else "changed",
    )
    top = str(tax.top_level_of(code))
    r.category_code, r.category_name = code, tax.name_of(code)
    r.category_parent = top if top != code else None
    r.category_confidence, r.category_set_by = 1.0, "moderator"
    if not r.urgent and not await _priority_was_set(c):
        r.priority = tax.priority_of(code) if code != top else r.priority
    await c.pipeline.transition(
        c.s, r, Status.READY, c.who.actor, action="recategorize", data={"from": previous, "to": code}
    )
    return f"分类改为 {code} {r.category_name}，已转派遣"


async def _priority_was_set(c: _Ctx) -> bool:
    found = await c.s.scalar(
        select(History.id).where(History.report_id == c.report.id, History.action == "priority").limit(1)
    )
    return found is not None


async def _priority(c: _Ctx) -> str:
    r, value = c.report, c.data.priority
    if value not in PRIORITIES:
        raise ActionError(f"优先级只能是 {'、'.join(PRIORITIES)}")
    before = r.priority
    r.priority, r.urgent = value, value == "P1"
    r.updated_at = c.pipeline.clock()
    c.s.add(
        History(
            report_id=r.id, at=r.updated_at, actor=c.who.actor, action="priority", data={"from": before, "to": value}
        )
    )
    return f"优先级 {before} → {value}"


async def _merge(c: _Ctx) -> str:
    r, target_case = c.report, c.data.target
    if not target_case or target_case == r.case_number:
        raise ActionError("请填写要并入的另一个案件编号")
    target = await c.s.scalar(select(Report).where(Report.case_number == target_case).with_for_update())
    if target is None:
        raise ActionError(f"没有案件 {target_case}", 404)
    if target.status not in MERGE_TARGETS:
        raise ActionError(f"不能并入 {target_case}：该案件{_status(target.status)}", 409)
    r.duplicate_of = target.case_number
    await c.pipeline.transition(c.s, r, Status.MERGED, c.who.actor, action="merge", data={"into": target_case})
    c.s.add(
        History(
            report_id=target.id,
            at=c.pipeline.clock(),
            actor=c.who.actor,
            action="merged_in",
            data={"from": r.case_number},
        )
    )
    return f"已合并到 {target_case}"


async def _spam(c: _Ctx) -> str:
    await c.pipeline.transition(c.s, c.report, Status.SPAM, c.who.actor, action="spam")
    return "已标记为无效信息"


async def _reject(c: _Ctx) -> str:
    reason = c.data.reason
    if not 2 <= len(reason) <= MAX_REASON:
        raise ActionError(f"请填写 2-{MAX_REASON} 字的退回原因（居民会看到）")
    await c.pipeline.transition(c.s, c.report, Status.REJECTED, c.who.actor, action="reject", note=reason)
    return "已退回，原因已告知居民"


async def _note(c: _Ctx) -> str:
    text = c.data.note
    if not 1 <= len(text) <= MAX_NOTE:
        raise ActionError(f"请填写 1-{MAX_NOTE} 字的备注")
    note = ModeratorNote(report_id=c.report.id, author=c.who.username, text=text, created_at=c.pipeline.clock())
    c.s.add(note)
    await c.s.flush()
    # The text stays in moderator_notes: report_history notes are shown on the public status page.
    c.s.add(
        History(report_id=c.report.id, at=note.created_at, actor=c.who.actor, action="note", data={"note_id": note.id})
    )
    return "已添加备注"


async def _dispatch(c: _Ctx) -> str:
    r = c.report
    if not r.category_code or r.category_set_by == "placeholder":
        raise ActionError("请先选择分类再派遣")
    await c.pipeline.transition(c.s, r, Status.READY, c.who.actor, action="dispatch")
    return "已转派遣"


async def _media(c: _Ctx) -> str:
    """Download the report's failed photos, voice notes and videos again (e.g. once the WeChat
    app secret is configured): back to ``pending`` with a fresh attempt count."""
    failed = list(await c.s.scalars(select(Media).where(Media.report_id == c.report.id, Media.state == "failed")))
    if not failed:
        raise ActionError("没有下载失败的附件")
    for m in failed:
        m.state, m.attempts, m.error = "pending", 0, None
        after_commit(c.s, "fetch_media", m.id)
    c.s.add(
        History(
            report_id=c.report.id,
            at=c.pipeline.clock(),
            actor=c.who.actor,
            action="media_retry",
            data={"media": [m.id for m in failed]},
        )
    )
    return f"已重新下载 {len(failed)} 个附件"


_HANDLERS = {
    "confirm": _confirm,
    "category": _category,
    "priority": _priority,
    "merge": _merge,
    "spam": _spam,
    "reject": _reject,
    "note": _note,
    "dispatch": _dispatch,
    "media": _media,
}
