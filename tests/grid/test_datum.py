"""WGS-84 ↔ GCJ-02 against published reference pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grid.datum import (
    CHANNEL_DATUMS,
    Datum,
    gcj02_to_wgs84,
    gcj02_to_wgs84_many,
    outside_china,
    to_wgs84,
    wgs84_to_gcj02,
)

# (wgs lat, wgs lng, gcj lat, gcj lng) from googollee/eviltransform (MIT), python/test.py and
# go/transform_test.go: Shanghai, Shenzhen, Beijing.
EVILTRANSFORM = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),
]
# wandergis/coordtransform README: wgs84togcj02(116.404, 39.915) → [116.41024449916938, 39.91640428150164].
COORDTRANSFORM = (39.915, 116.404, 39.91640428150164, 116.41024449916938)


def _metres(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    dy = (lat2 - lat1) * 111_320
    dx = (lng2 - lng1) * 111_320 * math.cos(math.radians(lat1))
    return math.hypot(dx, dy)


@pytest.mark.parametrize("wlat,wlng,glat,glng", [*EVILTRANSFORM, COORDTRANSFORM])
def test_wgs84_to_gcj02_matches_published_pairs(wlat: float, wlng: float, glat: float, glng: float) -> None:
    lat, lng = wgs84_to_gcj02(wlat, wlng)
    assert lat == pytest.approx(glat, abs=1e-9)
    assert lng == pytest.approx(glng, abs=1e-9)


@pytest.mark.parametrize("wlat,wlng,glat,glng", [*EVILTRANSFORM, COORDTRANSFORM])
def test_gcj02_to_wgs84_inverts_to_a_centimetre(wlat: float, wlng: float, glat: float, glng: float) -> None:
    lat, lng = gcj02_to_wgs84(glat, glng)
    # eviltransform's own criterion for its exact inverse is 0.5 m; ours iterates to 1e-10 degrees.
    assert _metres(lat, lng, wlat, wlng) < 0.01


def test_offset_in_shenzhen_is_hundreds_of_metres() -> None:
    # Why the datum matters for a grid: the offset is larger than a grid unit's width.
    lat, lng = 22.6571, 114.0323
    assert 300 < _metres(lat, lng, *wgs84_to_gcj02(lat, lng)) < 700


def test_outside_china_is_unchanged() -> None:
    for lat, lng in [(51.5007, -0.1246), (35.6586, 139.7454), (-33.86, 151.21)]:
        assert outside_china(lat, lng)
        assert wgs84_to_gcj02(lat, lng) == (lat, lng)
        assert gcj02_to_wgs84(lat, lng) == (lat, lng)


def test_vectorised_inverse_matches_scalar() -> None:
    rng = np.random.default_rng(7)
    lat = np.concatenate([rng.uniform(18, 50, 200), [51.5]])
    lng = np.concatenate([rng.uniform(75, 134, 200), [-0.12]])
    vlat, vlng = gcj02_to_wgs84_many(lat, lng)
    for i in range(len(lat)):
        slat, slng = gcj02_to_wgs84(float(lat[i]), float(lng[i]))
        assert vlat[i] == pytest.approx(slat, abs=1e-9)
        assert vlng[i] == pytest.approx(slng, abs=1e-9)


def test_to_wgs84_converts_only_gcj02() -> None:
    glat, glng = wgs84_to_gcj02(22.6571, 114.0323)
    assert to_wgs84(glat, glng, Datum.WGS84) == (glat, glng)
    lat, lng = to_wgs84(glat, glng, Datum.GCJ02)
    assert (lat, lng) == pytest.approx((22.6571, 114.0323), abs=1e-9)


@pytest.mark.parametrize(
    "text,datum", [("wgs84", Datum.WGS84), ("WGS-84", Datum.WGS84), ("EPSG:4326", Datum.WGS84), ("GCJ-02", Datum.GCJ02)]
)
def test_datum_parse(text: str, datum: Datum) -> None:
    assert Datum.parse(text) is datum


def test_datum_parse_refuses_bd09() -> None:
    with pytest.raises(ValueError, match="unknown datum 'bd09'"):
        Datum.parse("bd09")


def test_channel_datums() -> None:
    assert CHANNEL_DATUMS["wechat"] is Datum.GCJ02
    assert CHANNEL_DATUMS["web"] is Datum.WGS84
    assert CHANNEL_DATUMS["open311"] is Datum.WGS84
    assert CHANNEL_DATUMS["weibo"] is Datum.GCJ02
