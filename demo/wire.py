"""Wire-format details shared by the simulated llama-swap instances.

Go's ``encoding/json`` and ``time`` packages shape what llama-swap sends; this module reproduces the parts a
client can observe: HTML-safe escaping (``<`` becomes ``\\u003c``), integer-valued floats written without
``.0``, RFC 3339 timestamps with trailing fraction zeros trimmed and ``Z`` for a zero offset, canonical header
keys, and the after-v250 error body negotiated on ``Accept`` (docs/llama-swap-api.md §0.3).
"""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from starlette.responses import HTMLResponse, PlainTextResponse, Response

JSON_CT = "application/json"  # what llama-swap itself sends (recorded); no charset parameter
UPSTREAM_JSON_CT = "application/json; charset=utf-8"  # llama-server's JSON answers, passed through
REDACTED_HEADERS = frozenset({"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key"})
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))"
)
_ERROR_KINDS = {
    400: ("invalid_request_error", "bad_request"),
    401: ("authentication_error", "unauthorized"),
    403: ("authentication_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}


def _go_numbers(obj: Any) -> Any:
    if isinstance(obj, float):
        return int(obj) if obj.is_integer() and abs(obj) < 1e21 else obj
    if isinstance(obj, dict):
        return {k: _go_numbers(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_go_numbers(v) for v in obj]
    return obj


def go_json(obj: Any) -> str:
    """Serialise like Go's json.Marshal: compact, UTF-8, HTML-safe escapes, ``10`` for ``10.0``."""
    text = json.dumps(_go_numbers(obj), ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def go_json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(go_json(obj).encode(), status, dict(headers or {}), media_type=JSON_CT)


def sse_frame(event_type: str, data: Any) -> bytes:
    """One ``/api/events`` message: no space after the colons, ``data`` double-encoded (§2.2)."""
    envelope = go_json({"type": event_type, "data": go_json(data)})
    return f"event:message\ndata:{envelope}\n\n".encode()


def format_rfc3339(ns: int, offset_s: int, fraction: bool = True) -> str:
    """Go's RFC3339Nano rendering of a unix-nanosecond instant at a fixed UTC offset."""
    sec, nanos = divmod(ns, 1_000_000_000)
    t = time.gmtime(sec + offset_s)
    text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    if fraction and nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    if offset_s == 0:
        return text + "Z"
    hours, minutes = divmod(abs(offset_s) // 60, 60)
    return f"{text}{'+' if offset_s > 0 else '-'}{hours:02d}:{minutes:02d}"


def parse_rfc3339_ns(text: str) -> int:
    """Parse an RFC 3339 timestamp (nanosecond fractions kept) to unix nanoseconds; ValueError if invalid."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid RFC 3339 timestamp {text!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h < 24 and mi < 60 and s < 60):
        raise ValueError(f"invalid RFC 3339 timestamp {text!r}")
    offset = 0
    if m.group(8):
        offset = (int(m.group(9)) * 60 + int(m.group(10))) * 60 * (1 if m.group(8) == "+" else -1)
    nanos = int((m.group(7) or "").ljust(9, "0"))
    return (calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - offset) * 1_000_000_000 + nanos


def canonical_header(key: str) -> str:
    """Go's textproto.CanonicalMIMEHeaderKey: ``x-session-id`` -> ``X-Session-Id``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))


def canonical_headers(pairs: Mapping[str, str] | list[tuple[str, str]], redact: bool = False) -> dict[str, str]:
    """First value per canonical key; with ``redact`` credentials become ``[REDACTED]`` (in-flight, captures)."""
    out: dict[str, str] = {}
    for key, value in pairs.items() if isinstance(pairs, Mapping) else pairs:
        name = canonical_header(key)
        if name not in out:
            out[name] = "[REDACTED]" if redact and name in REDACTED_HEADERS else value
    return out


def error_payload(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    kind, default_code = _ERROR_KINDS.get(
        status, ("invalid_request_error", "invalid_request") if status < 500 else ("server_error", "internal_error")
    )
    return {
        "src": "llama-swap",
        "error": {"message": message, "type": kind, "param": None, "code": code or default_code},
    }


def error_response(
    status: int, message: str, accept: str = "", code: str | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    """An error written by llama-swap itself, in the shape the ``Accept`` header asks for (§0.3)."""
    if "text/plain" in accept:
        return PlainTextResponse(f"llama-swap: {message}", status, dict(headers or {}))
    if "text/html" in accept:
        page = f"<html><body><h1>{status}</h1><p>{_html_escape(message)}</p></body></html>"
        return HTMLResponse(page, status, dict(headers or {}))
    return go_json_response(error_payload(status, message, code), status, headers)


_REDIRECT_TEXT = {301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect", 308: "Permanent Redirect"}


def go_redirect(url: str, status: int, method: str = "GET") -> Response:
    """Go's ``http.Redirect``: ``Location`` plus, for GET/HEAD, a tiny HTML body naming the status (recorded)."""
    if method not in ("GET", "HEAD"):
        return Response(b"", status, {"Location": url})
    body = f'<a href="{_html_escape(url)}">{_REDIRECT_TEXT.get(status, "Found")}</a>.\n\n'
    return HTMLResponse(body, status, {"Location": url})


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
