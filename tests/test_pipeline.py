"""The pipeline: idempotent intake, session stitching, classification routing, recovery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.core.classify import Classification, PlaceholderClassifier
from gateway.core.lifecycle import IllegalTransition
from gateway.core.pipeline import Pipeline, ReportNotFound
from gateway.db import Database, History, Message, Report
from gateway.models import InboundMessage, Location, MediaRef, MessageKind


class RecordingRunner:
    """Collects enqueued tasks instead of running them, so a test drives each step."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], float]] = []

    async def enqueue(self, name: str, *args: Any, delay: float = 0) -> None:
        self.calls.append((name, args, delay))

    async def drain(self, timeout: float) -> None:
        return None

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args, _ in self.calls if n == name]


class FixedClassifier:
    def __init__(self, **kw: Any) -> None:
        base = dict(
            code="0102",
            name="路灯与景观照明",
            parent="01",
            confidence=0.97,
            needs_review=False,
            priority="P3",
            urgent=False,
            model_version="test-1",
            set_by="model",
            candidates=[{"code": "01", "name": "市政公用设施", "confidence": 0.97}],
            explanation="路灯",
        )
        base.update(kw)
        self.result = Classification(**base)

    async def classify(self, text: str) -> Classification:
        return self.result


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def msg(mid: str, kind: MessageKind = MessageKind.TEXT, text: str = "", sender: str = "wechat:o1", **kw: Any):
    return InboundMessage(
        channel="wechat",
        channel_message_id=mid,
        sender=sender,
        received_at=datetime(2026, 11, 27, 2, 0, tzinfo=UTC),
        kind=kind,
        text=text,
        **kw,
    )


@pytest.fixture
async def env(db_url, make_settings):
    db = Database(db_url)
    clock = Clock()
    runner = RecordingRunner()
    pipeline = Pipeline(db, make_settings(session_window_s=300), runner, FixedClassifier(), clock=clock)
    yield pipeline, runner, clock
    await db.close()


async def count(db: Database, model: Any) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_photo_text_location_stitch_into_one_report(env):
    pipeline, runner, _ = env
    photo = await pipeline.intake(
        [msg("m1", MessageKind.IMAGE, media=(MediaRef(MessageKind.IMAGE, provider_id="MID1"),))]
    )
    assert photo.created and photo.session_open
    assert "描述" in photo.reply and "位置" in photo.reply  # asks for a description and a location
    text = await pipeline.intake([msg("m2", text="路灯坏了，晚上很黑")])
    assert text.case_number == photo.case_number and not text.created
    assert photo.case_number in text.reply and "位置" in text.reply
    loc = await pipeline.intake(
        [msg("m3", MessageKind.LOCATION, location=Location(lat=22.6, lng=114.0, label="民治大道"))]
    )
    assert loc.case_number == photo.case_number
    assert runner.named("fetch_media") == [(1,)]
    assert runner.named("classify_report") == []  # still a draft
    done = await pipeline.intake([msg("m4", text="提交")])
    assert done.case_number == photo.case_number and not done.session_open
    assert "已提交" in done.reply
    assert runner.named("classify_report") == [(photo.report_id,)]
    async with pipeline.db.session() as s:
        report = await s.get(Report, photo.report_id)
        assert report.text == "路灯坏了，晚上很黑"  # the close word is not part of the report
        assert (report.location_lat, report.location_lng, report.location_address) == (22.6, 114.0, "民治大道")
    assert await count(pipeline.db, Message) == 4 and await count(pipeline.db, Report) == 1


async def test_other_residents_and_expired_windows_get_their_own_reports(env):
    pipeline, _, clock = env
    a = await pipeline.intake([msg("a1", text="垃圾满了")])
    b = await pipeline.intake([msg("b1", text="噪音扰民", sender="wechat:o2")])
    assert a.case_number != b.case_number
    clock.now += timedelta(seconds=301)
    later = await pipeline.intake([msg("a2", text="又一个问题")])
    assert later.created and later.case_number != a.case_number


async def test_retried_message_is_a_duplicate_not_a_second_report(env):
    pipeline, _, _ = env
    first = await pipeline.intake([msg("m1", text="井盖丢了")])
    again = await pipeline.intake([msg("m1", text="井盖丢了")])
    assert again.duplicate and again.case_number == first.case_number
    assert await count(pipeline.db, Message) == 1


