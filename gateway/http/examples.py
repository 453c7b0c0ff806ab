"""Examples of the OpenAPI document (``gateway/http/openapi.py``): one request and one answer
per route. ``tests/test_openapi.py`` checks each against its schema and posts the requests to
the app, so they stay true."""

from __future__ import annotations

from typing import Any

from gateway.core.replies import FLOODED

CASE = "ZW20261130000001"
AT = "2026-11-30T09:15:30+00:00"

NEW_REPORT = {
    "text": "小区门口的路灯坏了好几天，晚上很黑",
    "title": "路灯不亮",
    "contact_phone": "13812345678",
    "location": {"lat": 22.65, "lng": 114.02, "address": "龙华区民治街道"},
}
# The same complaint as the form's fields (multipart or urlencoded): the location is flat.
NEW_REPORT_FORM = {
    "text": NEW_REPORT["text"],
    "title": "路灯不亮",
    "contact_phone": "13812345678",
    "address": "龙华区民治街道",
    "lat": 22.65,
    "lng": 114.02,
}


# ``t`` of the reporter's signed link in ``status_url`` (gateway/http/reports.py, report_token).
REPORTER_T = "3f1c9a0e5b7d24681a2b3c4d5e6f7a8b"


def report_created(public_url: str) -> dict[str, Any]:
    return {
        "case_number": CASE,
        "status": "received",
        "status_url": f"{public_url.rstrip('/')}/api/v1/reports/{CASE}?t={REPORTER_T}",
        "message": f"您的诉求已受理，案件编号 {CASE}。可凭编号查询处理进度。",
        "duplicate": False,
    }


def report(public_url: str) -> dict[str, Any]:
    """A report as the public sees it: no sender, the phone masked, the notes that are public, the
    location coarse (3 decimals; the address is the grid's district, street and community)."""
    return {
        "case_number": CASE,
        "channel": "web",
        "sender": None,
        "title": "路灯不亮",
        "text": NEW_REPORT["text"],
        "contact_phone": "138****5678",
        "location": {"lat": 22.651, "lng": 114.024, "address": "龙华区民治街道", "source": "gps"},
        "grid": {
            "code": "440309005",
            "name": "民治街道",
            "level": "街道",
            "path": [
                {"level": "区", "code": "440309", "name": "龙华区"},
                {"level": "街道", "code": "440309005", "name": "民治街道"},
            ],
            "method": "point_in_polygon",
        },
        "media": [
            {
                "kind": "image",
                "url": f"{public_url.rstrip('/')}/media/{'0' * 64}",
                "content_type": "image/jpeg",
                "sha256": "0" * 64,
                "state": "stored",
            }
        ],
        "category": {
            "code": "0102",
            "name": "路灯与景观照明",
            "parent": "01",
            "confidence": 0.91,
            "model_version": "linear-2026-11",
            "set_by": "model",
        },
        "priority": "P3",
        "urgent": False,
        "status": "dispatched",
        "duplicate_of": None,
        "created_at": AT,
        "updated_at": "2026-11-30T09:16:02+00:00",
        "history": [
            {"at": AT, "actor": "system", "action": "received", "from_status": None, "to_status": "received"},
            {
                "at": "2026-11-30T09:16:02+00:00",
                "actor": "system",
                "action": "dispatched",
                "from_status": "ready",
                "to_status": "dispatched",
                "note": None,
            },
        ],
    }


def invalid(fields: dict[str, str]) -> dict[str, Any]:
    return {"error": "invalid report: " + "; ".join(f"{k}: {v}" for k, v in fields.items()), "fields": fields}


INVALID_REPORT = invalid({"text": "required", "location.lat": "must be between -90 and 90"})
NOT_FOUND = {"error": f"no report {CASE}"}
INVALID_LINK = {"error": "invalid link"}
FLOODED_POSTS = {"error": FLOODED, "retry_after": 42}
OPS_CLOSED = "metrics are not public: use GATEWAY_METRICS_TOKEN or ask from localhost"
TOO_LARGE = {"error": "body larger than 65536 bytes"}

