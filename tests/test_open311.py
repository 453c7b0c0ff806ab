"""Open311 GeoReport v2 under /open311/v2 through the real app, in JSON and XML, checked against
the spec's own example responses (../shared/conformance/open311_*)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree
from sqlalchemy import select

from adapters.georeport import parse_date, request_json
from gateway import keys
from gateway.core.classify import PlaceholderClassifier
from gateway.db import Media, Message, Report
from gateway.http.app import create_app
from tests.harness import FIXTURES

API = "/open311/v2"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def make_o311(aiohttp_client: Any, make_settings: Callable[..., Any], runner: Any):
    async def make(keys_: str = "test-key-1,test-key-2") -> Any:
        settings = make_settings(channels={"open311": {"api_keys": keys_}})
        return await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))

    return make


@pytest.fixture
async def o311(make_o311: Callable[..., Any]) -> Any:
    return await make_o311()


def fx(name: str) -> bytes:
    return (FIXTURES / "open311" / name).read_bytes()


async def rows(client: Any, model: Any) -> list[Any]:
    async with client.app[keys.DB].session() as s:
        return list((await s.scalars(select(model).order_by(model.id))).all())


async def create(client: Any, body: bytes, fmt: str = "json", headers: dict[str, str] | None = None) -> Any:
    return await client.post(f"{API}/requests.{fmt}", data=body, headers={**FORM, **(headers or {})})


def xml_shape(text: str | bytes) -> tuple[str, str | None, set[str]]:
    """(root tag, item tag, the item's field tags) of a GeoReport XML document."""
    root = ElementTree.fromstring(text.encode() if isinstance(text, str) else text)
    items = list(root)
    if items and len(items[0]):
        return root.tag, items[0].tag, {child.tag for child in items[0]}
    return root.tag, None, {child.tag for child in root}


# --------------------------------------------------------------------------- services


async def test_discovery(o311: Any) -> None:
    body = await (await o311.get(f"{API}/discovery.json")).json()
    assert body["endpoints"][0]["url"] == "http://gateway.test/open311/v2"
    assert "text/xml" in body["endpoints"][0]["formats"]
    xml = await (await o311.get(f"{API}/discovery.xml")).text()
    assert ElementTree.fromstring(xml.encode()).find("endpoints/endpoint/formats/format") is not None


async def test_services_are_the_taxonomy_subcategories(o311: Any) -> None:
    services = await (await o311.get(f"{API}/services.json")).json()
    by_code = {s["service_code"]: s for s in services}
    assert by_code["0102"]["service_name"] == "路灯与景观照明" and by_code["0102"]["group"] == "市政公用设施"
    assert all(len(code) == 4 and code.isdigit() for code in by_code)
    resp = await o311.get(f"{API}/services.xml")
    assert resp.content_type == "text/xml"
    root, item, _ = xml_shape(await resp.read())
    assert (root, item) == ("services", "service")


async def test_service_definition_and_unknown_code(o311: Any) -> None:
    assert await (await o311.get(f"{API}/services/0102.json")).json() == {"service_code": "0102", "attributes": []}
    assert xml_shape(await (await o311.get(f"{API}/services/0102.xml")).read())[0] == "service_definition"
    resp = await o311.get(f"{API}/services/9999.json")
    assert resp.status == 404 and (await resp.json())[0]["code"] == 404
    resp = await o311.get(f"{API}/services/9999.xml")
    assert resp.status == 404 and xml_shape(await resp.read())[:2] == ("errors", "error")
    assert (await o311.get(f"{API}/services.csv")).status == 404


# --------------------------------------------------------------------------- POST requests


async def test_post_creates_a_report_like_any_other(o311: Any, runner: Any) -> None:
    resp = await create(o311, fx("post.form"))
    assert resp.status == 201
    [created] = await resp.json()
    case = created["service_request_id"]
    assert case.startswith("ZW") and case in created["service_notice"] and created["account_id"] is None
    await runner.idle()
    [report] = await rows(o311, Report)
    assert (report.case_number, report.channel, report.title) == (case, "open311", "路灯与景观照明")
    assert (report.location_lat, report.location_lng, report.location_address) == (
        22.5431,
        114.0579,
        "福田区深南大道1000号",
    )
    assert report.contact_phone == "13800000002" and "路灯晚上不亮" in report.text
    assert report.status == "needs_review" and not report.session_open  # classified like any report
    [msg] = await rows(o311, Message)
    assert msg.raw["service_code"] == "0102" and msg.raw["attributes"] == {"POLE": "A-102"}
    assert "api_key" not in msg.raw


async def test_post_xml_and_media_url(o311: Any, runner: Any) -> None:
    resp = await create(o311, fx("post_media.form"), "xml")
    assert resp.status == 201 and resp.content_type == "text/xml"
    root = ElementTree.fromstring(await resp.read())
    case = root.findtext("request/service_request_id")
    await runner.idle()
    [media] = await rows(o311, Media)
    assert media.url == "https://photos.example.test/2026/11/lamp.jpg"
    got = await (await o311.get(f"{API}/requests/{case}.json")).json()
    assert got[0]["media_url"] == media.url


async def test_retry_with_idempotency_key_gives_the_same_request(o311: Any) -> None:
    headers = {"Idempotency-Key": "client-42"}
    first = await create(o311, fx("post.form"), headers=headers)
    second = await create(o311, fx("post.form"), headers=headers)
    assert (first.status, second.status) == (201, 200)
    assert (await first.json())[0]["service_request_id"] == (await second.json())[0]["service_request_id"]
    assert len(await rows(o311, Report)) == 1


POST_ERRORS = [
    ("bad api_key", fx("post.form").replace(b"test-key-1", b"nope"), 403, ["Invalid api_key"]),
    ("no api_key", fx("post.form").replace(b"api_key=test-key-1&", b""), 403, ["Invalid api_key"]),
    ("missing fields", fx("post_missing.form"), 400, ["service_code: required", "location: give lat and long"]),
    ("unknown service_code", fx("post_unknown_code.form"), 400, ["unknown service_code"]),
    ("bad coordinates", fx("post.form").replace(b"lat=22.5431", b"lat=north"), 400, ["lat"]),
    ("oversize body", fx("post.form") + b"&description=" + b"x" * 70000, 413, ["larger than"]),
]


@pytest.mark.parametrize(("label", "body", "status", "descriptions"), POST_ERRORS, ids=[e[0] for e in POST_ERRORS])
@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_post_errors(o311: Any, label: str, body: bytes, status: int, descriptions: list[str], fmt: str) -> None:
    resp = await create(o311, body, fmt)
    assert resp.status == status
    if fmt == "json":
        errors = await resp.json()
        assert all(e["code"] == status for e in errors)
        texts = [e["description"] for e in errors]
    else:
        root = ElementTree.fromstring(await resp.read())
        assert root.tag == "errors" and root.findtext("error/code") == str(status)
        texts = [e.findtext("description") or "" for e in root.findall("error")]
    for wanted in descriptions:
        assert any(wanted in t for t in texts), texts
    assert await rows(o311, Report) == []


async def test_post_is_refused_when_no_key_is_configured(make_o311: Callable[..., Any]) -> None:
    client = await make_o311(keys_="")
    assert (await create(client, fx("post.form"))).status == 403


# --------------------------------------------------------------------------- GET requests


async def test_get_requests_with_filters(o311: Any, runner: Any) -> None:
    case = (await (await create(o311, fx("post.form"))).json())[0]["service_request_id"]
    await runner.idle()
    [one] = await (await o311.get(f"{API}/requests/{case}.json")).json()
    assert (one["service_request_id"], one["status"], one["service_code"]) == (case, "open", "0102")
    # A public list: the position to 3 decimals, the grid's names instead of the typed address.
    assert (one["lat"], one["long"], one["service_name"]) == (22.543, 114.058, "路灯与景观照明")
    assert one["address"] != "福田区深南大道1000号"  # the typed address_string
    assert xml_shape(await (await o311.get(f"{API}/requests/{case}.xml")).read())[:2] == ("service_requests", "request")
    listing = f"{API}/requests.json"
    assert [r["service_request_id"] for r in await (await o311.get(listing)).json()] == [case]
    assert len(await (await o311.get(listing, params={"status": "open"})).json()) == 1
    assert await (await o311.get(listing, params={"status": "closed"})).json() == []
    assert await (await o311.get(listing, params={"start_date": "2099-01-01T00:00:00Z"})).json() == []
    by_id = await (await o311.get(listing, params={"service_request_id": f"{case},ZW20000101000001"})).json()
    assert [r["service_request_id"] for r in by_id] == [case]
    for bad in ({"status": "pending"}, {"start_date": "last week"}):
        resp = await o311.get(listing, params=bad)
        assert resp.status == 400 and (await resp.json())[0]["code"] == 400
    assert (await o311.get(f"{API}/requests/ZW20000101000001.json")).status == 404
    assert (await o311.get(f"{API}/requests/nonsense.xml")).status == 404


async def test_public_listing_masks_phone_numbers(o311: Any, runner: Any) -> None:
    body = fx("post.form").replace(b"description=", b"description=%E7%94%B5%E8%AF%9D13812345678+")
    case = (await (await create(o311, body)).json())[0]["service_request_id"]
    [one] = await (await o311.get(f"{API}/requests/{case}.json")).json()
    assert "13812345678" not in one["description"]


def test_parse_date_accepts_w3c_forms() -> None:
    assert parse_date("2010-04-14T06:37:38-08:00").isoformat() == "2010-04-14T06:37:38-08:00"
    assert parse_date("2026-11-27T00:00:00Z").utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert parse_date("2026-11-27").tzinfo is not None


# --------------------------------------------------------------------------- conformance (../shared)

SHAPES = {  # spec example -> the endpoint of ours that answers the same question
    "open311_get_services_response.xml": f"{API}/services.xml",
    "open311_get_service_definition_response.xml": f"{API}/services/0102.xml",
    "open311_get_service_requests_response.xml": f"{API}/requests.xml",
    "open311_get_service_request_response.xml": f"{API}/requests/{{case}}.xml",
}


@pytest.mark.parametrize("name", sorted(SHAPES))
async def test_xml_shapes_match_the_spec(o311: Any, conformance_dir: Path, runner: Any, name: str) -> None:
    case = (await (await create(o311, fx("post_media.form"))).json())[0]["service_request_id"]
    await runner.idle()
    spec = xml_shape((conformance_dir / name).read_bytes())
    ours = xml_shape(await (await o311.get(SHAPES[name].format(case=case))).read())
    assert ours == spec


async def test_post_response_and_error_shapes_match_the_spec(o311: Any, conformance_dir: Path) -> None:
    ok = await create(o311, fx("post.form"), "xml")
    assert xml_shape(await ok.read()) == xml_shape(
        (conformance_dir / "open311_post_service_request_response.xml").read_bytes()
    )
    spec_json = json.loads((conformance_dir / "open311_post_service_request_response.json").read_text())
    ours_json = await (await create(o311, fx("post.form"))).json()
    assert set(ours_json[0]) == set(spec_json[0])
    bad = await create(o311, fx("post.form").replace(b"test-key-1", b"nope"), "xml")
    assert xml_shape(await bad.read()) == xml_shape((conformance_dir / "open311_error_403_response.xml").read_bytes())
    spec_def = json.loads((conformance_dir / "open311_get_service_definition_response.json").read_text())
    assert set(await (await o311.get(f"{API}/services/0102.json")).json()) == set(spec_def)


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("open311_get_services_response.spec_verbatim.json", f"{API}/services.json"),
        ("open311_get_service_requests_response.spec_verbatim.json", f"{API}/requests.json"),
    ],
)
async def test_spec_json_lists_match_once_their_leading_zeros_are_quoted(
    o311: Any, conformance_dir: Path, runner: Any, name: str, ours: str
) -> None:
    text = (conformance_dir / name).read_text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)  # as published: "service_code":001 is not JSON
    spec = json.loads(re.sub(r'("service_code":)(0\d+)', r'\1"\2"', text))
    await create(o311, fx("post.form"))
    await runner.idle()
    mine = await (await o311.get(ours)).json()
    assert all(set(item) == set(spec[0]) for item in mine) and mine


