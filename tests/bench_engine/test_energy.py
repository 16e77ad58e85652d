from __future__ import annotations

from engines.bench.energy import idle_power, integrate_power
from engines.bench.host import power_series


def test_trapezoid_between_samples_exact() -> None:
    series = [(0.0, 100.0), (5.0, 200.0), (10.0, 200.0)]
    e = integrate_power(series, 2.5, 7.5)
    assert e is not None
    # P(2.5)=150, P(5)=200, P(7.5)=200 → (150+200)/2·2.5 + (200+200)/2·2.5
    assert e.joules == 937.5
    assert e.mean_w == 187.5
    assert e.per_token(375) == 2.5
    assert e.per_token(0) is None


def test_constant_extrapolation_at_edges() -> None:
    series = [(10.0, 300.0), (15.0, 100.0)]
    e = integrate_power(series, 8.0, 17.0)
    assert e is not None
    # 300 W for 2 s, ramp 300→100 over 5 s (1000 J), 100 W for 2 s
    assert e.joules == 600.0 + 1000.0 + 200.0


def test_too_few_samples_gives_no_figure() -> None:
    assert integrate_power([(0.0, 100.0)], 0.0, 1.0) is None
    assert integrate_power([(0.0, 100.0), (100.0, 100.0)], 40.0, 50.0) is None
    assert integrate_power([(0.0, 100.0), (5.0, 100.0)], 3.0, 3.0) is None


def test_idle_power() -> None:
    series = [(0.0, 50.0), (5.0, 70.0), (10.0, 300.0)]
    assert idle_power(series, before=10.0) == 60.0
    assert idle_power(series, before=0.0) is None


def test_power_series_sums_gpus_per_instant_and_parses_offsets() -> None:
    stats = [
        {"timestamp": "2026-08-22T09:00:00-07:00", "id": 0, "power_draw_w": 100.5},
        {"timestamp": "2026-08-22T16:00:00Z", "id": 1, "power_draw_w": 50.0},
        {"timestamp": "2026-08-22T16:00:05.5Z", "id": 0, "power_draw_w": 90},
        {"timestamp": "bad", "power_draw_w": 1.0},
    ]
    s = power_series(stats)
    assert [w for _, w in s] == [150.5, 90.0]
    assert s[1][0] - s[0][0] == 5.5
    assert power_series(None) == []
