"""SMS through Twilio: the real app, twilio's own RequestValidator playing Twilio's side, and a
real local fake of Twilio's REST API (tests/fakes/twilio_api.py) for sends and media."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from channels.base import Account, RawRequest
from channels.errors import InvalidSignature, SendRejected, SendRetryable
from channels.sms import SmsChannel, e164, keyword_event
from channels.sms_providers import decode_possible_base64, form_params, twilio_media_allowed
from gateway import keys
from gateway.core import replies
from gateway.core.classify import PlaceholderClassifier
from gateway.db import Contact, Media, Notification, Report
from gateway.http.app import create_app
from gateway.models import MediaRef, MessageKind, OutboundMessage
from gateway.tasks.notify import notify
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioApi
from tests.harness import FIXTURES, IncomingCase, Prepared, given, run_incoming

PATH = "/channels/sms/twilio"
PUBLIC = "http://gateway.test"  # make_settings' public_url
SENDER = "tel:+8613800000001"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x01" * 100
PNG = b"\x89PNG\r\n\x1a\n" + b"\x02" * 100


@pytest.fixture
async def fake(aiohttp_server: Any) -> FakeTwilioApi:
    api = FakeTwilioApi()
    api.media["ME01"] = (JPEG, "image/jpeg")
    api.media["ME02"] = (PNG, "image/png")
    server = await aiohttp_server(api.app())
    api.base = str(server.make_url("")).rstrip("/")  # type: ignore[attr-defined]
    return api


def twilio_settings(fake: FakeTwilioApi, **more: Any) -> dict[str, Any]:
    return {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_": "+8610690000000",
        "api_base": fake.base,  # type: ignore[attr-defined]
        "media_hosts": "localhost",  # the fake's media host
        **more,
    }


@pytest.fixture
def make_sms(aiohttp_client: Any, make_settings: Callable[..., Any], fake: FakeTwilioApi, runner: Any):
    async def make(**overrides: Any) -> Any:
        """``overrides``: the channel's own settings (``TwilioSettings``) over the test's."""
        own = twilio_settings(fake, **overrides)
        app = create_app(make_settings(channels={"sms": own}), classifier=PlaceholderClassifier(), runner=runner)
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def sms(make_sms: Callable[..., Any]) -> Any:
    return await make_sms()


def signed(token: str = AUTH_TOKEN, url: str | None = None, bad: bool = False) -> Callable[[Prepared], Prepared]:
    """Sign as Twilio does, with twilio's own validator, over the public URL of the request."""

    def prep(p: Prepared) -> Prepared:
        target = url or f"{PUBLIC}{p.path}"
        sig = RequestValidator(token).compute_signature(target, form_params(p.body))
        if bad:
            sig = "A" + sig[1:] if sig[0] != "A" else "B" + sig[1:]
        return replace(p, headers={**FORM, **p.headers, "X-Twilio-Signature": sig})

    return prep


def fx(name: str) -> bytes:
    return (FIXTURES / "sms" / name).read_bytes()


async def rows(client: Any, model: Any) -> list[Any]:
    async with client.app[keys.DB].session() as s:
        return list((await s.scalars(select(model).order_by(model.id))).all())


def media_stored(client_check: Callable[[list[Any]], None]):
    async def check(client: Any) -> None:
        client_check(await rows(client, Media))

    return check


def _two_images_stored(media: list[Any]) -> None:
    assert [(m.state, m.content_type) for m in media] == [("stored", "image/jpeg"), ("stored", "image/png")]


def _opted_out(expected: bool):
    async def check(client: Any) -> None:
        contacts = await rows(client, Contact)
        assert [(c.address, c.opted_out) for c in contacts] == [(SENDER, expected)]

    return check


LONG = urlencode({"MessageSid": "SMx", "From": "+8613800000001", "Body": "路" * 30000})

