"""The OpenAPI 3.1 document of every public route (the console's HTML pages excepted), served at
``/api/openapi.json`` and drawn by the vendored Swagger UI at ``/api/docs``.

The report and the dispatch callback come from the models the code uses (``ReportOut``, the
callback dataclass); the other routes are described in ``ROUTES`` below, and
``tests/test_openapi.py`` fails when the app serves a route this document does not describe.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from gateway.core.schema import json_schemas
from gateway.http.dispatch import CALLBACK_STATUSES, Callback

EXAMPLE_CASE = "ZW20261130000001"
_FMT = {"name": "fmt", "in": "path", "required": True, "schema": {"enum": ["json", "xml"]}}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _op(summary: str, tag: str, responses: dict[str, str], **more: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": [tag],
        "responses": {k: {"description": v} for k, v in responses.items()},
        **more,
    }


# Routes described by their summary and status codes; their bodies follow a provider's format
# (channels, Open311 GeoReport v2), are HTML for phone browsers, or are operational.
ROUTES: dict[str, dict[str, dict[str, Any]]] = {
    "/metrics": {
        "get": _op(
            "Prometheus metrics (reports, outbox, notifications, media)",
            "operations",
            {
                "200": "text exposition format",
                "403": "closed (GATEWAY_METRICS_PUBLIC): local client or bearer token only",
            },
        )
    },
    "/api/schema/report.json": {"get": _op("The report's JSON Schema (2020-12)", "operations", {"200": "JSON Schema"})},
    "/api/openapi.json": {"get": _op("This document", "operations", {"200": "OpenAPI 3.1"})},
    "/api/docs": {"get": _op("This document in Swagger UI (vendored, no CDN)", "operations", {"200": "HTML"})},
    "/api/docs/static/{name}": {
        "get": _op(
            "Swagger UI's files",
            "operations",
            {"200": "JS or CSS", "404": "unknown file"},
            parameters=[_path_param("name")],
        )
    },
    "/static/report_locate.js": {
        "get": _op("The report form's one script (use my location)", "reports", {"200": "JavaScript"})
    },
    "/media/{sha256}": {
        "get": _op(
            "A stored photo, voice note or video",
            "reports",
            {"200": "the file", "404": "unknown"},
            parameters=[_path_param("sha256")],
        )
    },
    "/report": {
        "get": _op("The complaint form for phone browsers (HTML)", "web form", {"200": "HTML"}),
        "post": _op(
            "Submit the form (multipart)",
            "web form",
            {
                "303": "to the status page",
                "400": "the form again, with Chinese errors beside the fields",
                "429": "too many posts from this address (Retry-After)",
            },
        ),
    },
    "/report/{case}": {
        "get": _op(
            "A case's status page (HTML)",
            "web form",
            {"200": "HTML", "404": "unknown case"},
            parameters=[_path_param("case")],
        )
    },
    "/report/{case}/rate": {
        "get": _op(
            "The signed rating page (HTML)",
            "web form",
            {"200": "HTML", "403": "bad link"},
            parameters=[_path_param("case")],
        ),
        "post": _op(
            "Rate the handling 1-5", "web form", {"200": "thanks", "403": "bad link"}, parameters=[_path_param("case")]
        ),
    },
    "/channels/{channel}": {
        method: _op(
            f"{method.upper()} callback of a channel's default account (WeChat, Twilio SMS, Weibo), in its own format",
            "channels",
            {
                "200": "the provider's acknowledgement",
                "400": "malformed",
                "403": "bad signature",
                "404": "unknown channel",
            },
            parameters=[_path_param("channel")],
        )
        for method in ("get", "post")
    },
    "/channels/{channel}/{account}": {
        method: _op(
            f"{method.upper()} callback of one account of a channel",
            "channels",
            {"200": "the provider's acknowledgement", "400": "malformed", "403": "bad signature", "404": "unknown"},
            parameters=[_path_param("channel"), _path_param("account")],
        )
        for method in ("get", "post")
    },
    "/channels/{channel}/{account}/status": {
        "post": _op(
            "Delivery reports (Twilio StatusCallback)",
            "channels",
            {"200": "recorded", "403": "bad signature"},
            parameters=[_path_param("channel"), _path_param("account")],
        )
    },
    "/open311/v2/discovery.{fmt}": {
        "get": _op("GeoReport v2 discovery", "open311", {"200": "discovery"}, parameters=[_FMT])
    },
    "/open311/v2/services.{fmt}": {
        "get": _op("GeoReport v2 service list (the taxonomy)", "open311", {"200": "services"}, parameters=[_FMT])
    },
    "/open311/v2/services/{code}.{fmt}": {
        "get": _op(
            "GeoReport v2 service definition",
            "open311",
            {"200": "definition", "404": "unknown"},
            parameters=[_path_param("code"), _FMT],
        )
    },
    "/open311/v2/requests.{fmt}": {
        "get": _op(
            "GeoReport v2 requests of every channel (phones masked)", "open311", {"200": "requests"}, parameters=[_FMT]
        ),
        "post": _op(
            "GeoReport v2 new request (api_key)",
            "open311",
            {
                "200": "the new request's id",
                "400": "invalid",
                "403": "bad api_key",
                "429": "too many posts (Retry-After)",
            },
            parameters=[_FMT],
        ),
    },
    "/open311/v2/requests/{id}.{fmt}": {
        "get": _op(
            "GeoReport v2 one request",
            "open311",
            {"200": "the request", "404": "unknown"},
            parameters=[_path_param("id"), _FMT],
        )
    },
    "/api/v1/stats": {
        "get": _op(
            "Handling figures per category and department; `counts` says what each figure counts",
            "dispatch",
            {"200": "figures", "403": "closed (GATEWAY_METRICS_PUBLIC): local client or bearer token only"},
        )
    },
    "/api/v1/admin/queue": {
        "get": _op(
            "The review queue (API key with queue:read)", "admin", {"200": "queue", "401": "no key", "403": "scope"}
        )
    },
    "/api/v1/admin/labeled-examples.csv": {
        "get": _op(
            "Moderators' labeled examples as CSV (API key with reviews:read)",
            "admin",
            {"200": "CSV", "401": "no key", "403": "scope"},
        )
    },
}


def _callback_schema() -> dict[str, Any]:
    schema = TypeAdapter(Callback).json_schema()
    schema["properties"]["status"] = {"enum": list(CALLBACK_STATUSES)}
    schema["example"] = {"id": "cb-0001", "case_number": EXAMPLE_CASE, "status": "resolved", "note": "已更换灯泡"}
    return schema


def openapi_document(public_url: str) -> dict[str, Any]:
    # JSON Schema's local "$defs" become OpenAPI components.
    report = json.loads(json.dumps(json_schemas()["report"]).replace("#/$defs/", "#/components/schemas/"))
    report.pop("$schema", None)  # the document's own dialect applies
    defs = report.pop("$defs", {})
    error = {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    new_report: dict[str, Any] = {
        "type": "object",
        "required": ["text"],
        "properties": {
            "text": {"type": "string", "maxLength": 5000},
            "title": {"type": "string", "maxLength": 100},
            "contact_phone": {"type": "string"},
            "location": {
                "type": "object",
                "properties": {"lat": {"type": "number"}, "lng": {"type": "number"}, "address": {"type": "string"}},
            },
        },
    }
    created = {
        "type": "object",
        "properties": {
            "case_number": {"type": "string"},
            "status": {"type": "string"},
            "status_url": {"type": "string"},
            "message": {"type": "string"},
            "duplicate": {"type": "boolean"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Citizen interaction gateway", "version": "1"},
        "servers": [{"url": public_url}],
        "paths": {
            "/api/v1/reports": {
                "post": {
                    "summary": "File a complaint (网上民声)",
                    "tags": ["reports"],
                    "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": new_report,
                                "example": {
                                    "text": "小区门口的路灯坏了好几天",
                                    "location": {"address": "龙华区民治街道"},
                                },
                            },
                            "multipart/form-data": {
                                "schema": {
                                    **new_report,
                                    "properties": {
                                        **new_report["properties"],
                                        "photos": {"type": "array", "items": {"type": "string", "format": "binary"}},
                                    },
                                }
                            },
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "created",
                            "content": {
                                "application/json": {
                                    "schema": created,
                                    "example": {
                                        "case_number": EXAMPLE_CASE,
                                        "status": "received",
                                        "status_url": f"{public_url.rstrip('/')}/report/{EXAMPLE_CASE}",
                                        "message": f"您的诉求已受理，案件编号 {EXAMPLE_CASE}。可凭编号查询处理进度。",
                                        "duplicate": False,
                                    },
                                }
                            },
                        },
                        "200": {
                            "description": "a retry with the same Idempotency-Key: the first report",
                            "content": {"application/json": {"schema": created}},
                        },
                        "400": {"description": "invalid fields", "content": {"application/json": {"schema": error}}},
                        "413": {"description": "body too large"},
                        "429": {"description": "too many posts from this address (Retry-After)"},
                    },
                }
            },
            "/api/v1/reports/{case}": {
                "get": {
                    "summary": "A report by case number (private fields masked, location coarse)",
                    "tags": ["reports"],
                    "parameters": [
                        {"name": "case", "in": "path", "required": True, "schema": {"type": "string"}},
                        {
                            "name": "t",
                            "in": "query",
                            "required": False,
                            "description": "the reporter's token from `status_url`: the reporter's own full view",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "the report",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Report"}}},
                        },
                        "403": {"description": "a wrong token"},
                        "404": {"description": "not found"},
                    },
                }
            },
            "/api/v1/dispatch/callback": {
                "post": {
                    "summary": "A signed status change from dispatch (X-Gateway-Timestamp, X-Gateway-Signature)",
                    "tags": ["dispatch"],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _callback_schema()}}},
                    "responses": {
                        "200": {"description": "applied (or already applied)"},
                        "400": {"description": "invalid fields", "content": {"application/json": {"schema": error}}},
                        "403": {"description": "bad signature or stale timestamp"},
                        "409": {"description": "a move the lifecycle does not allow"},
                    },
                }
            },
            **ROUTES,
            "/healthz": {
                "get": {"summary": "process is up", "tags": ["operations"], "responses": {"200": {"description": "ok"}}}
            },
            "/readyz": {
                "get": {
                    "summary": "database and Redis reachable",
                    "tags": ["operations"],
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
                }
            },
        },
        "components": {"schemas": {"Report": report, **defs}},
    }
