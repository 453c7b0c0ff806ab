"""The media disk fills up: a post with photos is answered with a retryable 503 (nothing stored,
nothing acknowledged), a text-only post is still stored, and the same post (its
``Idempotency-Key``) goes through once space is freed. The full disk is simulated at the OS
boundary: the media store's file write raises ``ENOSPC``, as ``write(2)`` does."""

from __future__ import annotations

import errno
import os
from typing import Any

import aiohttp
from sqlalchemy import func, select

from gateway import keys
from gateway.core.classify import PlaceholderClassifier
from gateway.db import Report
from gateway.http.app import create_app
from gateway.media import LocalMediaStore

PNG = b"\x89PNG\r\n\x1a\n" + b"\x05" * 128


def _form() -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("text", "路边垃圾桶满了，气味很大")
    form.add_field("photos", PNG, filename="a.png", content_type="image/png")
    return form


async def test_full_media_disk_is_a_retryable_error_and_nothing_acknowledged_is_lost(
    aiohttp_client: Any, make_settings: Any, runner: Any, monkeypatch: Any
) -> None:
    client = await aiohttp_client(create_app(make_settings(), classifier=PlaceholderClassifier(), runner=runner))
    real_write = LocalMediaStore._write

    def disk_full(self: LocalMediaStore, digest: str, data: bytes, content_type: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(LocalMediaStore, "_write", disk_full)
    key = {"Idempotency-Key": "disk-full-1"}
    resp = await client.post("/api/v1/reports", data=_form(), headers=key)
    assert resp.status == 503 and resp.headers["Retry-After"] == "60"
    text_only = await client.post("/api/v1/reports", json={"text": "楼下路灯不亮"})
    assert text_only.status == 201  # the disk holds photos only: text reports go on

    monkeypatch.setattr(LocalMediaStore, "_write", real_write)  # space freed
    resp = await client.post("/api/v1/reports", data=_form(), headers=key)
    assert resp.status == 201, await resp.text()
    case = (await resp.json())["case_number"]
    await runner.idle()
    report = await (await client.get(f"/api/v1/reports/{case}")).json()
    assert [m["state"] for m in report["media"]] == ["stored"]
    async with client.app[keys.DB].session() as s:
        assert await s.scalar(select(func.count()).select_from(Report)) == 2  # the refused post stored nothing
