"""The media store: photos, voice notes and videos kept by content hash (sha256).

One small interface so a deployment can put media in object storage instead of the local
directory; the same bytes are stored once however many reports carry them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")

EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "audio/amr": ".amr",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "video/mp4": ".mp4",
}


@dataclass(frozen=True, slots=True)
class StoredMedia:
    sha256: str
    size: int
    content_type: str


class MediaStore(Protocol):
    async def put(self, data: bytes, content_type: str) -> StoredMedia: ...

    async def get(self, sha256: str) -> tuple[bytes, str] | None: ...


def sniff_image_type(data: bytes) -> str | None:
    """The image type from the file's magic bytes; the client's declared type is not trusted."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


# ---------------------------------------------------------------- metadata
# Photos lose their metadata before they are stored (issue 13, item 5): a phone's JPEG carries
# EXIF with the GPS position, the time and the device, often XMP, and after the image a second
# picture with its own EXIF (MPF, Samsung trailers). ``strip_metadata`` walks the file's
# structure and keeps only what draws the picture (and its colour profile), without decoding or
# re-encoding: no quality lost, no decompression bomb, milliseconds for a 5 MB photo. A JPEG's
# EXIF orientation is kept as a one-tag EXIF, so a portrait photo still shows upright. A part the
# walk cannot follow (not a camera's file) ends the walk and is kept as sent.

_PNG_KEEP = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB", b"cICP"}
    | {b"bKGD", b"hIST", b"pHYs", b"sPLT", b"acTL", b"fcTL", b"fdAT", b"mDCv", b"cLLi"}
)
_JPEG_DROP = frozenset({0xE1, *range(0xE3, 0xEE), 0xEF, 0xFE})  # APP1 (EXIF, XMP), APP3-13, APP15, COM
_GIF_APPS_KEEP = (b"NETSCAPE2.0", b"ANIMEXTS1.0")  # looping; XMP and others go
ORIENTATION_TAG = 0x0112


def strip_metadata(data: bytes, content_type: str | None = None) -> bytes:
    """The image without EXIF, XMP, IPTC, comments, text chunks or trailing data; other bytes as given."""
    kind = sniff_image_type(data)
    if kind == "image/jpeg":
        return _strip_jpeg(data)
    if kind == "image/png":
        return _strip_png(data)
    if kind == "image/webp":
        return _strip_webp(data)
    if kind == "image/gif":
        return _strip_gif(data)
    return data


def _strip_jpeg(data: bytes) -> bytes:
    out, i, orientation = [data[:2]], 2, None
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:
            break  # a marker without length before the scan: not a camera's file, kept as sent
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA or length < 2 or i + 2 + length > len(data):
            break  # the scan (or a broken segment): the rest up to the image's end is kept
        segment = data[i : i + 2 + length]
        if marker == 0xE1 and segment[4:10] == b"Exif\0\0":
            orientation = orientation or exif_orientation(segment[10:])
        keep = marker not in _JPEG_DROP and not (marker == 0xE2 and not segment[4:16] == b"ICC_PROFILE\0")
        if keep:
            out.append(segment)
        i += 2 + length
    rest = data[i:]
    if rest[:2] == b"\xff\xda":  # up to the primary image's EOI: what follows is another picture
        end = rest.find(b"\xff\xd9")
        rest = rest[: end + 2] if end >= 0 else rest
    if orientation not in (None, 1):
        assert orientation is not None
        out.insert(2 if len(out) > 1 and out[1][:2] == b"\xff\xe0" else 1, _orientation_segment(orientation))
    return b"".join(out) + rest