CALLBACK = {"id": "cb-0001", "case_number": CASE, "status": "resolved", "note": "已更换灯泡"}
CALLBACK_RESULT = {"case_number": CASE, "status": "resolved", "duplicate": False, "changed": True}
CALLBACK_CONFLICT = {
    "error": "received -> resolved is not allowed (allowed: classified, needs_review, spam)",
    "current": "received",
    "requested": "resolved",
}
INVALID_CALLBACK = {"error": "invalid callback", "fields": {"status": "one of accepted, in_progress, resolved"}}

_FIGURES = {
    "count": 12,
    "delivered": 11,
    "waiting": 1,
    "median_accept_s": 540.0,
    "median_resolve_s": 86400.0,
    "on_time_rate": 0.917,
    "ratings": 5,
    "mean_rating": 4.4,
}
STATS = {
    "generated_at": AT,
    "counts": {"count": "cases handed to dispatch"},
    "total": _FIGURES,
    "by_category": [{"code": "0102", "name": "路灯与景观照明", **_FIGURES}],
    "by_department": [{"department": "城管局", **_FIGURES}],
    "grid_level": "街道",
    "by_grid": [{"code": "440309005", "name": "民治街道", **_FIGURES}],
}

QUEUE = {
    "total": 1,
    "items": [
        {
            "case_number": CASE,
            "channel": "wechat",
            "text": "楼下烧烤店油烟很大，电话138****5678",
            "priority": "P3",
            "category": None,
            "candidates": [{"code": "0401", "name": "油烟污染", "confidence": 0.46}],
            "reasons": ["low_confidence"],
            "duplicates": [],
            "created_at": AT,
        }
    ],
}

RATING = {"t": "k7Jx0c1Yq2", "score": "5", "comment": "处理很快，谢谢"}
HEALTH = {"status": "ok"}
READY = {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}

# Open311 GeoReport v2
SERVICE_REQUEST = {
    "api_key": "your-api-key",
    "service_code": "0102",
    "lat": 22.5431,
    "long": 114.0579,
    "address_string": "福田区深南大道1000号",
    "description": "深南大道公交站旁边的路灯晚上不亮，已经一周了",
    "phone": "13800000002",
    "email": "resident@example.test",
    "device_id": "dev-0001",
}
SERVICE = {
    "service_code": "0102",
    "service_name": "路灯与景观照明",
    "description": "Street and landscape lighting",
    "metadata": False,
    "type": "realtime",
    "keywords": "路灯, 不亮",
    "group": "市政公用设施",
}
SERVICE_DEFINITION = {"service_code": "0102", "attributes": []}
REQUEST_CREATED = [
    {"service_request_id": CASE, "service_notice": f"您的诉求已受理，案件编号 {CASE}。", "account_id": None}
]


def service_request(public_url: str) -> dict[str, Any]:
    return {
        "service_request_id": CASE,
        "status": "open",
        "status_notes": None,
        "service_name": "路灯与景观照明",
        "service_code": "0102",
        "description": "深南大道公交站旁边的路灯晚上不亮，电话138****0002",
        "agency_responsible": None,
        "service_notice": None,
        "requested_datetime": "2026-11-30T09:15:30+00:00",
        "updated_datetime": "2026-11-30T09:16:02+00:00",
        "expected_datetime": None,
        "address": "福田区深南大道1000号",
        "address_id": None,
        "zipcode": None,
        "lat": 22.5431,
        "long": 114.0579,
        "media_url": None,
    }


def discovery(public_url: str) -> dict[str, Any]:
    return {
        "changeset": "2026-11-28T00:00:00+00:00",
        "contact": "",
        "key_service": "",
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": f"{public_url.rstrip('/')}/open311/v2",
                "changeset": "2026-11-28T00:00:00+00:00",
                "type": "production",
                "formats": ["application/json", "text/xml"],
            }
        ],
    }


GEOREPORT_ERRORS = [{"code": 400, "description": "service_code: required"}]
GEOREPORT_FORBIDDEN = [{"code": 403, "description": "Invalid api_key received -- can't proceed with create_request."}]
GEOREPORT_NOT_FOUND = [{"code": 404, "description": f"service_request_id {CASE} not found"}]
GEOREPORT_FLOODED = [{"code": 429, "description": FLOODED}]
