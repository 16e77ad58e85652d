"""The log tail view: source picker and the filtered, bounded tail."""

from __future__ import annotations

import re

import streamlit as st

from ui import data
from ui import format as fmt
from warehouse.queries.logs import LogTail, grep_lines, without_own_requests

MAX_BYTES = 256 * 1024
_ORDER = {"proxy": 0, "upstream": 1}


MODEL_PREFIX = "model: "


def source_picker(sources: list[str], models: list[str], key: str) -> str | None:
    """Stored sources (proxy, upstream) first, then one entry per model (read live from the host)."""
    ordered = sorted(sources, key=lambda s: (_ORDER.get(s, 2), s)) + [MODEL_PREFIX + m for m in models]
    if not ordered:
        st.selectbox("Log", ["(none)"], disabled=True, key=key + "_empty")
        return None
    picked: str | None = st.selectbox("Log", ordered, key=key)
    return picked


def model_of(source: str) -> str | None:
    return source[len(MODEL_PREFIX) :] if source.startswith(MODEL_PREFIX) else None


def tail_view(
    tail: LogTail, pattern: str, max_lines: int, newest_first: bool = True, hide_own: bool = False
) -> None:
    body, hidden = without_own_requests(tail.text) if hide_own else (tail.text, 0)
    try:
        lines = grep_lines(body, pattern, max_lines)
    except re.error as exc:
        st.error(f"Invalid regular expression {fmt.md(repr(pattern))}: {fmt.md(exc)}")
        return
    if newest_first:
        lines.reverse()
    note = " (older text not shown: the tail is capped at 256 KiB)" if tail.truncated else ""
    newest = f"newest chunk {tail.newest_at:%Y-%m-%d %H:%M:%S} UTC" if tail.newest_at else "no text yet"
    own = f" · {hidden:,} lines of BooControl's own polling hidden" if hidden else ""
    st.caption(f"{len(lines):,} lines{' matching' if pattern else ''} · {newest}{own}{note}")
    st.code("\n".join(lines) or "(nothing matches)", language=None, height=600)


def host_tail(provider_id: str, model_id: str) -> LogTail | None:
    """A model's log read live from its host; a clear message (not a traceback) when that fails."""
    from actions.host_logs import HostLogError  # the HTTP stack only when a model log is shown

    try:
        return data.host_model_log(provider_id, model_id, MAX_BYTES)
    except (HostLogError, KeyError) as exc:
        st.error(f"Cannot read the log of {fmt.md(model_id)} on {fmt.md(provider_id)}: {fmt.md(exc)}")
        return None
