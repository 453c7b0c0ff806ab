"""A tiny channel, as ``docs/channels.md`` adds one: a JSON webhook signed with HMAC-SHA256.

It lives in the test tree so that production does not serve it; a real one is
``channels/<name>.py`` and one line in ``builtin_channels()``. Nothing else in the repository
knows about it: its settings class reads ``GATEWAY_TINY_*``, its test file registers it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from channels.base import Account, BaseChannel, ChannelSettings, RawRequest, json_object
from channels.errors import BadPayload, InvalidSignature
from gateway.models import InboundMessage, MessageKind


class TinySettings(ChannelSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_TINY_")

    secret: SecretStr | None = None


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class TinyChannel(BaseChannel):
    name: ClassVar[str] = "tiny"
    settings_class: ClassVar[type[ChannelSettings]] = TinySettings

    @classmethod
    def accounts(cls, settings: Mapping[str, Any]) -> dict[str, Account]:
        own = cls.own_settings(settings)
        assert isinstance(own, TinySettings)
        if own.secret is None:
            return {}  # not configured: no account, the endpoint answers 404
        return {"default": Account("default", {"secret": own.secret.get_secret_value()}, secret_fields=("secret",))}

    def verify(self, req: RawRequest, acct: Account) -> None:
        given = req.headers.get("X-Tiny-Signature", "")
        if not hmac.compare_digest(given.encode(), signature(acct.get("secret"), req.body).encode()):
            raise InvalidSignature("bad X-Tiny-Signature")

    def parse(self, req: RawRequest, acct: Account) -> list[InboundMessage]:
        data = json_object(req.body)
        missing = {k: "required" for k in ("id", "from", "text") if not isinstance(data.get(k), str) or not data[k]}
        if missing:
            raise BadPayload("missing fields", fields=missing)
        return [
            InboundMessage(
                channel=self.name,
                channel_message_id=data["id"],
                sender=f"tiny:{data['from']}",
                received_at=datetime.now(UTC),
                kind=MessageKind.TEXT,
                text=data["text"],
                raw=data,
                complete=True,
            )
        ]
