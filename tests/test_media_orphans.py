"""Issue 13, item 4: media are stored only for an accepted report; orphans are removed."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData

from gateway import keys
from gateway.http.media_gc import remove_orphans

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 256


def stored_files(client: Any) -> list[Path]:
    root = client.app[keys.MEDIA].root
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def photo_form(**fields: str) -> FormData:
    form = FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("photos", io.BytesIO(PNG), filename="a.png", content_type="image/png")
    return form


@pytest.mark.parametrize(
    "fields",
    [{}, {"text": "路灯坏了", "nickname": "x"}, {"text": "路灯坏了", "contact_phone": "12"}, {"text": "路灯\x00"}],
    ids=["no text", "unknown field", "bad phone", "NUL"],
)
async def test_a_refused_post_leaves_no_photo_behind(client: Any, fields: dict[str, str]) -> None:
    resp = await client.post("/api/v1/reports", data=photo_form(**fields))
    assert resp.status == 400
    resp = await client.post("/report", data=photo_form(**fields))
    assert resp.status == 400
    assert stored_files(client) == []


async def test_an_accepted_post_stores_its_photo(client: Any) -> None:
    resp = await client.post("/api/v1/reports", data=photo_form(text="路灯坏了"))
    assert resp.status == 201
    report = await (await client.get(f"/api/v1/reports/{(await resp.json())['case_number']}")).json()
    sha = report["media"][0]["sha256"]
    assert (await client.get(f"/media/{sha}")).status == 200


async def test_orphans_are_removed_and_referenced_media_kept(client: Any) -> None:
    resp = await client.post("/api/v1/reports", data=photo_form(text="路灯坏了"))
    assert resp.status == 201
    store = client.app[keys.MEDIA]
    orphan = await store.put(b"\xff\xd8\xff" + b"orphan" * 10, "image/jpeg")
    fresh = await store.put(b"\xff\xd8\xff" + b"in flight" * 10, "image/jpeg")
    hour_ago = time.time() - 7200
    for path in stored_files(client):
        if fresh.sha256 not in path.name:
            os.utime(path, (hour_ago, hour_ago))
    removed = await remove_orphans(client.app[keys.DB], store.root)
    assert removed == 1
    names = {p.name for p in stored_files(client)}
    assert orphan.sha256 not in names and f"{orphan.sha256}.type" not in names
    assert fresh.sha256 in names  # too young: an intake may be about to reference it
    assert len([n for n in names if not n.endswith(".type")]) == 2
    assert (await client.get(f"/media/{orphan.sha256}")).status == 404
