"""Known gateway requests (through the shared write path, `warehouse.ingest.write_batch`) for the Consumers
query, page, Activity filter and digest tests. With the SLO targets TTFT 2 000 ms / TPOT 100 ms:

=====  ========  ======  =====  =====  ======  ==========  ======  ===================================
 #     consumer  stream  ttft   total  tokens  completion  status  met the SLO?
=====  ========  ======  =====  =====  ======  ==========  ======  ===================================
 1     alice     yes      500   5 500  1 000   51          200     yes: 500 ms, (5 500-500)/50 = 100 ms
 2     alice     yes    2 500   3 000    100   11          200     no: TTFT 2 500 ms
 3     alice     no     3 000   3 000    200   20          200     yes: 3 000 <= 2 000 + 20 x 100
 4     alice     yes      —        10      —   —           503     no: failed
 5     bob       yes      100   1 100     50   11          200     yes: (1 100-100)/10 = 100 ms
 6     bob       yes      100   2 100     50   11          200     no: 200 ms/token, ended with an error
 7     curl/8.5  no        40      40     30   —           200     yes: embeddings, 40 <= 2 000
=====  ========  ======  =====  =====  ======  ==========  ======  ===================================

Request 3 asked for ``auto:gone`` (a policy removed since) and was served by ``cloud/gpt-x``. A request of
``alice`` 2 days old lies outside a 24-hour window.

alice: 4 requests, 1 error, 1 300 + 82 = 1 382 tokens, 11 510 ms busy, SLO 2/4; bob: 2, 1, 122, 3 200 ms, 1/2;
curl/8.5: 1, 0, 30, 40 ms, 1/1. Load shares 11 510 / 14 750 = 0.780339, 0.216949, 0.002712.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg

from warehouse.db import psycopg_dsn
from warehouse.ingest import write_batch
from warehouse.records import GatewayRequest

SLO_TTFT_MS = 2000.0
SLO_TPOT_MS = 100.0


def requests(now: datetime) -> list[GatewayRequest]:
    def r(i: int, minutes_ago: float, consumer: str, source: str, **kw: Any) -> GatewayRequest:
        base: dict[str, Any] = dict(
            request_id=uuid.UUID(int=i), started_at=now - timedelta(minutes=minutes_ago), replica="r1",
            consumer=consumer, consumer_source=source, requested_model="auto:code", policy="auto:code",
            provider_id="gpu", model_id="qwen-coder", reason="best quality", endpoint="chat", stream=True,
            status=200)  # fmt: skip
        base.update(kw)
        return GatewayRequest(**base)

    return [
        r(1, 60, "alice", "key", ttft_ms=500.0, total_ms=5500.0, prompt_tokens=1000, completion_tokens=51),
        r(2, 50, "alice", "key", ttft_ms=2500.0, total_ms=3000.0, prompt_tokens=100, completion_tokens=11),
        r(3, 40, "alice", "key", stream=False, ttft_ms=3000.0, total_ms=3000.0, prompt_tokens=200,
          completion_tokens=20, requested_model="auto:gone", policy="auto:gone", provider_id="cloud",
          model_id="gpt-x", fallbacks=[{"target": "gpu/qwen-coder", "why": "connect error"}]),
        r(4, 30, "alice", "key", status=503, error="all candidates down", total_ms=10.0, provider_id=None,
          model_id=None, reason=None,
          fallbacks=[{"target": "gpu/qwen-coder", "why": "cooling down"}, {"target": "cloud/gpt-x", "why": "503"}]),
        r(5, 20, "bob", "header", ttft_ms=100.0, total_ms=1100.0, prompt_tokens=50, completion_tokens=11,
          requested_model="gpu/qwen-coder", policy=None, reason="asked for by name"),
        r(6, 10, "bob", "header", ttft_ms=100.0, total_ms=2100.0, prompt_tokens=50, completion_tokens=11,
          error="upstream closed mid-stream", requested_model="gpu/qwen-coder", policy=None),
        r(7, 5, "curl/8.5", "user-agent", endpoint="embeddings", stream=False, ttft_ms=40.0, total_ms=40.0,
          prompt_tokens=30, requested_model="gpu/nomic-embed", policy=None, model_id="nomic-embed"),
        r(8, 2 * 24 * 60, "alice", "key", ttft_ms=1.0, total_ms=99999.0, prompt_tokens=9999, completion_tokens=2),
    ]


def known_requests(db_url: str, now: datetime) -> None:
    with psycopg.connect(psycopg_dsn(db_url)) as conn:
        write_batch(conn, list(requests(now)))
