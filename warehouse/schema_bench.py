"""Benchmark tables (engines/bench): runs, sweep points, per-request rows, baselines.

Storage design
--------------
* ``bench_runs``: one row per attempted run, including runs the takeover gate refused (status
  ``refused``) so every attempt to take over a host is on record. A run row is inserted before the
  first request and closed at the end (``completed``/``cancelled``/``failed``); a row left in
  ``running`` means the process died without cleanup. It carries what was benchmarked: provider,
  model, llama-swap version/commit, the model's ``/v1/models`` entry, trimmed llama-server ``/props``,
  host hardware, the models loaded before the run, and the full spec (``params``) with its seed.
  ``simulated`` marks a run against a simulated host (the demo fleet): its numbers, energy above all,
  are synthetic and always shown labelled.
* ``bench_points``: one row per sweep point (a concurrency level or an arrival rate), written as soon
  as the point finishes. The headline percentiles are real columns (for curves and drift queries);
  the complete `PointSummary` is kept in ``summary`` (jsonb).
* ``bench_requests``: one row per measured request (warm-ups are not stored) with the raw client
  timestamps: send time, every content chunk's arrival (``chunk_ms``, ms after send), the server's
  ``usage`` and llama.cpp ``timings``, so any other metric definition can be recomputed.
* ``bench_baselines``: the runs that form the baseline of a provider/model (several runs → a noise band).
* ``bench_capacity_searches``: one row per capacity search under SLOs (``boocontrol bench capacity``, the
  ``bench-capacity`` flow): the targets, the search bounds, the result (capacity, interpolated or a bound,
  and what limited it) and the measured points, each a stored run (``points``: level, run id, the chosen
  percentile of TTFT/TPOT, goodput, whether it met the targets). Refused and failed searches are kept too.
* Runs are not FK-tied to ``providers``: a run against a provider later removed from the registry
  keeps its history.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP

from warehouse.schema import metadata

TS = TIMESTAMP(timezone=True)

bench_runs = Table(
    "bench_runs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("run_uid", Text, nullable=False, unique=True),
    Column("provider_id", Text, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("mode", Text, nullable=False),
    Column("label", Text),
    Column("workload_key", Text),
    Column("seed", BigInteger),
    Column("params", JSONB, nullable=False),
    Column("host_kind", Text),
    Column("llama_swap_version", Text),
    Column("llama_swap_commit", Text),
    Column("version_info", JSONB),
    Column("model_entry", JSONB),
    Column("server_props", JSONB),
    Column("hardware", JSONB),
    Column("loaded_before", JSONB),
    Column("requested_by", Text),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS),
    Column("stop_reason", Text),
    Column("error", Text),
    Column("foreign_requests", Integer),
    Column("energy_j", Double),
    Column("j_per_token", Double),
    Column("idle_w", Double),
    Column("extra", JSONB),
    # the host said it is a simulator (the demo fleet: "simulated": true in /api/version or /api/hardware)
    Column("simulated", Boolean, nullable=False, server_default=false()),
)
Index(
    "ix_bench_runs_provider_model_time",
    bench_runs.c.provider_id,
    bench_runs.c.model_id,
    bench_runs.c.started_at,
)

_DIST = ("ttft", "tpot", "itl", "e2e")
_STATS = ("p50", "p90", "p95", "p99", "mean")

bench_points = Table(
    "bench_points",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger, ForeignKey("bench_runs.id", ondelete="CASCADE"), nullable=False),
    Column("idx", SmallInteger, nullable=False),
    Column("mode", Text, nullable=False),
    Column("level", Double, nullable=False),
    Column("arrival", Text),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("completed", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("cancelled", Integer, nullable=False),
    Column("duration_s", Double, nullable=False),
    Column("request_throughput", Double, nullable=False),
    Column("output_throughput", Double, nullable=False),
    Column("total_token_throughput", Double, nullable=False),
    Column("prompt_throughput", Double, nullable=False),
    Column("goodput", Double, nullable=False),
    Column("goodput_ratio", Double),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("peak_concurrency", Integer, nullable=False),
    Column("mean_concurrency", Double, nullable=False),
    *[Column(f"{m}_{s}_ms", Double) for m in _DIST for s in _STATS],
    Column("decode_tps_mean", Double),
    Column("server_predicted_per_s_mean", Double),
    Column("schedule_lag_p90_ms", Double),
    Column("saturated", Boolean, nullable=False),
    Column("saturation_reason", Text),
    Column("energy_j", Double),
    Column("j_per_token", Double),
    Column("energy_samples", Integer),
    Column("summary", JSONB, nullable=False),
    UniqueConstraint("run_id", "idx", name="uq_bench_points_run_idx"),
)

bench_requests = Table(
    "bench_requests",
    metadata,
    Column("point_id", BigInteger, ForeignKey("bench_points.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("run_id", BigInteger, ForeignKey("bench_runs.id", ondelete="CASCADE"), nullable=False),
    Column("sent_at", TS, nullable=False),
    Column("send_offset_ms", Double, nullable=False),
    Column("scheduled_offset_ms", Double),
    Column("ttft_ms", Double),
    Column("e2e_ms", Double),
    Column("tpot_ms", Double),
    Column("decode_tps", Double),
    Column("chunk_ms", ARRAY(Double), nullable=False),
    Column("status_code", SmallInteger),
    Column("error", Text),
    Column("finish_reason", Text),
    Column("cancelled", Boolean, nullable=False),
    Column("retries", SmallInteger, nullable=False),
    Column("prompt_tokens", Integer),
    Column("output_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer),
    Column("target_input_tokens", Integer),
    Column("target_output_tokens", Integer),
    Column("usage", JSONB),
    Column("timings", JSONB),
)
Index("ix_bench_requests_run", bench_requests.c.run_id)

bench_baselines = Table(
    "bench_baselines",
    metadata,
    Column("provider_id", Text, primary_key=True),
    Column("model_id", Text, primary_key=True),
    Column("run_id", BigInteger, ForeignKey("bench_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("note", Text),
    Column("created_at", TS, nullable=False, server_default=func.now()),
)

bench_capacity_searches = Table(
    "bench_capacity_searches",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("provider_id", Text, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("mode", Text, nullable=False),
    Column("percentile", SmallInteger, nullable=False),
    Column("ttft_ms", Double),
    Column("tpot_ms", Double),
    Column("low", Double, nullable=False),
    Column("high", Double, nullable=False),
    Column("max_points", SmallInteger, nullable=False),
    Column("status", Text, nullable=False),  # running, completed, refused, failed
    Column("capacity", Double),  # the interpolated capacity, or the highest level when none failed
    Column("reached", Boolean),  # False: every measured level met the targets (capacity is a lower bound)
    Column("limited_by", Text),
    Column("description", Text),
    Column("points", JSONB, nullable=False, server_default="[]"),
    Column("params", JSONB, nullable=False),  # the base options every point ran with
    Column("error", Text),
    Column("requested_by", Text),
    Column("started_at", TS, nullable=False, server_default=func.now()),
    Column("finished_at", TS),
)
Index("ix_bench_capacity_model", bench_capacity_searches.c.provider_id, bench_capacity_searches.c.model_id)
