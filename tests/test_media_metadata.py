"""Photos lose their metadata before they are stored (gateway/media.py, ``strip_metadata``):
EXIF (GPS, device), XMP, comments, text chunks and pictures appended after the image. Real
camera-like files are made with Pillow; what comes out must still be the same picture."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image, PngImagePlugin

from gateway.media import LocalMediaStore, exif_orientation, strip_metadata

GPS_IFD, ORIENTATION, MAKE = 0x8825, 0x0112, 0x010F
SECRETS = (b"PhoneMaker", b"Model X", b"shot at home", b"adobe:ns:meta")


def camera_exif(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "PhoneMaker"
    exif[0x0110] = "Model X"
    exif[GPS_IFD] = {1: "N", 2: (22.0, 39.0, 11.0), 3: "E", 4: (114.0, 1.0, 31.0)}
    return exif


XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def picture(fmt: str, **extra: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 30, 30)).save(out, fmt, **extra)
    return out.getvalue()


def phone_jpeg() -> bytes:
    # A second picture after the image's end, as MPF and some phones' trailers append (with EXIF).
    trailer = picture("JPEG", exif=camera_exif())
    return picture("JPEG", exif=camera_exif(), comment=b"shot at home", xmp=XMP) + trailer


def assert_clean(data: bytes) -> Image.Image:
    for secret in SECRETS:
        assert secret not in data, secret
    img = Image.open(io.BytesIO(data))
    img.load()  # still a whole picture
    assert img.size == (40, 20)
    assert img.getexif().get_ifd(GPS_IFD) == {} and MAKE not in img.getexif()
    return img


def test_jpeg_keeps_the_picture_and_its_orientation_only() -> None:
    raw = phone_jpeg()
    assert all(secret in raw for secret in SECRETS[:3])
    clean = strip_metadata(raw)
    img = assert_clean(clean)
    assert dict(img.getexif()) == {ORIENTATION: 6}  # a portrait photo still shows upright
    assert clean.count(b"\xff\xd8") == 1  # the appended picture is gone
    assert strip_metadata(clean) == clean  # idempotent: a digest of stripped bytes stays valid
    upright = strip_metadata(picture("JPEG", exif=camera_exif(orientation=1)))
    assert b"Exif" not in upright  # orientation 1 needs no tag at all


def test_png_webp_and_gif_lose_their_metadata() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "shot at home")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    png = strip_metadata(picture("PNG", pnginfo=info, exif=camera_exif()) + b"PhoneMaker after IEND")
    assert_clean(png)
    assert b"eXIf" not in png and b"tEXt" not in png and b"iTXt" not in png
    webp = strip_metadata(picture("WEBP", exif=camera_exif(), xmp=XMP))
    assert_clean(webp)
    assert b"EXIF" not in webp and b"XMP " not in webp
    gif = strip_metadata(picture("GIF", comment=b"shot at home"))
    assert_clean(gif)


def test_orientation_is_read_from_either_byte_order() -> None:
    big = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x08" + bytes(6)
    little = b"II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00\x08\x00" + bytes(6)
    assert exif_orientation(big) == exif_orientation(little) == 8
    exif = Image.Exif()
    exif[ORIENTATION] = 3
    assert exif_orientation(exif.tobytes().removeprefix(b"Exif\x00\x00")) == 3
    assert exif_orientation(b"MM\x00\x2a\xff\xff\xff\xff") is None  # an IFD offset past the end


def test_files_that_are_not_a_cameras_are_kept_as_sent() -> None:
    for data in (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b"\xff\xd8\xff" + b"orphan" * 10, b"#!AMR\n" + b"\x02" * 9):
        assert strip_metadata(data) == data


async def test_the_store_strips_whatever_put_it_there(tmp_path: Path) -> None:
    """Channel downloads (WeChat, SMS, Weibo) go through ``put`` like the web form's photos."""
    store = LocalMediaStore(tmp_path / "media")
    stored = await store.put(phone_jpeg(), "image/jpeg")
    found = await store.get(stored.sha256)
    assert found is not None
    assert_clean(found[0])
    assert hashlib.sha256(found[0]).hexdigest() == stored.sha256 and stored.size == len(found[0])


async def test_a_web_photo_is_served_without_its_gps_position(client: Any, runner: Any) -> None:
    form = aiohttp.FormData()
    form.add_field("text", "人行道井盖缺失，很危险")
    form.add_field("photos", phone_jpeg(), filename="IMG_0001.jpg", content_type="image/jpeg")
    resp = await client.post("/api/v1/reports", data=form)
    assert resp.status == 201, await resp.text()
    case = (await resp.json())["case_number"]
    await runner.idle()
    [photo] = (await (await client.get(f"/api/v1/reports/{case}")).json())["media"]
    served = await (await client.get(photo["url"].replace("http://gateway.test", ""))).read()
    assert_clean(served)
    assert hashlib.sha256(served).hexdigest() == photo["sha256"]
