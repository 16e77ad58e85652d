"""The log tail view: source picker and the filtered, bounded tail."""

from __future__ import annotations

import re

import streamlit as st

from warehouse.queries.logs import LogTail, grep_lines

MAX_BYTES = 256 * 1024
_ORDER = {"proxy": 0, "upstream": 1}


def source_picker(sources: list[str], key: str) -> str | None:
    ordered = sorted(sources, key=lambda s: (_ORDER.get(s, 2), s))
    if not ordered:
        st.selectbox("Log", ["(none)"], disabled=True, key=key + "_empty")
        return None
    picked: str | None = st.selectbox("Log", ordered, key=key)
    return picked


def tail_view(tail: LogTail, pattern: str, max_lines: int, newest_first: bool = True) -> None:
    try:
        lines = grep_lines(tail.text, pattern, max_lines)
    except re.error as exc:
        st.error(f"Invalid regular expression {pattern!r}: {exc}")
        return
    if newest_first:
        lines.reverse()
    note = " (older text not shown: the tail is capped at 256 KiB)" if tail.truncated else ""
    newest = f"newest chunk {tail.newest_at:%Y-%m-%d %H:%M:%S} UTC" if tail.newest_at else "no text yet"
    st.caption(f"{len(lines):,} lines{' matching' if pattern else ''} · {newest}{note}")
    st.code("\n".join(lines) or "(nothing matches)", language=None, height=600)
