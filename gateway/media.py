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
from typing import Protocol

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


class LocalMediaStore:
    """Files under one directory, named ``<sha256>`` with the content type beside them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if not _SHA_RE.match(sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256

    async def put(self, data: bytes, content_type: str) -> StoredMedia:
        digest = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, digest, data, content_type)
        return StoredMedia(digest, len(data), content_type)

    def _write(self, digest: str, data: bytes, content_type: str) -> None:
        path = self._path(digest)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.with_suffix(".type").write_text(content_type)
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
