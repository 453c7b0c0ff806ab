"""Issue 13: hostile input through the real app, route by route (examples from hypothesis).

Every answer is below 500. What is accepted is stored verbatim (the API returns the same text)
and rendered escaped (the HTML status page never carries the raw markup). Channel requests are
signed with the test's secrets, so the parsers behind the signature checks get the input too.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import FormData
from hypothesis import strategies as st
from markupsafe import escape
from twilio.request_validator import RequestValidator

from adapters import dispatch
from channels import wechat, weibo
from gateway.core.classify import PlaceholderClassifier
from gateway.http.app import create_app
from tests.hostile.strategies import INJECTIONS, examples, json_values, raw_bytes, text

SECRET, TOKEN, WEIBO, TWILIO, O311 = "dsecret", "wxtoken", "wbsecret", "twtoken", "o311key"
PUBLIC = "http://gateway.test"


@pytest.fixture
async def client(db_url: str, aiohttp_client: Any, make_settings: Callable[..., Any], runner: Any) -> Any:
    settings = make_settings(
        database_url=db_url,
        channels={
            "wechat": {"token": TOKEN},
            "weibo": {"app_key": "k", "app_secret": WEIBO, "access_token": "t"},
            "sms": {"account_sid": "AC1", "auth_token": TWILIO, "from_": "+15005550006"},
            "open311": {"api_keys": O311},
        },
        dispatch_url="http://127.0.0.1:9/dispatch",
        dispatch_secret=SECRET,
    )
    return await aiohttp_client(create_app(settings, classifier=PlaceholderClassifier(), runner=runner))


def below_500(resp: Any, what: Any) -> None:
    assert resp.status < 500, (resp.status, repr(what)[:300])


async def test_json_reports(client: Any) -> None:
    bodies = examples(
        st.one_of(
            st.fixed_dictionaries(
                {"text": text}, optional={"title": json_values, "contact_phone": json_values, "location": json_values}
            ),
            json_values,
        ),
        50,
    )
    for body in bodies:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
        resp = await client.post("/api/v1/reports", data=data, headers={"Content-Type": "application/json"})
        below_500(resp, body)


@pytest.mark.parametrize("injection", INJECTIONS)
async def test_injections_are_stored_verbatim_and_rendered_escaped(client: Any, injection: str) -> None:
    resp = await client.post("/api/v1/reports", json={"text": f"路灯坏了 {injection}", "title": injection[:100]})
    assert resp.status == 201
    case = (await resp.json())["case_number"]
    report = await (await client.get(f"/api/v1/reports/{case}")).json()
    assert report["text"] == f"路灯坏了 {injection}" and report["title"] == injection[:100]
    page = await (await client.get(f"/report/{case}")).text()
    if "<" in injection:
        assert injection not in page and str(escape(injection)) in page


async def test_multipart_and_urlencoded_reports(client: Any) -> None:
    fields = st.lists(
        st.tuples(
            st.sampled_from(
                ["text", "title", "contact_phone", "location", "lat", "lng", "address", "photos", "form_token", "x"]
            ),
            raw_bytes,
        ),
        max_size=5,
    )
    for parts in examples(fields, 40):
        for path in ("/api/v1/reports", "/report"):
            form = FormData(default_to_multipart=True)
            for name, value in parts:
                if name == "photos":
                    form.add_field(name, io.BytesIO(value), filename="p.png", content_type="image/png")
                else:  # raw bytes in a text part: invalid UTF-8 and GB18030 included
                    form.add_field(name, io.BytesIO(value), content_type="text/plain")
            below_500(await client.post(path, data=form), parts)
        body = b"&".join(name.encode() + b"=" + value for name, value in parts)
        below_500(
            await client.post("/report", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}), body
        )


async def test_wechat_plain_callbacks(client: Any) -> None:
    for i, (content, stamp) in enumerate(
        examples(st.tuples(text, st.one_of(st.just(str(int(time.time()))), text)), 40)
    ):
        stamp, nonce = stamp.encode("utf-8", "replace").decode(), f"n{i}"  # one nonce a query, as WeChat signs
        query = {"timestamp": stamp, "nonce": nonce, "signature": wechat.signature(TOKEN, stamp, nonce)}
        xml = (
            "<xml><ToUserName>gh</ToUserName><FromUserName>oUser</FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType>text</MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{abs(hash(content))}</MsgId></xml>"
        )
        resp = await client.post("/channels/wechat?" + urlencode(query), data=xml.encode("utf-8", "surrogatepass"))
        below_500(resp, content)
        resp = await client.get(
            "/channels/wechat?" + urlencode({**query, "echostr": content[:50]}, errors="surrogatepass")
        )
        below_500(resp, content)


async def test_twilio_webhooks(client: Any) -> None:
    forms = st.dictionaries(
        st.sampled_from(["From", "Body", "MessageSid", "NumMedia", "MediaUrl0", "MessageStatus"]),
        text.map(lambda s: s.encode("utf-8", "replace").decode()),
        max_size=6,
    )
    for form in examples(forms, 40):
        for path in ("/channels/sms/twilio", "/channels/sms/twilio/status"):
            sig = RequestValidator(TWILIO).compute_signature(PUBLIC + path, form)
            resp = await client.post(
                path,
                data=urlencode(form).encode(),
                headers={"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"},
            )
            below_500(resp, form)


async def test_weibo_pushes(client: Any) -> None:
    bodies = st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["text", "event", "position"]),
                "sender_id": json_values,
                "created_at": text,
                "text": json_values,
                "data": json_values,
            }
        ),
    )
    for body in examples(bodies, 40):
        ts = str(int(time.time()))
        query = urlencode({"timestamp": ts, "nonce": "n", "signature": weibo.signature(WEIBO, ts, "n")})
        data = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
        below_500(await client.post(f"/channels/weibo?{query}", data=data), body)


async def test_open311(client: Any) -> None:
    forms = st.dictionaries(
        st.sampled_from(
            ["service_code", "description", "lat", "long", "address_string", "email", "media_url", "attribute[a]"]
        ),
        text,
        max_size=6,
    )
    for form in examples(forms, 40):
        body = urlencode({"api_key": O311, **form}, errors="surrogatepass").encode()
        for fmt in ("json", "xml"):
            resp = await client.post(
                f"/open311/v2/requests.{fmt}", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
            )
            below_500(resp, form)
            resp = await client.get(
                f"/open311/v2/requests.{fmt}?"
                + urlencode(
                    {k: v for k, v in form.items() if k in ("service_code", "description")}
                    | {"end_date": form.get("lat", ""), "start_date": form.get("long", "")},
                    errors="surrogatepass",
                )
            )
            below_500(resp, form)


async def test_dispatch_callbacks(client: Any) -> None:
    bodies = st.one_of(
        raw_bytes,
        st.fixed_dictionaries({"id": text, "case_number": text, "status": text, "note": json_values}).map(
            lambda v: json.dumps(v).encode()
        ),
    )
    for body in examples(bodies, 50):
        stamp = str(int(time.time()))
        headers = {
            dispatch.TIMESTAMP_HEADER: stamp,
            dispatch.SIGNATURE_HEADER: dispatch.signature(SECRET, stamp, body),
            "Content-Type": "application/json",
        }
        below_500(await client.post("/api/v1/dispatch/callback", data=body, headers=headers), body)


async def test_console_forms(client: Any) -> None:
    forms = st.lists(
        st.tuples(st.sampled_from(["_csrf", "username", "password", "next", "score", "t"]), raw_bytes), max_size=5
    )
    for form in examples(forms, 40):
        body = b"&".join(k.encode() + b"=" + v for k, v in form)
        for path in ("/console/login", "/report/ZW20261127000001/rate", "/console/reports/ZW1/actions/confirm"):
            resp = await client.post(path, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            below_500(resp, form)
