"""gateway/core/placing.py: a report's grid path from its coordinates in its channel's datum, the
resident's recent position, or its address text; outside every unit is said so."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.core.placing import CONTACT_LOCATION, NONE, OUTSIDE, Facts, Placer, channel_datums, grid_path
from gateway.settings import Settings, SettingsError, load_settings
from grid import Datum, GridIndex, Level, wgs84_to_gcj02
from grid.index import SAMPLE_PATH

SHANGFEN = "440309004008"  # 民治街道上芬社区 in the sample


def _inside(code: str) -> tuple[float, float]:
    """A WGS-84 point inside the sample unit ``code``."""
    spot = GridIndex.sample().by_code[code].geometry.representative_point()  # type: ignore[union-attr]
    return spot.y, spot.x


def facts(channel: str = "web", lat: float | None = None, lng: float | None = None, **more: Any) -> Facts:
    values: dict[str, Any] = {"address": "", "text": "", "contact": None, **more}
    return Facts(channel, lat, lng, values["address"], values["text"], values["contact"])


@pytest.fixture
def placer(settings: Settings) -> Placer:
    return Placer(settings)


def test_web_coordinates_are_wgs84(placer: Placer) -> None:
    lat, lng = _inside(SHANGFEN)
    placed = placer.place_facts(facts("web", lat, lng))
    assert placed.match is not None and placed.match.step(Level.COMMUNITY).code == SHANGFEN  # type: ignore[union-attr]
    assert placed.method == "point_in_polygon" and len(placed.version) == 12


def test_wechat_coordinates_are_gcj02(placer: Placer) -> None:
    lat, lng = wgs84_to_gcj02(*_inside(SHANGFEN))
    placed = placer.place_facts(facts("wechat", lat, lng))
    assert placed.match is not None and placed.match.step(Level.COMMUNITY).code == SHANGFEN  # type: ignore[union-attr]


def test_outside_every_unit(placer: Placer) -> None:
    placed = placer.place_facts(facts("web", 23.1291, 113.2644, address="民治街道上芬社区"))
    assert placed.outside and placed.method == OUTSIDE and placed.match is None
    assert placed.as_dict()["method"] == "outside"


def test_the_residents_recent_position(placer: Placer) -> None:
    lat, lng = wgs84_to_gcj02(*_inside(SHANGFEN))
    by_contact = placer.place_facts(facts("wechat", contact=(lat, lng)))
    copied = placer.place_facts(facts("wechat", lat, lng, contact=(lat, lng)))  # intake copied it onto the report
    for placed in (by_contact, copied):
        assert placed.method == CONTACT_LOCATION and placed.match is not None
        assert placed.match.step(Level.COMMUNITY).code == SHANGFEN  # type: ignore[union-attr]


def test_the_address_then_the_text(placer: Placer) -> None:
    by_address = placer.place_facts(facts("sms", address="民治街道上芬社区"))
    by_text = placer.place_facts(facts("sms", text="民治街道上芬社区门口的路灯坏了"))
    for placed in (by_address, by_text):
        assert placed.method == "address" and placed.match is not None and placed.match.code == SHANGFEN


def test_a_weak_address_match_does_not_place(make_settings: Callable[..., Settings]) -> None:
    placer = Placer(make_settings(grid_address_min_confidence=0.99))
    assert placer.place_facts(facts("sms", address="民治街道上芬社区")).method == NONE
    assert Placer(make_settings()).place_facts(facts("sms", text="路灯坏了")).method == NONE


def test_datum_overrides() -> None:
    datums = channel_datums("weibo=wgs84, tiny = GCJ-02")
    assert datums["weibo"] is Datum.WGS84 and datums["tiny"] is Datum.GCJ02 and datums["wechat"] is Datum.GCJ02
    with pytest.raises(ValueError, match="is not channel=datum"):
        channel_datums("weibo")
    with pytest.raises(SettingsError, match="GATEWAY_GRID_DATUMS: .*unknown datum 'bd09'"):
        load_settings(_env_file=None, grid_datums="weibo=bd09")


def test_the_grid_file(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = make_settings()
    assert grid_path(settings) == SAMPLE_PATH  # nothing imported: the bundled sample
    stored = settings.var_dir / "grid" / "grid.geojson"
    stored.parent.mkdir(parents=True)
    stored.write_text(SAMPLE_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    assert grid_path(settings) == stored
    own = tmp_path / "city.geojson"
    doc = json.loads(SAMPLE_PATH.read_text(encoding="utf-8"))
    doc["features"] = [f for f in doc["features"] if f["properties"]["code"].startswith("440309004")] + doc["features"][
        :2
    ]
    own.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    placer = Placer(make_settings(grid_file=own))
    assert placer.path == own and len(placer.grid.index) < len(GridIndex.sample())
    assert placer.grid is placer.grid  # loaded once
