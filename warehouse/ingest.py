"""The connector's write path: batches of records into Postgres, idempotently.

Each batch is one transaction. Bulk tables (activity, perf/gpu samples, raw events, logs) are written
with binary COPY straight into the table inside a savepoint; if that hits a unique violation (a replay
after an outage, or a re-fetch after a crash) the savepoint is rolled back and the rows go through a
temporary staging table and ``INSERT … SELECT … ON CONFLICT DO NOTHING``. Deduplication is therefore
always the constraint's job. Small tables use plain parameterized upserts.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from core.providers import Provider
from warehouse.captures import CaptureRow, decode_capture
from warehouse.records import (
    Activity,
    Boot,
    Capture,
    ConfigReload,
    Epoch,
    Gap,
    GatewayRequest,
    GpuSample,
    Health,
    Inflight,
    LogChunk,
    ModelInfo,
    PerfSample,
    ProviderState,
    RawEvent,
    Record,
    Transition,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BulkSpec:
    table: str
    columns: tuple[str, ...]
    types: tuple[str, ...]


ACTIVITY = BulkSpec(
    "activity",
    ("provider_id", "epoch", "upstream_id", "finished_at", "model_id", "req_path", "resp_content_type",
     "status_code", "input_tokens", "output_tokens", "cache_tokens", "draft_tokens", "draft_acc_tokens",
     "prompt_per_second", "tokens_per_second", "duration_ms", "has_capture", "error_msg", "metadata"),
    ("text", "text", "int8", "timestamptz", "text", "text", "text", "int2", "int4", "int4", "int4", "int4",
     "int4", "float8", "float8", "int4", "bool", "text", "jsonb"),
)
PERF = BulkSpec(
    "perf_samples",
    ("provider_id", "sampled_at", "raw_ts", "cpu_util_pct", "cpu_util_per_core", "mem_total_mb", "mem_used_mb",
     "mem_free_mb", "swap_total_mb", "swap_used_mb", "load_avg_1", "load_avg_5", "load_avg_15", "net_io"),
    ("text", "timestamptz", "text", "float8", "float8[]", "float8", "float8", "float8", "float8", "float8",
     "float8", "float8", "float8", "jsonb"),
)
GPU = BulkSpec(
    "gpu_samples",
    ("provider_id", "gpu_key", "sampled_at", "raw_ts", "gpu_index", "name", "temp_c", "vram_temp_c", "util_pct",
     "mem_util_pct", "mem_used_mb", "mem_total_mb", "fan_pct", "power_w"),
    ("text", "text", "timestamptz", "text", "int4", "text", "float8", "float8", "float8", "float8", "float8",
     "float8", "float8", "float8"),
)
RAW = BulkSpec(
    "raw_events",
    ("event_uid", "provider_id", "boot_marker", "received_at", "type", "payload"),
    ("uuid", "text", "text", "timestamptz", "text", "jsonb"),
)
LOGS = BulkSpec(
    "logs",
    ("provider_id", "source", "received_at", "text", "event_uid"),
    ("text", "text", "timestamptz", "text", "uuid"),
)


def _json(v: Any) -> Jsonb | None:
    return None if v is None else Jsonb(v)


def _nul_free(s: str | None) -> str | None:
    return None if s is None else s.replace("\x00", "\ufffd")


def _activity_row(a: Activity) -> tuple[Any, ...]:
    return (a.provider_id, a.epoch, a.upstream_id, a.finished_at, _nul_free(a.model_id), _nul_free(a.req_path),
            a.resp_content_type, a.status_code, a.input_tokens, a.output_tokens, a.cache_tokens, a.draft_tokens,
            a.draft_acc_tokens, a.prompt_per_second, a.tokens_per_second, a.duration_ms, a.has_capture,
            _nul_free(a.error_msg), _json(a.metadata))


def _perf_row(p: PerfSample) -> tuple[Any, ...]:
    return (p.provider_id, p.sampled_at, p.raw_ts, p.cpu_util_pct, p.cpu_util_per_core, p.mem_total_mb,
            p.mem_used_mb, p.mem_free_mb, p.swap_total_mb, p.swap_used_mb, p.load_avg_1, p.load_avg_5,
            p.load_avg_15, _json(p.net_io))


def _gpu_row(g: GpuSample) -> tuple[Any, ...]:
    return (g.provider_id, g.gpu_key, g.sampled_at, g.raw_ts, g.gpu_index, g.name, g.temp_c, g.vram_temp_c,
            g.util_pct, g.mem_util_pct, g.mem_used_mb, g.mem_total_mb, g.fan_pct, g.power_w)


def _scrub(v: Any) -> Any:
    """jsonb cannot hold NUL characters; replace them so hostile payloads still land."""
    if isinstance(v, str):
        return v.replace("\x00", "\ufffd")
    if isinstance(v, list):
        return [_scrub(x) for x in v]
    if isinstance(v, dict):
        return {str(k).replace("\x00", "\ufffd"): _scrub(x) for k, x in v.items()}
    return v


def _dumps_nul_free(v: Any) -> str:
    """``v`` as JSON text with NUL characters replaced, as `_scrub` does. The text is made first (json.dumps writes
    a NUL as ``\\u0000``, ASCII only) and the payload walked only when it shows one: most hold none."""
    text = json.dumps(v)
    return json.dumps(_scrub(v)) if "\\u0000" in text else text


def _jsonb(v: Any) -> Jsonb:
    return Jsonb(v, dumps=_dumps_nul_free)


def _raw_row(r: RawEvent) -> tuple[Any, ...]:
    return (r.uid, r.provider_id, r.boot_marker, r.received_at, r.type, _jsonb(r.payload))


def _log_row(c: LogChunk) -> tuple[Any, ...]:
    return (c.provider_id, c.source, c.received_at, _nul_free(c.text), c.uid)


def copy_rows(cur: psycopg.Cursor[Any], table: str, spec: BulkSpec, rows: Iterable[Sequence[Any]]) -> None:
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, spec.columns)))
    with cur.copy(stmt) as cp:
        cp.set_types(list(spec.types))
        for row in rows:
            cp.write_row(row)


def copy_dedup(conn: psycopg.Connection[Any], spec: BulkSpec, rows: list[tuple[Any, ...]]) -> None:
    """COPY into the table; on a unique violation, go through staging + ON CONFLICT DO NOTHING."""
    if not rows:
        return
    cur = conn.cursor()
    try:
        with conn.transaction():
            copy_rows(cur, spec.table, spec, rows)
        return
    except psycopg.errors.UniqueViolation:
        pass
    stage = f"_stage_{spec.table}"
    cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
                .format(sql.Identifier(stage), sql.Identifier(spec.table)))
    copy_rows(cur, stage, spec, rows)
    cols = sql.SQL(", ").join(map(sql.Identifier, spec.columns))
    cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
        sql.Identifier(spec.table), cols, cols, sql.Identifier(stage)))
    cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(stage)))


_BOOT_SQL = """
INSERT INTO instance_boots (provider_id, boot_marker, version, commit, build_date, hardware, first_seen_at, last_seen_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (provider_id, boot_marker) DO UPDATE SET
  version = EXCLUDED.version, commit = EXCLUDED.commit, build_date = EXCLUDED.build_date,
  hardware = COALESCE(EXCLUDED.hardware, instance_boots.hardware),
  last_seen_at = GREATEST(instance_boots.last_seen_at, EXCLUDED.last_seen_at)
"""
_MODEL_SQL = """
INSERT INTO models (provider_id, model_id, name, description, kind, unlisted, aliases, capabilities,
                    context_length, meta, state, first_seen_at, last_seen_at)
VALUES (%s, %s, %s, %s, COALESCE(%s, 'model'), COALESCE(%s, false), COALESCE(%s, '[]'::jsonb),
        COALESCE(%s, '{}'::jsonb), %s, COALESCE(%s, '{}'::jsonb), %s, %s, %s)
ON CONFLICT (provider_id, model_id) DO UPDATE SET
  name = COALESCE(EXCLUDED.name, models.name),
  description = COALESCE(EXCLUDED.description, models.description),
  kind = CASE WHEN %s::text IS NULL THEN models.kind ELSE EXCLUDED.kind END,
  unlisted = CASE WHEN %s::bool IS NULL THEN models.unlisted ELSE EXCLUDED.unlisted END,
  aliases = CASE WHEN %s::jsonb IS NULL THEN models.aliases ELSE EXCLUDED.aliases END,
  capabilities = CASE WHEN %s::jsonb IS NULL THEN models.capabilities ELSE EXCLUDED.capabilities END,
  context_length = COALESCE(EXCLUDED.context_length, models.context_length),
  meta = CASE WHEN %s::jsonb IS NULL THEN models.meta ELSE EXCLUDED.meta END,
  state = COALESCE(EXCLUDED.state, models.state),
  last_seen_at = GREATEST(models.last_seen_at, EXCLUDED.last_seen_at)
"""
_HEALTH_SQL = """
INSERT INTO connector_health (provider_id, status, version, boot_marker, connected_since, last_event_at,
                              last_error, last_error_at, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, CASE WHEN %s::text IS NULL THEN NULL ELSE %s::timestamptz END, %s)
ON CONFLICT (provider_id) DO UPDATE SET
  status = EXCLUDED.status,
  version = COALESCE(EXCLUDED.version, connector_health.version),
  boot_marker = COALESCE(EXCLUDED.boot_marker, connector_health.boot_marker),
  connected_since = EXCLUDED.connected_since,
  last_event_at = COALESCE(EXCLUDED.last_event_at, connector_health.last_event_at),
  last_error = CASE WHEN EXCLUDED.status = 'connected' THEN EXCLUDED.last_error
                    ELSE COALESCE(EXCLUDED.last_error, connector_health.last_error) END,
  last_error_at = CASE WHEN EXCLUDED.status = 'connected' THEN EXCLUDED.last_error_at
                       ELSE COALESCE(EXCLUDED.last_error_at, connector_health.last_error_at) END,
  updated_at = EXCLUDED.updated_at
WHERE connector_health.updated_at <= EXCLUDED.updated_at
"""

_GATEWAY_SQL = """
INSERT INTO gateway_requests (request_id, started_at, replica, consumer, consumer_source, requested_model, policy,
                              provider_id, model_id, reason, fallbacks, endpoint, stream, status, error, ttft_ms,
                              total_ms, prompt_tokens, completion_tokens)
VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)
ON CONFLICT (request_id) DO NOTHING
"""


def _gateway_row(g: GatewayRequest) -> tuple[Any, ...]:
    return (g.request_id, g.started_at, g.replica, _nul_free(g.consumer), g.consumer_source,
            _nul_free(g.requested_model), _nul_free(g.policy), g.provider_id, _nul_free(g.model_id),
            _nul_free(g.reason), Jsonb(_scrub(g.fallbacks)), g.endpoint, g.stream, g.status, _nul_free(g.error),
            g.ttft_ms, g.total_ms, g.prompt_tokens, g.completion_tokens)


def _insert_capture(cur: psycopg.Cursor[Any], c: Capture, row: CaptureRow) -> None:
    cur.execute(
        "INSERT INTO captures (provider_id, epoch, upstream_id, req_path, req_headers, resp_headers, req_body, "
        "resp_body, size_bytes, truncated, fetched_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
        (c.provider_id, c.epoch, c.upstream_id, row.req_path, _json(row.req_headers), _json(row.resp_headers),
         row.req_body, row.resp_body, row.size_bytes, row.truncated, c.fetched_at),
    )


def merge_model_infos(infos: Sequence[ModelInfo]) -> list[ModelInfo]:
    """One upsert per model per batch: later non-None fields win, as successive upserts would."""
    merged: dict[tuple[str, str], ModelInfo] = {}
    for m in infos:
        key = (m.provider_id, m.model_id)
        prev = merged.get(key)
        if prev is None:
            merged[key] = m
            continue
        changes = {f: getattr(m, f) for f in m.__dataclass_fields__ if getattr(m, f) is not None}
        merged[key] = replace(prev, **changes)
    return list(merged.values())


def latest_inflight(snaps: Sequence[Inflight]) -> list[Inflight]:
    """Per provider only the newest snapshot of a batch is kept (batches are at most ~0.5 s apart)."""
    newest: dict[str, Inflight] = {}
    for i in snaps:
        if i.provider_id not in newest or i.observed_at >= newest[i.provider_id].observed_at:
            newest[i.provider_id] = i
    return list(newest.values())


def write_batch(conn: psycopg.Connection[Any], records: Sequence[Record]) -> int:
    """Write one batch in one transaction; returns the number of records handled."""
    by_type: dict[type, list[Any]] = defaultdict(list)
    for r in records:
        by_type[type(r)].append(r)
    by_type[ModelInfo] = merge_model_infos(by_type.get(ModelInfo, []))
    by_type[Inflight] = latest_inflight(by_type.get(Inflight, []))
    with conn.transaction():
        cur = conn.cursor()
        boots: list[Boot] = by_type.get(Boot, [])
        if boots:
            cur.executemany(_BOOT_SQL, [(b.provider_id, b.boot_marker, b.version, b.commit, b.build_date,
                                         _json(b.hardware), b.seen_at, b.seen_at) for b in boots])
        epochs: list[Epoch] = by_type.get(Epoch, [])
        if epochs:
            cur.executemany("INSERT INTO activity_epochs (provider_id, epoch, started_at, reason) VALUES (%s,%s,%s,%s) "
                            "ON CONFLICT DO NOTHING", [(e.provider_id, e.epoch, e.started_at, e.reason) for e in epochs])
        reloads: list[ConfigReload] = by_type.get(ConfigReload, [])
        if reloads:
            cur.executemany("INSERT INTO config_reloads (provider_id, boot_marker, detected_at, evidence) "
                            "VALUES (%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                            [(c.provider_id, c.boot_marker, c.detected_at, c.evidence) for c in reloads])
        models_: list[ModelInfo] = by_type.get(ModelInfo, [])
        if models_:
            rows = []
            for m in models_:
                aliases, caps, meta = _json(m.aliases), _json(m.capabilities), _json(m.meta)
                rows.append((m.provider_id, _nul_free(m.model_id), m.name, m.description, m.kind, m.unlisted, aliases,
                             caps, m.context_length, meta, m.state, m.seen_at, m.seen_at,
                             m.kind, m.unlisted, aliases, caps, meta))
            cur.executemany(_MODEL_SQL, rows)
        trans: list[Transition] = by_type.get(Transition, [])
        if trans:
            cur.executemany("INSERT INTO model_transitions (provider_id, model_id, observed_at, boot_marker, "
                            "from_state, to_state, source) VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                            [(t.provider_id, _nul_free(t.model_id), t.observed_at, t.boot_marker, t.from_state,
                              t.to_state, t.source) for t in trans])
        copy_dedup(conn, ACTIVITY, [_activity_row(a) for a in by_type.get(Activity, [])])
        copy_dedup(conn, PERF, [_perf_row(p) for p in by_type.get(PerfSample, [])])
        copy_dedup(conn, GPU, [_gpu_row(g) for g in by_type.get(GpuSample, [])])
        inflight: list[Inflight] = by_type.get(Inflight, [])
        if inflight:
            cur.executemany("INSERT INTO inflight_snapshots (provider_id, observed_at, count, requests) "
                            "VALUES (%s,%s,%s,%s) ON CONFLICT (provider_id, observed_at) DO UPDATE SET "
                            "count = EXCLUDED.count, requests = EXCLUDED.requests",
                            [(i.provider_id, i.observed_at, len(i.requests), _jsonb(i.requests))
                             for i in inflight])
        copy_dedup(conn, LOGS, [_log_row(c) for c in by_type.get(LogChunk, [])])
        for c in by_type.get(Capture, []):
            _insert_capture(cur, c, decode_capture(c.payload))
        gaps_: list[Gap] = by_type.get(Gap, [])
        if gaps_:
            cur.executemany("INSERT INTO gaps (provider_id, stream, epoch, from_id, to_id, from_at, to_at, detected_at, "
                            "reason) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                            [(g.provider_id, g.stream, g.epoch, g.from_id, g.to_id, g.from_at, g.to_at,
                              g.detected_at, g.reason) for g in gaps_])
        health: list[Health] = by_type.get(Health, [])
        for h in health:
            cur.execute(_HEALTH_SQL, (h.provider_id, h.status, h.version, h.boot_marker, h.connected_since,
                                      h.last_event_at, h.last_error, h.last_error, h.updated_at, h.updated_at))
        copy_dedup(conn, RAW, [_raw_row(r) for r in by_type.get(RawEvent, [])])
        gw: list[GatewayRequest] = by_type.get(GatewayRequest, [])
        if gw:
            cur.executemany(_GATEWAY_SQL, [_gateway_row(g) for g in gw])
    return len(records)


def sync_providers(conn: psycopg.Connection[Any], providers: Sequence[Provider]) -> None:
    """Upsert the registry's providers; those no longer configured are kept but marked inactive."""
    with conn.transaction():
        cur = conn.cursor()
        for p in providers:
            cur.execute(
                "INSERT INTO providers (id, label, base_url, kind, labels, active, updated_at) "
                "VALUES (%s,%s,%s,%s,%s,true,now()) ON CONFLICT (id) DO UPDATE SET label=EXCLUDED.label, "
                "base_url=EXCLUDED.base_url, kind=EXCLUDED.kind, labels=EXCLUDED.labels, active=true, updated_at=now()",
                (p.id, p.label, p.base_url, p.kind, Jsonb(dict(p.labels))),
            )
        cur.execute("UPDATE providers SET active = false, updated_at = now() WHERE NOT (id = ANY(%s)) AND active",
                    ([p.id for p in providers],))


