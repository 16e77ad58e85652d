"""Numbers with units, the way every page shows them (pure functions; no Streamlit)."""

from __future__ import annotations

import math
from datetime import datetime

DASH = "—"

STATUS_ICONS = {
    "connected": "🟢",
    "connecting": "🟡",
    "degraded": "🟡",
    "disconnected": "🔴",
    "error": "🔴",
    "unreachable": "🔴",
    "auth_failed": "🔴",
    "no_api_key": "🔴",  # the connector sends nothing until the key's variable is set (last_error names it)
    "reconnecting": "🟡",
    "unknown": "⚪",
}
STATE_ICONS = {"ready": "🟢", "starting": "🟡", "stopping": "🟠", "stopped": "⚫"}
ACTION_ICONS = {"queued": "⏳", "running": "⚙️", "succeeded": "✅", "failed": "❌", "refused": "⛔"}


def _missing(v: float | int | None) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def duration(seconds: float | None) -> str:
    """``850 ms``, ``12.3 s``, ``4m 05s``, ``3h 12m``, ``2d 4h``."""
    if _missing(seconds):
        return DASH
    assert seconds is not None
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m {sec:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h}h"


def mib(value: float | None) -> str:
    """A MiB figure as ``512 MiB`` or ``19.4 GiB``."""
    if _missing(value):
        return DASH
    assert value is not None
    return f"{value / 1024:.1f} GiB" if abs(value) >= 1024 else f"{value:.0f} MiB"


def used_of(used: float | None, total: float | None) -> str:
    if _missing(used) or _missing(total) or not total:
        return mib(used)
    assert used is not None and total is not None
    return f"{used / 1024:.1f} / {total / 1024:.1f} GiB ({100 * used / total:.0f} %)"


def pct(value: float | None, digits: int = 0) -> str:
    return DASH if _missing(value) else f"{value:.{digits}f} %"


def celsius(value: float | None) -> str:
    return DASH if _missing(value) else f"{value:.0f} °C"


def watts(value: float | None) -> str:
    return DASH if _missing(value) else f"{value:,.0f} W"


def tps(value: float | None) -> str:
    if _missing(value):
        return DASH
    assert value is not None
    return f"{value:,.0f} tok/s" if abs(value) >= 100 else f"{value:,.1f} tok/s"


def count(value: int | float | None, unit: str = "") -> str:
    if _missing(value):
        return DASH
    assert value is not None
    return f"{value:,.0f}{' ' + unit if unit else ''}"


def ago(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return "never"
    return duration(max((now - ts).total_seconds(), 0.0)) + " ago"


_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~$:&\"'")


def md(text: object) -> str:
    """Escape text from the fleet (model ids, errors, GPU names) before it goes into Markdown."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(text))
