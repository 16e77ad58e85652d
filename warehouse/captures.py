"""Request/response captures: decoding llama-swap's capture payload, storing it, reading it back.

llama-swap keeps one capture per activity row in a small in-memory FIFO (``GET /api/captures/{id}``,
docs/llama-swap-api.md §5): bodies are base64, header maps carry the first value of each header. Captures are
volatile, so the connector stores them as soon as an activity row lands and the cockpit can fetch one on
demand. Storage rules:

* Bodies are stored as raw bytes (``bytea``). Each row is capped at `CAPTURE_CAP_BYTES` (256 KiB) of
  headers plus bodies; a bigger capture keeps a prefix of each body and ``truncated`` is set.
  ``size_bytes`` is what the row stores (the figure the capture budget is pruned by).
* Credentials never reach the database: sensitive headers are replaced by ``[REDACTED]`` even though
  llama-swap already redacts them (older builds or peers may not).
* Idempotent: (provider_id, epoch, upstream_id) is the primary key and inserts use ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert

from warehouse.queries._frames import Db, connected
from warehouse.queries.redaction import redact_headers
from warehouse.schema import captures

CAPTURE_CAP_BYTES = 256 * 1024


@dataclass(frozen=True)
class CaptureRow:
    req_path: str | None
    req_headers: dict[str, str] | None
    resp_headers: dict[str, str] | None
    req_body: bytes | None
    resp_body: bytes | None
    size_bytes: int
    truncated: bool


@dataclass(frozen=True)
class StoredCapture:
    provider_id: str
    epoch: str
    upstream_id: int
    row: CaptureRow
    fetched_at: datetime


def _b64(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        return value.encode("utf-8", "replace")


def _headers(value: Any) -> dict[str, str] | None:
    if not isinstance(value, Mapping):
        return None
    flat: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, list):  # Go's http.Header shape, should a build send it
            v = v[0] if v else ""
        flat[str(k)] = "" if v is None else str(v)
    return redact_headers(flat)


def _headers_size(h: dict[str, str] | None) -> int:
    return len(json.dumps(h).encode()) if h else 0


def decode_capture(payload: Mapping[str, Any], cap_bytes: int = CAPTURE_CAP_BYTES) -> CaptureRow:
    """Decode one ``/api/captures/{id}`` answer, redact headers and cap the row at ``cap_bytes``."""
    req_h = _headers(payload.get("req_headers"))
    resp_h = _headers(payload.get("resp_headers"))
    req = _b64(payload.get("req_body"))
    resp = _b64(payload.get("resp_body"))
    budget = max(cap_bytes - _headers_size(req_h) - _headers_size(resp_h), 0)
    n_req, n_resp = len(req or b""), len(resp or b"")
    truncated = n_req + n_resp > budget
    if truncated:
        half = budget // 2
        if n_req <= half:
            keep_req, keep_resp = n_req, budget - n_req
        elif n_resp <= half:
            keep_req, keep_resp = budget - n_resp, n_resp
        else:
            keep_req, keep_resp = half, budget - half
        req = req[:keep_req] if req is not None else None
        resp = resp[:keep_resp] if resp is not None else None
    size = len(req or b"") + len(resp or b"") + _headers_size(req_h) + _headers_size(resp_h)
    path = payload.get("req_path")
    return CaptureRow(
        req_path=str(path) if path is not None else None,
        req_headers=req_h,
        resp_headers=resp_h,
        req_body=req,
        resp_body=resp,
        size_bytes=size,
        truncated=truncated,
    )


def upsert_capture(
    conn: Connection, provider_id: str, epoch: str, upstream_id: int, row: CaptureRow, fetched_at: datetime
) -> bool:
    """Store one capture; a capture already stored for the same key is left as it is. True if inserted."""
    stmt = (
        insert(captures)
        .values(
            provider_id=provider_id,
            epoch=epoch,
            upstream_id=int(upstream_id),
            req_path=row.req_path,
            req_headers=row.req_headers,
            resp_headers=row.resp_headers,
            req_body=row.req_body,
            resp_body=row.resp_body,
            size_bytes=row.size_bytes,
            truncated=row.truncated,
            fetched_at=fetched_at,
        )
        .on_conflict_do_nothing(index_elements=["provider_id", "epoch", "upstream_id"])
        .returning(captures.c.upstream_id)
    )
    return conn.execute(stmt).first() is not None


def read_capture(db: Db, provider_id: str, epoch: str, upstream_id: int) -> StoredCapture | None:
    c = captures.c
    stmt = select(captures).where(
        c.provider_id == provider_id, c.epoch == epoch, c.upstream_id == int(upstream_id)
    )
    with connected(db) as conn:
        r = conn.execute(stmt).mappings().first()
    if r is None:
        return None
    row = CaptureRow(
        req_path=r["req_path"],
        req_headers=r["req_headers"],
        resp_headers=r["resp_headers"],
        req_body=bytes(r["req_body"]) if r["req_body"] is not None else None,
        resp_body=bytes(r["resp_body"]) if r["resp_body"] is not None else None,
        size_bytes=int(r["size_bytes"]),
        truncated=bool(r["truncated"]),
    )
    return StoredCapture(provider_id, epoch, int(upstream_id), row, r["fetched_at"])


# --- Re-assembling what the model said --------------------------------------------------------------


def _choice_texts(
    obj: Mapping[str, Any], content: dict[int, list[str]], reasoning: dict[int, list[str]]
) -> None:
    choices = obj.get("choices")
    if isinstance(choices, list):
        for pos, ch in enumerate(choices):
            if not isinstance(ch, Mapping):
                continue
            idx = ch.get("index", pos)
            idx = idx if isinstance(idx, int) else pos
            for part in (ch.get("delta"), ch.get("message")):
                if isinstance(part, Mapping):
                    if isinstance(part.get("reasoning_content"), str):
                        reasoning.setdefault(idx, []).append(part["reasoning_content"])
                    if isinstance(part.get("content"), str):
                        content.setdefault(idx, []).append(part["content"])
            if isinstance(ch.get("text"), str):  # /v1/completions
                content.setdefault(idx, []).append(ch["text"])
        return
    if isinstance(obj.get("content"), str):  # llama.cpp /completion
        content.setdefault(0, []).append(obj["content"])
    elif isinstance(obj.get("content"), list):  # Anthropic /v1/messages (non-streaming)
        for block in obj["content"]:
            if isinstance(block, Mapping) and isinstance(block.get("text"), str):
                content.setdefault(0, []).append(block["text"])
    delta = obj.get("delta")
    if isinstance(delta, Mapping):  # Anthropic stream content_block_delta
        if isinstance(delta.get("text"), str):
            content.setdefault(0, []).append(delta["text"])
        if isinstance(delta.get("thinking"), str):
            reasoning.setdefault(0, []).append(delta["thinking"])


def _render(content: dict[int, list[str]], reasoning: dict[int, list[str]]) -> str:
    indexes = sorted(set(content) | set(reasoning))
    parts = []
    for i in indexes:
        text = ""
        if reasoning.get(i):
            text += "<think>" + "".join(reasoning[i]) + "</think>\n"
        text += "".join(content.get(i, []))
        if len(indexes) > 1:
            text = f"[choice {i}]\n{text}"
        parts.append(text)
    return "\n\n".join(parts)


def reassemble_stream(resp_body: bytes | None) -> str:
    """The text a response carried: SSE ``data:`` chunks concatenated, or a plain JSON answer's message.

    Reasoning (``reasoning_content``) comes first inside ``<think>…</think>``. Lines that are not JSON (a
    truncated last chunk, ``[DONE]``) are skipped. A body that is neither SSE nor JSON is returned as text.
    """
    if not resp_body:
        return ""
    text = resp_body.decode("utf-8", "replace")
    content: dict[int, list[str]] = {}
    reasoning: dict[int, list[str]] = {}
    data_lines = [ln for ln in text.splitlines() if ln.startswith("data:")]
    if data_lines:
        for ln in data_lines:
            data = ln[5:]
            data = data[1:] if data.startswith(" ") else data
            if data.strip() == "[DONE]":
                continue
            try:
                obj = json.loads(data)
            except ValueError:
                continue
            if isinstance(obj, Mapping):
                _choice_texts(obj, content, reasoning)
        return _render(content, reasoning)
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    if isinstance(obj, Mapping):
        _choice_texts(obj, content, reasoning)
        return _render(content, reasoning)
    return ""
