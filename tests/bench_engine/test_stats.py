"""Statistics that say how sure they are: bootstrap intervals against hand-computed fixtures, the
sample-size rules, and the noise-aware plateau test on synthetic throughput curves."""

from __future__ import annotations

import random

import pytest

from engines.bench.stats import (
    bootstrap_distribution,
    estimate,
    intervals,
    plateau_test,
    relative_se_of_ratio,
)


def test_exact_bootstrap_of_the_mean_by_hand() -> None:
    # [1, 2, 3]: 3³ = 27 ordered resamples. Their sums are 3..9 with multiplicities 1, 3, 6, 7, 6, 3, 1, so the
    # 27 sorted means start 1, 4/3, ... and end ..., 8/3, 3. 95 % interval, linear percentiles over 27 values:
    # low at position 26·0.025 = 0.65 → 1 + 0.65·(1/3); high at 26·0.975 = 25.35 → 8/3 + 0.35·(1/3).
    dist = sorted(bootstrap_distribution([1.0, 2.0, 3.0], "mean").tolist())
    assert len(dist) == 27
    sums = [round(3 * m) for m in dist]
    assert [sums.count(k) for k in range(3, 10)] == [1, 3, 6, 7, 6, 3, 1]
    e = estimate([1.0, 2.0, 3.0], "mean")
    assert e.value == 2.0
    assert e.low == pytest.approx(1 + 0.65 / 3, abs=1e-12)
    assert e.high == pytest.approx(8 / 3 + 0.35 / 3, abs=1e-12)
    assert e.warning == "few samples: 3"


def test_exact_bootstrap_of_the_median_by_hand() -> None:
    # The median of a resample of [1, 2, 3] is 1 when at least two draws are 1: 1 + 3·2 = 7 of 27 resamples;
    # likewise 3 for 7 resamples; 2 for the other 13. Sorted: 7×1, 13×2, 7×3 → the 2.5 % and 97.5 %
    # points (positions 0.65 and 25.35) are 1 and 3.
    dist = bootstrap_distribution([3.0, 1.0, 2.0], "p50").tolist()
    assert (dist.count(1.0), dist.count(2.0), dist.count(3.0)) == (7, 13, 7)
    e = estimate([3.0, 1.0, 2.0], "p50")
    assert (e.value, e.low, e.high) == (2.0, 1.0, 3.0)


def test_monte_carlo_bootstrap_is_seeded_and_covers_the_value() -> None:
    rng = random.Random(7)
    xs = [rng.gauss(100.0, 10.0) for _ in range(200)]
    a, b = estimate(xs, "p90"), estimate(xs, "p90")
    assert a == b  # fixed seed: the same interval every time
    assert a.low is not None and a.high is not None and a.value is not None
    assert a.low < a.value < a.high
    assert estimate(xs, "p90", seed=1) != a
    # intervals() shares one set of resamples between statistics and gives the same numbers as estimate()
    assert intervals(xs)["p90"] == a.as_dict()
    assert intervals(xs)["mean"] == estimate(xs, "mean").as_dict()


def test_sample_size_rules() -> None:
    xs20 = [float(i) for i in range(20)]
    iv = intervals(xs20)
    assert iv["p99"]["hidden"] and iv["p99"]["value"] is None  # 0.2 samples above p99
    assert iv["p99"]["warning"] == "hidden: 20 samples, fewer than 1 above p99"
    assert not iv["p95"]["hidden"] and iv["p95"]["warning"] == "few samples: 20 (1.0 above p95)"
    assert iv["p90"]["warning"] == "few samples: 20 (2.0 above p90)"
    assert iv["p50"]["warning"] is None and iv["mean"]["warning"] is None
    assert iv["p50"]["value"] == 9.5
    assert intervals([float(i) for i in range(99)])["p99"]["hidden"]
    p99_100 = intervals([float(i) for i in range(100)])["p99"]
    assert not p99_100["hidden"] and p99_100["warning"] == "few samples: 100 (1.0 above p99)"
    assert intervals([float(i) for i in range(500)])["p99"]["warning"] is None
    assert intervals([])["mean"] == {
        "n": 0, "value": None, "low": None, "high": None, "hidden": True, "warning": "no samples"
    }  # fmt: skip
    # scale multiplies before anything is computed (seconds → ms)
    assert intervals([0.5, 1.5, 1.0], 1000.0)["mean"]["value"] == 1000.0


def test_relative_se_of_a_throughput() -> None:
    assert relative_se_of_ratio([10.0] * 8, [2.0] * 8) == 0.0
    assert relative_se_of_ratio([10.0], [2.0]) is None
    se = relative_se_of_ratio([10.0, 20.0, 10.0, 20.0], [1.0, 1.0, 1.0, 1.0])
    assert se is not None and 0.05 < se < 0.2


LEVELS = (1, 2, 4, 8, 16, 32, 64, 128)


def _old_rule(ys: list[float]) -> bool:
    """The rule this test replaces: saturated when < 5 % better than the best lower level."""
    return any(ys[i] < 1.05 * max(ys[:i]) for i in range(1, len(ys)))


