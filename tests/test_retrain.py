"""The learning loop: `gateway train --from-reviews` learns what moderators confirmed."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

from gateway.cli import main
from gateway.db import Database, LabeledExample, Report

BASE = {
    "0102": ["路灯不亮{}", "小区路灯坏了{}", "路灯晚上不亮很黑{}", "这条路的灯坏了{}"],
    "0601": ["垃圾堆在路边{}", "垃圾没人清理{}", "垃圾桶满了溢出来{}", "路边垃圾很臭{}"],
}
REVIEWED = ["共享单车乱停乱放堵住路口{}", "单车停满人行道{}", "共享单车堆在地铁口{}", "电动车单车乱停{}"]


async def add_reviews(url: str) -> None:
    db = Database(url)
    try:
        async with db.session() as s, s.begin():
            for i in range(24):
                report = Report(
                    case_number=f"ZW20261127{i:06d}",
                    channel="web",
                    sender="web:x",
                    text="x",
                    status="ready",
                    priority="P3",
                    urgent=False,
                    created_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                )
                s.add(report)
                await s.flush()
                s.add(
                    LabeledExample(
                        report_id=report.id,
                        text=REVIEWED[i % 4].format(i),
                        label="0907",
                        source="changed",
                        moderator="moderator:li",
                    )
                )
    finally:
        await db.close()


async def test_train_from_reviews_adds_the_moderators_labels(tmp_path, sqlite_url, monkeypatch, capsys):
    await add_reviews(sqlite_url)
    data = tmp_path / "base.csv"
    with data.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for label, texts in BASE.items():
            for i in range(24):
                writer.writerow([texts[i % 4].format(i), label])
    monkeypatch.setenv("GATEWAY_DATABASE_URL", sqlite_url)
    out = tmp_path / "model"
    import asyncio

    code = await asyncio.to_thread(main, ["train", str(data), "--from-reviews", "--out", str(out), "--no-progress"])
    assert code == 0
    assert "plus 24 moderator-confirmed examples (72 rows)" in capsys.readouterr().err
    classify = await asyncio.to_thread(main, ["classify", "--model", str(out), "地铁口共享单车乱停"])
    assert classify == 0
    prediction = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert prediction["code"] == "0907"


def test_train_without_data_or_reviews_is_a_usage_error(capsys):
    assert main(["train", "--out", "x"]) == 2
    assert "DATA is required" in capsys.readouterr().err
