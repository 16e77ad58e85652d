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
    df = frame(db, text("SELECT source, content, first_seen_at FROM host_config_versions WHERE provider_id = :p "
                        "AND sha256 LIKE :sha ORDER BY last_seen_at DESC LIMIT 1"),
               {"p": provider_id, "sha": sha_prefix.lower() + "%"},
               {"source": pl.Utf8, "content": pl.Utf8, "first_seen_at": UTC_TS})
    if df.height == 0:
        return None
    r = df.row(0)
    return str(r[0]), str(r[1]), r[2]
