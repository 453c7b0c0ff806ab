"""Blocking HTTP downloads for channels (worker threads only): size-capped, errors mapped.

429, 5xx and network errors are ``SendRetryable`` (the task tries again later); other 4xx and
bodies over the cap are ``SendRejected``. The body is read in chunks and abandoned as soon as it
passes the cap, so a hostile or broken server cannot fill memory.
"""

from __future__ import annotations

from collections.abc import Mapping

import requests

from channels.errors import SendRejected, SendRetryable

MAX_MEDIA_BYTES = 10 << 20
HTTP_TIMEOUT_S = 20.0


def get_capped(
    url: str,
    *,
    cap: int = MAX_MEDIA_BYTES,
    auth: tuple[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    session: requests.Session | None = None,
    timeout: float = HTTP_TIMEOUT_S,
    what: str = "media download",
    follow_redirects: bool = True,
) -> tuple[bytes, str]:
    """GET ``url``; the body and its content type (without parameters). Without
    ``follow_redirects`` a 3xx is refused, so a download stays on the host that was checked."""
    getter = session.get if session is not None else requests.get
    try:
        with getter(
            url, auth=auth, params=params, timeout=timeout, stream=True, allow_redirects=follow_redirects
        ) as resp:
            if 300 <= resp.status_code < 400:
                raise SendRejected(f"{what}: HTTP {resp.status_code} redirect not followed")
            if resp.status_code == 429 or resp.status_code >= 500:
                raise SendRetryable(f"{what}: HTTP {resp.status_code}")
            if resp.status_code >= 400:
                raise SendRejected(f"{what}: HTTP {resp.status_code}")
            if int(resp.headers.get("Content-Length") or 0) > cap:
                raise SendRejected(f"media larger than {cap} bytes")
            chunks, size = [], 0
            for chunk in resp.iter_content(65536):
                size += len(chunk)
                if size > cap:
                    raise SendRejected(f"media larger than {cap} bytes")
                chunks.append(chunk)
            ctype = resp.headers.get("Content-Type", "application/octet-stream").split(";")[0].strip()
            return b"".join(chunks), ctype
    except requests.RequestException as exc:
        raise SendRetryable(f"{what} failed: {type(exc).__name__}") from exc