def load_state(conn: psycopg.Connection[Any], provider_id: str, log_tail_chars: int = 4096) -> ProviderState:
    """Rebuild a follower's cursors from what was committed (so a crash re-fetches, never skips).

    The last ``log_tail_chars`` of each log source are restored too: llama-swap replays its whole log history
    to every new /api/events stream, and the follower keeps only what follows the stored tail, so a restart or a
    takeover by another connector stores no log line twice.
    """
    st = ProviderState()
    cur = conn.cursor()
    row = cur.execute("SELECT boot_marker FROM instance_boots WHERE provider_id=%s ORDER BY last_seen_at DESC, "
                      "first_seen_at DESC LIMIT 1", (provider_id,)).fetchone()
    st.boot_marker = row[0] if row else None
    row = cur.execute("SELECT epoch FROM activity_epochs WHERE provider_id=%s ORDER BY started_at DESC LIMIT 1",
                      (provider_id,)).fetchone()
    st.epoch = row[0] if row else None
    if st.epoch is not None:
        row = cur.execute("SELECT upstream_id, finished_at, model_id, req_path, status_code, duration_ms, input_tokens, "
                          "output_tokens FROM activity WHERE provider_id=%s AND epoch=%s "
                          "ORDER BY upstream_id DESC LIMIT 1", (provider_id, st.epoch)).fetchone()
        if row:
            st.cursor, st.cursor_finished_at, st.cursor_model = int(row[0]), row[1], row[2]
            st.cursor_signature = (row[1], row[2], row[3], row[4], row[5], row[6], row[7])
    row = cur.execute("SELECT raw_ts FROM perf_samples WHERE provider_id=%s ORDER BY sampled_at DESC LIMIT 1",
                      (provider_id,)).fetchone()
    st.sys_after = row[0] if row else None
    row = cur.execute("SELECT raw_ts FROM gpu_samples WHERE provider_id=%s ORDER BY sampled_at DESC LIMIT 1",
                      (provider_id,)).fetchone()
    st.gpu_after = row[0] if row else None
    for model_id, state in cur.execute("SELECT model_id, state FROM models WHERE provider_id=%s AND state IS NOT NULL",
                                       (provider_id,)).fetchall():
        st.model_states[model_id] = state
    for source in ("proxy", "upstream"):  # llama-swap's two log streams (a scan for DISTINCT would read them all)
        texts = cur.execute("SELECT text FROM logs WHERE provider_id=%s AND source=%s "
                            "ORDER BY received_at DESC, id DESC LIMIT 64", (provider_id, source)).fetchall()
        if texts:
            st.log_tails[source] = "".join(t for (t,) in reversed(texts))[-log_tail_chars:]
    return st
