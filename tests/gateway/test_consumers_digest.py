"""The digests' Gateway consumers section on known gateway rows: exact figures, hostile names escaped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import Engine

from reports.digest import build_digest, render_digest
from tests.gateway.consumer_seed import SLO_TPOT_MS, SLO_TTFT_MS, known_requests
from warehouse.db import psycopg_dsn
from warehouse.ingest import write_batch
from warehouse.records import GatewayRequest

D = datetime(2026, 11, 20, tzinfo=UTC)
EVIL = "<b>x</b>|*y*"


def section(markdown: str) -> list[str]:
    lines = markdown.split("## Gateway consumers\n", 1)[1].split("\n## ", 1)[0]
    return [ln for ln in lines.splitlines() if ln]


def test_daily_digest_consumers_section(db: Engine, db_url: str) -> None:
    known_requests(db_url, D + timedelta(hours=12))
    with psycopg.connect(psycopg_dsn(db_url)) as conn:
        write_batch(conn, [GatewayRequest(
            request_id=uuid.uuid4(), started_at=D + timedelta(hours=1), replica="r", consumer=EVIL,
            consumer_source="header", requested_model="auto:x", endpoint="chat", stream=False, status=200,
            total_ms=250.0)])  # fmt: skip
    rep = render_digest(build_digest(db, "daily", D, slo=(SLO_TTFT_MS, SLO_TPOT_MS)))
    assert section(rep.markdown) == [
        "Requests through the gateway per consumer (key owner, X-Boo-Source or client). Load share = share of the "
        "gateway's serving time; SLO met = first byte within 2,000 ms and at most 100 ms per output token.",
        "| Consumer | Identified by | Requests | Errors | Tokens | Load share | SLO met |",
        "|---|---|---:|---:|---:|---:|---:|",
        "| alice | key | 4 | 1 | 1,382 | 76.7 % | 50.0 % |",
        "| bob | header | 2 | 1 | 122 | 21.3 % | 50.0 % |",
        "| \\<b\\>x\\</b\\>\\|\\*y\\* | header | 1 | 0 | 0 | 1.7 % | 100.0 % |",
        "| curl/8\\.5 | user\\-agent | 1 | 0 | 30 | 0.3 % | 100.0 % |",
    ]
    assert "<b>x</b>" not in rep.html and "&lt;b&gt;x&lt;/b&gt;|*y*" in rep.html
    assert [c["consumer"] for c in rep.summary["consumers"]] == ["alice", "bob", EVIL, "curl/8.5"]
    assert rep.summary["consumers"][0]["requests"] == 4


def test_no_gateway_requests(db: Engine) -> None:
    rep = render_digest(build_digest(db, "daily", D))
    assert section(rep.markdown) == [
        "Requests through the gateway per consumer (key owner, X-Boo-Source or client). Load share = share of the "
        "gateway's serving time; SLO met = first byte within 2,000 ms and at most 100 ms per output token.",
        "No requests through the gateway in this period."]
    assert rep.summary["consumers"] == []
