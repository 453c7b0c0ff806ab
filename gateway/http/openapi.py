"""The OpenAPI 3.1 document of every public route, served at ``/api/openapi.json`` and drawn by
the vendored Swagger UI at ``/api/docs``. The console's pages (``/console/...``) are left out:
they are the moderators' HTML screens behind a login and CSRF tokens, not an API; the
console's machine routes (``/api/v1/admin/...``) are in.

Request bodies and JSON answers are the JSON Schema of the models the handlers validate with
or build their answer through: the web channel's and the Open311 channel's request models
(found through the registry, ``BaseChannel.request_model``: gateway/ imports no concrete
channel), the dispatch ``Callback``, ``ReportOut``, the GeoReport answers of
``adapters/georeport.py`` and the small answer models beside each handler. A form body is the
same model flattened as the form sends it. Provider callbacks (WeChat XML, Twilio form, Weibo
JSON) keep the provider's format: the document describes the payload and the signature
parameters (``BaseChannel.provider_format``) and links the provider's docs instead of a schema.

``tests/test_openapi.py`` walks ``app.router`` against this document, checks every example
against its schema and the document against the OpenAPI 3.1 schema, and posts the examples.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from adapters import dispatch as signing
from adapters import georeport as geo
from channels.base import BaseChannel, SupportsDeliveryReports
from gateway import keys
from gateway.console.views import QueueOut
from gateway.core.schema import ReportOut
from gateway.dispatch.stats import GRID_LEVELS
from gateway.http import examples as ex
from gateway.http.dispatch import Callback, CallbackConflict, CallbackResult, Stats
from gateway.http.edge import MAX_IDEMPOTENCY_KEY
from gateway.http.floods import TooManyPosts
from gateway.http.ops import Health, Readiness
from gateway.http.rating import RatingForm
from gateway.http.reports import ApiError, ReportCreated

REF = "#/components/schemas/{model}"
Json = dict[str, Any]
_FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")
_TEXT = {"type": "string"}


class _Components:
    """The schemas the paths refer to, each model once under its class name."""

    def __init__(self) -> None:
        self.schemas: Json = {}

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> Json:
        schema = model.model_json_schema(ref_template=REF, mode=mode)
        for name, sub in {**schema.pop("$defs", {}), model.__name__: schema}.items():
            self.add(name, sub)
        return {"$ref": REF.format(model=model.__name__)}

    def add(self, name: str, schema: Json) -> Json:
        if self.schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are named {name}")
        return {"$ref": REF.format(model=name)}


# ---------------------------------------------------------------------------- small helpers


def _op(summary: str, tag: str, responses: Json, *, params: Iterable[Json] = (), **more: Any) -> Json:
    out: Json = {"summary": summary, "tags": [tag], "responses": responses, **more}
    if params:
        out["parameters"] = list(params)
    return out


def _answer(description: str, content: Json | None = None, **more: Any) -> Json:
    return {"description": description, **({"content": content} if content else {}), **more}


def _json(schema: Json, example: Any) -> Json:
    return {"application/json": {"schema": schema, "example": example}}


def _text(media_type: str, example: str | None = None) -> Json:
    return {media_type: {"schema": _TEXT, **({"example": example} if example is not None else {})}}


def _body(content: Json, description: str | None = None) -> Json:
    return {"required": True, "content": content, **({"description": description} if description else {})}


def _param(name: str, where: str, description: str, schema: Json | None = None, *, required: bool = False) -> Json:
    out = {"name": name, "in": where, "required": required or where == "path", "description": description}
    return out | {"schema": schema or _TEXT}


def _path(name: str, description: str, schema: Json | None = None, example: str | None = None) -> Json:
    return _param(name, "path", description, schema) | ({"example": example} if example else {})


def _query(name: str, description: str, schema: Json | None = None) -> Json:
    return _param(name, "query", description, schema)


def _header(name: str, description: str, schema: Json | None = None, *, required: bool = False) -> Json:
    return _param(name, "header", description, schema, required=required)


_IDEMPOTENCY = _header(
    "Idempotency-Key",
    "a retry with the same key answers with the first post's report (200) instead of a new one; keys are"
    " scoped per channel, not per client, so use a random one (a UUID)",
    {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
)
_CASE = _path("case", "the case number", example=ex.CASE)
_RETRY_AFTER = {"Retry-After": {"description": "seconds until the window ends", "schema": {"type": "integer"}}}
_BUSY = (
    "busy: intake saturated (GATEWAY_INTAKE_MAX_IN_FLIGHT), no database connection free, or the media disk"
    " full; nothing was stored, so send it again after Retry-After"
)
_RETRY_BUSY = {"Retry-After": {"description": "seconds to wait before sending again", "schema": {"type": "integer"}}}
_FLOODED = "too many posts from this address (GATEWAY_FLOOD_IP_LIMIT per GATEWAY_FLOOD_WINDOW_S)"
# /metrics and /api/v1/stats: open (GATEWAY_METRICS_PUBLIC, or development), else loopback or the token.
_OPS_SECURITY: list[Json] = [{}, {"metricsToken": []}]
_OPS_CLOSED = "closed (GATEWAY_METRICS_PUBLIC): a local client or GATEWAY_METRICS_TOKEN only"


# ---------------------------------------------------------------------------- the document


def openapi_document(public_url: str, chans: Mapping[str, BaseChannel]) -> Json:
    c = _Components()
    paths: Json = {}
    paths |= _report_paths(c, public_url, chans)
    paths |= _form_paths(c, chans)
    paths |= _open311_paths(c, public_url, chans)
    paths |= _channel_paths(chans)
    paths |= _dispatch_paths(c)
    paths |= _admin_paths(c)
    paths |= _ops_paths(c)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Citizen interaction gateway",
            "version": "1",
            "description": "Every public route of the gateway. Request bodies and JSON answers are the models the"
            " handlers validate with; provider callbacks are described in the provider's own format.",
        },
        "servers": [{"url": public_url}],
        "paths": paths,
        "components": {
            "schemas": c.schemas,
            "securitySchemes": {
                "adminKey": {"type": "http", "scheme": "bearer", "description": "an API key (`gateway apikey add`)"},
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "GATEWAY_METRICS_TOKEN: /metrics and /api/v1/stats when they are not public",
                },
            },
        },
    }


def _request_model(chans: Mapping[str, BaseChannel], name: str) -> type[BaseModel]:
    model = chans[name].request_model
    if model is None:
        raise ValueError(f"channel {name!r} declares no request_model")
    return model


def _flat_form(c: _Components, model: type[BaseModel], name: str, *, photos: bool, token: bool) -> Json:
    """The web model as a form sends it: ``location`` flattened to ``lat``/``lng``/``address``."""
    schema = model.model_json_schema(ref_template=REF, mode="validation")
    ref = next(s["$ref"] for s in schema["properties"]["location"]["anyOf"] if "$ref" in s)
    location = schema.pop("$defs")[ref.rsplit("/", 1)[1]]["properties"]
    props = {k: v for k, v in schema["properties"].items() if k != "location"} | location
    if photos:
        props["photos"] = {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "JPEG, PNG, GIF or WebP images (multipart only)",
        }
    if token:
        props["form_token"] = {"type": "string", "description": "the page's one-use token against double submits"}
    form = {**schema, "title": name, "properties": props}
    form["description"] = f"The fields of {schema['title']} as a form: `lat`/`lng`/`address` make the location."
    return c.add(name, form)


def _report_paths(c: _Components, public_url: str, chans: Mapping[str, BaseChannel]) -> Json:
    new = _request_model(chans, "web")
    form = _flat_form(c, new, "NewReportForm", photos=True, token=False)
    error = c.ref(ApiError)
    created = c.ref(ReportCreated)
    return {
        "/api/v1/reports": {
            "post": _op(
                "File a complaint (网上民声)",
                "reports",
                {
                    "201": _answer(
                        "created; Location is the report's URL",
                        _json(created, ex.report_created(public_url)),
                        headers={"Location": {"schema": _TEXT}},
                    ),
                    "200": _answer(
                        "a retry with the same Idempotency-Key: the first post's report",
                        _json(created, {**ex.report_created(public_url), "duplicate": True}),
                    ),
                    "400": _answer("invalid fields, each named", _json(error, ex.INVALID_REPORT)),
                    "413": _answer("body too large", _json(error, ex.TOO_LARGE)),
                    "415": _answer("neither JSON nor a form", _json(error, {"error": "use application/json"})),
                    "429": _answer(_FLOODED, _json(c.ref(TooManyPosts), ex.FLOODED_POSTS), headers=_RETRY_AFTER),
                    "503": _answer(_BUSY, _json(error, {"error": "busy, retry later"}), headers=_RETRY_BUSY),
                },
                params=[
                    _IDEMPOTENCY,
                    _header("X-Client-Id", "an integrator's id for the resident (their reports' sender)"),
                ],
                requestBody=_body(
                    {
                        **_json(c.ref(new, "validation"), ex.NEW_REPORT),
                        **{media: {"schema": form, "example": ex.NEW_REPORT_FORM} for media in _FORMS},
                    }
                ),
            )
        },
        "/api/v1/reports/{case}": {
            "get": _op(
                "A report by case number (sender hidden, personal data masked, location coarse)",
                "reports",
                {
                    "200": _answer(
                        "the report; with the reporter's token, the reporter's own view (their text, phone and"
                        " exact location; `Cache-Control: private, no-store`)",
                        _json(c.ref(ReportOut), ex.report(public_url)),
                    ),
                    "403": _answer("a wrong token", _json(error, ex.INVALID_LINK)),
                    "404": _answer("no such report", _json(error, ex.NOT_FOUND)),
                },
                params=[
                    _CASE,
                    _query("t", "the reporter's token from `status_url` (the signed link): the reporter's own view"),
                ],
            )
        },
        "/media/{sha256}": {
            "get": _op(
                "A stored photo, voice note or video (a report's `media[].url`)",
                "reports",
                {"200": _answer("the file, with its content type"), "404": _answer("unknown")},
                params=[_path("sha256", "the file's SHA-256", {"type": "string", "pattern": "^[0-9a-f]{64}$"})],
            )
        },
    }


def _html(description: str) -> Json:
    return _answer(description, _text("text/html"))


def _form_paths(c: _Components, chans: Mapping[str, BaseChannel]) -> Json:
    form = _flat_form(c, _request_model(chans, "web"), "ReportPageForm", photos=True, token=True)
    rating = c.ref(RatingForm, "validation")
    return {
        "/report": {
            "get": _op("The complaint form for phone browsers (HTML, Chinese)", "web form", {"200": _html("the form")}),
            "post": _op(
                "Submit the form: the same model as the API, answered in HTML",
                "web form",
                {
                    "303": _answer("to the status page", headers={"Location": {"schema": _TEXT}}),
                    "400": _html("the form again, with Chinese errors beside the fields"),
                    "413": _answer("body too large"),
                    "429": _answer(_FLOODED + ": the form again, saying so", _text("text/html"), headers=_RETRY_AFTER),
                },
                requestBody=_body({media: {"schema": form, "example": ex.NEW_REPORT_FORM} for media in _FORMS}),
            ),
        },
        "/report/{case}": {
            "get": _op(
                "A case's status page (HTML)",
                "web form",
                {"200": _html("the status page"), "404": _answer("unknown case", _text("text/plain"))},
                params=[_CASE, _query("new", "`1` right after filing: the page says so")],
            )
        },
        "/report/{case}/rate": {
            "get": _op(
                "The signed rating page (统一评价, HTML)",
                "web form",
                {"200": _html("the page"), "403": _html("bad link"), "409": _html("not resolved yet")},
                params=[_CASE, _query("t", "the signed link's token")],
            ),
            "post": _op(
                "Rate the handling 1-5",
                "web form",
                {
                    "200": _html("thanks"),
                    "400": _html("the page again, with the errors"),
                    "403": _html("bad link"),
                    "409": _html("not resolved yet"),
                },
                params=[_CASE],
                requestBody=_body({"application/x-www-form-urlencoded": {"schema": rating, "example": ex.RATING}}),
            ),
        },
        "/static/report_locate.js": {
            "get": _op("The form's one script (use my location)", "web form", {"200": _answer("JavaScript")})
        },
    }


# ---------------------------------------------------------------------------- Open311


def _geo(c: _Components, model: type[BaseModel] | None, example: Any, root: str, item: str | None) -> Json:
    """A GeoReport answer: JSON (the model, or a list of it when ``item`` is set) and the same as XML."""
    schema = c.ref(model) if model else {"type": "array", "items": c.ref(geo.ErrorOut)}
    if item and model:
        schema = {"type": "array", "items": schema}
    xml = geo.to_xml(root, item, example).decode("utf-8")
    return {**_json(schema, example), **_text("text/xml", xml)}


def _geo_errors(c: _Components, *statuses: int) -> Json:
    texts = {
        400: ("invalid", ex.GEOREPORT_ERRORS),
        403: ("bad api_key", ex.GEOREPORT_FORBIDDEN),
        404: ("not found", ex.GEOREPORT_NOT_FOUND),
        413: ("body too large", [{"code": 413, "description": "request body larger than 65536 bytes"}]),
        429: (_FLOODED, ex.GEOREPORT_FLOODED),
    }
    more = {429: {"headers": _RETRY_AFTER}}
    return {
        str(s): _answer(texts[s][0], _geo(c, None, texts[s][1], "errors", "error"), **more.get(s, {})) for s in statuses
    }


def _open311_paths(c: _Components, public_url: str, chans: Mapping[str, BaseChannel]) -> Json:
    fmt = _path("fmt", "the answer's format", {"enum": ["json", "xml"]})
    one = [ex.service_request(public_url)]
    lists = [
        _query("start_date", "ISO 8601; default: 90 days before end_date", {"type": "string", "format": "date-time"}),
        _query("end_date", "ISO 8601; default: now", {"type": "string", "format": "date-time"}),
        _query("status", "open or closed", {"enum": ["open", "closed"]}),
        _query("service_code", "comma-separated service codes"),
        _query("service_request_id", "comma-separated case numbers (the other filters are then ignored)"),
        _query("extensions", "`true`: the grid unit in `extended_attributes`", {"enum": ["true", "false"]}),
    ]
    created = _geo(c, geo.RequestCreatedOut, ex.REQUEST_CREATED, "service_requests", "request")
    form = c.ref(_request_model(chans, "open311"), "validation")
    summary_list = "GeoReport v2 requests of every channel, newest first, at most 200 (phones masked)"
    return {
        "/open311/v2/discovery.{fmt}": {
            "get": _op(
                "GeoReport v2 discovery",
                "open311",
                {"200": _answer("discovery", _geo(c, geo.DiscoveryOut, ex.discovery(public_url), "discovery", None))},
                params=[fmt],
            )
        },
        "/open311/v2/services.{fmt}": {
            "get": _op(
                "GeoReport v2 services (the taxonomy's subcategories)",
                "open311",
                {"200": _answer("services", _geo(c, geo.ServiceOut, [ex.SERVICE], "services", "service"))},
                params=[fmt],
            )
        },
        "/open311/v2/services/{code}.{fmt}": {
            "get": _op(
                "GeoReport v2 service definition",
                "open311",
                {
                    "200": _answer(
                        "definition",
                        _geo(c, geo.ServiceDefinitionOut, ex.SERVICE_DEFINITION, "service_definition", None),
                    ),
                    **_geo_errors(c, 404),
                },
                params=[_path("code", "a service_code", example="0102"), fmt],
            )
        },
        "/open311/v2/requests.{fmt}": {
            "get": _op(
                summary_list,
                "open311",
                {
                    "200": _answer("requests", _geo(c, geo.ServiceRequestOut, one, "service_requests", "request")),
                    **_geo_errors(c, 400),
                },
                params=[fmt, *lists],
            ),
            "post": _op(
                "GeoReport v2 new request: a report like any other channel's",
                "open311",
                {
                    "201": _answer("created", created),
                    "200": _answer("a retry with the same Idempotency-Key: the first request", created),
                    **_geo_errors(c, 400, 403, 413, 429),
                    "503": _answer(_BUSY, _text("text/plain", "busy, retry later"), headers=_RETRY_BUSY),
                },
                params=[fmt, _IDEMPOTENCY],
                requestBody=_body(
                    {"application/x-www-form-urlencoded": {"schema": form, "example": ex.SERVICE_REQUEST}}
                ),
            ),
        },
        "/open311/v2/requests/{id}.{fmt}": {
            "get": _op(
                "GeoReport v2 one request",
                "open311",
                {
                    "200": _answer("the request", _geo(c, geo.ServiceRequestOut, one, "service_requests", "request")),
                    **_geo_errors(c, 404),
                },
                params=[_path("id", "the case number", example=ex.CASE), fmt],
            )
        },
    }


# ---------------------------------------------------------------------------- provider callbacks


def _channel_paths(chans: Mapping[str, BaseChannel]) -> Json:
    generic = {n: ch for n, ch in chans.items() if not ch.own_routes}
    described = {n: ch.provider_format for n, ch in generic.items() if ch.provider_format is not None}
    content: Json = {}
    for name, f in described.items():
        as_json = f.media_type.endswith("json")  # the JSON is the provider's too: an object, not our schema
        example = json.loads(f.example) if as_json and f.example else f.example
        media = content.setdefault(f.media_type, {"schema": {"type": "object" if as_json else "string"}})
        media.setdefault("example", example)
        media["schema"]["description"] = f"{media['schema'].get('description', '')} {name}: {f.payload}.".strip()
    text = "\n\n".join(
        f"**{n}**: {f.payload}. Signature: {f.signature}. Answer: {f.reply or 'the acknowledgement'}. See {f.docs}"
        for n, f in described.items()
    )
    note = "These are the providers' formats, not ours: each is described and linked, not given a schema.\n\n"
    params = _provider_params(described)
    channel = _path("channel", "a channel served here", {"enum": sorted(generic)})
    account = _path("account", "a configured account of the channel (`default` is the one without a name)")
    acks = {
        "200": _answer(
            "the provider's acknowledgement (TwiML, XML, JSON or `success`); a sender over"
            " GATEWAY_FLOOD_SENDER_LIMIT is answered on the channel to try later, and nothing is stored",
            _text("text/plain"),
        ),
        "400": _answer("malformed payload", _text("text/plain")),
        "403": _answer(
            "bad signature, or a signed query replayed with another body (WeChat plain mode, Weibo): nothing is stored",
            _text("text/plain"),
        ),
        "404": _answer("unknown channel or account", _text("text/plain")),
        "413": _answer("body too large", _text("text/plain")),
        "503": _answer(
            _BUSY + " (WeChat and Twilio retry on an error status)", _text("text/plain"), headers=_RETRY_BUSY
        ),
    }

    def ops(path_params: list[Json]) -> Json:
        get = _op("URL check (echostr handshake) of WeChat and Weibo", "channels", acks, params=path_params + params)
        post = _op(
            "A provider's callback: verify → parse → store → acknowledge",
            "channels",
            acks,
            params=path_params + params,
            description=note + text,
            requestBody=_body(content),
        )
        return {"get": get, "post": post}

    reporting = sorted(n for n, ch in generic.items() if isinstance(ch, SupportsDeliveryReports))
    status = _op(
        "Delivery reports of sent messages (Twilio StatusCallback): in the provider's format",
        "channels",
        {
            "204": _answer("recorded"),
            "400": _answer("malformed"),
            "403": _answer("bad signature"),
            "404": _answer("no delivery reports here"),
        },
        params=[_path("channel", "a channel with delivery reports", {"enum": reporting}), account, *params],
        description="Signed like the channel's callbacks. " + text,
        requestBody=_body(content),
    )
    return {
        "/channels/{channel}": ops([channel]),
        "/channels/{channel}/{account}": ops([channel, account]),
        "/channels/{channel}/{account}/status": {"post": status},
    }


def _provider_params(described: Mapping[str, Any]) -> list[Json]:
    """The signature parameters of every provider, once each, saying whose they are."""
    found: dict[tuple[str, str], list[str]] = {}
    for name, f in described.items():
        for where, given in (("query", f.query), ("header", f.headers)):
            for key, meaning in given.items():
                found.setdefault((where, key), []).append(f"{name}: {meaning}")
    return [_param(key, where, "; ".join(texts)) for (where, key), texts in found.items()]


# ---------------------------------------------------------------------------- dispatch, admin, operations


def _dispatch_paths(c: _Components) -> Json:
    error = c.ref(ApiError)
    signed = [
        _header(signing.TIMESTAMP_HEADER, "seconds since the epoch; refused outside the window", required=True),
        _header(
            signing.SIGNATURE_HEADER,
            'HMAC-SHA256 of "{timestamp}.{body}" under a dispatch target\'s secret (hex)',
            required=True,
        ),
    ]
    return {
        "/api/v1/dispatch/callback": {
            "post": _op(
                "A signed status change from dispatch",
                "dispatch",
                {
                    "200": _answer("applied, or already applied", _json(c.ref(CallbackResult), ex.CALLBACK_RESULT)),
                    "400": _answer("invalid fields", _json(error, ex.INVALID_CALLBACK)),
                    "403": _answer(
                        "bad signature, stale timestamp, or a case not handed to this target",
                        _json(error, {"error": "invalid signature"}),
                    ),
                    "404": _answer("no such report", _json(error, ex.NOT_FOUND)),
                    "409": _answer(
                        "a move the lifecycle does not allow", _json(c.ref(CallbackConflict), ex.CALLBACK_CONFLICT)
                    ),
                    "413": _answer("body too large", _json(error, ex.TOO_LARGE)),
                },
                params=signed,
                requestBody=_body(_json(c.ref(Callback, "validation"), ex.CALLBACK)),
            )
        },
        "/api/v1/stats": {
            "get": _op(
                "Handling figures per category, department and grid unit; `counts` says what each counts",
                "dispatch",
                {
                    "200": _answer("figures", _json(c.ref(Stats), ex.STATS)),
                    "400": _answer("unknown grid_level", _json(error, {"error": "grid_level must be one of 市 区"})),
                    "403": _answer(_OPS_CLOSED, _json(error, {"error": "Forbidden", "detail": ex.OPS_CLOSED})),
                },
                params=[_query("grid_level", "the level of `by_grid` (default 街道)", {"enum": list(GRID_LEVELS)})],
                security=_OPS_SECURITY,
            )
        },
    }


def _admin_paths(c: _Components) -> Json:
    denied = {"401": _answer("no key"), "403": _answer("the key lacks the scope")}
    secured: list[Json] = [{"adminKey": []}]
    return {
        "/api/v1/admin/queue": {
            "get": _op(
                "The review queue (API key with queue:read)",
                "admin",
                {"200": _answer("the queue, oldest first", _json(c.ref(QueueOut), ex.QUEUE)), **denied},
                params=[
                    _query("channel", "only this channel"),
                    _query("category", "a category or subcategory code"),
                    _query("district", "text in the address or the report"),
                    _query("from", "first day (YYYY-MM-DD, China time)", {"type": "string", "format": "date"}),
                    _query("to", "last day (YYYY-MM-DD, China time)", {"type": "string", "format": "date"}),
                ],
                security=secured,
            )
        },
        "/api/v1/admin/labeled-examples.csv": {
            "get": _op(
                "Moderators' labeled examples as CSV (API key with reviews:read)",
                "admin",
                {"200": _answer("CSV", _text("text/csv")), **denied},
                security=secured,
            )
        },
    }


def _ops_paths(c: _Components) -> Json:
    return {
        "/healthz": {
            "get": _op("The process is up", "operations", {"200": _answer("ok", _json(c.ref(Health), ex.HEALTH))})
        },
        "/readyz": {
            "get": _op(
                "Database and Redis reachable",
                "operations",
                {
                    "200": _answer("ready", _json(c.ref(Readiness), ex.READY)),
                    "503": _answer(
                        "not ready",
                        _json(c.ref(Readiness), {"status": "not ready", "checks": {"database": "error: OSError"}}),
                    ),
                },
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (reports, outbox, notifications, media, failing dispatch targets)",
                "operations",
                {
                    "200": _answer("text exposition format", _text("text/plain")),
                    "403": _answer(_OPS_CLOSED, _text("text/plain", ex.OPS_CLOSED)),
                },
                security=_OPS_SECURITY,
            )
        },
        "/api/schema/report.json": {
            "get": _op("The report's JSON Schema (2020-12)", "operations", {"200": _answer("JSON Schema")})
        },
        "/api/openapi.json": {"get": _op("This document", "operations", {"200": _answer("OpenAPI 3.1")})},
        "/api/docs": {
            "get": _op(
                "This document in Swagger UI (vendored files, no CDN)", "operations", {"200": _html("Swagger UI")}
            )
        },
        "/api/docs/static/{name}": {
            "get": _op(
                "Swagger UI's files",
                "operations",
                {"200": _answer("JavaScript or CSS"), "404": _answer("unknown file")},
                params=[_path("name", "a file name", example="swagger-ui.css")],
            )
        },
    }


# ---------------------------------------------------------------------------- serving it


async def openapi(request: web.Request) -> web.Response:
    chans = request.app[keys.CHANNELS]
    doc = openapi_document(request.app[keys.SETTINGS].public_url, chans)
    return web.json_response(doc, dumps=lambda o: json.dumps(o, ensure_ascii=False))


SWAGGER_UI = Path(__file__).parent / "static" / "swagger-ui"
_DOCS_TYPES = {".js": "application/javascript", ".css": "text/css"}
_DOCS_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>API 文档 · 市民诉求网关</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/api/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/static/swagger-ui-bundle.js"></script><script src="/api/docs/static/docs.js"></script>
</body></html>"""


async def api_docs(request: web.Request) -> web.Response:
    """The OpenAPI document in Swagger UI, from vendored files (gateway/http/static/swagger-ui)."""
    return web.Response(text=_DOCS_PAGE, content_type="text/html")


async def api_docs_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    path = SWAGGER_UI / name
    if "/" in name or name.startswith(".") or path.suffix not in _DOCS_TYPES or not path.is_file():
        raise web.HTTPNotFound()
    body = await asyncio.to_thread(path.read_bytes)
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return web.Response(body=body, content_type=_DOCS_TYPES[path.suffix], charset="utf-8", headers=headers)


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/api/openapi.json", openapi),
        web.get("/api/docs", api_docs),
        web.get("/api/docs/static/{name}", api_docs_static),
    ]
