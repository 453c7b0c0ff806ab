"""Masking of secrets in configuration values shown to people (``gateway serve --check``).

``SecretStr`` settings mask themselves. Others carry secrets inside them: a database or Redis
URL's password, API keys in a comma-separated list, a token in a webhook URL's query string.
``redact`` masks those: URL passwords and query values, and every value whose name says it is
a key, token, secret or password (issue 13, item 8).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MASK = "***"
_SECRET_NAME = re.compile(r"(^|_)(keys?|tokens?|secrets?|passwords?|passwd|credentials?)$", re.IGNORECASE)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def mask_url(url: str) -> str:
    """``url`` with the password of its user part and the values of its query masked."""
    try:
        parts = urlsplit(url)
        if "@" not in parts.netloc and not parts.query and not parts.fragment:
            return url
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
        query = "&".join(f"{p.split('=', 1)[0]}={MASK}" if "=" in p else p for p in parts.query.split("&") if p)
        return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
    except ValueError:
        return MASK


def redact(name: str, value: object) -> object:
    """The value of setting ``name`` as it may be shown."""
    if type(value).__name__.endswith("Url"):  # pydantic's URL types
        value = str(value)
    if isinstance(value, str) and value and _SECRET_NAME.search(name):
        return MASK
    if isinstance(value, str) and _URL.match(value):
        return mask_url(value)
    return value
