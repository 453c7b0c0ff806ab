"""Issue 13, item 3: each form route has a body cap that fits it, checked while the body streams.

Before, urlencoded and multipart bodies up to the app's 31 MiB were buffered before any check on
``/api/v1/reports``, ``/report``, ``/console/login`` and the rating form.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientError, FormData

from gateway.http.bodies import FORM_CAP, SMALL_FORM_CAP

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ROUTES = [
    ("/api/v1/reports", FORM_CAP),
    ("/report", FORM_CAP),
    ("/console/login", SMALL_FORM_CAP),
    ("/report/ZW20261127000001/rate", SMALL_FORM_CAP),
]


@pytest.mark.parametrize(("path", "cap"), ROUTES)
async def test_a_form_just_over_the_route_cap_is_413(client: Any, path: str, cap: int) -> None:
    body = b"text=" + b"x" * cap
    resp = await client.post(path, data=io.BytesIO(body), headers=FORM)  # no Content-Length: chunked
    assert resp.status == 413, (resp.status, (await resp.text())[:200])
    assert str(cap) in await resp.text()


@pytest.mark.parametrize(("path", "cap"), ROUTES)
async def test_a_declared_length_over_the_cap_is_refused_before_reading(client: Any, path: str, cap: int) -> None:
    resp = await client.post(path, data=b"text=x", headers={**FORM, "Content-Length": str(cap + 1)})
    assert resp.status == 413


@pytest.mark.parametrize("path", ["/api/v1/reports", "/console/login", "/report/ZW20261127000001/rate"])
async def test_a_huge_streamed_form_is_cut_off_early(client: Any, path: str) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b"text="
        while sent < 64 << 20:
            sent += 65536
            yield b"x" * 65536

    try:
        resp = await client.post(path, data=endless(), headers=FORM)
        assert resp.status == 413
    except ClientError:
        pass  # the server answered 413 and closed while we were still writing
    assert sent < 8 << 20, f"the server read {sent} bytes before refusing"


async def test_a_multipart_field_without_photos_is_capped_per_field(client: Any) -> None:
    form = FormData(default_to_multipart=True)
    form.add_field("text", "x" * (80 * 1024))
    resp = await client.post("/api/v1/reports", data=form)
    assert resp.status == 400 and "text" in await resp.text()


async def test_login_form_as_multipart_is_capped_too(client: Any) -> None:
    form = FormData(default_to_multipart=True)
    form.add_field("username", "u" * (SMALL_FORM_CAP + 10))
    resp = await client.post("/console/login", data=form)
    assert resp.status == 413


@pytest.mark.parametrize("path", ["/report", "/console/login", "/report/ZW20261127000001/rate"])
async def test_a_form_that_is_not_utf8_is_400(client: Any, path: str) -> None:
    resp = await client.post(path, data=b"text=%FF%FE\xff\xfe", headers=FORM)
    assert resp.status == 400, (resp.status, (await resp.text())[:200])


async def test_forms_within_the_cap_still_work(client: Any) -> None:
    resp = await client.post("/api/v1/reports", data={"text": "路灯坏了" * 1000})
    assert resp.status == 201
    form = FormData()
    form.add_field("text", "路灯坏了")
    form.add_field("photos", io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\x00" * (3 << 20)), filename="a.png")
    resp = await client.post("/api/v1/reports", data=form)
    assert resp.status == 201
