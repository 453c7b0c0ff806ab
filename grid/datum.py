"""Coordinate datums: WGS-84 (GPS, browsers, Open311) and GCJ-02 (maps published in mainland China).

GCJ-02 (国测局坐标, "Mars coordinates") is WGS-84 plus a smooth, deterministic offset of a few
hundred metres that every map published in mainland China must apply. The offset function is
not published by the state; the formula below is the public reconstruction used by virtually
every open implementation (e.g. googollee/eviltransform, wandergis/coordtransform), which
agrees with the official transform to well under a metre. Outside the rough bounding box of
China the offset is not applied (``outside_china``), as those implementations do.

WGS-84 → GCJ-02 is the closed formula. GCJ-02 → WGS-84 has no closed form: ``gcj02_to_wgs84``
inverts it by fixed-point iteration to better than 1e-9 degrees (a millimetre).

Which channel sends which datum is in ``CHANNEL_DATUMS`` and ``docs/grid.md``.
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np
import numpy.typing as npt

_A = 6378245.0  # semi-major axis of Krasovsky 1940, which the GCJ-02 formula uses
_EE = 0.00669342162296594323  # its first eccentricity squared
_INVERSE_TOLERANCE_DEG = 1e-10
_INVERSE_MAX_ITERATIONS = 30

FloatArray = npt.NDArray[np.float64]


class Datum(StrEnum):
    """The datum a pair of coordinates is expressed in."""

    WGS84 = "wgs84"
    GCJ02 = "gcj02"

    @classmethod
    def parse(cls, value: str) -> Datum:
        """Accept ``wgs84``, ``WGS-84``, ``EPSG:4326``, ``gcj02``, ``GCJ-02`` (any case)."""
        key = value.strip().lower().replace("-", "").replace("_", "")
        aliases = {"wgs84": cls.WGS84, "epsg:4326": cls.WGS84, "gcj02": cls.GCJ02, "mars": cls.GCJ02}
        try:
            return aliases[key]
        except KeyError:
            raise ValueError(f"unknown datum {value!r}: use wgs84 or gcj02") from None


# The datum each channel's coordinates arrive in; see docs/grid.md ("Datums") for the sources.
CHANNEL_DATUMS: dict[str, Datum] = {
    "wechat": Datum.GCJ02,  # location messages (Location_X/Y) come from WeChat's Tencent map
    "weibo": Datum.GCJ02,  # position pushes: picked on the in-app map (undocumented; see docs)
    "web": Datum.WGS84,  # the browser Geolocation API is WGS-84 by specification
    "open311": Datum.WGS84,  # GeoReport v2: "lat/long using the (WGS84) projection"
    "sms": Datum.WGS84,  # SMS carries no coordinates; a typed pair is most likely from a GPS app
}


def parse_channel_datums(text: str) -> dict[str, Datum]:
    """Per-channel overrides written ``"weibo=wgs84, wechat=gcj02"``; ValueError names a bad pair."""
    found: dict[str, Datum] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        channel, sep, datum = item.partition("=")
        if not sep or not channel.strip():
            raise ValueError(f"{item.strip()!r} is not channel=datum (e.g. weibo=wgs84)")
        found[channel.strip()] = Datum.parse(datum)
    return found


def outside_china(lat: float, lng: float) -> bool:
    """True where the GCJ-02 offset is not applied (the usual rough bounding box of China)."""
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _offset(lat: float, lng: float) -> tuple[float, float]:
    """GCJ-02 minus WGS-84 at (lat, lng), in degrees (dlat, dlng)."""
    x, y = lng - 105.0, lat - 35.0
    sx, sy = math.sqrt(abs(x)), math.sin
    ripple = (20.0 * sy(6.0 * x * math.pi) + 20.0 * sy(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx + ripple
    dlat += (20.0 * sy(y * math.pi) + 40.0 * sy(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (160.0 * sy(y / 12.0 * math.pi) + 320.0 * sy(y * math.pi / 30.0)) * 2.0 / 3.0
    dlng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx + ripple
    dlng += (20.0 * sy(x * math.pi) + 40.0 * sy(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlng += (150.0 * sy(x / 12.0 * math.pi) + 300.0 * sy(x / 30.0 * math.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * math.pi
    magic = 1.0 - _EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlng = (dlng * 180.0) / (_A / sqrt_magic * math.cos(rad) * math.pi)
    return dlat, dlng


def wgs84_to_gcj02(lat: float, lng: float) -> tuple[float, float]:
    """WGS-84 (lat, lng) → GCJ-02 (lat, lng); unchanged outside China."""
    if outside_china(lat, lng):
        return lat, lng
    dlat, dlng = _offset(lat, lng)
    return lat + dlat, lng + dlng


def gcj02_to_wgs84(lat: float, lng: float) -> tuple[float, float]:
    """GCJ-02 (lat, lng) → WGS-84 (lat, lng), by iteration; unchanged outside China."""
    if outside_china(lat, lng):
        return lat, lng
    wlat, wlng = lat, lng
    for _ in range(_INVERSE_MAX_ITERATIONS):
        glat, glng = wgs84_to_gcj02(wlat, wlng)
        err_lat, err_lng = glat - lat, glng - lng
        wlat, wlng = wlat - err_lat, wlng - err_lng
        if abs(err_lat) < _INVERSE_TOLERANCE_DEG and abs(err_lng) < _INVERSE_TOLERANCE_DEG:
            break
    return wlat, wlng


def to_wgs84(lat: float, lng: float, datum: Datum) -> tuple[float, float]:
    """(lat, lng) in ``datum`` → WGS-84, the datum grids are stored in."""
    return gcj02_to_wgs84(lat, lng) if datum is Datum.GCJ02 else (lat, lng)


def _offset_many(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``_offset`` over arrays (the same formula with numpy's functions)."""
    x, y = lng - 105.0, lat - 35.0
    sx, sy, pi = np.sqrt(np.abs(x)), np.sin, np.pi
    ripple = (20.0 * sy(6.0 * x * pi) + 20.0 * sy(2.0 * x * pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx + ripple
    dlat += (20.0 * sy(y * pi) + 40.0 * sy(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * sy(y / 12.0 * pi) + 320.0 * sy(y * pi / 30.0)) * 2.0 / 3.0
    dlng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx + ripple
    dlng += (20.0 * sy(x * pi) + 40.0 * sy(x / 3.0 * pi)) * 2.0 / 3.0
    dlng += (150.0 * sy(x / 12.0 * pi) + 300.0 * sy(x / 30.0 * pi)) * 2.0 / 3.0
    rad = lat / 180.0 * pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * pi)
    dlng = (dlng * 180.0) / (_A / sqrt_magic * np.cos(rad) * pi)
    return dlat, dlng


def gcj02_to_wgs84_many(lat: FloatArray, lng: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``gcj02_to_wgs84`` over arrays of equal length (points outside China pass unchanged)."""
    inside = (lng >= 72.004) & (lng <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)
    wlat, wlng = lat.astype(np.float64, copy=True), lng.astype(np.float64, copy=True)
    for _ in range(_INVERSE_MAX_ITERATIONS):
        dlat, dlng = _offset_many(wlat, wlng)
        err_lat, err_lng = wlat + dlat - lat, wlng + dlng - lng
        wlat = np.where(inside, wlat - err_lat, wlat)
        wlng = np.where(inside, wlng - err_lng, wlng)
        if np.all(np.abs(err_lat) < _INVERSE_TOLERANCE_DEG) and np.all(np.abs(err_lng) < _INVERSE_TOLERANCE_DEG):
            break
    return wlat, wlng
