"""The OpenAPI document of the gateway's JSON API (channel callbacks follow their providers)."""

from __future__ import annotations

import json
from typing import Any

from gateway.core.schema import json_schemas


def openapi_document(public_url: str) -> dict[str, Any]:
    # JSON Schema's local "$defs" become OpenAPI components.
    report = json.loads(json.dumps(json_schemas()["report"]).replace("#/$defs/", "#/components/schemas/"))
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
                    "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": new_report},
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
                        "201": {"description": "created", "content": {"application/json": {"schema": created}}},
                        "200": {
                            "description": "a retry with the same Idempotency-Key: the first report",
                            "content": {"application/json": {"schema": created}},
                        },
                        "400": {"description": "invalid fields", "content": {"application/json": {"schema": error}}},
                        "413": {"description": "body too large"},
                    },
                }
            },
            "/api/v1/reports/{case}": {
                "get": {
                    "summary": "A report by case number (private fields masked)",
                    "parameters": [{"name": "case", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {
                            "description": "the report",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Report"}}},
                        },
                        "404": {"description": "not found"},
                    },
                }
            },
            "/healthz": {"get": {"summary": "process is up", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {
                "get": {
                    "summary": "database and Redis reachable",
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}},
                }
            },
        },
        "components": {"schemas": {"Report": report, **defs}},
    }
