"""Operating the fleet: canary probes and alerts (migration 0011).

* ``canary_cycles``: one row per canary cycle (``flows/canary.py``): when, how many hosts and models were
  probed, and which hosts were skipped and why (``{"gpu-box": "host lease held by bench run #12"}``).
* ``canary_probes``: one one-token request to one *loaded* model: when it was sent (our clock), whether it
  succeeded, time to first token and to the end, the HTTP status or error. ``activity_upstream_id`` /
  ``activity_finished_at`` name the row llama-swap recorded for the probe (its id and its own timestamp, as
  the connector stores them in ``activity``), so the queries that compute user statistics leave that row
  out (``warehouse.queries.canaries.NOT_A_PROBE``). NULL when the row could not be found (then the probe's
  one token counts like a user request; the cycle's ``unmatched`` says how often).
* ``alert_states``: the evaluator's memory per (rule, subject): the condition's last value, since when it
  holds or is clear, whether a firing notice went out, its recent flips (flap detection). Rewritten on every
  evaluation from the pure decision function (``engines.alerts.evaluate``).
* ``alert_events``: every notice decided (fire, recover), with its delivery outcome per channel: the history
  the Alerts page shows.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

from warehouse.schema import metadata

TS = TIMESTAMP(timezone=True)

canary_cycles = Table(
    "canary_cycles",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS, nullable=False),
    Column("hosts", Integer, nullable=False),
    Column("probed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("unmatched", Integer, nullable=False),
    Column("skipped", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)

canary_probes = Table(
    "canary_probes",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("cycle_id", BigInteger),
    Column("provider_id", Text, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("sent_at", TS, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("ttft_ms", Double),
    Column("total_ms", Double),
    Column("status_code", SmallInteger),
    Column("error", Text),
    Column("activity_upstream_id", BigInteger),
    Column("activity_finished_at", TS),
)
Index("ix_canary_probes_model_time", canary_probes.c.provider_id, canary_probes.c.model_id, canary_probes.c.sent_at)
Index(
    "ix_canary_probes_activity",
    canary_probes.c.provider_id,
    canary_probes.c.activity_upstream_id,
    postgresql_where=canary_probes.c.activity_upstream_id.isnot(None),
)

alert_states = Table(
    "alert_states",
    metadata,
    Column("rule", Text, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("active", Boolean, nullable=False),  # the condition at the last evaluation
    Column("changed_at", TS, nullable=False),  # since when the condition has its current value
    Column("firing", Boolean, nullable=False),  # a firing notice went out and no recovery since
    Column("flapping", Boolean, nullable=False, server_default=text("false")),
    Column("flips", JSONB, nullable=False, server_default=text("'[]'::jsonb")),  # recent change times (ISO)
    Column("value", Double),
    Column("message", Text, nullable=False),
    Column("evaluated_at", TS, nullable=False),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("rule", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("kind", Text, nullable=False),  # fire | recover
    Column("at", TS, nullable=False),
    Column("message", Text, nullable=False),
    Column("value", Double),
    Column("delivery", JSONB, nullable=False, server_default=text("'{}'::jsonb")),  # block name -> "ok" | error
    Column("recorded_at", TS, nullable=False, server_default=func.now()),
)
Index("ix_alert_events_at", alert_events.c.at)
