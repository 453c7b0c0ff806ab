"""The OpenAPI document describes every public route the app serves (and nothing else), is
valid OpenAPI 3.1, takes its bodies from the models the handlers validate with, its examples
match their schemas and work against the app, and Swagger UI draws it from vendored files (no
CDN) in a real browser."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from gateway.core.classify import PlaceholderClassifier
from gateway.core.schema import ReportOut
from gateway.http import examples as ex
from gateway.http.app import create_app
from gateway.http.dispatch import Callback, CallbackResult
from gateway.http.openapi import openapi_document
from gateway.http.rating import RatingForm
from gateway.http.reports import ReportCreated
from gateway.runtime import make_channels
from tests.browser import SHOTS, open_page
from tests.conftest import require_module

DESKTOP = {"width": 1280, "height": 900}
O311_POST = ("/open311/v2/requests.{fmt}", "post")
O311_LIST = ("/open311/v2/requests.{fmt}", "get")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return openapi_document("http://gateway.test", make_channels())


def validator_for(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A JSON Schema 2020-12 validator of ``schema``, its ``#/components/...`` refs resolved in ``doc``."""
    jsonschema = require_module("jsonschema")
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


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


async def test_every_public_route_is_described_and_only_those(client: Any) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    described = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    served = served_routes(client.app)
    assert not served - described, f"routes without OpenAPI: {sorted(served - described)}"
    assert not described - served, f"described but not routed: {sorted(described - served)}"
    assert len(described) >= 25
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("summary") and op.get("responses"), (method, path)
            named = set(re.findall(r"\{(\w+)\}", path))
            assert named == {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}, (method, path)
    refs = set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(doc)))
    assert refs <= set(doc["components"]["schemas"])


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    validator = require_module("openapi_spec_validator")
    validator.validate(doc)  # raises, naming the path, when the document is not OpenAPI 3.1


def test_bodies_are_the_models_the_handlers_validate_with(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]

    def body(path: str, method: str, media: str) -> Any:
        return doc["paths"][path][method]["requestBody"]["content"][media]["schema"]

    def answer(path: str, method: str, status: str) -> Any:
        return doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]

    chans = make_channels()
    cases = [
        (body("/api/v1/reports", "post", "application/json"), chans["web"].request_model, "validation"),
        (body(*O311_POST, "application/x-www-form-urlencoded"), chans["open311"].request_model, "validation"),
        (body("/api/v1/dispatch/callback", "post", "application/json"), Callback, "validation"),
        (body("/report/{case}/rate", "post", "application/x-www-form-urlencoded"), RatingForm, "validation"),
        (answer("/api/v1/reports", "post", "201"), ReportCreated, "serialization"),
        (answer("/api/v1/reports/{case}", "get", "200"), ReportOut, "serialization"),
        (answer("/api/v1/dispatch/callback", "post", "200"), CallbackResult, "serialization"),
    ]
    for ref, model, mode in cases:
        assert model is not None
        expected = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
        expected.pop("$defs", None)
        assert ref == {"$ref": f"#/components/schemas/{model.__name__}"}
        assert schemas[model.__name__] == expected, model.__name__
    # The form bodies are the web model flattened: same fields, location as lat/lng/address.
    form = schemas["NewReportForm"]["properties"]
    assert set(form) == {"text", "title", "contact_phone", "lat", "lng", "address", "photos"}
    assert form["text"] == schemas["ReportIn"]["properties"]["text"]
    # Provider callbacks: described (payload, signature parameters), not given a schema of ours.
    post = doc["paths"]["/channels/{channel}"]["post"]
    assert {"text/xml", "application/x-www-form-urlencoded", "application/json"} <= set(post["requestBody"]["content"])
    assert {"signature", "timestamp", "nonce", "msg_signature", "X-Twilio-Signature"} <= {
        p["name"] for p in post["parameters"]
    }
    assert "not ours" in post["description"] and "X-Twilio-Signature" in post["description"]


