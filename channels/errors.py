"""Errors raised by channels.

The tree::

    ChannelError
    ├── InvalidSignature      the request is not from the provider: 403, nothing stored
    ├── BadPayload            the provider (or a resident's client) sent something we cannot parse: 400
    ├── PayloadTooLarge       the body is over the channel's cap: 413
    └── SendError             sending to a resident failed
        ├── SendRetryable     connection, timeout, 5xx, throttled: try again later
        ├── SendRejected      4xx, bad or opted-out recipient, window closed: do not retry
        └── ChannelMisconfigured  credentials or settings missing: fix the deployment

Caller problems (the first three) are answered inside the request and logged; failures of the
gateway itself propagate as 5xx so the provider retries (courier's contract).
"""

from __future__ import annotations


class ChannelError(Exception):
    """Root of every error a channel raises."""


class InvalidSignature(ChannelError):
    """The signature, token or timestamp of an inbound request does not check out."""


class BadPayload(ChannelError):
    """The payload is malformed or misses a required field; the message says which."""

    def __init__(self, message: str, *, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class PayloadTooLarge(ChannelError):
    """The body exceeds the size cap of the route."""


class SendError(ChannelError):
    """Sending an outbound message failed."""


class SendRetryable(SendError):
    """A transient failure (network, timeout, 5xx, rate limit); the task retries with backoff."""


class SendRejected(SendError):
    """The provider refused the message for good (4xx, blocked recipient, closed window)."""


class ChannelMisconfigured(SendError):
    """The channel lacks credentials or settings it needs."""
