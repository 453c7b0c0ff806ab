"""What is found below a route's own checks is answered in the route's dialect, never as a 500."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from channels.errors import BadPayload
from gateway.db import UnstorableValue


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (PoolTimeout("QueuePool limit reached"), 503),
        (UnstorableValue("a value contains a NUL character (U+0000)"), 400),
        (BadPayload("text: too long", fields={"text": "too long"}), 400),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/x", "/open311/v2/x.json", "/report/x"])
async def test_errors_below_the_route(client: Any, exc: Exception, status: int, path: str) -> None:
    async def handler(request: Any) -> Any:
        raise exc

    client.app.router._frozen = False  # the test adds one route to a running app
    client.app.router.add_get(path, handler)
    resp = await client.get(path)
    assert resp.status == status
    if status == 503:
        assert resp.headers["Retry-After"] == "5"
    elif path.startswith("/open311/"):
        assert (await resp.json())[0]["code"] == 400
