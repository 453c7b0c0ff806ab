"""The OpenAPI document describes every public route the app serves, and Swagger UI draws it
from vendored files (no CDN) in a real browser."""

from __future__ import annotations

import re
from typing import Any

from tests.browser import SHOTS, open_page

DESKTOP = {"width": 1280, "height": 900}


def served_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route but HEAD and the console's HTML pages."""
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)
        if route.method == "HEAD" or path.startswith("/console"):
            continue
        methods = ("GET", "POST") if route.method == "*" else (route.method,)
        found |= {(m.lower(), path) for m in methods}
    return found


async def test_every_public_route_is_described(client: Any) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    described = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    missing = served_routes(client.app) - described
    assert not missing, f"routes without OpenAPI: {sorted(missing)}"
    assert len(described) >= 25
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("summary") and op.get("responses"), (method, path)
            named = set(re.findall(r"\{(\w+)\}", path))
            assert named == {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}, (method, path)
    post = doc["paths"]["/api/v1/reports"]["post"]
    assert post["requestBody"]["content"]["application/json"]["example"]["text"]
    callback = doc["paths"]["/api/v1/dispatch/callback"]["post"]["requestBody"]["content"]["application/json"]
    assert set(callback["schema"]["required"]) >= {"id", "case_number", "status"} and callback["schema"]["example"]
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', str(doc).replace("'", '"')))
    assert refs <= set(doc["components"]["schemas"])


async def test_swagger_ui_is_served_from_vendored_files(client: Any) -> None:
    page_html = await (await client.get("/api/docs")).text()
    assert "cdn" not in page_html.lower() and "//unpkg" not in page_html
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "docs.js"):
        assert (await client.get(f"/api/docs/static/{name}")).status == 200
    assert (await client.get("/api/docs/static/..%2Fops.py")).status == 404
    base = str(client.make_url("")).rstrip("/")
    async with open_page(viewport=DESKTOP) as (page, problems):
        await page.goto(f"{base}/api/docs")
        await page.wait_for_selector("[data-path='/api/v1/reports']")
        assert await page.locator(".opblock").count() >= 25
        await page.screenshot(path=str(SHOTS / "api-docs.png"))
        assert not problems, problems
