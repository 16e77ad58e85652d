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