INCOMING = [
    IncomingCase(
        "valid text",
        PATH,
        fixture="sms/text.form",
        prep=signed(),
        body_contains=("<Response><Message>", "ZW"),
        messages=1,
        reports=1,
        sender=SENDER,
        external_id="SM11111111111111111111111111111111",
        kind="text",
        text="路灯不亮",
    ),
    IncomingCase(
        "media message (MMS, two images fetched with the account's credentials)",
        PATH,
        fixture="sms/mms.form",
        prep=signed(),
        messages=1,
        reports=1,
        kind="image",
        text="井盖坏了",
        check=media_stored(_two_images_stored),
    ),
    IncomingCase(
        "duplicate (Twilio retry)", PATH, fixture="sms/text.form", prep=signed(), repeat=3, messages=1, reports=1
    ),
    IncomingCase("bad signature", PATH, fixture="sms/text.form", prep=signed(bad=True), status=403, messages=0),
    IncomingCase(
        "signed with another token", PATH, fixture="sms/text.form", prep=signed("other"), status=403, messages=0
    ),
    IncomingCase(
        "signed for another URL",
        PATH,
        fixture="sms/text.form",
        prep=signed(url="https://attacker.example/channels/sms/twilio"),
        status=403,
        messages=0,
    ),
    IncomingCase("no signature", PATH, fixture="sms/text.form", headers=FORM, status=403, messages=0),
    IncomingCase(
        "'bodySHA256' in the URL but not as a query key (form body): 403, not a crash",
        PATH,
        fixture="sms/text.form",
        query={"ref": "bodySHA256"},
        prep=signed(),
        status=403,
        messages=0,
    ),
    IncomingCase("missing From", PATH, fixture="sms/missing_from.form", prep=signed(), status=400, messages=0),
    IncomingCase(
        "HELP keyword: answered, nothing stored",
        PATH,
        fixture="sms/help.form",
        prep=signed(),
        body_contains=replies.SMS_HELP,
        messages=0,
        reports=0,
    ),
    IncomingCase(
        "STOP keyword (退订) is remembered on the contact",
        PATH,
        fixture="sms/stop.form",
        prep=signed(),
        body_contains=replies.SMS_OPTED_OUT,
        messages=0,
        reports=0,
        check=_opted_out(True),
    ),
    IncomingCase("oversize body", PATH, body=LONG, prep=signed(), status=413, messages=0),
    IncomingCase("unknown account", "/channels/sms/nosuch", fixture="sms/text.form", prep=signed(), status=404),
]


@pytest.mark.parametrize("case", INCOMING, ids=str)
async def test_incoming(sms: Any, case: IncomingCase) -> None:
    await run_incoming(sms, case)


async def post(client: Any, body: bytes | str, path: str = PATH, **sign: Any) -> Any:
    p = signed(**sign)(Prepared(path, body.encode() if isinstance(body, str) else body, {}, {}))
    return await client.post(p.path, data=p.body, headers=p.headers)


def twiml_text(xml: str) -> str:
    found = re.search(r"<Message>(.*)</Message>", xml)
    return found.group(1) if found else ""


async def test_three_sms_make_one_report_and_each_answer_names_its_case(sms: Any, runner: Any) -> None:
    answers = []
    for i, text in enumerate(["幸福路12号门口的路灯不亮了", "已经三天了，晚上很黑", "提交"]):
        resp = await post(sms, urlencode({"MessageSid": f"SM{i:032d}", "From": "+86 138-0000-0001", "Body": text}))
        assert resp.status == 200 and resp.content_type == "text/xml"
        answers.append(twiml_text(await resp.text()))
    await runner.idle()
    [report] = await rows(sms, Report)
    assert report.sender == SENDER and "晚上很黑" in report.text and not report.session_open
    assert all(report.case_number in a for a in answers), answers
    assert answers[-1] == replies.SUBMITTED.format(case=report.case_number)


async def test_stop_then_start_and_notifications_skip_opted_out_numbers(sms: Any, runner: Any, fake: Any) -> None:
    await post(sms, fx("text.form"))
    await runner.idle()
    [report] = await rows(sms, Report)
    assert (await post(sms, fx("stop.form"))).status == 200
    ctx = sms.app[keys.TASK_CONTEXT]
    async with ctx.pipeline.unit() as s:
        n = Notification(
            report_id=report.id, channel="sms", account="twilio", recipient=SENDER, kind="status", text="x"
        )
        s.add(n)
    await notify(ctx, n.id)
    [n] = await rows(sms, Notification)
    assert (n.state, fake.sent) == ("skipped", [])

    resp = await post(sms, fx("start.form"))
    assert replies.SMS_OPTED_IN in await resp.text()
    async with ctx.pipeline.unit() as s:
        n2 = Notification(
            report_id=report.id, channel="sms", account="twilio", recipient=SENDER, kind="status", text="案件进展"
        )
        s.add(n2)
    await notify(ctx, n2.id)
    sent = [n for n in await rows(sms, Notification) if n.id == n2.id][0]
    assert sent.state == "sent" and sent.external_id and sent.external_id.startswith("SM")
    assert fake.sent[-1]["To"] == "+8613800000001" and fake.sent[-1]["Body"] == "案件进展"
    assert fake.sent[-1]["StatusCallback"] == f"{PUBLIC}/channels/sms/twilio/status"


