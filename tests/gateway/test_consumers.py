"""Per-consumer requests, tokens, load share and SLO attainment on known gateway rows in a real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from tests.gateway.consumer_seed import SLO_TPOT_MS, SLO_TTFT_MS, known_requests
from warehouse.queries import consumers as q

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DAY = (NOW - timedelta(hours=24), NOW + timedelta(seconds=1))


def test_summary_exact(db: Engine, db_url: str) -> None:
    known_requests(db_url, NOW)
    s = q.consumer_summary(db, *DAY, SLO_TTFT_MS, SLO_TPOT_MS)
    rows = [(r["consumer"], r["source"], r["requests"], r["errors"], r["prompt_tokens"], r["completion_tokens"],
             r["tokens"], round(r["load_share"], 6), round(r["token_share"], 6), r["slo_attainment"])
            for r in s.iter_rows(named=True)]  # fmt: skip
    assert rows == [
        ("alice", "key", 4, 1, 1300, 82, 1382, 0.780339, 0.900913, 0.5),
        ("bob", "header", 2, 1, 100, 22, 122, 0.216949, 0.079531, 0.5),
        ("curl/8.5", "user-agent", 1, 0, 30, 0, 30, 0.002712, 0.019557, 1.0),
    ]
    assert s["ttft_p50_ms"].to_list() == [2500.0, 100.0, 40.0]
    assert s["ttft_p95_ms"].to_list()[0] == 2950.0
    assert s["last_request_at"].to_list()[2] == NOW - timedelta(minutes=5)
    # TTFT 400 / TPOT 50: none of alice's or bob's requests meet them; curl's 40 ms embeddings still do
    tight = q.consumer_summary(db, *DAY, 400.0, 50.0)
    assert tight["slo_attainment"].to_list() == [0.0, 0.0, 1.0]
    assert q.consumer_summary(db, NOW - timedelta(days=10), NOW - timedelta(days=9), 1, 1).height == 0


def test_requests_render_a_removed_policy_with_its_target(db: Engine, db_url: str) -> None:
    known_requests(db_url, NOW)
    rows = q.gateway_requests(db, *DAY, SLO_TTFT_MS, SLO_TPOT_MS, consumer="alice")
    assert rows["requested_model"].to_list() == ["auto:code", "auto:gone", "auto:code", "auto:code"]
    assert rows["target"].to_list() == [None, "cloud/gpt-x", "gpu/qwen-coder", "gpu/qwen-coder"]
    assert rows["fallbacks"].to_list() == [2, 1, 0, 0]
    assert rows["met_slo"].to_list() == [False, True, False, True]
    assert q.gateway_requests(db, *DAY, SLO_TTFT_MS, SLO_TPOT_MS).height == 7
    t = q.consumer_targets(db, *DAY, SLO_TTFT_MS, SLO_TPOT_MS)
    assert [tuple(r.values()) for r in t.iter_rows(named=True)] == [
        ("alice", "auto:code", "gpu/qwen-coder", 2, 1162, 0.5),
        ("alice", "auto:code", None, 1, 0, 0.0),
        ("alice", "auto:gone", "cloud/gpt-x", 1, 220, 1.0),
        ("bob", "gpu/qwen-coder", "gpu/qwen-coder", 2, 122, 0.5),
        ("curl/8.5", "gpu/nomic-embed", "gpu/nomic-embed", 1, 30, 1.0),
    ]
    assert q.consumer_names(db, *DAY) == ["alice", "bob", "curl/8.5"]