async def test_spec_post_form(make_o311: Callable[..., Any], conformance_dir: Path, runner: Any) -> None:
    client = await make_o311(keys_="xyz")
    form = (conformance_dir / "open311_post_service_request.form").read_bytes()
    resp = await create(client, form, "xml")
    assert resp.status == 400  # service_code 001 is the spec's example city's, not one of ours
    assert "service_code" in (ElementTree.fromstring(await resp.read()).findtext("error/description") or "")
    resp = await create(client, form.replace(b"service_code=001", b"service_code=0102"))
    assert resp.status == 201
    await runner.idle()
    [report] = await rows(client, Report)
    assert (report.location_lat, report.location_lng, report.location_address) == (
        37.76524078,
        -122.4212043,
        "1234 5th street",
    )
    assert report.text == "A large sinkhole is destroying the street" and report.sender == "open311:123456"
    [msg] = await rows(client, Message)
    assert msg.raw["attributes"] == {"WHISPAWN": "123456", "WHISDORN": "COISL001"}
    assert msg.raw["jurisdiction_id"] == "city.gov"
    [media] = await rows(client, Media)
    assert media.url == "http://farm3.static.flickr.com/2002/2212426634_5ed477a060.jpg"


def test_request_json_has_the_spec_fields_in_order() -> None:
    class R:
        case_number, status, duplicate_of, text = "ZW20261127000001", "merged", "ZW20261126000009", "t"
        category_name = category_code = location_address = location_lat = location_lng = None
        created_at = updated_at = parse_date("2026-11-27T08:00:00Z")
        media: list[Any] = []
        grid_code = "440309004008"
        grid_path = [
            {"level": "区", "code": "440309", "name": "龙华区"},
            {"level": "社区", "code": "4", "name": "上芬社区"},
        ]

    item = request_json(R(), None, "0102", "http://gw")
    assert list(item)[:3] == ["service_request_id", "status", "status_notes"]
    assert list(item)[-1] == "media_url"  # the spec's fields only, unless the client asks for extensions
    extended = request_json(R(), None, "0102", "http://gw", extensions=True)
    assert list(extended)[:-1] == list(item)
    assert extended["extended_attributes"] == {"grid_code": "440309004008", "grid_path": "龙华区 / 上芬社区"}
    assert (item["status"], item["status_notes"], item["service_code"]) == (
        "closed",
        "Duplicate of ZW20261126000009",
        "0102",
    )


async def test_xml_output_stays_well_formed_with_control_characters(o311: Any, runner: Any) -> None:
    """Report text comes from residents on every channel; a control character (here U+0001 and
    U+001B) is not allowed in XML 1.0 and used to break the whole public ``requests.xml`` feed."""
    body = fx("post.form").replace(b"description=", b"description=%01%1B%E8%B7%AF%E7%81%AF")
    case = (await (await create(o311, body)).json())[0]["service_request_id"]
    await runner.idle()
    for path in (f"{API}/requests.xml", f"{API}/requests/{case}.xml"):
        resp = await o311.get(path)
        assert resp.status == 200
        root = ElementTree.fromstring(await resp.read())  # raises on a character XML forbids
        assert "路灯" in (root.find("request/description").text or "")
