"""Blocking HTTP downloads for channels (worker threads only): size-capped, errors mapped.

429, 5xx and network errors are ``SendRetryable`` (the task tries again later); other 4xx and
bodies over the cap are ``SendRejected``. The body is read in chunks and abandoned as soon as it
passes the cap, so a hostile or broken server cannot fill memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from urllib.parse import urljoin, urlsplit

import requests

from channels.errors import SendRejected, SendRetryable

MAX_MEDIA_BYTES = 10 << 20
HTTP_TIMEOUT_S = 20.0


MAX_REDIRECTS = 5


def host_allowed(url: str, hosts: Iterable[str], *, schemes: tuple[str, ...] = ("https",)) -> bool:
    """Whether ``url`` has one of ``schemes`` and a host in ``hosts`` (``*.example.com``: any
    subdomain of example.com)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if parts.scheme not in schemes or not host:
        return False
    return any(host.endswith(p[1:]) if p.startswith("*.") else host == p for p in hosts)


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
    allowed: Callable[[str], bool] | None = None,
) -> tuple[bytes, str]:
    """GET ``url``; the body and its content type (without parameters). Without
    ``follow_redirects`` a 3xx is refused, so a download stays on the host that was checked.
    With ``allowed``, every URL of the chain, the first and each redirect (at most
    ``MAX_REDIRECTS``), must pass it, else ``SendRejected`` before it is requested; ``auth`` goes
    to the first URL's host only (as requests does)."""
    getter = session.get if session is not None else requests.get
    hops = MAX_REDIRECTS if follow_redirects and allowed is not None else 0
    current, first_host = url, urlsplit(url).netloc
    try:
        for _ in range(hops + 1):
            if allowed is not None and not allowed(current):
                raise SendRejected(f"{what}: host not allowed: {urlsplit(current).netloc[:60]!r}")
            follow = follow_redirects and allowed is None  # requests follows; else we check each hop
            same_host = urlsplit(current).netloc == first_host
            with getter(
                current,
                auth=auth if same_host else None,
                params=params if current == url else None,
                timeout=timeout,
                stream=True,
                allow_redirects=follow,
            ) as resp:
                location = resp.headers.get("Location")
                if 300 <= resp.status_code < 400 and location and hops:
                    current = urljoin(current, location)
                    continue
                return _read(resp, cap, what)
    except requests.RequestException as exc:
        raise SendRetryable(f"{what} failed: {type(exc).__name__}") from exc
    raise SendRejected(f"{what}: more than {MAX_REDIRECTS} redirects")


def _read(resp: requests.Response, cap: int, what: str) -> tuple[bytes, str]:
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