def _examples(doc: dict[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(where, schema, example) of every example in the document."""
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                if "example" in param:
                    yield f"{method} {path} {param['name']}", param["schema"], param["example"]
            contents = [("request", op.get("requestBody", {}).get("content", {}))]
            contents += [(status, r.get("content", {})) for status, r in op["responses"].items()]
            for what, content in contents:
                for media, spec in content.items():
                    if "example" in spec:
                        yield f"{method} {path} {what} {media}", spec["schema"], spec["example"]


def test_every_example_matches_its_schema(doc: dict[str, Any]) -> None:
    checked = 0
    for where, schema, example in _examples(doc):
        errors = [e.message for e in validator_for(doc, schema).iter_errors(example)]
        assert not errors, (where, errors)
        checked += 1
    assert checked >= 40
    # Each JSON request and answer has its example (HTML and files excepted).
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            contents = [op.get("requestBody", {}).get("content", {})] + [
                r.get("content", {}) for r in op["responses"].values()
            ]
            for content in contents:
                for media, spec in content.items():
                    if "json" in media or "form" in media:
                        assert "example" in spec, (method, path, media)


def test_a_wrong_example_is_caught(doc: dict[str, Any]) -> None:
    """The example check can fail: a report missing its text, a GeoReport list given as one item."""
    schema = doc["paths"]["/api/v1/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert list(validator_for(doc, schema).iter_errors({"title": "x"}))
    listing = doc["paths"]["/open311/v2/requests.{fmt}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert list(validator_for(doc, listing["schema"]).iter_errors(listing["example"][0]))


async def test_documented_examples_work_against_the_app(
    aiohttp_client: Any, make_settings: Callable[..., Any], runner: Any
) -> None:
    """Each main route's documented request, posted to the app, is answered as documented."""
    settings = make_settings(channels={"open311": {"api_keys": ex.SERVICE_REQUEST["api_key"]}})
    client = await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))
    doc = await (await client.get("/api/openapi.json")).json()

    async def call(path: str, method: str, url: str, expected: int, **kwargs: Any) -> Any:
        resp = await client.request(method.upper(), url, **kwargs)
        assert resp.status == expected, await resp.text()
        documented = doc["paths"][path][method]["responses"][str(resp.status)]["content"]["application/json"]
        body = await resp.json()
        errors = [e.message for e in validator_for(doc, documented["schema"]).iter_errors(body)]
        assert not errors, (method, path, errors)
        return body

    reports = doc["paths"]["/api/v1/reports"]["post"]["requestBody"]["content"]
    created = await call("/api/v1/reports", "post", "/api/v1/reports", 201, json=reports["application/json"]["example"])
    form = aiohttp.FormData({k: str(v) for k, v in reports["multipart/form-data"]["example"].items()})
    await call("/api/v1/reports", "post", "/api/v1/reports", 201, data=form)
    urlencoded = {k: str(v) for k, v in reports["application/x-www-form-urlencoded"]["example"].items()}
    await call("/api/v1/reports", "post", "/api/v1/reports", 201, data=urlencoded)
    invalid = await call("/api/v1/reports", "post", "/api/v1/reports", 400, json={"location": {"lat": 91}})
    assert set(invalid["fields"]) == {"text", "location.lat"}
    await runner.idle()
    case = created["case_number"]
    report = await call("/api/v1/reports/{case}", "get", f"/api/v1/reports/{case}", 200)
    assert report["text"] == reports["application/json"]["example"]["text"]
    await call("/api/v1/reports/{case}", "get", "/api/v1/reports/ZW20000101000001", 404)

    example = doc["paths"][O311_POST[0]]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    o311 = await call(*O311_POST, "/open311/v2/requests.json", 201, data=stringify(example["example"]))
    await call(*O311_POST, "/open311/v2/requests.json", 400, data={"api_key": "your-api-key"})
    await call(*O311_POST, "/open311/v2/requests.json", 403, data=stringify(example["example"]) | {"api_key": "x"})
    await runner.idle()
    one = o311[0]["service_request_id"]
    listed = await call(*O311_LIST, "/open311/v2/requests.json?extensions=true", 200)
    assert one in {r["service_request_id"] for r in listed}
    await call(*O311_LIST, "/open311/v2/requests.json?status=maybe", 400)
    await call("/open311/v2/requests/{id}.{fmt}", "get", f"/open311/v2/requests/{one}.json", 200)
    await call("/open311/v2/services.{fmt}", "get", "/open311/v2/services.json", 200)
    await call("/open311/v2/services/{code}.{fmt}", "get", "/open311/v2/services/0102.json", 200)
    await call("/open311/v2/services/{code}.{fmt}", "get", "/open311/v2/services/9999.json", 404)
    await call("/open311/v2/discovery.{fmt}", "get", "/open311/v2/discovery.json", 200)
    await call("/api/v1/stats", "get", "/api/v1/stats", 200)
    await call("/healthz", "get", "/healthz", 200)


def stringify(form: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in form.items()}


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
