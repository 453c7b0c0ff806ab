"""Greetings and progress questions on chat channels (gateway/core/conversation.py), through the
real app's pipeline: no report is made, and a resident only ever learns about their own cases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from gateway import keys
from gateway.core import replies
from gateway.core.conversation import normalized
from gateway.db import Report
from tests.dispatch_support import Resident


async def reports(client: Any) -> int:
    async with client.app[keys.DB].session() as s:
        return int(await s.scalar(select(func.count()).select_from(Report)) or 0)


async def test_a_lone_greeting_gets_the_welcome_not_a_case(client: Any) -> None:
    pipeline = client.app[keys.PIPELINE]
    for text in ("你好", "您好！", "在吗？", "Hello"):
        result = await pipeline.intake([Resident().says(text)])
        assert result.reply == replies.GREETING and result.case_number is None
    assert await reports(client) == 0
    # A greeting that says something more is a report as before.
    result = await pipeline.intake([Resident().says("你好，小区门口的路灯坏了")])
    assert result.case_number and await reports(client) == 1


async def test_progress_question_answers_with_the_residents_own_cases(client: Any, runner: Any) -> None:
    pipeline = client.app[keys.PIPELINE]
    alice, bob = Resident(), Resident()
    first = await pipeline.intake([alice.says("路灯坏了，在民治大道", complete=True)])
    second = await pipeline.intake([alice.says("垃圾没人收，在龙华大道", complete=True)])
    others = await pipeline.intake([bob.says("井盖丢了", complete=True)])
    await runner.idle()

    listed = await pipeline.intake([alice.says("查询")])
    assert listed.case_number is None and await reports(client) == 3
    reply = listed.reply or ""
    assert reply.startswith(replies.QUERY_HEAD)
    assert first.case_number in reply and second.case_number in reply and others.case_number not in reply
    assert "人工核实中" in reply  # the placeholder classifier sends both to moderators

    one = await pipeline.intake([alice.says(f" {first.case_number.lower()} ")])
    assert one.reply and one.reply.startswith(f"案件 {first.case_number}：") and second.case_number not in one.reply
    # Someone else's case number reads exactly like one that does not exist.
    stranger = await pipeline.intake([alice.says(others.case_number)])
    missing = await pipeline.intake([alice.says("ZW20991231999999")])
    assert stranger.reply == replies.QUERY_NOT_FOUND.format(case=others.case_number)
    assert missing.reply == replies.QUERY_NOT_FOUND.format(case="ZW20991231999999")
    nobody = await pipeline.intake([Resident().says("进度")])
    assert nobody.reply == replies.QUERY_NONE and await reports(client) == 3


def test_normalized_drops_punctuation_and_width() -> None:
    assert normalized("  您好！！ ") == "您好" and normalized("ＨＥＬＬＯ") == "hello"
