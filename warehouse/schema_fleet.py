"""Fleet coordination tables: the lease (who holds which host, for what, until when) and its history.

``leases`` has one row per (provider, scope) that is held right now:

* scope ``host``: exclusive use of a host for work that changes it (actions, benchmark runs, evals);
* scope ``follow``: which connector process follows the provider (one follower per provider at a time).

A lease is valid until ``expires_at``; the holder pushes ``expires_at`` forward with heartbeats. A lease whose
holder died simply expires and the next ``acquire`` takes it over (recorded as ``reclaimed``). ``lease_events``
keeps every acquisition, release, reclaim and forced break, so the Fleet page can say who held a host when.
Times come from Postgres (``now()``), never from the clients' clocks.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, Table, Text

from warehouse.schema import TS, metadata

leases = Table(
    "leases",
    metadata,
    Column("provider_id", Text, primary_key=True),
    Column("scope", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("acquired_at", TS, nullable=False),
    Column("heartbeat_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
)

lease_events = Table(
    "lease_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("provider_id", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("holder", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("event", Text, nullable=False),  # acquired | released | reclaimed | broken | lost
    Column("at", TS, nullable=False),
    Column("detail", Text),
)
Index("ix_lease_events_provider_at", lease_events.c.provider_id, lease_events.c.at)

# The connector processes sharing one fleet (one row per live `boocontrol connect`): the follow leases say who
# follows which provider; this table says how many connectors share the work, so each takes its share.
connector_members = Table(
    "connector_members",
    metadata,
    Column("holder", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", TS, nullable=False),
    Column("heartbeat_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
)