def _curve(seed: int, exponent: float, knee: float | None, noise: float = 0.12) -> list[float]:
    rng = random.Random(seed)
    return [
        100.0 * min(x, knee if knee else x) ** exponent * (1 + rng.uniform(-noise, noise)) for x in LEVELS
    ]


def test_no_false_plateau_on_a_rising_curve_with_12_percent_noise() -> None:
    # Throughput still rising by 2^0.4 = +32 % per doubling, each point off by up to ±12 %: 200 seeded sweeps.
    curves = [_curve(seed, 0.4, None) for seed in range(200)]
    assert sum(plateau_test(c, [None] * len(c)).plateau for c in curves) == 0
    assert sum(_old_rule(c) for c in curves) == 1  # the 5 % rule cut one of these sweeps short
    # +23 % per doubling, the same noise: the 5 % rule fires on 79 sweeps, the test on 14
    curves = [_curve(seed, 0.3, None) for seed in range(200)]
    assert sum(_old_rule(c) for c in curves) == 79
    assert sum(plateau_test(c, [None] * len(c)).plateau for c in curves) == 14
    # Worst case of the noise: every other point +12 % then −12 % on a +23 % curve — never a plateau
    # (a −3 % step is followed by a +52 % one), while the 5 % rule stops at the first dip.
    ys = [100.0 * x**0.3 * (1.12 if i % 2 == 0 else 0.88) for i, x in enumerate(LEVELS)]
    v = plateau_test(ys, [None] * len(ys))
    assert not v.plateau and v.knee is None
    assert _old_rule(ys)


def test_real_plateau_found_under_noise() -> None:
    # Rising +41 % per doubling up to 8, flat after; ±12 % noise; 200 seeded sweeps.
    found: dict[int, int] = {}
    for seed in range(200):
        c = _curve(seed, 0.5, 8)
        v = plateau_test(c, [None] * len(c))
        assert v.plateau and v.knee is not None and v.at is not None
        found[LEVELS[v.knee]] = found.get(LEVELS[v.knee], 0) + 1
    assert found == {4: 1, 8: 175, 16: 21, 32: 3}
    # Without noise: the knee is exactly at 8, confirmed at 32 (two flat steps).
    flat = [100.0 * min(x, 8) ** 0.5 for x in LEVELS]
    v = plateau_test(flat, [0.0] * len(flat))
    assert (v.plateau, LEVELS[v.knee or 0], LEVELS[v.at or 0]) == (True, 8, 32)


def test_measured_noise_above_the_floor_widens_the_test() -> None:
    ys = [100.0, 200.0, 260.0, 330.0]  # +30 %, +27 %: significant against the 0.06 floor (z ≥ 2.8)
    assert not plateau_test(ys, [None] * 4).plateau
    # measured relative noise of 0.2 per point: +30 % is z = 0.93, no longer significant
    v = plateau_test(ys, [0.2] * 4)
    assert v.plateau and v.knee == 1 and v.at == 3


def test_point_summary_carries_intervals_lengths_and_the_servers_prefill_rate() -> None:
    from engines.bench.metrics import RequestRecord, summarize

    # Concurrency 2: both requests sent at 0 with 64 prompt tokens; llama.cpp prefills each at 1024 tok/s
    # (62.5 ms), but the second waits for the first's prefill: its TTFT is 0.25 s, so prompt tokens ÷ TTFT
    # reads 256 tok/s — a latency-derived figure, not the server's prefill rate.
    def rec(i: int, ttft: float) -> RequestRecord:
        return RequestRecord(
            index=i, send=0.0, chunks=[ttft, ttft + 0.125], end=ttft + 0.125, status=200,
            usage={"prompt_tokens": 64, "completion_tokens": 2},
            timings={"prompt_n": 64, "prompt_ms": 62.5, "prompt_per_second": 1024.0, "predicted_n": 2},
        )  # fmt: skip

    s = summarize([rec(0, 0.125), rec(1, 0.25)])
    assert s.prompt_tps.mean == (512.0 + 256.0) / 2
    assert s.server_prefill_per_s.mean == 1024.0 and s.server_prefill_per_s.count == 2
    assert s.prompt_len.min == s.prompt_len.max == 64.0
    assert s.output_len.mean == 2.0
    ttft = s.intervals["ttft_ms"]
    assert ttft["mean"]["value"] == 187.5 and ttft["mean"]["warning"] == "few samples: 2"
    # exact bootstrap over 2² = 4 resamples: means 125, 187.5, 187.5, 250 → 2.5 %/97.5 % at positions 0.075/2.925
    assert ttft["mean"]["low"] == pytest.approx(125.0 + 0.075 * 62.5)
    assert ttft["mean"]["high"] == pytest.approx(187.5 + 0.925 * 62.5)
    assert ttft["p99"]["hidden"]
    d = s.as_dict()
    assert d["intervals"]["server_prefill_per_s"]["mean"]["value"] == 1024.0
    assert d["server_prefill_per_s"]["mean"] == 1024.0
