"""The console's grid map (gateway/console/map.py): the grid drawn as SVG, open cases as points
linked to their case, counts per unit, filters; the case page's small map of its unit; and the
same pages in Chromium with screenshots (test-output/screenshots/map*.png)."""

from __future__ import annotations

import re

from sqlalchemy import select

from gateway import keys
from gateway.console.map import Frame, svg_path
from gateway.db import Report
from grid import GridIndex, Level
from tests.console import test_browser
from tests.console.conftest import login, seed
from tests.console.test_browser import SHOTS

browser_page = test_browser.browser_page  # Chromium through Playwright, as the console's other browser test
chromium = test_browser.chromium
SHANGFEN = "440309004008"  # 民治街道上芬社区 in the sample grid
GUANLAN_STREET = "440309001"


def _inside(code: str) -> tuple[float, float]:
    spot = GridIndex.sample().by_code[code].geometry.representative_point()  # type: ignore[union-attr]
    return spot.y, spot.x


def _first_community_of(street: str) -> str:
    return next(u.code for u in GridIndex.sample().units if u.level is Level.COMMUNITY and u.parent == street)


async def _seed_cases(app_client, runner) -> list[str]:
    lat, lng = _inside(SHANGFEN)
    glat, glng = _inside(_first_community_of(GUANLAN_STREET))
    return [
        await seed(app_client, runner, "小区门口路灯不亮三天了", location={"lat": lat, "lng": lng}),
        await seed(app_client, runner, "公园里垃圾桶满了没人清理", location={"lat": glat, "lng": glng}),
        await seed(app_client, runner, "民治街道上芬社区井盖缺失了，晚上看不见"),  # placed by its address
        await seed(app_client, runner, "你好在吗", location={"lat": 23.1291, "lng": 113.2644}),  # outside the grid
    ]


async def test_reports_are_placed_at_triage(app_client, runner) -> None:
    cases = await _seed_cases(app_client, runner)
    async with app_client.app[keys.DB].session() as s:
        rows = {r.case_number: r for r in await s.scalars(select(Report))}
    lamp, litter, manhole, outside = (rows[c] for c in cases)
    assert lamp.grid_path[-1]["level"] == "网格" and lamp.grid_path[3]["code"] == SHANGFEN
    assert lamp.grid_method == "point_in_polygon" and litter.grid_path[2]["code"] == GUANLAN_STREET
    assert manhole.grid_method == "address" and manhole.grid_code == SHANGFEN
    assert outside.grid_method == "outside" and outside.grid_code is None


async def test_map_page_draws_grid_points_and_counts(app_client, users, runner) -> None:
    cases = await _seed_cases(app_client, runner)
    await login(app_client, users["moderator"])
    html = await (await app_client.get("/console/map")).text()
    assert html.count('<path d="M') >= 51  # every community of the sample
    for case in cases[:3]:
        assert f'href="/console/reports/{case}"' in html  # click-through
    assert cases[3] not in html  # no point outside the drawing
    assert re.search(rf'<tr data-code="{SHANGFEN}"><td>上芬社区</td><td>2</td></tr>', html)
    assert "未定位到社区</td><td>1</td>" in html and 'class="approx"' in html
    assert "<image" not in html  # no tiles unless GATEWAY_MAP_TILE_URL is set

    streets = await (await app_client.get("/console/map?level=街道&category=01&colour_by=priority")).text()
    assert '<tr data-code="440309004"><td>民治街道</td><td>2</td></tr>' in streets  # 01: the lamp and the manhole
    assert cases[1] not in streets and "P1" in streets  # filtered out; the priority legend


async def test_map_page_needs_a_login(app_client) -> None:
    resp = await app_client.get("/console/map", allow_redirects=False)
    assert resp.status in (302, 303) and "/console/login" in resp.headers["Location"]


def test_tiles_only_with_a_tile_url() -> None:
    frame = Frame.around((114.0, 22.6, 114.1, 22.7))
    tiles = frame.tiles("https://tiles.example.gov.cn/{z}/{x}/{y}.png")
    assert tiles and all(t["href"].startswith(f"https://tiles.example.gov.cn/{frame.zoom}/") for t in tiles)
    assert frame.tiles("") == []


def test_svg_paths_follow_the_polygon() -> None:
    unit = GridIndex.sample().by_code[SHANGFEN]
    frame = Frame.around(unit.geometry.bounds, width=320)  # type: ignore[union-attr]
    d = svg_path(unit.geometry, frame)  # type: ignore[arg-type]
    xs = [float(p.split(",")[0]) for p in re.findall(r"[\d.]+,[\d.]+", d)]
    assert d.startswith("M") and d.endswith("Z") and 0 <= min(xs) and max(xs) <= frame.width


async def test_case_page_shows_its_unit_on_a_small_map(app_client, users, runner) -> None:
    lat, lng = _inside(SHANGFEN)  # the web form's coordinates are WGS-84
    case = await seed(app_client, runner, "小区门口路灯不亮三天了", location={"lat": lat, "lng": lng})
    await login(app_client, users["moderator"])
    html = await (await app_client.get(f"/console/reports/{case}")).text()
    assert 'id="unit-map"' in html and "上芬社区" in html and 'class="unit"' in html and "<circle" in html
    assert "geo:" not in html


async def test_map_and_case_page_in_chromium(app_client, users, runner, browser_page) -> None:
    page, problems = browser_page
    cases = await _seed_cases(app_client, runner)
    base = str(app_client.make_url("")).rstrip("/")
    await page.goto(f"{base}/console/login")
    await page.fill("#username", "mod1")
    await page.fill("#password", "correct horse battery")
    await page.press("#password", "Enter")
    await page.wait_for_url(f"{base}/console/")
    await page.goto(f"{base}/console/map")
    await page.wait_for_selector("#grid-map .points circle")
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / "map.png"), full_page=True)
    await page.select_option("select[name=level]", "街道")
    await page.click("#map-filters button[type=submit]")
    await page.wait_for_url(re.compile(r".*level=.*"))
    await page.screenshot(path=str(SHOTS / "map-streets.png"), full_page=True)
    await page.click(f"#grid-map a[data-case='{cases[0]}'] circle")
    await page.wait_for_url(f"{base}/console/reports/{cases[0]}")
    await page.wait_for_selector("#unit-map svg path.unit")
    await page.screenshot(path=str(SHOTS / "case-unit-map.png"), full_page=True)
    assert problems == []
