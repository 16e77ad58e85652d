"""The capture viewer: headers, bodies and the streamed answer re-assembled into text."""

from __future__ import annotations

import json

import streamlit as st

from ui import format as fmt
from warehouse.captures import StoredCapture, reassemble_stream

SHOW_BYTES = 64 * 1024


def pretty_body(body: bytes | None) -> tuple[str, str]:
    """(text, language) for display: indented JSON when it parses, else the text, cut at 64 KiB."""
    if body is None:
        return "(not captured)", "text"
    raw = body[:SHOW_BYTES].decode("utf-8", "replace")
    more = f"\n… {len(body) - SHOW_BYTES:,} more bytes" if len(body) > SHOW_BYTES else ""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)[:SHOW_BYTES] + more, "json"
    except ValueError:
        return raw + more, "text"


def capture_view(stored: StoredCapture) -> None:
    row = stored.row
    st.markdown(
        f"{fmt.md(row.req_path or '?')} · stored {row.size_bytes:,} B · fetched "
        f"{stored.fetched_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    if row.truncated:
        st.warning("This capture was larger than 256 KiB: the bodies below are cut short.")
    answer = reassemble_stream(row.resp_body)
    st.markdown("**Answer (re-assembled)**")
    st.code(answer or "(empty)", language=None, wrap_lines=True)
    req_col, resp_col = st.columns(2)
    with req_col:
        st.markdown("**Request headers**")
        st.json(row.req_headers or {}, expanded=False)
        st.markdown("**Request body**")
        text, lang = pretty_body(row.req_body)
        st.code(text, language=lang, wrap_lines=True, height=300)
    with resp_col:
        st.markdown("**Response headers**")
        st.json(row.resp_headers or {}, expanded=False)
        st.markdown("**Response body (raw)**")
        text, lang = pretty_body(row.resp_body)
        st.code(text, language=lang, wrap_lines=True, height=300)