def exif_orientation(tiff: bytes) -> int | None:
    """The Orientation tag (1-8) of IFD0 of an EXIF TIFF block, if any."""
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    endian: Literal["little", "big"] = "little" if order == "little" else "big"
    ifd = int.from_bytes(tiff[4:8], endian)
    count = int.from_bytes(tiff[ifd : ifd + 2], endian) if ifd + 2 <= len(tiff) else 0
    for k in range(min(count, 1024)):
        entry = tiff[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
        if len(entry) == 12 and int.from_bytes(entry[:2], endian) == ORIENTATION_TAG:
            value = int.from_bytes(entry[8:10], endian)
            return value if 1 <= value <= 8 else None
    return None


def _orientation_segment(value: int) -> bytes:
    tiff = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01"
    payload = b"Exif\x00\x00" + tiff + value.to_bytes(2, "big") + b"\x00\x00" + b"\x00\x00\x00\x00"
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


def _strip_png(data: bytes) -> bytes:
    out, i = [data[:8]], 8
    while i + 12 <= len(data):
        length, kind = int.from_bytes(data[i : i + 4], "big"), data[i + 4 : i + 8]
        if not (kind.isascii() and kind.isalpha()) or i + 12 + length > len(data):
            return b"".join(out) + data[i:]  # not a chunk we can follow: kept as sent
        if kind in _PNG_KEEP:
            out.append(data[i : i + 12 + length])
        i += 12 + length
        if kind == b"IEND":
            return b"".join(out)  # anything after the end goes
    return b"".join(out) + data[i:]


def _strip_webp(data: bytes) -> bytes:
    out, i = [], 12
    while i + 8 <= len(data):
        kind, size = data[i : i + 4], int.from_bytes(data[i + 4 : i + 8], "little")
        if i + 8 + size > len(data):
            break  # not a chunk we can follow: kept as sent
        end = min(len(data), i + 8 + size + (size & 1))
        chunk = data[i:end]
        if kind == b"VP8X" and size >= 1:  # clear the EXIF (0x08) and XMP (0x04) flags
            chunk = chunk[:8] + bytes([chunk[8] & ~0x0C]) + chunk[9:]
        if kind not in (b"EXIF", b"XMP "):
            out.append(chunk)
        i = end
    body = b"WEBP" + b"".join(out) + data[i:]
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def _strip_gif(data: bytes) -> bytes:
    if len(data) < 13:
        return data
    i = 13 + ((3 << ((data[10] & 0x07) + 1)) if data[10] & 0x80 else 0)
    out = [data[:i]]
    while i < len(data):
        start, block = i, data[i]
        if block == 0x3B:  # trailer: anything after it goes
            return b"".join(out) + b"\x3b"
        keep, i = _gif_block(data, i)
        if i < 0:
            return b"".join(out) + data[start:]  # not a block we can follow: kept as sent
        if keep:
            out.append(data[start:i])
    return b"".join(out)


def _gif_block(data: bytes, i: int) -> tuple[bool, int]:
    """Whether to keep the block at ``i`` (an extension or an image), and the index after it (-1: broken)."""
    if data[i] == 0x21 and i + 2 < len(data):
        label, app = data[i + 1], data[i + 3 : i + 14]
        keep = label != 0xFE and (label != 0xFF or app in _GIF_APPS_KEEP)  # comments and XMP go
        return keep, _skip_sub_blocks(data, i + 2)
    if data[i] == 0x2C and i + 10 <= len(data):
        flags = data[i + 9]
        table = 3 << ((flags & 0x07) + 1) if flags & 0x80 else 0
        return True, _skip_sub_blocks(data, i + 10 + table + 1)  # after the LZW minimum code size
    return False, -1


def _skip_sub_blocks(data: bytes, i: int) -> int:
    """The index after a chain of data sub-blocks (length byte, bytes; 0 ends), or -1 past the end."""
    while i < len(data):
        size = data[i]
        i += 1 + size
        if size == 0:
            return i
    return -1


class LocalMediaStore:
    """Files under one directory, named ``<sha256>`` with the content type beside them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if not _SHA_RE.match(sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256

    async def put(self, data: bytes, content_type: str) -> StoredMedia:
        return await asyncio.to_thread(self._put, data, content_type)  # ~12 ms for a 6.6 MB photo: off the loop

    def _put(self, data: bytes, content_type: str) -> StoredMedia:
        if content_type.startswith("image/"):
            data = strip_metadata(data)  # idempotent: callers that hashed stripped bytes keep their digest
        digest = hashlib.sha256(data).hexdigest()
        self._write(digest, data, content_type)
        return StoredMedia(digest, len(data), content_type)

    def _write(self, digest: str, data: bytes, content_type: str) -> None:
        path = self._path(digest)
        if path.exists():
            return
        # Owner only (issue 13, item 9): residents' photos are not for other users of the machine.
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        _write_private(tmp, data)
        _write_private(tmp.with_suffix(".type"), content_type.encode())
        os.replace(tmp.with_suffix(".type"), path.with_suffix(".type"))
        os.replace(tmp, path)  # atomic: a reader never sees half a file

    async def get(self, sha256: str) -> tuple[bytes, str] | None:
        try:
            path = self._path(sha256)
        except ValueError:
            return None
        return await asyncio.to_thread(self._read, path)

    @staticmethod
    def _read(path: Path) -> tuple[bytes, str] | None:
        if not path.exists():
            return None
        ctype_file = path.with_suffix(".type")
        ctype = ctype_file.read_text() if ctype_file.exists() else "application/octet-stream"
        return path.read_bytes(), ctype


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
