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


def test_parse_levels() -> None:
    assert parse_levels("4,1, 2,2") == [1.0, 2.0, 4.0]
    assert parse_levels([0.5, 1]) == [0.5, 1.0]
    with pytest.raises(ValueError):
        parse_levels("0,1")
