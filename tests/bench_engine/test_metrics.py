"""Metric definitions on hand-built timestamp sequences with known, exact answers.

All times are multiples of 1/64 s so every derived value is exact in binary floating point and the
assertions can use ``==``.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from engines.bench.metrics import (
    Distribution,
    RequestRecord,
    Slo,
    peak_concurrency,
    peak_output_per_s,
    percentile,
    summarize,
)


def single_token_chunks() -> RequestRecord:
    # send 0, five one-token chunks at 4/64 .. 8/64 s, [DONE] at 9/64 s
    return RequestRecord(
        index=0,
        send=0.0,
        chunks=[k / 64 for k in range(4, 9)],
        end=9 / 64,
        status=200,
        finish_reason="length",
        usage={"prompt_tokens": 20, "completion_tokens": 5},
        timings={"prompt_n": 20, "prompt_ms": 46.875, "predicted_n": 5, "predicted_per_second": 80.0},
    )


def multi_token_chunks() -> RequestRecord:
    # send 1.0; three chunks carrying 6 tokens in total (e.g. speculative decoding); end 2.0
    return RequestRecord(
        index=1,
        send=1.0,
        chunks=[1.25, 1.5, 1.75],
        end=2.0,
        status=200,
        finish_reason="length",
        usage={"prompt_tokens": 30, "completion_tokens": 6},
    )


def failed() -> RequestRecord:
    return RequestRecord(index=2, send=0.5, end=0.515625, status=500, error="HTTP 500: boom")


def test_single_token_chunks_exact() -> None:
    r = single_token_chunks()
    assert r.ok
    assert r.ttft == 0.0625  # 62.5 ms
    assert r.e2e == 0.140625
    assert r.output_tokens == 5
    assert r.tpot == (0.140625 - 0.0625) / 4 == 0.01953125
    assert r.itl_gaps == [0.015625] * 4
    assert r.decode_tps == 64.0  # (5 − 1) tokens over 4/64 s
    assert r.prompt_tps == 320.0  # 20 tokens / 62.5 ms
    assert not r.multi_token_chunks
    assert not r.tokens_from_chunks


def test_multi_token_chunks_follow_vllm_convention() -> None:
    r = multi_token_chunks()
    assert r.ttft == 0.25
    assert r.e2e == 1.0
    # TPOT uses the server's token count, not the chunk count: (1.0 − 0.25) / (6 − 1)
    assert r.tpot == 0.15
    # ITL: one gap per chunk boundary (2 gaps for 3 chunks), never divided by tokens per chunk
    assert r.itl_gaps == [0.25, 0.25]
    assert r.decode_tps == 10.0  # (6 − 1) / (1.75 − 1.25)
    assert r.multi_token_chunks


def test_token_count_fallbacks() -> None:
    r = RequestRecord(index=0, send=0.0, chunks=[0.5, 0.75], end=1.0, status=200)
    assert r.output_tokens == 2 and r.tokens_from_chunks
    r.timings = {"predicted_n": 7, "prompt_n": 10, "cache_n": 3}
    assert r.output_tokens == 7 and not r.tokens_from_chunks
    assert r.prompt_tokens == 13 and r.cached_tokens == 3
    r.usage = {"completion_tokens": 9, "prompt_tokens": 11, "prompt_tokens_details": {"cached_tokens": 2}}
    assert r.output_tokens == 9 and r.prompt_tokens == 11
    assert r.cached_tokens == 3  # llama.cpp's own figure wins over usage details


def test_one_token_answer_has_no_tpot_and_cannot_violate_tpot_slo() -> None:
    r = RequestRecord(
        index=0, send=0.0, chunks=[0.125], end=0.1875, status=200, usage={"completion_tokens": 1}
    )
    assert r.tpot is None and r.decode_tps is None and r.itl_gaps == []
    assert r.meets(Slo(ttft_ms=200, tpot_ms=1))
    assert not r.meets(Slo(ttft_ms=100, tpot_ms=None))


def test_goodput_requires_every_set_slo() -> None:
    a, b = single_token_chunks(), multi_token_chunks()
    slo = Slo(ttft_ms=200.0, tpot_ms=50.0)
    assert a.meets(slo)  # 62.5 ms, 19.53 ms
    assert not b.meets(slo)  # TTFT 250 ms
    assert not b.meets(Slo(ttft_ms=300.0, tpot_ms=100.0))  # TPOT 150 ms
    assert b.meets(Slo(ttft_ms=300.0, tpot_ms=150.0))  # bounds are inclusive
    assert not b.meets(Slo(ttft_ms=None, tpot_ms=None, e2e_ms=999.0))
    assert not failed().meets(Slo(None, None, None))


def test_summary_exact() -> None:
    s = summarize([single_token_chunks(), multi_token_chunks(), failed()], Slo(ttft_ms=200.0, tpot_ms=50.0))
    assert (s.requests, s.completed, s.failed, s.cancelled) == (3, 2, 1, 0)
    assert s.duration_s == 2.0  # first send 0.0 → last end 2.0
    assert s.output_tokens == 11 and s.prompt_tokens == 50
    assert s.request_throughput == 1.0
    assert s.output_throughput == 5.5
    assert s.total_token_throughput == 30.5
    assert s.prompt_throughput == 25.0
    assert s.goodput == 0.5 and s.goodput_ratio == 0.5
    assert s.peak_concurrency == 1  # [0, 0.140625], [0.5, 0.515625] and [1, 2] never overlap
    assert s.mean_concurrency == (0.140625 + 1.0) / 2.0
    assert s.ttft_ms.count == 2 and s.ttft_ms.p50 == 156.25 and s.ttft_ms.mean == 156.25
    assert s.ttft_ms.min == 62.5 and s.ttft_ms.max == 250.0
    assert s.tpot_ms.count == 2 and s.tpot_ms.mean == (19.53125 + 150.0) / 2
    assert s.itl_ms.count == 6  # 4 gaps + 2 gaps pooled
    assert s.itl_ms.max == 250.0 and s.itl_ms.min == 15.625
    assert s.e2e_ms.p50 == (140.625 + 1000.0) / 2
    assert s.multi_token_chunk_requests == 1
    assert s.server_prompt_ms.count == 1 and s.server_prompt_ms.mean == 46.875
    assert (
        s.ttft_overhead_ms.count == 1 and s.ttft_overhead_ms.p50 == 15.625
    )  # 62.5 ms TTFT − 46.875 ms prompt
    # 1-s buckets from the first chunk (0.0625): A's 5 tokens in bucket 0; B's 3 chunks + 3 surplus in bucket 1
    assert s.peak_output_per_s == 6.0


def test_peak_concurrency_sweep_line() -> None:
    assert peak_concurrency([]) == 0
    assert peak_concurrency([(0, 1), (1, 2)]) == 1  # touching intervals do not overlap
    assert peak_concurrency([(0, 3), (1, 2), (1.5, 4), (3, 5)]) == 3
    assert peak_output_per_s([]) is None


def test_schedule_lag() -> None:
    r = RequestRecord(index=0, send=0.515625, scheduled=0.5)
    assert r.schedule_lag == 0.015625
    s = summarize([r])
    assert s.schedule_lag_ms.p50 == 15.625
    assert s.cancelled == 0 and s.failed == 1  # never finished: not ok


def test_cancelled_requests_are_counted_apart() -> None:
    r = RequestRecord(index=0, send=0.0, chunks=[0.25], cancelled=True, status=200)
    s = summarize([r, single_token_chunks()])
    assert (s.completed, s.failed, s.cancelled) == (1, 0, 1)


def test_percentile_matches_numpy_linear() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 1, 3, 2], 0) == 1 and percentile([4, 1, 3, 2], 100) == 4
    assert percentile([10.0], 99) == 10.0
    rng = random.Random(7)
    for n in (2, 3, 10, 101):
        xs = [rng.random() * 100 for _ in range(n)]
        for q in (50, 90, 95, 99, 12.5):
            assert math.isclose(percentile(xs, q), float(np.percentile(xs, q)), rel_tol=1e-12)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_distribution_std_is_population_std() -> None:
    d = Distribution.of([1.0, 2.0, 3.0, 4.0])
    assert d.mean == 2.5 and d.std == math.sqrt(1.25)
    assert Distribution.of([]).count == 0 and Distribution.of([]).p50 is None