# --------------------------------------------------------------------------- delivery callbacks


async def _notification(
    client: Any, external_id: str = "SM00000000000000000000000000000001", state: str = "sent"
) -> int:
    async with client.app[keys.TASK_CONTEXT].pipeline.unit() as s:
        n = Notification(channel="sms", account="twilio", recipient=SENDER, kind="status", text="x", state=state)
        n.external_id = external_id
        s.add(n)
    return n.id


async def test_status_callbacks_update_the_notification(sms: Any) -> None:
    await _notification(sms)
    status = f"{PATH}/status"
    assert (await post(sms, fx("status_delivered.form"), status)).status == 204
    assert (await post(sms, fx("status_sent.form"), status)).status == 204
    [n] = await rows(sms, Notification)
    assert n.state == "delivered"  # a late "sent" does not move it back


async def test_failed_21610_marks_the_contact_opted_out(sms: Any) -> None:
    await _notification(sms)
    resp = await post(sms, fx("status_failed_stop.form"), f"{PATH}/status")
    assert resp.status == 204
    [n] = await rows(sms, Notification)
    assert (n.state, n.error) == ("failed", "provider error 21610")
    [c] = await rows(sms, Contact)
    assert (c.address, c.opted_out) == (SENDER, True)


async def test_status_callback_with_bad_signature_changes_nothing(sms: Any) -> None:
    await _notification(sms)
    body = fx("status_delivered.form")
    assert (await post(sms, body, f"{PATH}/status", bad=True)).status == 403
    assert (await post(sms, b"MessageSid=SMx", f"{PATH}/status")).status == 400
    [n] = await rows(sms, Notification)
    assert n.state == "sent"


# --------------------------------------------------------------------------- outbound and media


def account(fake: FakeTwilioApi, **more: Any) -> Account:
    settings = {**given(sms=twilio_settings(fake, **more)), "public_url": PUBLIC}
    return SmsChannel.accounts(settings)["twilio"]


OUTGOING = [
    ("sent", None, None),
    ("bad number (21211) is final", (400, 21211), SendRejected),
    ("opted out at Twilio (21610) is final", (400, 21610), SendRejected),
    ("throttled (429) is retried", (429, 20429), SendRetryable),
    ("Twilio 503 is retried", (503, 20500), SendRetryable),
]


@pytest.mark.parametrize(("label", "failure", "error"), OUTGOING, ids=[o[0] for o in OUTGOING])
async def test_send(fake: FakeTwilioApi, caplog: Any, label: str, failure: Any, error: Any) -> None:
    caplog.set_level(logging.DEBUG)
    if failure:
        fake.fail(*failure)
    msg = OutboundMessage(channel="sms", recipient="tel:+8613800000001", text="案件 ZW2026 已处理完毕。")
    acct = account(fake)
    if error:
        with pytest.raises(error):
            await asyncio.to_thread(SmsChannel().send, msg, acct)
    else:
        result = await asyncio.to_thread(SmsChannel().send, msg, acct)
        assert result.external_id == "SM" + "1".zfill(32)
    assert fake.sent[0]["To"] == "+8613800000001" and fake.sent[0]["From"] == "+8610690000000"
    assert AUTH_TOKEN not in caplog.text  # the declared secret never reaches the logs


async def test_send_refuses_non_numbers_and_unreachable_api_is_retryable(fake: FakeTwilioApi) -> None:
    with pytest.raises(SendRejected):
        await asyncio.to_thread(SmsChannel().send, OutboundMessage("sms", "wechat:abc", "x"), account(fake))
    dead = account(fake, api_base="http://127.0.0.1:9")
    with pytest.raises(SendRetryable):
        await asyncio.to_thread(SmsChannel().send, OutboundMessage("sms", SENDER, "x"), dead)


