"""The Fleet page's canary lights: one line per model probed on a provider in the last 15 minutes."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import streamlit as st

from ui import format as fmt
from ui import ops_data


def light_line(r: dict[str, object], now: datetime) -> str:
    """``🟢 qwen 120 ms, 2m 05s ago`` (Markdown, the model id and error escaped)."""
    sent = r["sent_at"]
    ago = fmt.ago(sent, now) if isinstance(sent, datetime) else ""
    ttft = r["ttft_ms"]
    what = f"{float(ttft):.0f} ms" if isinstance(ttft, (int, float)) else f"failed: {fmt.md(r['error'] or '?')}"
    return f"{r['icon']} **{fmt.md(r['model_id'])}** {what}, {ago}"


def canary_lights(provider_id: str, now: datetime) -> None:
    lights = ops_data.canary_lights(now).filter(pl.col("provider_id") == provider_id)
    if not lights.height:
        st.caption("Canary: no model of this host probed in the last 15 minutes (nothing loaded, host leased, or "
                   "the `canary/every-5m` deployment not running).")
        return
    st.markdown(f"**Canary** (TTFT of a one-token probe; 🟢 within {ops_data.DEFAULT_SLO_MS:.0f} ms, 🟠 slower, "
                "🔴 failed)  \n" + "  \n".join(light_line(r, now) for r in lights.iter_rows(named=True)))
