"""Issue 13, item 7: a dispatch callback may move only cases delivered to the target that signed it.

Before, a callback signed with any configured target's secret could move any case, and could
reject a case that was never handed to dispatch at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway import keys
from gateway.core.lifecycle import Status
from gateway.http.app import create_app
from tests.dispatch_support import FixedClassifier, Resident, fast_dispatch, report, wait_for, wire_chat

MUNICIPAL = "municipal-secret-2026"


@pytest.fixture
async def two_targets(db_url: str, aiohttp_client: Any, make_settings: Any, fake: Any, runner: Any, tmp_path: Any):
    table = tmp_path / "routing.yaml"
    table.write_text(
        "targets:\n  municipal:\n    url: http://127.0.0.1:9/municipal\n"
        f"    secret: {MUNICIPAL}\n    department: 市政管理局\n"
        "routes:\n  - categories: ['09']\n    target: municipal\n",
        encoding="utf-8",
    )
    settings = make_settings(**fast_dispatch(fake, routing_table=table), database_url=db_url)
    app = create_app(settings, classifier=FixedClassifier(code="1101", name="噪音扰民"), runner=runner)
    client = await aiohttp_client(app)
    wire_chat(app)
    return client


async def dispatched(client: Any) -> str:
    result = await client.app[keys.PIPELINE].intake([Resident().says("楼下夜里很吵", complete=True)])
    db = client.app[keys.DB]

    async def done() -> bool:
        return (await report(db, result.case_number)).status == Status.DISPATCHED

    await wait_for(done, what="dispatched to the default target")
    return result.case_number


async def test_another_targets_secret_cannot_move_the_case(two_targets: Any, fake: Any) -> None:
    case = await dispatched(two_targets)
    resp = await fake.callback(two_targets, case, "rejected", "不归我们管", secret=MUNICIPAL)
    assert resp.status == 403 and "not delivered to this dispatch target" in (await resp.json())["error"]
    assert (await report(two_targets.app[keys.DB], case)).status == Status.DISPATCHED
    resp = await fake.callback(two_targets, case, "accepted", "已派单")  # the default target's own secret
    assert resp.status == 200 and (await resp.json())["status"] == "accepted"


async def test_a_case_never_handed_to_dispatch_cannot_be_rejected_by_it(two_targets: Any, fake: Any) -> None:
    from gateway.core.classify import PlaceholderClassifier

    two_targets.app[keys.PIPELINE].classifier = PlaceholderClassifier()
    result = await two_targets.app[keys.PIPELINE].intake([Resident().says("路灯坏了", complete=True)])
    db = two_targets.app[keys.DB]

    async def reviewed() -> bool:
        return (await report(db, result.case_number)).status == Status.NEEDS_REVIEW

    await wait_for(reviewed, what="needs_review")
    for secret in (None, MUNICIPAL):
        resp = await fake.callback(two_targets, result.case_number, "rejected", "重复", secret=secret)
        assert resp.status == 403
    assert (await report(db, result.case_number)).status == Status.NEEDS_REVIEW
