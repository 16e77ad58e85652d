"""Operations tables: the effective configuration each llama-swap host ran, version by version.

* ``host_config_versions``: one row per distinct config text seen on a provider through one source (``mcp``:
  the effective config llama-swap reports through ``config__get_config``, defaults filled and secrets already
  redacted; ``ssh``: the config file as stored on the host). Keyed by ``(provider_id, source, sha256)``, so a
  re-read of the same text only moves ``last_seen_at`` and counts it (``seen_count``). ``content`` is the text
  as read (byte-exact for ``ssh``); ``parsed`` the YAML as jsonb (NULL when it does not parse).
* ``host_config_changes``: one row each time the text read from a provider differs from the previous read of
  that provider and source (the first read included, ``previous_sha256`` NULL), so A → B → A is three rows;
  ``cause`` says what caused it when BooControl knows (``edit #12``, ``rollback #12``), else NULL (observed).

Edits themselves are audited in ``actions`` (action ``edit_config``), like every other host action.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, Integer, Table, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB

from warehouse.schema import TS, metadata

CONFIG_SOURCES = ("mcp", "ssh")

host_config_versions = Table(
    "host_config_versions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("provider_id", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("parsed", JSONB),
    Column("first_seen_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
    Column("seen_count", Integer, nullable=False),
    UniqueConstraint("provider_id", "source", "sha256", name="uq_host_config_versions_key"),
    CheckConstraint("source IN ('mcp', 'ssh')", name="source"),
)

host_config_changes = Table(
    "host_config_changes",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("provider_id", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("at", TS, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("previous_sha256", Text),
    Column("cause", Text),
)
Index("ix_host_config_changes_provider_at", host_config_changes.c.provider_id, host_config_changes.c.at)
