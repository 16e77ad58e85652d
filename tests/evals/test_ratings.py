"""Bradley–Terry ratings against hand-computed fixtures."""

from __future__ import annotations

import math

import pytest

from engines.evals.ratings import bradley_terry, win_rate_matrix


def _games(a: str, b: str, wins_a: int, wins_b: int) -> list[tuple[str, str, float]]:
    return [(a, b, 1.0)] * wins_a + [(a, b, 0.0)] * wins_b


def test_two_models_closed_form() -> None:
    """A beats B 3 times of 4. The likelihood 3·log σ(d) + log σ(−d) is maximal where σ(d) = 3/4, i.e. the
    strength gap d = ln 3 = 1.0986; on the Elo scale 400·log10(3) = 190.85 points, centred on 1000:
    A = 1095.42, B = 904.58."""
    r = bradley_terry(_games("A", "B", 3, 1), l2=0.0, n_boot=0)
    assert [x.model for x in r] == ["A", "B"]
    assert r[0].rating == pytest.approx(1000 + 200 * math.log10(3), abs=1e-6)
    assert r[0].rating == pytest.approx(1095.424, abs=1e-3)
    assert r[1].rating == pytest.approx(904.576, abs=1e-3)
    assert (r[0].comparisons, r[0].wins, r[1].wins) == (4, 3.0, 1.0)


def test_three_models_consistent_with_strengths_4_2_1() -> None:
    """Strengths 4 : 2 : 1 give P(A>B) = 4/6 = 2/3, P(B>C) = 2/3, P(A>C) = 4/5. Results exactly in those
    proportions — A–B 2:1, B–C 2:1, A–C 4:1 — satisfy the maximum-likelihood equations (wins = expected wins):
    A: 2 + 4 = 3·2/3 + 5·4/5 = 6; B: 1 + 2 = 3·1/3 + 3·2/3 = 3; C: 1 + 1 = 3·1/3 + 5·1/5 = 2.
    So the fit is θ = ln 4, ln 2, ln 1 up to a shift, i.e. Elo steps of 400·log10(2) = 120.41:
    A = 1120.41, B = 1000, C = 879.59."""
    data = _games("A", "B", 2, 1) + _games("B", "C", 2, 1) + _games("C", "A", 1, 4)
    r = bradley_terry(data, l2=0.0, n_boot=0)
    assert [x.model for x in r] == ["A", "B", "C"]
    assert [round(x.rating, 2) for x in r] == [1120.41, 1000.0, 879.59]


def test_half_wins_are_ties_and_five_level_scores() -> None:
    """Two 0.75 results (A>B on the five-level scale) weigh like 3 wins of 4: the same gap as the first test."""
    r = bradley_terry([("A", "B", 0.75), ("B", "A", 0.25)], l2=0.0, n_boot=0)
    assert r[0].model == "A" and r[0].rating == pytest.approx(1095.424, abs=1e-3)
    even = bradley_terry([("A", "B", 0.5)] * 3, l2=0.0, n_boot=0)
    assert [x.rating for x in even] == pytest.approx([1000.0, 1000.0])


def test_unbeaten_model_stays_finite_with_l2_and_bootstrap_is_seeded() -> None:
    data = _games("A", "B", 5, 0) + _games("B", "C", 6, 4) + _games("A", "C", 3, 1)
    r1 = bradley_terry(data, n_boot=200, seed=7)
    r2 = bradley_terry(data, n_boot=200, seed=7)
    assert r1 == r2
    assert [x.model for x in r1] == ["A", "B", "C"]
    for x in r1:
        assert math.isfinite(x.rating) and x.low <= x.rating <= x.high
    assert r1[0].high - r1[0].low > 10  # few games: a wide interval
    more = bradley_terry(data * 20, n_boot=200, seed=7)
    assert (more[1].high - more[1].low) < (r1[1].high - r1[1].low)  # more data, narrower interval


def test_win_rate_matrix_and_bad_input() -> None:
    m = win_rate_matrix([("A", "B", 1.0), ("B", "A", 0.25), ("A", "C", 0.5)])
    assert m[("A", "B")] == pytest.approx((1.0 + 0.75) / 2) and m[("B", "A")] == pytest.approx(0.125)
    assert m[("C", "A")] == 0.5
    with pytest.raises(ValueError):
        bradley_terry([("A", "A", 1.0)])
    with pytest.raises(ValueError):
        bradley_terry([("A", "B", 1.5)])
    assert bradley_terry([]) == []
