"""Issue 13, item 9: the public /report pages carry a CSP and refuse framing."""

from __future__ import annotations

from typing import Any


async def test_report_pages_have_csp_and_no_framing(client: Any) -> None:
    resp = await client.post("/api/v1/reports", json={"text": "路灯坏了"})
    case = (await resp.json())["case_number"]
    for path in ("/report", f"/report/{case}", f"/report/{case}/rate?t=x"):
        resp = await client.get(path)
        assert resp.headers["X-Frame-Options"] == "DENY", path
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
