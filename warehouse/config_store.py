"""Storing and reading the host config versions (tables in `warehouse.schema_ops`).

`record_config` is called once per read of a host's config (a poll every few minutes per host, an edit): it
upserts the version keyed by ``(provider_id, source, sha256)`` and adds a ``host_config_changes`` row when the
text differs from the previous read of that provider and source. Reads are rare and idempotent by key, so they
are written directly rather than through the connector's continuous write path. All times are Postgres's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
import yaml
from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import bindparam

from warehouse.queries._frames import UTC_TS, Db, frame
from warehouse.schema_ops import CONFIG_SOURCES


def sha256_text(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def _parsed(content: str) -> Any:
    try:
        doc = yaml.safe_load(content)
    except yaml.YAMLError:
        return None
    return doc if isinstance(doc, dict) else None


@dataclass(frozen=True)
class Recorded:
    sha256: str
    changed: bool  # differs from the previous read of this provider and source (or is the first)
    previous_sha256: str | None


def record_config(conn: Connection, provider_id: str, source: str, content: str, cause: str | None = None) -> Recorded:
    """Store one read of a host's config (call inside a transaction; serialized per provider)."""
    if source not in CONFIG_SOURCES:
        raise ValueError(f"source must be one of {CONFIG_SOURCES}, not {source!r}")
    sha = sha256_text(content)
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('host_config:' || :p))"), {"p": provider_id})
    conn.execute(text("""
INSERT INTO host_config_versions AS v (provider_id, source, sha256, content, parsed, first_seen_at, last_seen_at,
                                       seen_count)
VALUES (:p, :s, :sha, :content, :parsed, now(), now(), 1)
ON CONFLICT (provider_id, source, sha256)
DO UPDATE SET last_seen_at = now(), seen_count = v.seen_count + 1
""").bindparams(bindparam("parsed", type_=JSONB)),
                 {"p": provider_id, "s": source, "sha": sha, "content": content, "parsed": _parsed(content)})
    prev = conn.execute(text("SELECT sha256 FROM host_config_changes WHERE provider_id = :p AND source = :s "
                             "ORDER BY id DESC LIMIT 1"), {"p": provider_id, "s": source}).scalar()
    if prev == sha:
        return Recorded(sha, False, prev)
    conn.execute(text("INSERT INTO host_config_changes (provider_id, source, at, sha256, previous_sha256, cause) "
                      "VALUES (:p, :s, now(), :sha, :prev, :cause)"),
                 {"p": provider_id, "s": source, "sha": sha, "prev": prev, "cause": cause})
    return Recorded(sha, True, prev)


CURRENT_SCHEMA = {"provider_id": pl.Utf8, "source": pl.Utf8, "sha256": pl.Utf8, "content": pl.Utf8,
                  "first_seen_at": UTC_TS, "last_seen_at": UTC_TS, "seen_count": pl.Int64}


def current_configs(db: Db, provider_ids: tuple[str, ...] = ()) -> pl.DataFrame:
    """Per provider and source, the text read last (the newest change row names it)."""
    sql = text("""
SELECT DISTINCT ON (c.provider_id, c.source) c.provider_id, c.source, v.sha256, v.content, v.first_seen_at,
       v.last_seen_at, v.seen_count
FROM host_config_changes c
JOIN host_config_versions v ON v.provider_id = c.provider_id AND v.source = c.source AND v.sha256 = c.sha256
WHERE cardinality(CAST(:p AS text[])) = 0 OR c.provider_id = ANY(CAST(:p AS text[]))
ORDER BY c.provider_id, c.source, c.id DESC
""")
    return frame(db, sql, {"p": list(provider_ids)}, CURRENT_SCHEMA)


HISTORY_SCHEMA = {"id": pl.Int64, "provider_id": pl.Utf8, "source": pl.Utf8, "at": UTC_TS, "sha256": pl.Utf8,
                  "previous_sha256": pl.Utf8, "cause": pl.Utf8}


def config_history(db: Db, provider_id: str, limit: int = 100) -> pl.DataFrame:
    """The provider's config changes, newest first."""
    sql = text("SELECT id, provider_id, source, at, sha256, previous_sha256, cause FROM host_config_changes "
               "WHERE provider_id = :p ORDER BY id DESC LIMIT :lim")
    return frame(db, sql, {"p": provider_id, "lim": int(limit)}, HISTORY_SCHEMA)


def config_version(db: Db, provider_id: str, sha_prefix: str) -> tuple[str, str, datetime] | None:
    """(source, content, first_seen_at) of the provider's version whose sha256 starts with ``sha_prefix``."""
    if not sha_prefix or any(c not in "0123456789abcdefABCDEF" for c in sha_prefix):
        return None
    df = frame(db, text("SELECT source, content, first_seen_at FROM host_config_versions WHERE provider_id = :p "
                        "AND sha256 LIKE :sha ORDER BY last_seen_at DESC LIMIT 1"),
               {"p": provider_id, "sha": sha_prefix.lower() + "%"},
               {"source": pl.Utf8, "content": pl.Utf8, "first_seen_at": UTC_TS})
    if df.height == 0:
        return None
    r = df.row(0)
    return str(r[0]), str(r[1]), r[2]


@dataclass(frozen=True)
class LintFacts:
    """What lint compares configs with, as plain mappings (see `engines.config.lint.Measured`)."""

    vram_mb: dict[tuple[str, str], float]
    host_vram_mb: dict[str, float]
    load_s: dict[tuple[str, str], float]
    requested: dict[str, frozenset[str]]
    watched_days: dict[str, float]


