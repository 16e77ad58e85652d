from __future__ import annotations

import math

import pytest

from engines.bench.compare import baseline_bands, detect_drift, mad, noise_band, pareto_mask


def test_noise_band_mad_and_floor() -> None:
    b = noise_band([10.0, 11.0, 12.0])
    assert b.center == 11.0 and mad([10.0, 11.0, 12.0]) == 1.0
    assert b.tolerance == 3 * 1.4826 * 1.0
    single = noise_band([10.0])
    assert single.tolerance == 0.5 and (single.low, single.high) == (9.5, 10.5)
    with pytest.raises(ValueError):
        noise_band([])


def test_drift_flags_slower_runs_only_beyond_the_band() -> None:
    base = [
        {("concurrency", 1.0): {"tpot_p50_ms": 10.0, "output_throughput": 100.0}},
        {("concurrency", 1.0): {"tpot_p50_ms": 10.2, "output_throughput": 99.0}},
        {("concurrency", 1.0): {"tpot_p50_ms": 9.8, "output_throughput": 101.0}},
    ]
    bands = baseline_bands(base, metrics=("tpot_p50_ms", "output_throughput"))
    tp = bands[(("concurrency", 1.0), "tpot_p50_ms")]
    assert tp.center == 10.0 and math.isclose(tp.tolerance, 3 * 1.4826 * 0.2)
    ok = detect_drift({("concurrency", 1.0): {"tpot_p50_ms": 10.5, "output_throughput": 98.0}}, bands)
    assert ok.comparable and not ok.slower
    slow = detect_drift({("concurrency", 1.0): {"tpot_p50_ms": 12.0, "output_throughput": 99.0}}, bands)
    assert slow.slower and "tpot_p50_ms +20.0%" in (slow.worst or "")
    fewer = detect_drift({("concurrency", 1.0): {"tpot_p50_ms": 10.0, "output_throughput": 80.0}}, bands)
    assert fewer.slower and "output_throughput" in (fewer.worst or "")
    faster = detect_drift({("concurrency", 1.0): {"tpot_p50_ms": 5.0, "output_throughput": 200.0}}, bands)
    assert not faster.slower
    other = detect_drift({("concurrency", 2.0): {"tpot_p50_ms": 99.0}}, bands)
    assert not other.comparable and not other.slower


def test_pareto_mask() -> None:
    pts = [(100, 10), (200, 20), (150, 25), (200, 30), (50, 5), (200, 20)]
    # (150,25) is dominated by (200,20); (200,30) too; the duplicate (200,20) pair does not dominate itself
    assert pareto_mask(pts) == [True, True, False, False, True, True]
    assert pareto_mask([]) == []


def test_actual_prompt_lengths_decide_comparability() -> None:
    from engines.bench.compare import lengths_differ
    from engines.bench.metrics import Distribution
    from engines.bench.report import _length_mismatches

    exact = Distribution.of([256.0] * 32).as_dict()
    assert lengths_differ(exact, exact) is None
    assert lengths_differ(exact, Distribution.of([257.0] * 32).as_dict()) is None  # one token: allowed
    assert lengths_differ(exact, Distribution.of([258.0] * 32).as_dict()) == (
        "mean prompt length 256.0 vs 258.0 tokens (allowed ±1.0)"
    )
    # the calibrated "256-token" runs: means 243 and 276 with a spread of ~20 tokens, 32 requests each
    a = Distribution.of([243.0 + d for d in (-20, 20) * 16]).as_dict()
    b = Distribution.of([276.0 + d for d in (-20, 20) * 16]).as_dict()
    assert lengths_differ(a, b) == "mean prompt length 243.0 vs 276.0 tokens (allowed ±15.0)"  # SE = √(400/32·2) = 5
    # two draws of one distribution: means 256 and 262, sd 40, 32 requests → SE 10, allowed ±30
    c = Distribution.of([256.0 + d for d in (-40, 40) * 16]).as_dict()
    d = Distribution.of([262.0 + d for d in (-40, 40) * 16]).as_dict()
    assert lengths_differ(c, d) is None
    # runs stored before lengths were recorded: nothing to check
    assert lengths_differ(None, exact) is None and lengths_differ({}, exact) is None
    lengths = {1: {1.0: exact, 2.0: exact}, 2: {1.0: exact, 2.0: Distribution.of([300.0] * 32).as_dict()}}
    assert _length_mismatches(lengths, [1, 2]) == [
        "run 2 at level 2: mean prompt length 256.0 vs 300.0 tokens (allowed ±1.0)"
    ]
