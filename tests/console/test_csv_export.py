"""Issue 13, item 9: the labelled-examples CSV download cannot run formulas in a spreadsheet."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from gateway import keys
from gateway.console.auth import create_api_key
from gateway.db import LabeledExample, Report


async def test_formula_cells_are_exported_as_text(app_client):
    resp = await app_client.post("/api/v1/reports", json={"text": "路灯坏了"})
    case = (await resp.json())["case_number"]
    db = app_client.app[keys.DB]
    async with db.session() as s, s.begin():
        report_id = await s.scalar(select(Report.id).where(Report.case_number == case))
        s.add(
            LabeledExample(
                report_id=report_id,
                text='=HYPERLINK("http://evil.example","点我")',
                label="0101",
                source="confirmed",
                moderator="mod1",
            )
        )
    key = await create_api_key(db, "export", ["reviews:read"])
    body = await (await app_client.get("/api/v1/admin/labeled-examples.csv", headers={"X-API-Key": key})).text()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[1][0] == '\'=HYPERLINK("http://evil.example","点我")'
