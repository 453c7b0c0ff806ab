"""The task table: every background task by name, and the Celery queue that runs it.

Task functions take the process's ``TaskContext`` and ids (small JSON values) only, and are
idempotent. Importing this module fills the registry of ``gateway/tasks/runners.py``; the
composition root (``gateway/runtime.py``) imports it, so every runner it builds knows every task.
"""

from __future__ import annotations

from gateway.core.triage import CLAIMED
from gateway.dispatch.outbox import deliver_dispatch
from gateway.tasks.mediafetch import fetch_media
from gateway.tasks.mentions import poll_weibo_mentions
from gateway.tasks.notify import notify
from gateway.tasks.runners import QUEUES, TASKS, Retry, TaskContext, TaskFn

CLAIMED_RETRY_S = 1.0  # a report another batch holds is looked at again this soon


async def classify_report(ctx: TaskContext, *report_ids: int) -> None:
    """Classify reports (intake enqueues one task per batch it stored; they are classified together)."""
    if CLAIMED in await ctx.pipeline.classify_reports(report_ids):
        raise Retry("classified by another batch; checking it left received", delay=CLAIMED_RETRY_S)


async def close_session(ctx: TaskContext, report_id: int) -> None:
    await ctx.pipeline.close_session(report_id)


# name -> (function, queue). Queues group tasks for Celery workers.
TABLE: dict[str, tuple[TaskFn, str]] = {
    "classify_report": (classify_report, "nlp"),
    "close_session": (close_session, "nlp"),
    "notify": (notify, "send"),
    "deliver_dispatch": (deliver_dispatch, "dispatch"),
    "deliver_dispatch_urgent": (deliver_dispatch, "dispatch_urgent"),  # P1: its own queue, never behind a backlog
    "fetch_media": (fetch_media, "media"),
    "poll_weibo_mentions": (poll_weibo_mentions, "default"),  # periodic, enqueued by gateway serve
}
for _name, (_fn, _queue) in TABLE.items():
    TASKS[_name] = _fn
    QUEUES[_name] = _queue

__all__ = ["QUEUES", "TABLE", "TASKS", "classify_report", "close_session"]
