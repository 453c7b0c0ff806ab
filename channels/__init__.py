"""The channel registry: every live channel is named here, explicitly.

Third-party channels are installed as packages that declare an entry point in the group
``citizen_gateway.channels`` (``name = "package.module:ChannelClass"``); ``load_channels``
adds them after the built-in ones. A built-in name cannot be overridden by a plugin.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from channels.base import BaseChannel, Channel
from channels.open311 import Open311Channel
from channels.sms import SmsChannel
from channels.web import WebChannel
from channels.wechat import WeChatChannel
from channels.weibo import WeiboChannel

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "citizen_gateway.channels"


def builtin_channels() -> tuple[type[BaseChannel], ...]:

    return (WebChannel, WeChatChannel, SmsChannel, WeiboChannel, Open311Channel)


def load_channels(*, plugins: bool = True) -> dict[str, type[BaseChannel]]:
    found: dict[str, type[BaseChannel]] = {cls.name: cls for cls in builtin_channels()}
    if not plugins:
        return found
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            log.warning("channel plugin ignored: name taken", extra={"channel": ep.name, "plugin": ep.value})
            continue
        cls = ep.load()
        if not isinstance(cls, type) or not issubclass(cls, BaseChannel) or not isinstance(cls(), Channel):
            log.warning("channel plugin ignored: not a channel", extra={"plugin": ep.value})
            continue
        found[ep.name] = cls
    return found


__all__ = ["ENTRY_POINT_GROUP", "builtin_channels", "load_channels"]
