from __future__ import annotations

import random

import pytest

from engines.bench.workload import (
    LengthDist,
    ReplayWorkload,
    SyntheticWorkload,
    TokenCalibration,
    arrival_offsets,
    build_requests,
    fit_calibration,
    parse_levels,
)


def test_length_dist_fixed_and_clamped() -> None:
    rng = random.Random(1)
    assert [LengthDist(100).sample(rng) for _ in range(3)] == [100, 100, 100]
    d = LengthDist(100, stdev=1000, min=20, max=150)
    xs = [d.sample(rng) for _ in range(500)]
    assert min(xs) == 20 and max(xs) == 150
    with pytest.raises(ValueError):
        LengthDist(10, min=20, max=5)
    with pytest.raises(ValueError):
        LengthDist(0)


def test_length_dist_mean_and_stdev() -> None:
    rng = random.Random(2)
    xs = [LengthDist(500, 50, 1, 10_000).sample(rng) for _ in range(4000)]
    mean = sum(xs) / len(xs)
    sd = (sum((x - mean) ** 2 for x in xs) / len(xs)) ** 0.5
    assert abs(mean - 500) < 5 and abs(sd - 50) < 5


def test_requests_are_seeded_and_prefixes_unique() -> None:
    wl = SyntheticWorkload(LengthDist(64, 8), LengthDist(16, 4))
    a = build_requests(wl, 50, seed=3, tag="run1-p0")
    b = build_requests(wl, 50, seed=3, tag="run1-p0")
    c = build_requests(wl, 50, seed=4, tag="run1-p0")
    assert a == b
    assert [r.prompt for r in a] != [r.prompt for r in c]
    prefixes = [r.prompt.split(" ", 1)[0] for r in a]
    assert len(set(prefixes)) == 50
    # the random part comes first, so two requests never share a leading token
    assert len({p[:8] for p in prefixes}) == 50
    assert all("run1-p0" in p for p in prefixes)
    assert [r.index for r in a] == list(range(50))


def test_prompt_word_count_follows_calibration() -> None:
    wl = SyntheticWorkload(LengthDist(130), LengthDist(8))
    cal = TokenCalibration(overhead=10, per_word=1.5)
    (r,) = build_requests(wl, 1, seed=0, tag="t", calibration=cal)
    assert len(r.prompt.split(" ")) == cal.words_for(130) == 80
    assert (r.input_tokens, r.output_tokens) == (130, 8)


def test_fit_calibration() -> None:
    cal = fit_calibration(16, 60, 144, 252)
    assert cal.per_word == 1.5 and cal.overhead == 36.0
    assert fit_calibration(16, 60, 16, 60) == TokenCalibration()
    assert TokenCalibration().words_for(1) == 1


def test_replay_samples_jointly_from_pairs() -> None:
    pairs = ((100, 10), (2000, 300), (50, 5))
    wl = ReplayWorkload(pairs, max_prompt=1000)
    got = wl.lengths(300, random.Random(5))
    assert set(got) == {(100, 10), (1000, 300), (50, 5)}
    assert wl.describe()["pairs"] == 3
    with pytest.raises(ValueError):
        ReplayWorkload(())


def test_constant_arrivals_exact() -> None:
    assert arrival_offsets(4, 2.0, "constant", seed=0) == [0.0, 0.5, 1.0, 1.5]
    assert arrival_offsets(0, 2.0, "constant", seed=0) == []


def test_poisson_arrivals_seeded_and_rescaled() -> None:
    a = arrival_offsets(200, 4.0, "poisson", seed=11)
    assert a == arrival_offsets(200, 4.0, "poisson", seed=11)
    assert a != arrival_offsets(200, 4.0, "poisson", seed=12)
    assert a[0] == 0.0 and all(y >= x for x, y in zip(a, a[1:], strict=False))
    # rescaled: the 200 gaps sum to exactly n / rate = 50 s; the last send is one gap before that
    rng = random.Random(11)
    gaps = [rng.expovariate(4.0) for _ in range(200)]
    last_gap = gaps[-1] * 50.0 / sum(gaps)
    assert a[-1] + last_gap == pytest.approx(50.0, rel=1e-12)
    with pytest.raises(ValueError):
        arrival_offsets(3, 0.0, "poisson", seed=0)


def _gap_cv(offsets: list[float]) -> float:
    gaps = [b - a for a, b in zip(offsets, offsets[1:], strict=False)]
    mean = sum(gaps) / len(gaps)
    return (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5 / mean


def test_burstiness_shapes_the_gaps_and_keeps_the_rate() -> None:
    n, rate = 20_000, 5.0
    # burstiness 1 is the Poisson schedule, draw for draw
    assert arrival_offsets(50, rate, "poisson", seed=3, burstiness=1.0) == arrival_offsets(50, rate, "poisson", seed=3)
    # other values: gamma gaps with shape k and mean 1/rate, drawn from the seed, then rescaled to span n / rate
    k = 0.25
    rng = random.Random(7)
    gaps = [rng.gammavariate(k, 1.0 / (rate * k)) for _ in range(n)]
    gaps = [g * (n / rate) / sum(gaps) for g in gaps]
    bursty = arrival_offsets(n, rate, "poisson", seed=7, burstiness=k)
    assert bursty[1] == pytest.approx(gaps[0], rel=1e-12) and bursty[-1] + gaps[-1] == pytest.approx(n / rate)
    # the coefficient of variation of gamma gaps is 1/sqrt(k): 2 for k = 0.25, 1 for Poisson, 0.5 for k = 4
    cvs = {b: _gap_cv(arrival_offsets(n, rate, "poisson", seed=7, burstiness=b)) for b in (0.25, 1.0, 4.0)}
    assert cvs[0.25] == pytest.approx(2.0, rel=0.05)
    assert cvs[1.0] == pytest.approx(1.0, rel=0.05)
    assert cvs[4.0] == pytest.approx(0.5, rel=0.05)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="burstiness must be a positive finite number"):
            arrival_offsets(3, 1.0, "poisson", seed=0, burstiness=bad)


def test_burstiness_is_an_open_loop_option() -> None:
    from engines.bench.options import BenchOptions

    spec = BenchOptions.from_mapping({"mode": "rate", "burstiness": 0.5}).spec()
    assert spec.burstiness == 0.5 and spec.params()["burstiness"] == 0.5
    # the workload key changes with burstiness (it enters the key only when it is not 1, so keys of stored Poisson
    # runs are unchanged)
    assert spec.workload_key() != BenchOptions.from_mapping({"mode": "rate"}).spec().workload_key()
    with pytest.raises(ValueError, match="--mode rate --arrival poisson"):
        BenchOptions.from_mapping({"mode": "concurrency", "burstiness": 0.5}).spec()
    with pytest.raises(ValueError, match="--mode rate --arrival poisson"):
        BenchOptions.from_mapping({"mode": "rate", "arrival": "constant", "burstiness": 2.0}).spec()


def test_parse_levels() -> None:
    assert parse_levels("4,1, 2,2") == [1.0, 2.0, 4.0]
    assert parse_levels([0.5, 1]) == [0.5, 1.0]
    with pytest.raises(ValueError):
        parse_levels("0,1")
