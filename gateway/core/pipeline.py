"""The pipeline: messages in, reports out (intake → session stitching → store → classify → route).

``Pipeline`` is the one object the rest of the gateway holds; it is assembled from the three
stages of the core, each in its own module, and every listener is passed in here, so a reader
sees in one signature everything that acts on a message:

- ``Intake`` (``gateway/core/intake.py``): de-duplicate, stitch, store, commit; ``IntakeFilter``s
  first (ratings);
- ``Lifecycle`` (``gateway/core/transitions.py``) with ``Triage`` (``gateway/core/triage.py``):
  status moves, history, news to residents, classification; ``TransitionListener``s (the
  dispatch outbox) run inside the move's transaction;
- ``Sweeping`` (``gateway/core/sweeping.py``): re-enqueue what a crash left; extra ``Sweeper``s.

The composition root (``gateway/runtime.py``) builds it for ``gateway serve``, ``gateway worker``
and the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.intake import Intake, IntakeFilter, IntakeResult, message_row
from gateway.core.sweeping import Sweeper, Sweeping
from gateway.core.transitions import Lifecycle, TransitionListener
from gateway.core.triage import DUPLICATE_ROUTE_SCORE, Triage
from gateway.core.units import SYSTEM, Claims, ReportNotFound, TaskRunner, Units, after_commit
from gateway.db import Database, Report, utcnow
from gateway.models import InboundMessage

if TYPE_CHECKING:
    from gateway.core.classify import ReportClassifier
    from gateway.core.placing import Placer
    from gateway.metrics import Metrics
    from gateway.settings import Settings

__all__ = [
    "DUPLICATE_ROUTE_SCORE",
    "SYSTEM",
    "IntakeFilter",
    "IntakeResult",
    "Pipeline",
    "ReportNotFound",
    "Sweeper",
    "TransitionListener",
    "after_commit",
    "message_row",
]


class Pipeline:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        runner: TaskRunner,
        classifier: ReportClassifier,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        intake_filters: Sequence[IntakeFilter] = (),
        transition_listeners: Sequence[TransitionListener] = (),
        sweepers: Sequence[Sweeper] = (),
        outbound_channels: frozenset[str] = frozenset(),
        placer: Placer | None = None,
        claims: Claims | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.units = Units(db, runner, clock)
        self.intake_stage = Intake(self.units, settings, filters=intake_filters, metrics=metrics)
        self.lifecycle = Lifecycle(self.units, listeners=transition_listeners, metrics=metrics)
        self.triage = Triage(self.units, self.lifecycle, classifier, metrics=metrics, placer=placer, claims=claims)
        self.sweeping = Sweeping(self.units, settings, sweepers=sweepers)
        self.outbound_channels = outbound_channels

    @property
    def outbound_channels(self) -> frozenset[str]:
        """Channels that can send to residents (contacts, status news)."""
        return self.intake_stage.outbound_channels

    @outbound_channels.setter
    def outbound_channels(self, names: frozenset[str]) -> None:
        self.intake_stage.outbound_channels = names
        self.lifecycle.outbound_channels = names

    @property
    def classifier(self) -> ReportClassifier:
        return self.triage.classifier

    @classifier.setter
    def classifier(self, classifier: ReportClassifier) -> None:
        self.triage.classifier = classifier

    @property
    def placer(self) -> Placer | None:
        return self.triage.placer

    @property
    def db(self) -> Database:
        return self.units.db

    @property
    def runner(self) -> TaskRunner:
        return self.units.runner

    def clock(self) -> datetime:
        return self.units.clock()

    def unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self.units.unit()

    async def intake(self, messages: Sequence[InboundMessage], *, idempotency_key: str | None = None) -> IntakeResult:
        return await self.intake_stage.intake(messages, idempotency_key=idempotency_key)

    async def close_session(self, report_id: int, *, force: bool = False) -> bool:
        return await self.triage.close_session(report_id, force=force)

    async def classify_report(self, report_id: int) -> str | None:
        return await self.triage.classify_report(report_id)

    async def classify_reports(self, report_ids: Sequence[int]) -> list[str | None]:
        return await self.triage.classify_reports(report_ids)

    async def sweep(self) -> int:
        return await self.sweeping.sweep()

    async def transition(
        self,
        s: AsyncSession,
        report: Report,
        target: str,
        actor: str,
        *,
        note: str | None = None,
        data: dict[str, Any] | None = None,
        action: str = "status",
    ) -> None:
        await self.lifecycle.transition(s, report, target, actor, note=note, data=data, action=action)

    async def change_status(self, case_number: str, target: str, actor: str, *, note: str | None = None) -> Report:
        return await self.lifecycle.change_status(case_number, target, actor, note=note)
