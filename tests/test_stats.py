"""GET /api/v1/stats and `gateway stats`: per category and department, counts, median times,
on-time rate against the priority deadline, mean rating (统一评价)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from gateway import cli
from gateway.core.lifecycle import Status
from gateway.db import utcnow
from gateway.dispatch.stats import compute_stats
from tests.dispatch_support import DroppingRunner, FixedClassifier, Process, Resident

HOUR = 3600.0
TABLE = """
targets:
  municipal: {url: "http://127.0.0.1:9/hook", secret: s, department: 市政管理局}
routes:
  - {categories: ["01"], target: municipal}
"""


async def _history_of_cases(gw: Process, now: list) -> None:
    """Four cases on a controlled clock (see the expectations in the test)."""
    start = now[0]

    async def case(text: str, code: str, resident: Resident) -> str:
        gw.pipeline.classifier = FixedClassifier(code=code, name={"0101": "路灯损坏", "1101": "噪音扰民"}[code])
        return await gw.ready_report(text, resident=resident)

    async def move(case_number: str, status: str, hours: float, note: str | None = None) -> None:
        now[0] = start + timedelta(hours=hours)
        await gw.pipeline.change_status(case_number, status, "dispatch", note=note)

    a_res, b_res = Resident(), Resident()
    a = await case("路灯坏了", "0101", a_res)
    b = await case("路灯不亮", "0101", b_res)
    c = await case("楼下很吵", "1101", Resident())
    for number in (a, b, c):
        await move(number, Status.DISPATCHED, 1)
    for number in (a, b):
        await move(number, Status.ACCEPTED, 2)
    await move(a, Status.RESOLVED, 5, "已修复")
    await gw.pipeline.intake([a_res.says("5")])
    await move(b, Status.RESOLVED, 8 * 24, "已修复")  # P3: 7 days, so late
    await gw.pipeline.intake([b_res.says("3 太慢")])
    now[0] = start + timedelta(days=9)
    await case("装修噪音", "1101", Resident())  # open and within its deadline: not judged yet
    now[0] = start + timedelta(days=10)  # c is open past its deadline: late


async def test_figures_per_category_and_department(make_settings, tmp_path, db_url):
    table = tmp_path / "routing.yaml"
    table.write_text(TABLE, encoding="utf-8")
    now = [utcnow() - timedelta(days=30)]
    settings = make_settings(
        routing_table=table, dispatch_url="http://127.0.0.1:9/hook", dispatch_secret="d", database_url=db_url
    )
    async with Process(settings, runner=DroppingRunner(), clock=lambda: now[0]) as gw:
        await _history_of_cases(gw, now)
        stats = await compute_stats(gw.db, now=now[0])

    by_code = {row["code"]: row for row in stats["by_category"]}
    lights, noise = by_code["0101"], by_code["1101"]
    assert (lights["name"], lights["count"], lights["ratings"], lights["mean_rating"]) == ("路灯损坏", 2, 2, 4.0)
    assert lights["median_accept_s"] == HOUR  # hand-off to acceptance: 1 h for both
    assert lights["median_resolve_s"] == (5 * HOUR + 8 * 24 * HOUR) / 2
    assert lights["on_time_rate"] == 0.5
    assert (noise["count"], noise["median_accept_s"], noise["median_resolve_s"]) == (2, None, None)
    assert noise["on_time_rate"] == 0.0 and noise["mean_rating"] is None

    by_dept = {row["department"]: row for row in stats["by_department"]}
    assert by_dept["市政管理局"]["count"] == 2 and by_dept["市政管理局"]["mean_rating"] == 4.0
    assert by_dept["default"]["count"] == 2
    assert stats["total"]["count"] == 4 and stats["total"]["on_time_rate"] == round(1 / 3, 3)


async def test_stats_endpoint_and_cli_agree(make_settings, aiohttp_client, monkeypatch, tmp_path, capsys):
    from gateway.http.app import create_app

    settings = make_settings(dispatch_url="http://127.0.0.1:9/hook", dispatch_secret="d")
    now = [utcnow() - timedelta(days=1)]
    async with Process(settings, runner=DroppingRunner(), clock=lambda: now[0]) as gw:
        case = await gw.ready_report()
        await gw.pipeline.change_status(case, Status.DISPATCHED, "system")
    client = await aiohttp_client(create_app(settings, classifier=FixedClassifier(), runner=DroppingRunner()))
    api = await (await client.get("/api/v1/stats")).json()
    assert api["total"]["count"] == 1 and api["by_category"][0]["code"] == "0101"

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATEWAY_REDIS_URL", raising=False)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.db_url)
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["stats"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["by_category"] == api["by_category"] and printed["by_department"] == api["by_department"]


SHANGFEN_PATH = [
    {"level": "市", "code": "440300", "name": "深圳市"},
    {"level": "区", "code": "440309", "name": "龙华区"},
    {"level": "街道", "code": "440309004", "name": "民治街道"},
    {"level": "社区", "code": "440309004008", "name": "上芬社区"},
]
GUANLAN_PATH = [*SHANGFEN_PATH[:2], {"level": "街道", "code": "440309001", "name": "观澜街道"}]


async def test_figures_per_grid_unit_at_a_level(make_settings, aiohttp_client, monkeypatch, tmp_path, capsys):
    from sqlalchemy import update

    from gateway.db import Report
    from gateway.http.app import create_app

    settings = make_settings(dispatch_url="http://127.0.0.1:9/hook", dispatch_secret="d")
    now = [utcnow() - timedelta(days=1)]
    async with Process(settings, runner=DroppingRunner(), clock=lambda: now[0]) as gw:
        texts = ("小区门口路灯坏了", "楼下井盖缺失很危险", "公园垃圾桶满了")  # unlike each other: no duplicates
        cases = [await gw.ready_report(text, resident=Resident()) for text in texts]
        for case, path in zip(cases, (SHANGFEN_PATH, GUANLAN_PATH), strict=False):
            async with gw.db.session() as s, s.begin():
                await s.execute(update(Report).where(Report.case_number == case).values(grid_path=path))
        streets = await compute_stats(gw.db)
        communities = await compute_stats(gw.db, grid_level="社区")
    assert streets["grid_level"] == "街道"
    assert [(u["code"], u["name"], u["count"]) for u in streets["by_grid"]] == [
        ("440309001", "观澜街道", 1),
        ("440309004", "民治街道", 1),
        (None, None, 1),  # not placed that deep
    ]
    assert [(u["name"], u["count"]) for u in communities["by_grid"]] == [("上芬社区", 1), (None, 2)]
    assert {"on_time_rate", "mean_rating", "ratings"} <= set(streets["by_grid"][0])

    client = await aiohttp_client(create_app(settings, classifier=FixedClassifier(), runner=DroppingRunner()))
    api = await (await client.get("/api/v1/stats", params={"grid_level": "社区"})).json()
    assert api["by_grid"] == communities["by_grid"]
    assert (await client.get("/api/v1/stats", params={"grid_level": "省"})).status == 400

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GATEWAY_REDIS_URL", raising=False)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.db_url)
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["stats", "--grid-level", "社区"]) == 0
    assert json.loads(capsys.readouterr().out)["by_grid"] == communities["by_grid"]
