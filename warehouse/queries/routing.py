"""What the gateway's routing reads: every routable model with what is measured about it.

Each function returns a typed frame (`warehouse.queries._frames`); `gateway.facts.load_facts` turns them
into `FleetFacts`. Times are bound parameters (``now``), never the database clock, so a ranking can be
replayed as of a given moment.

* `routable_models` — models of active providers with the provider's kind, address and labels, the model's
  capabilities, state, context window, whether the provider is online, and its median measured load time
  (`warehouse.queries.models.model_catalog`'s definition of a load).
* `eval_quality` — per (provider, model, suite, metric) the newest score that is not stale.
* `live_speed` — percentiles of each model's newest live requests (successful, with output, canary probes left
  out) in a window.
* `bench_speed` — the newest completed benchmark run per model, at its lowest load level.
* `energy` — joules per output token of the newest benchmark run that measured it.
* `host_leases` — host leases valid at ``now``.
* `canary_results` — the newest canary probe per model in a window (`flows/canary.py`).
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from sqlalchemy import text

from warehouse.queries._frames import UTC_TS, Db, Schema, connected, frame
from warehouse.queries.canaries import not_a_probe
from warehouse.queries.models import model_catalog

PCTS = ("p50", "p90", "p95", "p99")
_PCT_VALUE = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}

_PROVIDERS_SQL = text(
    """
SELECT m.provider_id, m.model_id, p.kind, p.base_url, p.labels::text AS labels,
       m.capabilities::text AS capabilities
FROM models m JOIN providers p ON p.id = m.provider_id
WHERE p.active
ORDER BY m.provider_id, m.model_id
"""
)


def routable_models(db: Db) -> pl.DataFrame:
    """Models of active providers: kind, base_url, labels, capabilities, state, context, online, load_ms_p50."""
    with connected(db) as conn:
        own = frame(conn, _PROVIDERS_SQL, {}, {
            "provider_id": pl.Utf8, "model_id": pl.Utf8, "kind": pl.Utf8, "base_url": pl.Utf8,
            "labels": pl.Utf8, "capabilities": pl.Utf8,  # JSON text
        })  # fmt: skip
        cat = model_catalog(conn).select(
            "provider_id", "model_id", "state", "context_length", "provider_online", "load_ms_p50"
        )
    return own.join(cat, on=["provider_id", "model_id"], how="left").sort("provider_id", "model_id")


_QUALITY_SQL = text(
    """
SELECT DISTINCT ON (provider_id, model_id, suite_name, metric)
       provider_id, model_id, suite_name, metric, value, run_id, computed_at
FROM eval_scores
WHERE stale_reason IS NULL
ORDER BY provider_id, model_id, suite_name, metric, computed_at DESC, id DESC
"""
)

QUALITY_SCHEMA = {
    "provider_id": pl.Utf8, "model_id": pl.Utf8, "suite_name": pl.Utf8, "metric": pl.Utf8,
    "value": pl.Float64, "run_id": pl.Int64, "computed_at": UTC_TS,
}  # fmt: skip


def eval_quality(db: Db) -> pl.DataFrame:
    """The newest current (not stale) score per (provider, model, suite, metric)."""
    return frame(db, _QUALITY_SQL, {}, QUALITY_SCHEMA)


def _pct_cols(expr: str, name: str) -> str:
    return ", ".join(
        f"percentile_cont({_PCT_VALUE[p]}) WITHIN GROUP (ORDER BY {expr}) AS {name}_{p}" for p in PCTS
    )


# Per request: time to first token = prompt processing (input tokens at llama-server's prompt rate), time per
# output token = 1 / generation rate, end to end = llama-swap's duration. llama-swap's -1 sentinels and
# zero rates are left out by the filters, and so are the canary probes' own requests (one token each).
_LIVE_SQL = text(
    f"""
WITH r AS (
    SELECT m.provider_id, m.model_id,
           CASE WHEN a.prompt_per_second > 0 AND a.input_tokens > 0
                THEN a.input_tokens / a.prompt_per_second * 1000 END AS ttft,
           CASE WHEN a.tokens_per_second > 0 THEN 1000 / a.tokens_per_second END AS tpot,
           a.duration_ms::double precision AS e2e,
           CASE WHEN a.tokens_per_second > 0 THEN a.tokens_per_second END AS gen,
           CASE WHEN a.prompt_per_second > 0 THEN a.prompt_per_second END AS prefill
    FROM models m
    CROSS JOIN LATERAL (
        SELECT * FROM activity a
        WHERE a.provider_id = m.provider_id AND a.model_id = m.model_id
          AND a.finished_at > :since AND a.finished_at <= :now AND a.status_code = 200 AND a.output_tokens > 0
          AND {not_a_probe("a")}
        ORDER BY a.finished_at DESC
        LIMIT :per_model
    ) a
)
SELECT provider_id, model_id, count(*) AS requests,
       {_pct_cols("ttft", "ttft")}, {_pct_cols("tpot", "tpot")}, {_pct_cols("e2e", "e2e")},
       percentile_cont(0.5) WITHIN GROUP (ORDER BY gen) AS gen_tps_p50,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY prefill) AS prefill_tps
