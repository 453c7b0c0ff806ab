"""The README's "Try it" block, run as written against a live gateway (only the address changed)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from typing import Any

import pytest

from tests.conftest import ROOT

_BLOCK = re.compile(r"Try it:\n\n```sh\n(.*?)```", re.S)


def try_it() -> str:
    found = _BLOCK.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert found, "README.md has no 'Try it:' shell block"
    return found.group(1)


async def test_try_it_runs_end_to_end(client: Any) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    script = try_it().replace("http://127.0.0.1:8080", str(client.make_url("")).rstrip("/"))
    proc = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    first, second = out.decode().split("\n", 1)
    case = first.removeprefix("case number: ")
    assert re.fullmatch(r"ZW\d{14}", case), first
    report = json.loads(second)
    assert report["case_number"] == case and report["text"] == "小区门口的路灯坏了好几天"