async def test_fetch_media_sends_credentials_to_twilio_only(fake: FakeTwilioApi, aiohttp_server: Any) -> None:
    url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME01"
    ref = MediaRef(kind=MessageKind.IMAGE, provider_id=url)
    data, ctype = await asyncio.to_thread(SmsChannel().fetch_media, ref, account(fake))
    assert (data, ctype) == (JPEG, "image/jpeg")
    assert fake.cdn_auth == [None]  # the redirect to the media host dropped the credentials
    wrong = Account("twilio", {**account(fake).settings, "auth_token": "nope"})
    with pytest.raises(SendRejected):  # 401: credentials are checked by the fake
        await asyncio.to_thread(SmsChannel().fetch_media, ref, wrong)
    with pytest.raises(SendRejected):
        await asyncio.to_thread(SmsChannel().fetch_media, replace(ref, provider_id="cat.jpg"), account(fake))


async def test_fetch_media_checks_every_redirect_against_the_allow_list(fake: FakeTwilioApi) -> None:
    url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME01"
    ref = MediaRef(kind=MessageKind.IMAGE, provider_id=url)
    fake.redirect_host = "169.254.169.254"  # the API answers with a redirect to an internal address
    with pytest.raises(SendRejected, match="host not allowed"):
        await asyncio.to_thread(SmsChannel().fetch_media, ref, account(fake))
    assert fake.cdn_auth == []  # refused before it was requested
    fake.redirect_host = "localhost"
    with pytest.raises(SendRejected, match="host not allowed"):  # no extra hosts: only Twilio's own
        await asyncio.to_thread(SmsChannel().fetch_media, ref, account(fake, media_hosts=""))
    assert fake.cdn_auth == []
    direct = replace(ref, provider_id="https://10.0.0.7/x.jpg")  # a MediaUrl off Twilio's hosts
    with pytest.raises(SendRejected, match="host not allowed"):
        await asyncio.to_thread(SmsChannel().fetch_media, direct, account(fake))
    assert twilio_media_allowed("https://mms.twiliocdn.com/a", account(fake))
    assert not twilio_media_allowed("http://api.twilio.com/a", account(fake))  # https only
    assert not twilio_media_allowed("https://twilio.com.evil.example/a", account(fake))


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("+8613800000001", "+8613800000001"),
        ("13800000001", "+8613800000001"),
        ("0086 138 0000 0001", "+8613800000001"),
        ("+1 (415) 867-5309", "+14158675309"),
        ("12345", None),
        ("abc", None),
    ],
)
def test_e164(raw: str, want: str | None) -> None:
    assert e164(raw) == want


def test_keywords() -> None:
    assert [keyword_event(t) for t in ("STOP", "退订", " Unsubscribe ", "START", "订阅", "帮助", "路灯坏了")] == [
        "unsubscribe",
        "unsubscribe",
        "unsubscribe",
        "subscribe",
        "subscribe",
        "help",
        None,
    ]


def test_trust_forwarded_accepts_the_url_the_proxy_saw(fake: FakeTwilioApi) -> None:
    body = fx("text.form")
    sig = RequestValidator(AUTH_TOKEN).compute_signature(
        "https://sms.city.example/channels/sms/twilio", form_params(body)
    )
    headers = {"X-Twilio-Signature": sig, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "sms.city.example"}
    req = RawRequest("POST", f"{PUBLIC}{PATH}", headers, {}, body)
    with pytest.raises(InvalidSignature):
        SmsChannel().verify(req, account(fake))  # not trusted by default
    SmsChannel().verify(req, account(fake, trust_forwarded=True))


# --------------------------------------------------------------------------- conformance (../shared)


def test_upstream_signature_vectors_verify(conformance_dir: Path) -> None:
    v = json.loads((conformance_dir / "twilio_signature_vectors_upstream.json").read_text())
    acct = Account("twilio", {"provider": "twilio", "auth_token": v["auth_token"]})
    channel = SmsChannel()

    def check(url: str, body: bytes, sig: str) -> None:
        channel.verify(RawRequest("POST", url, {"X-Twilio-Signature": sig}, {}, body), acct)

    form = urlencode(v["form_case"]["params"]).encode()
    check(v["form_case"]["url"], form, v["form_case"]["x_twilio_signature"])
    for case in v["port_cases"]:
        check(case["url"], form, case["x_twilio_signature"])
    check(
        v["duplicate_params_case"]["url"],
        v["duplicate_params_case"]["raw_form"].encode(),
        v["duplicate_params_case"]["x_twilio_signature"],
    )
    check(v["json_body_case"]["url"], v["json_body_case"]["body"].encode(), v["json_body_case"]["x_twilio_signature"])
    with pytest.raises(InvalidSignature):
        check(v["form_case"]["url"].replace("foo=1", "foo=2"), form, v["form_case"]["x_twilio_signature"])


