"""WeChat's HTTP API on wechatpy: notifications, media downloads, the message crypto.

Blocking (wechatpy uses requests): called from worker threads only, never the event loop.

- Notifications go out as customer-service messages (客服消息, ``message/custom/send``), which
  WeChat accepts within 48 h of the resident's last message; outside it (errcode 45015, or 45047
  when the 20-message quota is spent) a template message (模板消息, ``message/template/send``)
  is sent when the account has a ``template_id``, else the send is rejected.
  https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html
- Media arrive as ``MediaId`` handles valid 3 days (``media/get``); a video answers JSON with a
  ``video_url`` to download instead of the bytes.
  https://developers.weixin.qq.com/doc/offiaccount/Asset_Management/Get_temporary_materials.html
- Without API credentials (only a token configured) a photo is downloaded from the message's
  ``PicUrl``, only from WeChat's image hosts (``*.qpic.cn``, over https) or the configured API's
  own origin (a proxy, or the tests' fake), and redirects are not followed; voice and video
  need ``media/get`` and so the credentials.
- The access token lives in ``channels.tokens`` (Redis when configured) so every process shares
  one. wechatpy's own token retry recurses without bound, so it is off: a token error
  (40001/40014/42001) refreshes the token and retries once, here.

Errcodes map to the ``channels.errors`` tree: -1 (system busy), 45009/45011 (quota), HTTP 5xx and
network errors are ``SendRetryable``; 40013/40125/40164 (bad appid, secret, IP not allowed) are
``ChannelMisconfigured``; the rest (43004 unsubscribed, 40003 bad openid, 40007 expired media,
45015 out of window without template ...) are ``SendRejected``.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from wechatpy import WeChatClient
from wechatpy.crypto import PrpCrypto, _get_signature
from wechatpy.exceptions import WeChatClientException

from channels.base import Account
from channels.errors import ChannelMisconfigured, InvalidSignature, SendError, SendRejected, SendRetryable
from channels.http import get_capped
from channels.tokens import token_store
from gateway.models import MediaRef, OutboundMessage, SendResult

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com/cgi-bin/"
TIMEOUT_S = 10
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
RETRYABLE = frozenset({-1, 45009, 45011})
MISCONFIGURED = frozenset({40013, 40125, 40164, 41001, 41002, 41004})
OUT_OF_WINDOW = frozenset({45015, 45047})
DEFAULT_TEMPLATE_FIELDS = {"first": "text", "keyword1": "case_number", "keyword2": "time"}
_CASE_RE = re.compile(r"[A-Z]{1,8}\d{14,}")
T = TypeVar("T")
PICTURE_HOST = ".qpic.cn"  # mmbiz.qpic.cn: where WeChat's PicUrl points
_SECRET_QUERY = re.compile(r"((?:secret|access_token)=)[^&\s\"]+")


class _RedactQuery(logging.Filter):
    """urllib3 logs each request line at DEBUG, and WeChat puts the app secret and the access
    token in the query string; mask them before any handler sees the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "secret=" in message or "access_token=" in message:
            record.msg, record.args = _SECRET_QUERY.sub(r"\1***", message), None
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactQuery())