async def test_concurrent_retries_make_one_message(env):
    pipeline, _, _ = env
    results = await asyncio.gather(*(pipeline.intake([msg("same", text="漏水")]) for _ in range(8)))
    assert len({r.case_number for r in results}) == 1
    assert await count(pipeline.db, Message) == 1 and await count(pipeline.db, Report) == 1


async def test_close_word_without_a_draft_stores_nothing_but_answers(env):
    pipeline, runner, _ = env
    result = await pipeline.intake([msg("x", text="完成")])
    assert result.case_number is None and "没有待提交" in result.reply
    assert await count(pipeline.db, Report) == 0 and runner.calls == []


async def test_events_do_not_make_reports(env):
    pipeline, _, _ = env
    result = await pipeline.intake([msg("e1", MessageKind.EVENT, event="subscribe")])
    assert result.report_id is None and await count(pipeline.db, Report) == 0


async def test_idle_draft_closes_after_the_window_and_is_classified(env):
    pipeline, runner, clock = env
    r = await pipeline.intake([msg("m1", text="路灯不亮")])
    assert runner.named("close_session") == [(r.report_id,)]
    assert not await pipeline.close_session(r.report_id)  # not yet: re-scheduled
    assert runner.calls[-1][0] == "close_session" and runner.calls[-1][2] > 0
    clock.now += timedelta(seconds=301)
    assert await pipeline.close_session(r.report_id)
    assert await pipeline.classify_report(r.report_id) == "ready"
    async with pipeline.db.session() as s:
        report = await s.get(Report, r.report_id)
        assert (report.category_code, report.category_set_by, report.category_model_version) == (
            "0102",
            "model",
            "test-1",
        )


async def test_sweep_recovers_expired_drafts_and_unclassified_reports(env):
    """A restart loses the in-memory timers; the sweeper finds the work in the database."""
    pipeline, runner, clock = env
    draft = await pipeline.intake([msg("m1", text="占道经营")])
    web = await pipeline.intake(
        [
            InboundMessage(
                channel="web",
                channel_message_id="w1",
                sender="web:1",
                received_at=clock.now,
                kind=MessageKind.TEXT,
                text="违章停车",
                complete=True,
            )
        ]
    )
    runner.calls.clear()
    assert await pipeline.sweep() == 0  # nothing is overdue yet
    clock.now += timedelta(seconds=400)
    swept = await pipeline.sweep()
    assert swept == 2, runner.calls
    assert runner.named("close_session") == [(draft.report_id,)]
    assert runner.named("classify_report") == [(web.report_id,)]


async def test_low_confidence_goes_to_review_and_urgent_skips_it(env):
    pipeline, _, _ = env
    pipeline.classifier = FixedClassifier(confidence=0.4, needs_review=True)
    low = await pipeline.intake([msg("l1", text="这个怎么办", complete=True)])
    assert await pipeline.classify_report(low.report_id) == "needs_review"
    pipeline.classifier = FixedClassifier(code="1003", confidence=0.5, needs_review=True, urgent=True, priority="P1")
    gas = await pipeline.intake([msg("g1", text="楼道里煤气味很重", sender="wechat:o9", complete=True)])
    assert await pipeline.classify_report(gas.report_id) == "ready"
    assert await pipeline.classify_report(gas.report_id) is None  # idempotent: already classified


async def test_placeholder_classifier_routes_everything_to_review(env):
    pipeline, _, _ = env
    pipeline.classifier = PlaceholderClassifier()
    r = await pipeline.intake([msg("p1", text="随便说点", complete=True)])
    assert await pipeline.classify_report(r.report_id) == "needs_review"
    async with pipeline.db.session() as s:
        assert (await s.get(Report, r.report_id)).category_set_by == "placeholder"


async def test_illegal_status_change_is_refused_and_leaves_no_history(env):
    pipeline, _, _ = env
    r = await pipeline.intake([msg("c1", text="路面塌陷", complete=True)])
    with pytest.raises(IllegalTransition, match="cannot move from received to resolved"):
        await pipeline.change_status(r.case_number, "resolved", "dispatch")
    with pytest.raises(ReportNotFound):
        await pipeline.change_status("ZW20990101000001", "ready", "dispatch")
    async with pipeline.db.session() as s:
        assert (await s.get(Report, r.report_id)).status == "received"
        assert await s.scalar(select(func.count()).select_from(History)) == 1  # only "received"


