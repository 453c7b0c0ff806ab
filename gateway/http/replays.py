"""Replayed signed queries (issue 13, item 9): WeChat plain mode and Weibo sign the query
(``timestamp``, ``nonce``), not the body, so whoever captured one callback could post any other
body with it until the timestamp goes stale.

The first request with a signed query records which messages it carried (a digest of their
channel message ids: WeChat ``MsgId``, or sender + ``CreateTime`` for events; Weibo's id from
sender, time and content). A later request with the same query and the same messages is the
provider's retry (WeChat repeats the query when it had no answer within 5 s): it goes on, and the
de-duplication answers it with the original case. The same query with other messages is a
replay: 403, nothing stored. Keys live as long as the query is acceptable (``WindowStore``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from aiohttp import web

from channels.base import Account, BaseChannel, RawRequest, SupportsReplayGuard
from channels.errors import InvalidSignature
from gateway.http.windows import STORE
from gateway.models import InboundMessage


async def check_replay(
    request: web.Request, channel: BaseChannel, raw: RawRequest, acct: Account, msgs: Sequence[InboundMessage]
) -> None:
    """``InvalidSignature`` when this signed query came before with other messages."""
    if not isinstance(channel, SupportsReplayGuard):
        return
    found = channel.signed_query(raw, acct)
    if found is None:
        return
    query, ttl_s = found
    key = "replay:" + _digest(f"{channel.name}\n{query}")
    carried = _digest("\n".join(sorted(m.channel_message_id for m in msgs)))
    first = await request.app[STORE].claim(key, carried, ttl_s)
    if first is not None and first != carried:
        raise InvalidSignature("signed query replayed with another body")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