class Crypto:
    """The AES message crypto of safe mode, on wechatpy's ``PrpCrypto`` (WXBizMsgCrypt)."""

    def __init__(self, token: str, aes_key: str, app_id: str) -> None:

        try:
            key = base64.b64decode(aes_key + "=")
        except ValueError:
            key = b""
        if len(key) != 32:
            raise InvalidSignature("EncodingAESKey is not 43 base64 characters")
        self.token, self.key, self.app_id = token, key, app_id

    def decrypt(self, encrypted: str) -> str:
        try:
            return str(PrpCrypto(self.key).decrypt(encrypted, self.app_id))
        except Exception as exc:  # bad padding, base64, or another AppID: not for this account
            raise InvalidSignature(f"cannot decrypt: {type(exc).__name__}") from None

    def encrypt_reply(self, xml: str, nonce: str, timestamp: str) -> str:
        encrypted = PrpCrypto(self.key).encrypt(xml, self.app_id).decode()
        sig = _get_signature(self.token, timestamp, nonce, encrypted)
        return (
            f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt><MsgSignature><![CDATA[{sig}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )


class _Client(WeChatClient):  # type: ignore[misc]
    """wechatpy's client on a configurable API base, with a token fetch that has a timeout."""

    expires_at: int | None

    def __init__(self, appid: str, secret: str, *, api_base: str, session: Any) -> None:
        super().__init__(appid, secret, session=session, timeout=TIMEOUT_S, auto_retry=False)
        self.API_BASE_URL = api_base

    def fetch_access_token(self) -> dict[str, Any]:
        # wechatpy 1.8 hard-codes api.weixin.qq.com here and sends no timeout.
        res = self._http.get(
            self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
            timeout=self.timeout,
        )
        result = self._handle_result(res)  # raises WeChatClientException on an errcode
        if not isinstance(result, dict) or "access_token" not in result:
            raise WeChatClientException(None, "token endpoint answered no access_token", client=self)
        expires_in = int(result.get("expires_in", 7200))
        self.session.set(self.access_token_key, result["access_token"], expires_in)
        self.expires_at = int(time.time()) + expires_in
        return result

    def forget_token(self) -> None:
        self.session.delete(self.access_token_key)
        self.expires_at = None


class WeChatApi:
    def __init__(self, *, tokens: Any = None) -> None:
        self._tokens = tokens
        self._local = threading.local()  # requests.Session is not thread-safe: one client per thread

    def client(self, acct: Account) -> _Client:
        if not acct.get("app_id") or not acct.get("app_secret"):
            raise ChannelMisconfigured(f"wechat account {acct.name!r} has no app_id/app_secret")
        clients: dict[str, _Client] = self._local.__dict__.setdefault("clients", {})
        found = clients.get(acct.name)
        if found is None or found.appid != acct.get("app_id"):
            found = _Client(
                acct.get("app_id"),
                acct.get("app_secret"),
                api_base=_slash(acct.get("api_base", DEFAULT_API_BASE)),
                session=self._token_store(acct),
            )
            clients[acct.name] = found
        return found

    def _token_store(self, acct: Account) -> Any:
        if self._tokens is None:
            self._tokens = token_store(acct.get("redis_url"))
        return self._tokens

    # ------------------------------------------------------------------ notifications

    def send(self, msg: OutboundMessage, acct: Account) -> SendResult:
        client = self.client(acct)
        openid = msg.recipient.removeprefix("wechat:")
        try:
            _call(client, lambda: client.message.send_text(openid, msg.text))
            log.info("wechat custom message sent", extra={"account": acct.name})
            return SendResult(external_id=None, status="sent", detail={"api": "custom"})
        except SendRejected as exc:
            if getattr(exc, "errcode", None) not in OUT_OF_WINDOW or not acct.get("template_id"):
                raise
        data = template_data(msg, acct.get("template_fields") or DEFAULT_TEMPLATE_FIELDS)
        url = _template_url(acct.get("template_url"), data)
        result = _call(client, lambda: client.message.send_template(openid, acct.get("template_id"), data, url=url))
        log.info("wechat template message sent", extra={"account": acct.name})
        msgid = result.get("msgid") if isinstance(result, dict) else None
        return SendResult(external_id=str(msgid) if msgid else None, status="sent", detail={"api": "template"})

    # ------------------------------------------------------------------ media

    def fetch_media(self, ref: MediaRef, acct: Account) -> tuple[bytes, str]:
        cap = int(acct.get("media_max_bytes") or 20 << 20)
        if not has_api_credentials(acct):
            if ref.url:
                return fetch_picture(ref.url, acct, cap=cap)
            raise ChannelMisconfigured(f"wechat account {acct.name!r} has no app_id/app_secret and the media no PicUrl")
        if not ref.provider_id:
            raise SendRejected("media has no MediaId")
        client = self.client(acct)
        res = _call(client, lambda: client.media.download(ref.provider_id))
        if isinstance(res, dict):  # a video: media/get answers with a link to the file
            url = res.get("video_url")
            if not url:
                raise SendRejected("media/get answered JSON without video_url")
            body, ctype = get_capped(url, cap=cap, session=client._http, timeout=TIMEOUT_S, what="video download")
            return body, ctype or ref.content_type or "application/octet-stream"
        body = res.content
        if len(body) > cap:
            raise SendRejected(f"media larger than {cap} bytes")
        ctype = res.headers.get("Content-Type", "").split(";")[0].strip()
        return body, ctype or ref.content_type or "application/octet-stream"


def has_api_credentials(acct: Account) -> bool:
    return bool(acct.get("app_id") and acct.get("app_secret"))


def fetch_picture(url: str, acct: Account, *, cap: int) -> tuple[bytes, str]:
    """A photo by its ``PicUrl``: WeChat's image hosts (https) or the API's own origin only, no redirects."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    api = urlsplit(str(acct.get("api_base") or DEFAULT_API_BASE))
    if parts.scheme in ("http", "https") and host.endswith(PICTURE_HOST):
        url = urlunsplit(("https", *parts[1:]))  # PicUrl is handed out as http://; the host serves https
    elif (parts.scheme, parts.netloc) != (api.scheme, api.netloc) or not parts.netloc:
        raise SendRejected(f"not a WeChat picture URL: {host[:60]!r}")
    return get_capped(url, cap=cap, timeout=TIMEOUT_S, what="PicUrl download", follow_redirects=False)


def _call(client: _Client, fn: Callable[[], T]) -> T:
    """Run one API call; refresh the token and retry once on a token error; map the errors."""
    try:
        try:
            return fn()
        except WeChatClientException as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
            log.info("wechat token rejected: refreshing", extra={"errcode": exc.errcode})
            client.forget_token()
            return fn()
    except WeChatClientException as exc:
        raise _mapped(exc) from None
    except requests.RequestException as exc:
        raise SendRetryable(f"wechat API unreachable: {type(exc).__name__}") from None


def _mapped(exc: WeChatClientException) -> SendError:
    code, text = exc.errcode, f"wechat errcode {exc.errcode}: {exc.errmsg}"
    err: SendError
    if code is None:
        status = getattr(getattr(exc, "response", None), "status_code", None) or 0
        err = (
            SendRetryable(f"wechat HTTP {status}") if status >= 500 or status == 429 else SendRejected(f"HTTP {status}")
        )
    elif code in RETRYABLE or code in TOKEN_ERRORS:
        err = SendRetryable(text)
    elif code in MISCONFIGURED:
        err = ChannelMisconfigured(text)
    else:
        err = SendRejected(text)
    vars(err)["errcode"] = code  # read back by ``send`` to spot a closed 48 h window
    return err


def template_data(msg: OutboundMessage, fields: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The template's ``data`` from the message: each template key takes text, case number or time."""
    case = msg.report_case_number
    if not case:
        found = _CASE_RE.search(msg.text)
        case = found.group(0) if found else ""
    values = {"text": msg.text, "case_number": case, "time": time.strftime("%Y-%m-%d %H:%M")}
    return {key: {"value": values.get(source, source)} for key, source in fields.items()}


def _template_url(pattern: str | None, data: Mapping[str, Mapping[str, str]]) -> str | None:
    if not pattern:
        return None
    case = next((v["value"] for v in data.values() if _CASE_RE.fullmatch(v["value"])), "")
    return pattern.replace("{case}", case)


def _slash(base: str) -> str:
    return base if base.endswith("/") else base + "/"