_LOADS = """
WITH t AS (
  SELECT provider_id, model_id, observed_at, to_state,
         lag(to_state) OVER w AS prev_state, lag(observed_at) OVER w AS prev_at
  FROM model_transitions WHERE observed_at >= now() - make_interval(days => :days)
  WINDOW w AS (PARTITION BY provider_id, model_id ORDER BY observed_at,
               CASE to_state WHEN 'starting' THEN 1 WHEN 'ready' THEN 2 WHEN 'stopping' THEN 3 ELSE 4 END))
SELECT provider_id, model_id, prev_at AS started_at, observed_at AS ready_at
FROM t WHERE to_state = 'ready' AND prev_state = 'starting'
"""


def lint_facts(db: Db, window_days: int = 30) -> LintFacts:
    """Measured per host and model over the window: median load time (starting → ready), the VRAM a load added
    (total GPU memory used in the first sample after ready minus the last sample before starting; median of the
    positive ones), the host's total GPU memory (latest sample), the models requested, days of history."""
    loads = text(f"""
WITH l AS ({_LOADS}),
tot AS (SELECT provider_id, sampled_at, sum(mem_used_mb) AS used FROM gpu_samples
        WHERE sampled_at >= now() - make_interval(days => :days) GROUP BY provider_id, sampled_at)
SELECT l.provider_id, l.model_id,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM l.ready_at - l.started_at)) AS load_s,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY a.used - b.used) FILTER (WHERE a.used - b.used > 0) AS vram_mb
FROM l
LEFT JOIN LATERAL (SELECT used FROM tot WHERE tot.provider_id = l.provider_id AND tot.sampled_at >= l.ready_at
                   ORDER BY sampled_at LIMIT 1) a ON true
LEFT JOIN LATERAL (SELECT used FROM tot WHERE tot.provider_id = l.provider_id AND tot.sampled_at <= l.started_at
                   ORDER BY sampled_at DESC LIMIT 1) b ON true
GROUP BY l.provider_id, l.model_id
""")  # noqa: S608 - constant SQL
    df = frame(db, loads, {"days": window_days},
               {"provider_id": pl.Utf8, "model_id": pl.Utf8, "load_s": pl.Float64, "vram_mb": pl.Float64})
    hosts = frame(db, text("""
SELECT DISTINCT ON (provider_id) provider_id, total FROM (
  SELECT provider_id, sampled_at, sum(mem_total_mb) AS total FROM gpu_samples GROUP BY provider_id, sampled_at) s
ORDER BY provider_id, sampled_at DESC
"""), {}, {"provider_id": pl.Utf8, "total": pl.Float64})
    used = frame(db, text("SELECT provider_id, model_id FROM activity WHERE finished_at >= now() - "
                          "make_interval(days => :days) GROUP BY provider_id, model_id"), {"days": window_days},
                 {"provider_id": pl.Utf8, "model_id": pl.Utf8})
    watched = frame(db, text("SELECT provider_id, extract(epoch FROM now() - min(first_seen_at)) / 86400 AS days "
                             "FROM models GROUP BY provider_id"), {}, {"provider_id": pl.Utf8, "days": pl.Float64})
    requested: dict[str, set[str]] = {}
    for p, m in used.rows():
        requested.setdefault(p, set()).add(m)
    return LintFacts(
        vram_mb={(p, m): v for p, m, _, v in df.rows() if v is not None},
        host_vram_mb={p: t for p, t in hosts.rows() if t},
        load_s={(p, m): s for p, m, s, _ in df.rows() if s is not None},
        requested={p: frozenset(ms) for p, ms in requested.items()},
        watched_days={p: d for p, d in watched.rows() if d is not None})


def provider_urls(db: Db) -> dict[str, str]:
    """Base URL of every provider the connector knows (the page's view of the fleet)."""
    df = frame(db, text("SELECT id, base_url FROM providers ORDER BY id"), {}, {"id": pl.Utf8, "base_url": pl.Utf8})
    return {str(i): str(u) for i, u in df.rows()}


def interrupt_stale_edits(conn: Connection, provider_id: str, own_id: int) -> int:
    """Fail ``edit_config`` rows left ``running`` by an edit whose process died (call only while holding the
    provider's host lease, so no other edit of it runs); returns how many."""
    res = conn.execute(text("""
UPDATE actions SET status = 'failed', finished_at = clock_timestamp(),
                   error = 'interrupted: the edit''s process stopped while it ran (check the file and its backups)'
WHERE provider_id = :p AND action = 'edit_config' AND status = 'running' AND id <> :own
RETURNING id"""), {"p": provider_id, "own": own_id})
    return len(res.fetchall())


EDITS_SCHEMA = {"id": pl.Int64, "requested_at": UTC_TS, "requested_by": pl.Utf8, "status": pl.Utf8,
                "rolled_back": pl.Boolean, "backup_path": pl.Utf8, "error": pl.Utf8}


def config_edits(db: Db, provider_id: str, limit: int = 20) -> pl.DataFrame:
    """The provider's config edits (``actions`` rows ``edit_config``), newest first."""
    sql = text("""
SELECT id, requested_at, requested_by, status, (result->>'rolled_back')::boolean AS rolled_back,
       result->>'backup_path' AS backup_path, error
FROM actions WHERE provider_id = :p AND action = 'edit_config' ORDER BY id DESC LIMIT :lim""")
    return frame(db, sql, {"p": provider_id, "lim": int(limit)}, EDITS_SCHEMA)