TWILIO_FILES = [
    "twilio_sms_inbound_basic.form",
    "twilio_mms_inbound_two_media.form",
    "twilio_sms_inbound_base64_body.form",
    "twilio_sms_status_callback_delivered.form",
    "twilio_sms_status_callback_failed_stop.form",
]


@pytest.mark.parametrize("name", TWILIO_FILES)
def test_derived_signatures_verify_as_published(conformance_dir: Path, name: str) -> None:
    meta = json.loads((conformance_dir / "VECTORS.json").read_text())[name]
    acct = Account("twilio", {"provider": "twilio", "auth_token": meta["auth_token"]})
    body = (conformance_dir / name).read_bytes()
    SmsChannel().verify(
        RawRequest("POST", meta["url"], {"X-Twilio-Signature": meta["x_twilio_signature"]}, {}, body), acct
    )
    with pytest.raises(InvalidSignature):
        SmsChannel().verify(
            RawRequest("POST", meta["url"], {"X-Twilio-Signature": "x" + meta["x_twilio_signature"][1:]}, {}, body),
            acct,
        )


async def test_conformance_payloads_through_the_app(
    make_sms: Callable[..., Any], conformance_dir: Path, runner: Any
) -> None:
    # Courier's captures use AccountSid "acctid" and token 6789; re-signed here for our URL.
    client = await make_sms(auth_token="6789")
    read = lambda name: (conformance_dir / name).read_bytes()  # noqa: E731
    assert (await post(client, read("twilio_sms_inbound_basic.form"), token="6789")).status == 200
    assert (await post(client, read("twilio_sms_inbound_basic.form"), token="6789")).status == 200  # retry
    mms = read("twilio_mms_inbound_two_media.form").replace(b"SMe287d7109a5a925f182f0e07fe5b223b", b"SMmms")
    assert (await post(client, mms, token="6789")).status == 200
    await runner.idle()
    [report] = await rows(client, Report)  # same sender, same SID twice, then MMS: one draft
    assert report.sender == "tel:+14133881111" and report.text.startswith("Msg")
    media = await rows(client, Media)
    assert [m.url for m in media] == ["cat.jpg", "dog.jpg"]
    assert all(m.state == "failed" and "not absolute" in (m.error or "") for m in media)  # relative URLs in the capture
    b64 = read("twilio_sms_inbound_base64_body.form").replace(b"SMe287d7109a5a925f182f0e07fe5b223b", b"SMb64")
    assert (await post(client, b64, token="6789")).status == 200
    await runner.idle()
    [report] = await rows(client, Report)
    assert "Bannon Explains The World ...\n\u201cThe Camp of the Saints" in report.text
    await _notification(client, "SMe287d7109a5a925f182f0e07fe5b223b")
    for name, state in [("twilio_sms_status_callback_delivered.form", "delivered")]:
        assert (await post(client, read(name), f"{PATH}/status", token="6789")).status == 204
        assert (await rows(client, Notification))[0].state == state
    resp = await post(client, read("twilio_sms_status_callback_failed_stop.form"), f"{PATH}/status", token="6789")
    assert resp.status == 204
    assert [c.opted_out for c in await rows(client, Contact) if c.address == SENDER] == [True]


def test_base64_bodies_are_decoded_only_when_plausible() -> None:
    assert decode_possible_base64("路灯坏了") == "路灯坏了"
    assert decode_possible_base64("short") == "short"
    encoded = "5bm456aP6Lev5Y+j55qE6Lev54Gv5LiN5Lqu5LqG77yM5bey57uP5LiJ5aSp5LqG77yM5pma5LiK5b6I6buR"
    assert decode_possible_base64(encoded) == "幸福路口的路灯不亮了，已经三天了，晚上很黑"