async def test_sweep_recovers_media_downloads_lost_in_a_crash(env):
    pipeline, runner, clock = env
    r = await pipeline.intake([msg("p1", MessageKind.IMAGE, media=(MediaRef(MessageKind.IMAGE, provider_id="M1"),))])
    runner.calls.clear()
    clock.now += timedelta(seconds=120)
    await pipeline.sweep()
    assert runner.named("fetch_media") == [(1,)]
    assert r.session_open


async def test_a_likely_twin_of_an_open_case_goes_to_moderators_not_dispatch(env):
    pipeline, _, clock = env
    text = "民治街道龙塘社区3栋门口的路灯坏了一个星期，晚上一片漆黑"
    first = await pipeline.intake([msg("t1", text=text, sender="wechat:a", complete=True)])
    assert await pipeline.classify_report(first.report_id) == "ready"
    clock.now += timedelta(hours=2)
    twin = await pipeline.intake([msg("t2", text=text + "！", sender="wechat:b", complete=True)])
    assert await pipeline.classify_report(twin.report_id) == "needs_review"
    other = await pipeline.intake([msg("t3", text="观澜大道有人占道经营卖水果", sender="wechat:c", complete=True)])
    assert await pipeline.classify_report(other.report_id) == "ready"
    async with pipeline.db.session() as s:
        last = await s.scalar(select(History).where(History.report_id == twin.report_id).order_by(History.id.desc()))
    assert last.note == f"possible duplicate of {first.case_number}"
    assert last.data["possible_duplicates"][0]["case_number"] == first.case_number


async def test_urgent_twins_still_go_straight_to_dispatch(env):
    pipeline, _, _ = env
    pipeline.classifier = FixedClassifier(code="1003", urgent=True, priority="P1")
    text = "幸福小区5栋楼道里煤气味很重，可能漏气了"
    a = await pipeline.intake([msg("g1", text=text, sender="wechat:a", complete=True)])
    b = await pipeline.intake([msg("g2", text=text, sender="wechat:b", complete=True)])
    assert await pipeline.classify_report(a.report_id) == "ready"  # b was waiting too: the same batch
    assert await pipeline.classify_report(b.report_id) is None
    async with pipeline.db.session() as s:
        assert (await s.get(Report, b.report_id)).status == "ready"


async def test_a_location_label_longer_than_the_column_is_cut_not_a_crash(env):
    """Channels pass a place name as it came (WeChat ``Label``); the address column holds 500
    characters, and PostgreSQL refused a longer one, failing the request so the provider retried."""
    pipeline, _, _ = env
    label = "深圳市龙华区民治街道" * 60  # 600 characters
    result = await pipeline.intake(
        [msg("m-long", MessageKind.LOCATION, location=Location(lat=22.6, lng=114.0, label=label))]
    )
    async with pipeline.db.session() as s:
        report = await s.get(Report, result.report_id)
        assert report.location_address == label[:500]


async def test_twins_waiting_together_are_classified_in_one_batch_and_the_second_is_held(env):
    """Reports waiting at the same time are classified together; a twin of one classified before
    it in the same batch goes to moderators, as it would have one after the other."""
    pipeline, _, _ = env
    text = "民治街道龙塘社区3栋门口的路灯坏了一个星期，晚上一片漆黑"
    first = await pipeline.intake([msg("b1", text=text, sender="wechat:a", complete=True)])
    twin = await pipeline.intake([msg("b2", text=text + "！", sender="wechat:b", complete=True)])
    other = await pipeline.intake([msg("b3", text="观澜大道有人占道经营卖水果", sender="wechat:c", complete=True)])
    assert await pipeline.classify_report(twin.report_id) == "needs_review"
    async with pipeline.db.session() as s:
        statuses = {r: (await s.get(Report, r)).status for r in (first.report_id, other.report_id)}
        last = await s.scalar(select(History).where(History.report_id == twin.report_id).order_by(History.id.desc()))
    assert statuses == {first.report_id: "ready", other.report_id: "ready"}
    assert last.note == f"possible duplicate of {first.case_number}"
    assert await pipeline.classify_report(first.report_id) is None  # done by the batch: nothing left to do
