"""The UI's data layer: the only place with Streamlit caches.

``engine()`` is a cached resource built from `core.settings.get_settings` (the UI is an entry point);
every other function wraps one `warehouse.queries` function with ``st.cache_data(ttl=...)`` and takes
plain, hashable arguments. Short TTLs for live tiles, longer ones for history. Writes (enqueue an
action, toggle a favourite, fetch a capture) go through here too and clear the caches they affect.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
import streamlit as st
from sqlalchemy import Engine

from actions.progress import StatusLine, describe, measured_load_s
from actions.queue import enqueue
from core.providers import Provider, Registry, RegistryError, load_registry
from core.settings import get_settings
from warehouse.captures import StoredCapture, read_capture
from warehouse.db import make_engine
from warehouse.queries import actions as q_actions
from warehouse.queries import activity as q_activity
from warehouse.queries import fleet as q_fleet
from warehouse.queries import gaps as q_gaps
from warehouse.queries import leases as q_leases
from warehouse.queries import logs as q_logs
from warehouse.queries import models as q_models
from warehouse.queries import perf as q_perf
from warehouse.queries.favorites import set_favorite

if TYPE_CHECKING:
    from actions.perform import Outcome

LIVE_TTL = 1
QUEUE_TTL = 2
HISTORY_TTL = 60
MAX_ENTRIES = 64  # time-keyed arguments change every few seconds; keep memory bounded


def now() -> datetime:
    """The current UTC time rounded down to the second, so cache keys repeat between quick reruns.

    Live tiles refresh every second; a coarser key would add its whole width to how stale they look
    (the Fleet page promises an event is visible within 3 s)."""
    return datetime.now(UTC).replace(microsecond=0)


@st.cache_resource(show_spinner=False)
def _engine_for(url: str) -> Engine:
    return make_engine(url, pool_size=4)


def engine() -> Engine:
    return _engine_for(get_settings().resolved_database_url())


@st.cache_resource(show_spinner=False, ttl=60)
def registry() -> Registry:
    """The provider registry (fleet file), or the providers table when the file is missing."""
    settings = get_settings()
    try:
        return load_registry(settings.fleet_path)
    except RegistryError:
        rows = q_fleet.provider_rows(engine())
        providers = tuple(
            Provider(id=r["provider_id"], label=r["label"], base_url=r["base_url"], kind=r["kind"])
            for r in rows.to_dicts()
        )
        return Registry(providers=providers, default_provider=providers[0].id if providers else None)


# --- Fleet --------------------------------------------------------------------------------------


@st.cache_data(ttl=LIVE_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def fleet_board(at: datetime, spark_minutes: int = 60) -> pl.DataFrame:
    return q_fleet.fleet_board(engine(), at, spark_minutes)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def gpu_now() -> pl.DataFrame:
    return q_fleet.gpu_now(engine())


@st.cache_data(ttl=LIVE_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def loaded_models() -> pl.DataFrame:
    return q_fleet.loaded_models(engine())


@st.cache_data(ttl=LIVE_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def inflight_requests(provider_id: str) -> pl.DataFrame:
    return q_fleet.inflight_requests(engine(), provider_id)


@st.cache_data(ttl=HISTORY_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def providers() -> pl.DataFrame:
    return q_perf.provider_choices(engine())


# --- Activity -----------------------------------------------------------------------------------


def _filter(
    start: datetime, end: datetime, provider_ids: tuple[str, ...], model_ids: tuple[str, ...], status: str
) -> q_activity.ActivityFilter:
    return q_activity.ActivityFilter(start, end, tuple(provider_ids), tuple(model_ids), status)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def activity_page(
    start: datetime,
    end: datetime,
    provider_ids: tuple[str, ...],
    model_ids: tuple[str, ...],
    status: str,
    page: int,
    page_size: int,
) -> q_activity.ActivityPage:
    f = _filter(start, end, provider_ids, model_ids, status)
    return q_activity.activity_page(engine(), f, page, page_size)


@st.cache_data(ttl=30, show_spinner=False, max_entries=MAX_ENTRIES)
def speed_stats(
    start: datetime, end: datetime, provider_ids: tuple[str, ...], model_ids: tuple[str, ...], status: str
) -> pl.DataFrame:
    return q_activity.speed_stats(engine(), _filter(start, end, provider_ids, model_ids, status))


@st.cache_data(ttl=30, show_spinner=False, max_entries=MAX_ENTRIES)
def speed_histogram(
    start: datetime,
    end: datetime,
    provider_ids: tuple[str, ...],
    model_ids: tuple[str, ...],
    status: str,
    metric: str,
) -> pl.DataFrame:
    f = _filter(start, end, provider_ids, model_ids, status)
    return q_activity.speed_histogram(engine(), f, metric)


@st.cache_data(ttl=HISTORY_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def model_choices() -> list[str]:
    return q_activity.model_choices(engine())


@st.cache_data(ttl=10, show_spinner=False, max_entries=MAX_ENTRIES)
def capture(provider_id: str, epoch: str, upstream_id: int) -> StoredCapture | None:
    return read_capture(engine(), provider_id, epoch, upstream_id)


@st.cache_data(ttl=10, show_spinner=False, max_entries=MAX_ENTRIES)
def current_epoch(provider_id: str) -> str | None:
    return q_activity.current_epoch(engine(), provider_id)


@st.cache_data(ttl=10, show_spinner=False, max_entries=MAX_ENTRIES)
def gaps(start: datetime, end: datetime, provider_ids: tuple[str, ...]) -> pl.DataFrame:
    return q_gaps.gaps(engine(), start, end, tuple(provider_ids))


# --- Logs ---------------------------------------------------------------------------------------


@st.cache_data(ttl=30, show_spinner=False, max_entries=MAX_ENTRIES)
def log_sources(provider_id: str) -> list[str]:
    return q_logs.log_sources(engine(), provider_id, datetime.now(UTC) - timedelta(days=7))


@st.cache_data(ttl=2, show_spinner=False, max_entries=MAX_ENTRIES)
def log_tail(provider_id: str, source: str, max_bytes: int) -> q_logs.LogTail:
    return q_logs.log_tail(engine(), provider_id, source, max_bytes)


# --- Models -------------------------------------------------------------------------------------


@st.cache_data(ttl=10, show_spinner=False, max_entries=MAX_ENTRIES)
def model_catalog() -> pl.DataFrame:
    return q_models.model_catalog(engine())


@st.cache_data(ttl=LIVE_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def model_states() -> pl.DataFrame:
    return q_models.model_states(engine())


def live_catalog() -> pl.DataFrame:
    """The catalog with its live columns (state, provider connection) as of now.

    The load/last-use statistics scan history and are recomputed every 10 s; states change with every
    warm and unload and come from the models table each second, so the Models page shows an unload
    within its refresh interval."""
    catalog = model_catalog()
    live = model_states()
    cols = ["state", "provider_status", "provider_online"]
    return (
        catalog.join(live, on=["provider_id", "model_id"], how="left", suffix="_now")
        .with_columns(*(pl.coalesce(pl.col(f"{c}_now"), pl.col(c)).alias(c) for c in cols))
        .drop([f"{c}_now" for c in cols])
    )


@st.cache_data(ttl=10, show_spinner=False, max_entries=MAX_ENTRIES)
def hidden_favorites() -> pl.DataFrame:
    return q_models.hidden_favorites(engine())


@st.cache_data(ttl=30, show_spinner=False, max_entries=MAX_ENTRIES)
def model_loads(provider_id: str, model_id: str) -> pl.DataFrame:
    return q_models.model_loads(engine(), provider_id, model_id)


@st.cache_data(ttl=30, show_spinner=False, max_entries=MAX_ENTRIES)
def state_timeline(provider_id: str, model_id: str, start: datetime, end: datetime) -> pl.DataFrame:
    return q_models.state_timeline(engine(), provider_id, model_id, start, end)


def toggle_favorite(provider_id: str, model_id: str, on: bool) -> None:
    with engine().begin() as conn:
        set_favorite(conn, provider_id, model_id, on)
    model_catalog.clear()
    hidden_favorites.clear()


# --- Performance --------------------------------------------------------------------------------


@st.cache_data(ttl=30, show_spinner=False, max_entries=MAX_ENTRIES)
def host_series(
    provider_ids: tuple[str, ...], start: datetime, end: datetime, points: int = 400
) -> pl.DataFrame:
    return q_perf.host_series(engine(), provider_ids, start, end, points)


@st.cache_data(ttl=30, show_spinner=False, max_entries=MAX_ENTRIES)
def gpu_series(
    provider_ids: tuple[str, ...], start: datetime, end: datetime, points: int = 400
) -> pl.DataFrame:
    return q_perf.gpu_series(engine(), provider_ids, start, end, points)


# --- Actions ------------------------------------------------------------------------------------


@st.cache_data(ttl=QUEUE_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def action_log(provider_ids: tuple[str, ...] = (), limit: int = 50) -> pl.DataFrame:
    return q_actions.action_log(engine(), provider_ids, limit)


@st.cache_data(ttl=QUEUE_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def queue_summary() -> pl.DataFrame:
    return q_actions.queue_summary(engine())


@st.cache_data(ttl=QUEUE_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def leases() -> pl.DataFrame:
    return q_leases.lease_board(engine())


def enqueue_action(
    provider_id: str, action: str, target: str | None = None, params: dict[str, Any] | None = None
) -> int:
    action_id = enqueue(engine(), provider_id, action, target, params, requested_by="ui")
    action_log.clear()
    queue_summary.clear()
    return action_id


@st.cache_data(ttl=LIVE_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def action_status(action_id: int) -> StatusLine:
    """The status line of one action (`actions.progress.describe`), with what a running warm waits for."""
    p = q_actions.action_progress(engine(), action_id)
    load_s: float | None = None
    busy: dict[str, int] = {}
    if p.status in ("queued", "running") and p.target and p.action == "warm":
        # not the page's 30 s cache of the load history: the load that just ended counts at once
        load_s = measured_load_s(q_models.model_loads(engine(), p.provider_id, p.target)["load_ms"].to_list())
    if p.status == "running" and p.target:
        counts = inflight_requests(p.provider_id).group_by("model_id").len().drop_nulls("model_id")
        busy = {str(m): int(n) for m, n in counts.iter_rows()}
    return describe(p, load_s, busy)


def action_finished() -> None:
    """An action just ended: drop the cached reads it may have changed (queue, log, leases, model states)."""
    for cached in (action_log, queue_summary, leases, model_states, provider_models, inflight_requests, model_loads):
        cached.clear()


def fetch_capture_now(provider_id: str, epoch: str, upstream_id: int) -> Outcome:
    """Fetch one capture from its host right away (read-only, so outside the host queue; audited)."""
    from actions.executor import run_direct  # the HTTP stack is loaded only when a capture is fetched

    _, outcome = run_direct(
        engine(),
        registry(),
        None,
        provider_id,
        "fetch_capture",
        str(upstream_id),
        {"epoch": epoch},
        requested_by="ui",
    )
    capture.clear()
    activity_page.clear()
    action_log.clear()
    return outcome


# --- One provider (Fleet page detail) -----------------------------------------------------------


def provider_row(at: datetime, provider_id: str) -> dict[str, Any] | None:
    board = fleet_board(at).filter(pl.col("provider_id") == provider_id)
    return board.row(0, named=True) if board.height else None


def live_inflight(provider_id: str, row: dict[str, Any] | None) -> pl.DataFrame:
    """The provider's in-flight requests as its tile, table and Cancel choices show them (one read for all
    three): the latest snapshot while the provider is connected, none otherwise (a snapshot of a host we do
    not follow right now is not what is in flight)."""
    rows = inflight_requests(provider_id)
    return rows if row is not None and row.get("status") == "connected" else rows.clear()


def provider_gpus(provider_id: str) -> pl.DataFrame:
    return gpu_now().filter(pl.col("provider_id") == provider_id)


def provider_gpu_series(provider_id: str, at: datetime, minutes: int = 60) -> pl.DataFrame:
    return gpu_series((provider_id,), at - timedelta(minutes=minutes), at, 30)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False, max_entries=MAX_ENTRIES)
def provider_models(provider_id: str) -> tuple[list[str], list[str]]:
    """(every model id, the loaded ones) of one provider."""
    mine = q_fleet.provider_models(engine(), provider_id)
    loaded = mine.filter(pl.col("state").is_in(list(q_fleet.LOADED_STATES)))
    return mine["model_id"].to_list(), loaded["model_id"].to_list()


@st.cache_data(ttl=2, show_spinner=False, max_entries=MAX_ENTRIES)
def host_model_log(provider_id: str, model_id: str, max_bytes: int) -> q_logs.LogTail:
    """A model's log history read from its host right now (per-model logs are not stored)."""
    from actions.host_logs import fetch_model_log  # the HTTP stack only when a model log is shown

    text = fetch_model_log(registry().get(provider_id), model_id, max_bytes=max_bytes)
    lines = text.split("\n", 1)[1] if len(text.encode()) >= max_bytes and "\n" in text else text
    return q_logs.LogTail(
        text=lines, truncated=len(text.encode()) >= max_bytes, newest_at=datetime.now(UTC), chunks=1
    )
