"""The serving process with the linear model does not import torch (issue 11): the transformer
stack is for training and the optional transformer model only. Checked in a fresh interpreter,
so that what other tests imported does not count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import asyncio, json, sys
from aiohttp.test_utils import TestClient, TestServer
from gateway import keys
from gateway.http.app import create_app
from gateway.settings import Settings

async def main():
    app = create_app(Settings())
    async with TestClient(TestServer(app)) as client:
        body = {"text": "小区北门的路灯不亮了，晚上走路看不见", "location": {"lat": 22.65, "lng": 114.02}}
        resp = await client.post("/api/v1/reports", json=body)
        assert resp.status == 201, await resp.text()
        await app[keys.RUNNER].idle(30)
        async with app[keys.DB].session() as s:
            from sqlalchemy import text
            row = (await s.execute(text("SELECT status, category_model_version FROM reports"))).one()
    print(json.dumps({"status": row[0], "model": row[1], "torch": "torch" in sys.modules}))

asyncio.run(main())
"""


def test_serving_with_the_linear_model_does_not_import_torch(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(
        PYTHONPATH=str(ROOT),
        GATEWAY_VAR_DIR=str(tmp_path / "var"),
        GATEWAY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
        GATEWAY_AUTO_MIGRATE="true",
        GATEWAY_CLASSIFIER="nlp",
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["status"] != "received" and found["model"].startswith("default-linear")  # the model ran
    assert found["torch"] is False
