"""Data of the Config page: stored host configs (`warehouse.config_store`), the fleet diff and lint
(`engines.config`), and "read now" (the one write: reads a host and stores what it read).

Cached briefly (configs change rarely and are read by the poll or the CLI); arguments are plain strings."""

from __future__ import annotations

import asyncio
from typing import Any

import polars as pl
import streamlit as st

from connectors.host_config import SshCredentials
from core.providers import RegistryError, load_registry
from core.settings import get_settings
from engines.config.diff import fleet_diff, side_by_side
from engines.config.hostcfg import HostConfig, hosts_from_texts
from engines.config.lint import Measured, lint
from engines.config.poll import PollOutcome, poll_configs
from ui.data import engine
from warehouse import config_store as cs

CONFIG_TTL = 30


@st.cache_data(ttl=CONFIG_TTL, show_spinner=False)
def current() -> pl.DataFrame:
    return cs.current_configs(engine())


@st.cache_data(ttl=CONFIG_TTL, show_spinner=False)
def history(provider_id: str) -> pl.DataFrame:
    return cs.config_history(engine(), provider_id)


@st.cache_data(ttl=CONFIG_TTL, show_spinner=False)
def edits(provider_id: str) -> pl.DataFrame:
    return cs.config_edits(engine(), provider_id)


@st.cache_data(ttl=CONFIG_TTL, show_spinner=False)
def model_side_by_side(model_id: str) -> pl.DataFrame:
    """Every field of one model on every host that has it (one column per host)."""
    hosts, _ = _hosts()
    rows = side_by_side(hosts, model_id)
    providers = [pid for pid, _ in rows[0].values] if rows else []
    return pl.DataFrame([{"field": r.field} | dict(r.values) for r in rows],
                        schema={"field": pl.Utf8} | {p: pl.Utf8 for p in providers})


@st.cache_data(ttl=CONFIG_TTL, show_spinner=False)
def shared_models() -> list[str]:
    """Model ids configured on two or more hosts."""
    hosts, _ = _hosts()
    seen: dict[str, int] = {}
    for h in hosts:
        for mid in h.models:
            seen[mid] = seen.get(mid, 0) + 1
    return sorted(m for m, n in seen.items() if n > 1)


def _hosts() -> tuple[list[HostConfig], list[str]]:
    df = current()
    return hosts_from_texts(df.select("provider_id", "source", "content").rows(), cs.provider_urls(engine()))


@st.cache_data(ttl=CONFIG_TTL, show_spinner=False)
def diff_frame() -> pl.DataFrame:
    """One row per differing (model, field), one column per provider that has the model ("" where it has not)."""
    hosts, _ = _hosts()
    rows = fleet_diff(hosts)
    providers = sorted({pid for r in rows for pid, _ in r.values})
    data: list[dict[str, Any]] = [{"model": r.model_id, "field": r.field} | {p: "" for p in providers}
                                  | dict(r.values) for r in rows]
    return pl.DataFrame(data, schema={"model": pl.Utf8, "field": pl.Utf8} | {p: pl.Utf8 for p in providers})


@st.cache_data(ttl=CONFIG_TTL, show_spinner=False)
def findings_frame(days: int = 30) -> pl.DataFrame:
    hosts, problems = _hosts()
    f = cs.lint_facts(engine(), days)
    found = lint(hosts, Measured(f.vram_mb, f.host_vram_mb, f.load_s, f.requested, f.watched_days, days))
    rows = [{"severity": x.severity, "provider": x.provider_id, "code": x.code, "finding": x.message} for x in found]
    rows += [{"severity": "warning", "provider": p.split(":")[0], "code": "unparsed", "finding": p} for p in problems]
    return pl.DataFrame(rows, schema={"severity": pl.Utf8, "provider": pl.Utf8, "code": pl.Utf8, "finding": pl.Utf8})


def read_now(provider_id: str) -> PollOutcome | str:
    """Read one host's config now and store it (clears this page's caches); a one-line reason when it cannot."""
    settings = get_settings()
    try:
        registry = load_registry(settings.fleet_path)
        provider = registry.get(provider_id)
    except (RegistryError, KeyError) as exc:
        return f"cannot read {provider_id}: {exc}"
    outcomes = asyncio.run(poll_configs(engine(), [provider], SshCredentials(settings.secrets_dir)))
    for fn in (current, history, diff_frame, findings_frame, model_side_by_side, shared_models):
        fn.clear()  # type: ignore[attr-defined]
    return outcomes[0] if outcomes else f"{provider_id} has no llama-swap config (kind {provider.kind})"
