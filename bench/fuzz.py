"""Hostile-input fuzzing of a running gateway: every route, ≥ 100,000 generated requests.

    python bench/fuzz.py                                  # 100,000 requests, SQLite
    python bench/fuzz.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
    python bench/fuzz.py --count 5000 --seed 7            # a quick look

Starts ``gateway serve`` in a subprocess on a free port of 127.0.0.1 (SQLite in a temporary
directory, or a fresh database created on the given PostgreSQL server and dropped at the end),
with every channel configured, then sends generated requests to every route with at most
``--concurrency`` in flight, and only to 127.0.0.1. About a third of the channel and callback
requests are signed with the configured secrets, so that the parsers behind the signature checks
get hostile input too. The inputs mix invalid UTF-8, GB18030, NUL bytes, lone surrogates, SQL and
HTML/JS injection strings, huge numbers, deep nesting, long fields, odd content types, XML
entities, multipart oddities and random bytes.

Prints the machine, the status histogram, the count of 5xx answers (with a sample) and of hangs
(no answer within ``--timeout`` seconds), and the server's resident memory at start and end (and
its peak). ``/readyz`` answering 503 "not ready" when the database is slow is its documented
signal to a load balancer and is counted apart (``readyz-503``). The exit status is 1 when there
was any 5xx or hang.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote as _quote
from urllib.parse import urlencode

from aiohttp import ClientError, ClientSession, ClientTimeout, DummyCookieJar, FormData, TCPConnector

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(Path(__file__).resolve().parent))  # after the repository: bench/grid.py must not shadow grid/

from _load import FreshDatabase, free_port  # noqa: E402
from _machine import print_machine  # noqa: E402

from adapters import dispatch  # noqa: E402
from channels import wechat, weibo  # noqa: E402

HOST = "127.0.0.1"
WECHAT_TOKEN, WEIBO_SECRET, TWILIO_TOKEN, DISPATCH_SECRET = "fuzztoken", "fuzzweibo", "fuzztwilio", "fuzzdispatch"
OPEN311_KEY = "fuzz-open311"

# ---------------------------------------------------------------------------- hostile values

STRINGS = [
    "",
    " ",
    "路灯坏了",
    "小区门口的路灯坏了好几天，电话13812345678",
    "\x00",
    "路灯\x00坏了",
    "\ud800",
    "a\udfffb",
    "' OR 1=1; DROP TABLE reports; --",
    "\"; DELETE FROM messages WHERE ''='",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(document.cookie)>',
    "javascript:alert(1)",
    "{{7*7}}{% raw %}",
    "${jndi:ldap://127.0.0.1/a}",
    "../../../../etc/passwd",
    "%00%ff%fe",
    "\u202e\u200b\ufeff",
    "😀" * 50,
    "x" * 70_000,
    "字" * 6000,
    "１２３４５",
    "²³¹",
    "١٢٣",
    "9" * 400,
    "-1",
    "1e999",
    "NaN",
    "ZW20261127000001",
    "ZW" + "9" * 30,
    "\r\nX-Injected: 1",
    "=cmd|' /C calc'!A0",
    "+86 138 1234 5678",
    "0001-01-01",
    "9999-12-31T23:59:59+14:00",
]
RAW = [
    b"",
    b"\xff\xfe\xfd",
    b"\xc3\x28",
    b"\xed\xa0\x80",  # an encoded surrogate
    "路灯坏了".encode("gb18030"),
    "投诉：噪音扰民".encode("gb18030"),
    b"\x00" * 16,
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    b"\xff\xd8\xff" + b"\x00" * 64,
    b"GIF89a" + b"\x00" * 32,
    b"RIFF\x00\x00\x00\x00WEBP",
]


def quote(value: str | bytes) -> str:
    """Percent-encode anything, lone surrogates included (as their UTF-8 bytes)."""
    return _quote(value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value)


def hostile_string(r: random.Random) -> str:
    if r.random() < 0.7:
        return r.choice(STRINGS)
    return "".join(
        chr(r.choice([r.randrange(0, 0x80), r.randrange(0, 0x3000), r.randrange(0, 0x110000)]))
        for _ in range(r.randrange(0, 40))
    )


def hostile_bytes(r: random.Random) -> bytes:
    if r.random() < 0.5:
        return r.choice(RAW)
    if r.random() < 0.5:
        return hostile_string(r).encode("utf-8", "surrogatepass")
    return r.randbytes(r.randrange(0, 300))


def hostile_value(r: random.Random, depth: int = 0) -> Any:
    roll = r.random()
    if depth > 3 or roll < 0.45:
        return hostile_string(r)
    if roll < 0.55:
        return r.choice([0, -1, 2**63, 10**300, 1.5, 1e308, True, False, None])
    if roll < 0.7:
        return [hostile_value(r, depth + 1) for _ in range(r.randrange(0, 4))]
    return {hostile_string(r)[:20]: hostile_value(r, depth + 1) for _ in range(r.randrange(0, 4))}


def json_body(r: random.Random) -> bytes:
    roll = r.random()
    if roll < 0.05:
        n = r.choice([100, 1000, 100_000])
        return b"[" * n + b"]" * n
    if roll < 0.1:
        return b'{"text": "x", "location": {"lat": ' + b"9" * r.choice([30, 400, 5000]) + b', "lng": 1}}'
    if roll < 0.15:
        return b'{"text": "\\ud800\\u0000", "title": "\\udc00"}'
    if roll < 0.2:
        return hostile_bytes(r)
    data: dict[str, Any] = {"text": hostile_string(r) if r.random() < 0.6 else "路灯坏了"}
    for key in ("title", "contact_phone", "location", "extra"):
        if r.random() < 0.4:
            data[key] = hostile_value(r)
    if r.random() < 0.3:
        data["location"] = {"lat": hostile_value(r), "lng": hostile_value(r), "address": hostile_string(r)}
    return json.dumps(data, ensure_ascii=r.random() < 0.5).encode("utf-8", "surrogatepass")


def form_body(r: random.Random, names: list[str]) -> bytes:
    pairs = [(r.choice(names + [hostile_string(r)[:10]]), hostile_string(r)) for _ in range(r.randrange(0, 6))]
    text = "&".join(
        f"{quote(k.encode('utf-8', 'surrogatepass'))}={quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in pairs
    )
    if r.random() < 0.2:
        return text.encode() + b"&raw=" + hostile_bytes(r)
    return text.encode()


def multipart(r: random.Random, names: list[str]) -> FormData:
    form = FormData(default_to_multipart=True)
    for _ in range(r.randrange(0, 5)):
        name = r.choice(names)
        if name == "photos":
            form.add_field(
                name,
                hostile_bytes(r),
                filename=r.choice(["a.png", "..\\..\\x", "照片.jpg", ""]),
                content_type=r.choice(["image/png", "text/html", "application/x-php"]),
            )
        elif name == "location" and r.random() < 0.5:
            form.add_field(name, json.dumps(hostile_value(r)))
        else:
            form.add_field(
                name,
                hostile_string(r).encode("utf-8", "surrogatepass"),
                content_type=r.choice(["text/plain", "text/plain; charset=gb18030", "application/json"]),
            )
    return form


def wechat_xml(r: random.Random) -> bytes:
    if r.random() < 0.1:
        return (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
            b"<xml><Content>&b;</Content></xml>"
        )
    if r.random() < 0.1:
        return hostile_bytes(r)
    fields = {
        "ToUserName": "gh_fuzz",
        "FromUserName": r.choice(["oFuzzUser000000000000000001", hostile_string(r)[:300]]),
        "CreateTime": r.choice([str(int(time.time())), "9" * 30, "-5", hostile_string(r)]),
        "MsgType": r.choice(["text", "image", "location", "event", "voice", hostile_string(r)[:20]]),
        "Content": hostile_string(r),
        "MsgId": str(r.randrange(10**18)),
        "Location_X": hostile_string(r)[:30],
        "Event": r.choice(["subscribe", "LOCATION", hostile_string(r)[:20]]),
    }
    body = "<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items() if r.random() < 0.9) + "</xml>"
    encoding = r.choice(["utf-8", "utf-8", "gb18030"])
    head = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding != "utf-8" else ""
    return (head + body).encode(encoding, "replace")


# ---------------------------------------------------------------------------- requests


def make_request(r: random.Random, base: str) -> tuple[str, str, dict[str, str], Any]:
    """(method, path with query, headers, body) for one generated request."""
    kind = r.randrange(14)
    now = int(time.time())
    if kind == 0:
        return (
            "POST",
            "/api/v1/reports",
            {"Content-Type": r.choice(["application/json", "text/plain", ""])},
            json_body(r),
        )
    if kind == 1:
        return (
            "POST",
            r.choice(["/api/v1/reports", "/report"]),
            {},
            multipart(
                r, ["text", "title", "contact_phone", "location", "lat", "lng", "address", "photos", "form_token"]
            ),
        )
    if kind == 2:
        names = ["text", "title", "contact_phone", "lat", "lng", "address"]
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if r.random() < 0.3:
            headers["Idempotency-Key"] = quote(hostile_string(r))[:300] or "k"
        return "POST", r.choice(["/api/v1/reports", "/report"]), headers, form_body(r, names)
    if kind == 3:
        case = r.choice(["ZW20261127000001", quote(hostile_string(r).encode("utf-8", "surrogatepass"))[:100] or "x"])
        path = r.choice([f"/api/v1/reports/{case}", f"/report/{case}", f"/report/{case}/rate?t={case}"])
        return "GET", path, {}, None
    if kind == 4:
        query = {
            "timestamp": r.choice([str(now), "9" * 400, "²", hostile_string(r)[:20]]),
            "nonce": hostile_string(r)[:20],
            "echostr": hostile_string(r)[:50],
        }
        query = {k: v.encode("utf-8", "replace").decode() for k, v in query.items()}
        if r.random() < 0.5:
            query["signature"] = wechat.signature(WECHAT_TOKEN, query["timestamp"], query["nonce"])
        method = r.choice(["GET", "POST"])
        return (
            method,
            "/channels/wechat?" + urlencode(query, encoding="utf-8", errors="surrogatepass"),
            {"Content-Type": "text/xml"},
            wechat_xml(r) if method == "POST" else None,
        )
    if kind == 5:
        params = {
            "From": r.choice(["+8613812345678", hostile_string(r)]),
            "To": "+15005550006",
            "Body": hostile_string(r),
            "MessageSid": "SM" + uuid.uuid4().hex,
            "NumMedia": r.choice(["0", "1", "99", "-1", hostile_string(r)[:5]]),
            "MediaUrl0": r.choice(["https://api.twilio.com/x", "http://127.0.0.1:1/x", hostile_string(r)]),
            "MessageStatus": r.choice(["delivered", "failed", hostile_string(r)[:10]]),
        }
        params = {k: v.encode("utf-8", "replace").decode() for k, v in params.items() if r.random() < 0.85}
        path = r.choice(["/channels/sms/twilio", "/channels/sms/twilio/status"])
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if r.random() < 0.4:
            from twilio.request_validator import RequestValidator

            headers["X-Twilio-Signature"] = RequestValidator(TWILIO_TOKEN).compute_signature(base + path, params)
        return "POST", path, headers, urlencode(params).encode()
    if kind == 6:
        ts = (
            r.choice([str(now), str(now * 1000), "9" * 400, hostile_string(r)[:20]]).encode("utf-8", "replace").decode()
        )
        nonce = hostile_string(r)[:20].encode("utf-8", "replace").decode()
        query = {"timestamp": ts, "nonce": nonce, "echostr": "e"}
        if r.random() < 0.6:
            query["signature"] = weibo.signature(WEIBO_SECRET, ts, nonce)
        body = (
            json.dumps(
                {
                    "type": r.choice(["text", "event", "image", "position", hostile_string(r)[:10]]),
                    "receiver_id": 1,
                    "sender_id": hostile_value(r),
                    "created_at": hostile_string(r)[:40],
                    "text": hostile_string(r),
                    "data": hostile_value(r),
                },
                ensure_ascii=False,
            ).encode("utf-8", "surrogatepass")
            if r.random() < 0.8
            else json_body(r)
        )
        method = r.choice(["GET", "POST", "POST"])
        path = "/channels/weibo?" + urlencode(query, encoding="utf-8", errors="surrogatepass")
        return method, path, {"Content-Type": "application/json"}, body if method == "POST" else None
    if kind == 7:
        query = {
            k: hostile_string(r)[:60]
            for k in r.sample(
                ["start_date", "end_date", "status", "service_code", "service_request_id"], r.randrange(0, 4)
            )
        }
        if r.random() < 0.2:
            query["end_date"] = r.choice(["0001-01-01", "9999-12-31T23:59:59-12:00", "2026-02-30"])
        fmt = r.choice(["json", "xml"])
        path = r.choice(
            [
                f"/open311/v2/requests.{fmt}",
                f"/open311/v2/services.{fmt}",
                f"/open311/v2/services/{quote(hostile_string(r)[:10] or '0101')}.{fmt}",
                f"/open311/v2/requests/{quote(hostile_string(r)[:20] or 'ZW1')}.{fmt}",
                f"/open311/v2/discovery.{fmt}",
            ]
        )
        return "GET", path + "?" + urlencode(query, encoding="utf-8", errors="surrogatepass"), {}, None
    if kind == 8:
        names = [
            "api_key",
            "service_code",
            "description",
            "lat",
            "long",
            "address_string",
            "email",
            "phone",
            "media_url",
            "attribute[x]",
            "device_id",
            "account_id",
        ]
        body = form_body(r, names)
        if r.random() < 0.5:
            body = f"api_key={OPEN311_KEY}&service_code=0101&".encode() + body
        return (
            "POST",
            f"/open311/v2/requests.{r.choice(['json', 'xml'])}",
            {"Content-Type": r.choice(["application/x-www-form-urlencoded", "application/json"])},
            body,
        )
    if kind == 9:
        payload: Any = {
            "id": hostile_string(r)[:130],
            "case_number": r.choice(["ZW20261127000001", hostile_string(r)]),
            "status": r.choice(["accepted", "rejected", "returned", hostile_string(r)[:10]]),
            "note": hostile_value(r),
        }
        body = (
            json.dumps(payload, ensure_ascii=r.random() < 0.5).encode("utf-8", "surrogatepass")
            if r.random() < 0.8
            else json_body(r)
        )
        stamp = r.choice([str(now)] * 4 + ["²", "9" * 400, hostile_string(r)[:15]])
        headers = {
            "Content-Type": "application/json",
            dispatch.TIMESTAMP_HEADER: stamp.encode("utf-8", "replace").decode("latin-1"),
            dispatch.SIGNATURE_HEADER: "sha256=00",
        }
        if r.random() < 0.6:
            headers[dispatch.SIGNATURE_HEADER] = dispatch.signature(DISPATCH_SECRET, stamp, body)
        return "POST", "/api/v1/dispatch/callback", headers, body
    if kind == 10:
        body = form_body(r, ["_csrf", "username", "password", "next"])
        path = r.choice(
            [
                "/console/login",
                "/console/logout",
                "/console/reports/ZW20261127000001/actions/confirm",
                "/report/ZW20261127000001/rate",
            ]
        )
        return (
            "POST",
            path,
            {"Content-Type": r.choice(["application/x-www-form-urlencoded", "multipart/form-data"])},
            body,
        )
    if kind == 11:
        path = r.choice(
            [
                "/console/",
                "/console/login?next=" + quote(hostile_string(r)[:50]),
                "/console/overview",
                "/api/v1/admin/queue",
                "/api/v1/stats",
                "/metrics",
                "/healthz",
                "/readyz",
                "/api/openapi.json",
                "/media/" + "a" * 64,
                "/media/../../etc/passwd",
                "/report",
                "/console/static/x.js",
            ]
        )
        return "GET", path, {"Cookie": f"gw_console={quote(hostile_string(r)[:80])}"}, None
    if kind == 12:
        return (
            r.choice(["PUT", "DELETE", "PATCH", "OPTIONS", "POST"]),
            "/" + quote(hostile_string(r)[:50].encode("utf-8", "surrogatepass")),
            {},
            hostile_bytes(r),
        )
    # random content types and bodies on the write routes
    path = r.choice(
        [
            "/api/v1/reports",
            "/report",
            "/channels/wechat",
            "/channels/weibo",
            "/api/v1/dispatch/callback",
            "/open311/v2/requests.json",
            "/console/login",
        ]
    )
    ctype = r.choice(
        [
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "application/json; charset=gb18030",
            "application/x-www-form-urlencoded; charset=latin-1",
            "text/xml",
            "image/png",
            "",
        ]
    )
    return "POST", path, {"Content-Type": ctype}, hostile_bytes(r) * r.choice([1, 1, 1000])


# ---------------------------------------------------------------------------- the run


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"gateway exited with {proc.returncode}")
            try:
                async with session.get(base + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("gateway did not start")


async def fuzz(base: str, args: argparse.Namespace, pid: int) -> dict[str, Any]:
    r = random.Random(args.seed)
    histogram: collections.Counter[str] = collections.Counter()
    errors: list[str] = []
    hangs: list[str] = []
    replaced = [0]  # generated requests the client library refused to send (replaced by others)
    peak = rss_kib(pid)
    sem = asyncio.Semaphore(args.concurrency)
    timeout = ClientTimeout(total=args.timeout)
    connector = TCPConnector(limit=args.concurrency, force_close=False)

    async with ClientSession(connector=connector, cookie_jar=DummyCookieJar(), timeout=timeout) as session:

        async def one(i: int) -> None:
            nonlocal peak
            for _ in range(20):  # a request the client library refuses to send is replaced by another
                try:
                    method, path, headers, body = make_request(r, base)
                    assert base.startswith(f"http://{HOST}:")  # only ever the local server
                    async with sem:
                        async with session.request(
                            method, base + path, headers=headers, data=body, allow_redirects=False
                        ) as resp:
                            await resp.read()
                            if resp.status == 503 and path == "/readyz":
                                # "not ready": the load balancer's signal when the database is slow
                                histogram["readyz-503"] += 1
                                break
                            histogram[str(resp.status)] += 1
                            if resp.status >= 500 and len(errors) < 20:
                                errors.append(f"{resp.status} {method} {path[:120]} body={str(body)[:160]!r}")
                except TimeoutError:
                    histogram["hang"] += 1
                    if len(hangs) < 10:
                        hangs.append(f"{method} {path[:120]}")
                except ClientError as exc:
                    histogram[f"client:{type(exc).__name__}"] += 1
                except (UnicodeError, ValueError):  # not sendable (header injection, surrogates): another
                    replaced[0] += 1
                    continue
                break
            if i % 2000 == 0:
                peak = max(peak, rss_kib(pid))
                print(f"  {i:>7} sent, rss {rss_kib(pid) // 1024} MiB", file=sys.stderr, flush=True)

        started = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        for i in range(args.count):
            if len(pending) >= args.concurrency * 4:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending.add(asyncio.create_task(one(i)))
        await asyncio.gather(*pending)
        elapsed = time.monotonic() - started
    return {
        "histogram": histogram,
        "errors": errors,
        "hangs": hangs,
        "elapsed": elapsed,
        "peak": peak,
        "replaced": replaced[0],
    }


def start_gateway(args: argparse.Namespace, tmp: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GATEWAY_VAR_DIR": str(tmp / "var"),
        "GATEWAY_DATABASE_URL": args.database_url or f"sqlite+aiosqlite:///{tmp / 'fuzz.db'}",
        "GATEWAY_CLASSIFIER": "placeholder",
        "GATEWAY_LOG_LEVEL": "ERROR",
        "GATEWAY_LOG_FORMAT": "json",
        "GATEWAY_PUBLIC_URL": f"http://{HOST}:{port}",
        "GATEWAY_SECRET_KEY": "fuzz-secret-key",
        "GATEWAY_WECHAT_TOKEN": WECHAT_TOKEN,
        "GATEWAY_WECHAT_APP_ID": "wxfuzz",
        "GATEWAY_WECHAT_API_BASE": "http://127.0.0.1:9/",
        "GATEWAY_TWILIO_ACCOUNT_SID": "ACfuzz",
        "GATEWAY_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "GATEWAY_TWILIO_FROM": "+15005550006",
        "GATEWAY_TWILIO_API_BASE": "http://127.0.0.1:9/",
        "GATEWAY_WEIBO_APP_KEY": "fuzz",
        "GATEWAY_WEIBO_APP_SECRET": WEIBO_SECRET,
        "GATEWAY_WEIBO_ACCESS_TOKEN": "fuzz",
        "GATEWAY_WEIBO_API_BASE": "http://127.0.0.1:9/",
        "GATEWAY_OPEN311_API_KEYS": OPEN311_KEY,
        "GATEWAY_DISPATCH_URL": "http://127.0.0.1:9/dispatch",
        "GATEWAY_DISPATCH_SECRET": DISPATCH_SECRET,
        "GATEWAY_REDIS_URL": "",
    }
    env.pop("GATEWAY_REDIS_URL")
    log = open(tmp / "gateway.log", "wb")  # noqa: SIM115 - closed with the process
    cmd = [sys.executable, "-m", "gateway.cli", "serve", "--host", HOST, "--port", str(port)]
    return subprocess.Popen(cmd, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a request counts as a hang")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep-log", help="write the server log to this file")
    parser.add_argument("--database-url", help="postgresql+asyncpg://... server to create a fresh database on")
    args = parser.parse_args()
    # A database of its own on the server, created here and dropped after (even on a failure).
    fresh = FreshDatabase(args.database_url) if args.database_url else contextlib.nullcontext(None)
    print_machine()
    with fresh as url, tempfile.TemporaryDirectory(prefix="gw-fuzz-") as tmpdir:
        args.database_url = url
        tmp = Path(tmpdir)
        port = free_port()
        proc = start_gateway(args, tmp, port)
        base = f"http://{HOST}:{port}"
        try:
            asyncio.run(wait_ready(base, proc))
            time.sleep(1.0)
            rss_start = rss_kib(proc.pid)
            print(
                f"gateway pid {proc.pid} on {base}, database {'postgresql' if url else 'sqlite'}, "
                f"{args.count} requests, {args.concurrency} in flight, seed {args.seed}"
            )
            result = asyncio.run(fuzz(base, args, proc.pid))
            rss_end = rss_kib(proc.pid)
            alive = proc.poll() is None
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            server_log = (tmp / "gateway.log").read_text(errors="replace")
            if args.keep_log:
                Path(args.keep_log).write_text(server_log)
    hist = result["histogram"]
    fivexx = sum(n for status, n in hist.items() if status.isdigit() and int(status) >= 500)
    sent = sum(hist.values())
    rate = sent / result["elapsed"]
    print(
        f"\n{sent} requests sent in {result['elapsed']:.0f} s ({rate:.0f}/s); "
        f"{result['replaced']} generated ones the client refused to send were replaced"
    )
    print("status histogram:", ", ".join(f"{k}: {v}" for k, v in sorted(hist.items())))
    print(f"5xx: {fivexx}   hangs: {hist.get('hang', 0)}   server alive at the end: {alive}")
    print(f"server RSS: start {rss_start // 1024} MiB, end {rss_end // 1024} MiB, peak {result['peak'] // 1024} MiB")
    for line in result["errors"]:
        print("  5xx:", line)
    for line in result["hangs"]:
        print("  hang:", line)
    tracebacks = [line for line in server_log.splitlines() if '"level": "error"' in line]
    if tracebacks:
        print(f"server error log lines: {len(tracebacks)}; first: {tracebacks[0][:1500]}")
    return 1 if fivexx or hist.get("hang", 0) or not alive else 0


if __name__ == "__main__":
    raise SystemExit(main())