FROM r GROUP BY provider_id, model_id
HAVING count(*) >= :min_requests
ORDER BY provider_id, model_id
"""
)

SPEED_SCHEMA = {
    "provider_id": pl.Utf8, "model_id": pl.Utf8, "requests": pl.Int64,
    **{f"{m}_{p}": pl.Float64 for m in ("ttft", "tpot", "e2e") for p in PCTS},
    "gen_tps_p50": pl.Float64, "prefill_tps": pl.Float64,
}  # fmt: skip


def live_speed(db: Db, since: datetime, now: datetime, min_requests: int = 1, per_model: int = 200) -> pl.DataFrame:
    """Speed percentiles of the newest ``per_model`` successful requests of each catalog model that finished in
    (since, now], for the models with at least ``min_requests`` of them (the newest requests through the
    (provider, model, time) index: the cost is bounded by the catalog, not by the traffic)."""
    params = {"since": since, "now": now, "min_requests": min_requests, "per_model": per_model}
    return frame(db, _LIVE_SQL, params, SPEED_SCHEMA)


_BENCH_SQL = text(
    f"""
WITH run AS (
    SELECT DISTINCT ON (provider_id, model_id) id, provider_id, model_id, simulated
    FROM bench_runs WHERE status = 'completed' AND started_at <= :now
    ORDER BY provider_id, model_id, started_at DESC, id DESC
), pt AS (
    SELECT DISTINCT ON (bp.run_id) bp.*
    FROM bench_points bp JOIN run ON run.id = bp.run_id
    WHERE bp.completed > 0
    ORDER BY bp.run_id, bp.level, bp.idx
)
SELECT run.provider_id, run.model_id, run.id AS run_id, run.simulated, pt.completed AS requests,
       {", ".join(f"pt.{m}_{p}_ms AS {m}_{p}" for m in ("ttft", "tpot", "e2e") for p in PCTS)},
       pt.decode_tps_mean AS gen_tps_p50,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY br.prompt_tokens / (br.ttft_ms / 1000))
          FROM bench_requests br
         WHERE br.point_id = pt.id AND br.ttft_ms > 0 AND br.prompt_tokens > 0) AS prefill_tps
FROM run JOIN pt ON pt.run_id = run.id
ORDER BY run.provider_id, run.model_id
"""
)

BENCH_SCHEMA = {**SPEED_SCHEMA, "run_id": pl.Int64, "simulated": pl.Boolean}


def bench_speed(db: Db, now: datetime) -> pl.DataFrame:
    """Per model, the newest completed benchmark run's lowest-load point (percentiles, decode and prefill rate)."""
    return frame(db, _BENCH_SQL, {"now": now}, BENCH_SCHEMA)


_ENERGY_SQL = text(
    """
SELECT DISTINCT ON (provider_id, model_id) provider_id, model_id, id AS run_id, j_per_token, simulated
FROM bench_runs
WHERE status = 'completed' AND j_per_token > 0 AND started_at <= :now
ORDER BY provider_id, model_id, started_at DESC, id DESC
"""
)


def energy(db: Db, now: datetime) -> pl.DataFrame:
    """Joules per output token of each model's newest completed benchmark run that measured energy."""
    return frame(db, _ENERGY_SQL, {"now": now}, {
        "provider_id": pl.Utf8, "model_id": pl.Utf8, "run_id": pl.Int64, "j_per_token": pl.Float64,
        "simulated": pl.Boolean,
    })  # fmt: skip


_LEASES_SQL = text(
    """
SELECT provider_id, holder, purpose, acquired_at, expires_at
FROM leases WHERE scope = 'host' AND expires_at > :now
ORDER BY provider_id
"""
)


def host_leases(db: Db, now: datetime) -> pl.DataFrame:
    """Host leases valid at ``now`` (an expired lease no longer keeps traffic away)."""
    return frame(db, _LEASES_SQL, {"now": now}, {
        "provider_id": pl.Utf8, "holder": pl.Utf8, "purpose": pl.Utf8, "acquired_at": UTC_TS, "expires_at": UTC_TS,
    })  # fmt: skip


_CANARY_SQL = text(
    """
SELECT DISTINCT ON (provider_id, model_id) provider_id, model_id, ok, sent_at, error
FROM canary_probes WHERE sent_at > :since AND sent_at <= :now
ORDER BY provider_id, model_id, sent_at DESC, id DESC
"""
)

CANARY_SCHEMA: Schema = {"provider_id": pl.Utf8, "model_id": pl.Utf8, "ok": pl.Boolean, "sent_at": UTC_TS, "error": pl.Utf8}


def canary_results(db: Db, since: datetime, now: datetime) -> pl.DataFrame:
    """The newest canary probe per model sent in (since, now]."""
    return frame(db, _CANARY_SQL, {"since": since, "now": now}, CANARY_SCHEMA)
