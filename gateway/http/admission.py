"""What an inbound message must satisfy before the pipeline stores it.

Every way in (the generic channel route, the web form and its API, Open311) calls
``check_message`` on what its channel parsed, so a value the database cannot hold is a
``BadPayload`` (a 400 naming the field) and not a database error: NUL characters and lone
surrogates anywhere (``channels.payload``), and strings longer than the column they land in. The
limits come from the models in ``gateway/db.py``, so a migration that widens a column widens the
check. SQLite does not enforce lengths; PostgreSQL does (issue 13).
"""

from __future__ import annotations

from collections.abc import Iterable

from channels.errors import BadPayload
from channels.payload import check_text
from gateway.db import History, Media, Message, Report
from gateway.models import InboundMessage


def _length(column: object) -> int:
    length = getattr(getattr(column, "type", None), "length", None)
    assert isinstance(length, int), column
    return length


# Each message field with the narrowest column it is written to (the sender is also the actor of
# the report's first history entry).
LIMITS = {
    "channel": _length(Message.__table__.c.channel),
    "channel_message_id": _length(Message.__table__.c.channel_message_id),
    "sender": min(_length(Message.__table__.c.sender), _length(History.__table__.c.actor)),
    "account": _length(Message.__table__.c.account),
    "title": _length(Report.__table__.c.title),
    "contact_phone": _length(Report.__table__.c.contact_phone),
    "event": 64,
}
LOCATION_LIMIT = _length(Report.__table__.c.location_address)
MEDIA_LIMITS = {
    "provider_id": _length(Media.__table__.c.provider_id),
    "url": _length(Media.__table__.c.url),
    "content_type": _length(Media.__table__.c.content_type),
}


def check_message(msg: InboundMessage) -> None:
    """Raise ``BadPayload`` naming the first field of ``msg`` that cannot be stored as it is."""
    errors: dict[str, str] = {}
    for name, limit in LIMITS.items():
        _fits(errors, name, getattr(msg, name), limit)
    if msg.location is not None:
        _fits(errors, "location.address", msg.location.label, LOCATION_LIMIT)
    for i, ref in enumerate(msg.media):
        for name, limit in MEDIA_LIMITS.items():
            _fits(errors, f"media[{i}].{name}", getattr(ref, name), limit)
    if errors:
        raise BadPayload("; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors)
    check_text(msg.text, "text")
    check_text(msg.title, "title")
    check_text(msg.sender, "sender")
    check_text(msg.contact_phone, "contact_phone")
    check_text(msg.location.label if msg.location else None, "location.address")
    check_text(msg.raw, "")


def check_messages(msgs: Iterable[InboundMessage]) -> None:
    for msg in msgs:
        check_message(msg)


def _fits(errors: dict[str, str], name: str, value: object, limit: int) -> None:
    if isinstance(value, str) and len(value) > limit:
        errors[name] = f"too long ({len(value)} characters, at most {limit})"
