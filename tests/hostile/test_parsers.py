"""Issue 13: property-based tests of every parser on hostile input (hypothesis, derandomized).

Each parser either returns what it promises or raises its documented caller error; nothing
else escapes (no RecursionError, UnicodeError, OverflowError, KeyError ...), because anything
else is a 500 at the HTTP edge. Whatever a parser accepts must also pass the admission check or
be refused by it with a ``BadPayload``: then the database never sees it.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from adapters import dispatch, georeport
from channels import open311, payload
from channels.base import Account, RawRequest
from channels.errors import BadPayload, InvalidSignature
from channels.sms import SmsChannel
from channels.web import WebChannel
from channels.wechat import WeChatChannel, signature, xml_fields
from channels.weibo import WeiboChannel
from gateway.http.admission import check_message
from gateway.http.dispatch import BadCallback, parse_callback
from gateway.models import InboundMessage
from tests.hostile.strategies import FAST, json_values, raw_bytes, text

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def admitted(msgs: list[InboundMessage]) -> None:
    for msg in msgs:
        try:
            check_message(msg)
        except BadPayload:
            continue
        # admitted: every string is storable
        for value in (msg.text, msg.title, msg.sender, msg.contact_phone):
            assert value is None or payload.problem(value) is None
        json.dumps(msg.raw, ensure_ascii=False).encode("utf-8")  # storable as JSON, encodable


def request(body: bytes = b"", form: dict[str, str] | None = None, **query: str) -> RawRequest:
    return RawRequest("POST", "https://gw.test/x", {}, MultiDict(query), body, form or {})


@FAST
@given(st.one_of(raw_bytes, json_values.map(lambda v: json.dumps(v).encode())))
def test_json_reader_returns_or_names_the_problem(body: bytes) -> None:
    try:
        payload.loads(body)
    except BadPayload as exc:
        assert exc.fields


@FAST
@given(st.integers(min_value=1, max_value=200_000))
def test_json_reader_survives_any_nesting(depth: int) -> None:
    try:
        payload.loads(b"[" * depth + b"]" * depth)
    except BadPayload as exc:
        assert "nested" in str(exc)


@FAST
@given(st.dictionaries(st.sampled_from(["text", "title", "contact_phone", "location", "x"]), json_values, max_size=5))
def test_web_form_fields(data: dict[str, Any]) -> None:
    try:
        msg = WebChannel().message_from_fields(data, (), sender="s")
    except BadPayload as exc:
        assert exc.fields
        return
    admitted([msg])


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "ToUserName",
                "FromUserName",
                "CreateTime",
                "MsgType",
                "Content",
                "MsgId",
                "Event",
                "Location_X",
                "Location_Y",
                "MediaId",
                "PicUrl",
            ]
        ),
        text,
        max_size=10,
    )
)
def test_wechat_plain_xml(fields: dict[str, str]) -> None:
    from xml.sax.saxutils import escape

    body = "<xml>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items()) + "</xml>"
    channel = WeChatChannel(clock=time.time)
    try:
        admitted(channel.parse(request(body.encode("utf-8", "surrogatepass")), Account("default", {"token": "t"})))
    except BadPayload:
        pass


@FAST
@given(raw_bytes)
def test_wechat_xml_of_any_bytes(body: bytes) -> None:
    try:
        xml_fields(body)
    except BadPayload:
        pass


@FAST
@given(st.one_of(text, st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())))
def test_wechat_encrypted_callbacks(encrypted: str) -> None:
    encrypted = encrypted.encode("utf-8", "replace").decode()  # an XML body cannot carry a lone surrogate
    aes = base64.b64encode(b"k" * 32).decode().rstrip("=")
    acct = Account("default", {"token": "t", "aes_key": aes, "app_id": "wxid"})
    body = f"<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    ts, nonce = str(int(time.time())), "1"
    req = request(
        body.encode("utf-8", "surrogatepass"),
        timestamp=ts,
        nonce=nonce,
        encrypt_type="aes",
        msg_signature=signature("t", ts, nonce, encrypted),
    )
    channel = WeChatChannel(clock=time.time)
    try:
        channel.verify(req, acct)
        admitted(channel.parse(req, acct))
    except (BadPayload, InvalidSignature):
        pass


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            ["From", "To", "Body", "MessageSid", "NumMedia", "MediaUrl0", "MediaContentType0", "AccountSid"]
        ),
        text,
        max_size=8,
    )
)
def test_twilio_form(form: dict[str, str]) -> None:
    acct = Account("twilio", {"account_sid": "AC1", "auth_token": "x", "from": "+15005550006"})
    try:
        admitted(SmsChannel().parse(request(form=form), acct))
    except BadPayload:
        pass


@FAST
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["text", "event", "image", "position", "voice"]) | text,
                "sender_id": json_values,
                "receiver_id": json_values,
                "created_at": text,
                "text": json_values,
                "data": json_values,
            }
        ),
    )
)
def test_weibo_json(data: Any) -> None:
    body = json.dumps(data).encode()
    try:
        admitted(WeiboChannel().parse(request(body), Account("default", {"app_secret": "s"})))
    except BadPayload:
        pass


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "service_code",
                "description",
                "lat",
                "long",
                "address_string",
                "email",
                "phone",
                "media_url",
                "device_id",
                "attribute[x]",
                "api_key",
            ]
        ),
        text,
    )
)
def test_open311_form(form: dict[str, str]) -> None:
    services = {code: service.name for code, service in open311_services().items()}
    form = {**form, "service_code": form.get("service_code", "0101")}
    try:
        admitted([open311.parse_request(form, services, now=NOW)])
    except BadPayload as exc:
        assert exc.fields


@FAST
@given(text)
def test_open311_dates(value: str) -> None:
    try:
        georeport.parse_date(value)
    except ValueError:
        pass


@FAST
@given(
    st.one_of(
        raw_bytes,
        json_values.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {
                "id": text,
                "case_number": text,
                "status": st.sampled_from(["accepted", "rejected", "returned"]) | text,
                "note": json_values,
            }
        ).map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")),
    )
)
def test_dispatch_callback_bodies(body: bytes) -> None:
    try:
        cb = parse_callback(body)
    except BadCallback as exc:
        assert exc.fields
        return
    for value in (cb.id, cb.case_number, cb.note or ""):
        assert payload.problem(value) is None


@FAST
@given(st.dictionaries(st.sampled_from([dispatch.TIMESTAMP_HEADER, dispatch.SIGNATURE_HEADER]), text), raw_bytes)
def test_dispatch_signature_headers(headers: dict[str, str], body: bytes) -> None:
    try:
        dispatch.verify(["secret"], headers, body)
    except dispatch.SignatureError:
        pass


def open311_services() -> dict[str, Any]:
    from gateway.http.open311 import load_services

    return load_services(None)
