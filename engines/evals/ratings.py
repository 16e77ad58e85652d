"""Bradley–Terry ratings from pairwise outcomes, with bootstrap 95 % intervals (plain functions, numpy).

Model: each model *i* has a strength θᵢ and P(i beats j) = σ(θᵢ − θⱼ) = 1 / (1 + e^(θⱼ−θᵢ)). A comparison is
``(i, j, s)`` with ``s`` ∈ [0, 1] i's share of the win (the five-level scale of `engines.evals.judge`: 1, 0.75,
0.5, 0.25, 0; a tie is half a win each). θ maximises Σ s·log σ(θᵢ−θⱼ) + (1−s)·log σ(θⱼ−θᵢ) − ``l2``/2·Σθ²
(Newton's method). ``l2`` keeps an unbeaten (or never winning) model finite; ``l2 = 0`` is the plain maximum
likelihood estimate, where for every model the actual wins equal the expected ones.

Ratings are reported on the familiar Elo scale: ``1000 + 400·log10(e^θ)`` with θ centred on mean 0, so a
rating gap of 400 means 10:1 odds, 120.4 means 2:1.

Intervals: the comparisons are resampled with replacement ``n_boot`` times (a fixed seed: the same data give
the same interval), refitted, and the 2.5th and 97.5th percentiles of each model's rating are its 95 % interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ELO_BASE = 1000.0
ELO_SCALE = 400.0 / math.log(10.0)  # rating points per unit of θ
DEFAULT_L2 = 0.01
DEFAULT_BOOT = 500
DEFAULT_SEED = 20261202

Comparison = tuple[str, str, float]  # (model i, model j, i's share of the win in [0, 1])


@dataclass(frozen=True)
class ModelRating:
    model: str
    rating: float
    low: float  # 95 % interval (bootstrap); equal to rating without a bootstrap
    high: float
    comparisons: int
    wins: float  # the sum of the model's win shares


def _index(comparisons: Sequence[Comparison]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    models = sorted({c[0] for c in comparisons} | {c[1] for c in comparisons})
    pos = {m: k for k, m in enumerate(models)}
    i = np.array([pos[c[0]] for c in comparisons], dtype=np.int64)
    j = np.array([pos[c[1]] for c in comparisons], dtype=np.int64)
    s = np.array([float(c[2]) for c in comparisons], dtype=np.float64)
    if np.any((s < 0) | (s > 1)) or np.any(i == j):
        raise ValueError("a comparison needs two different models and a win share in [0, 1]")
    return models, i, j, s


def _fit(n: int, i: np.ndarray, j: np.ndarray, s: np.ndarray, l2: float, iters: int = 100) -> np.ndarray:
    theta = np.zeros(n)
    cells = np.concatenate((i * n + i, j * n + j, i * n + j, j * n + i))  # the Hessian entries each comparison adds to
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(theta[j] - theta[i]))
        r = s - p  # d loglik / d theta_i for each comparison (and minus that for theta_j)
        grad = np.bincount(i, r, n) - np.bincount(j, r, n) - l2 * theta
        w = p * (1.0 - p)
        hess: np.ndarray = np.bincount(cells, np.concatenate((w, w, -w, -w)), n * n).reshape(n, n) + l2 * np.eye(n)
        # with l2 > 0 the Hessian is positive definite: a plain solve (~10x faster than lstsq at 30 models);
        # without it the likelihood does not change when every theta moves together: least squares
        step = np.linalg.solve(hess, grad) if l2 > 0 else np.linalg.lstsq(hess, grad, rcond=None)[0]
        theta = theta + step
        theta -= theta.mean()
        if float(np.max(np.abs(step))) < 1e-12:
            break
    return theta


def to_elo(theta: np.ndarray) -> np.ndarray:
    out: np.ndarray = ELO_BASE + ELO_SCALE * (theta - theta.mean())
    return out


def bradley_terry(
    comparisons: Sequence[Comparison],
    *,
    l2: float = DEFAULT_L2,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
) -> list[ModelRating]:
    """Ratings of every model in ``comparisons``, best first; ``n_boot = 0`` skips the intervals."""
    if not comparisons:
        return []
    if l2 < 0 or n_boot < 0:
        raise ValueError("l2 and n_boot must be >= 0")
    models, i, j, s = _index(comparisons)
    n = len(models)
    elo = to_elo(_fit(n, i, j, s, l2))
    low, high = elo.copy(), elo.copy()
    if n_boot:
        rng = np.random.default_rng(seed)
        m = len(s)
        boots = np.empty((n_boot, n))
        for b in range(n_boot):
            k = rng.integers(0, m, m)
            boots[b] = to_elo(_fit(n, i[k], j[k], s[k], l2))
        low = np.percentile(boots, 2.5, axis=0)
        high = np.percentile(boots, 97.5, axis=0)
    counts = np.bincount(i, minlength=n) + np.bincount(j, minlength=n)
    wins = np.bincount(i, s, n) + np.bincount(j, 1.0 - s, n)
    out = [
        ModelRating(models[k], float(elo[k]), float(low[k]), float(high[k]), int(counts[k]), float(wins[k]))
        for k in range(n)
    ]
    return sorted(out, key=lambda r: (-r.rating, r.model))


def win_rate_matrix(comparisons: Sequence[Comparison]) -> dict[tuple[str, str], float]:
    """``{(i, j): i's mean win share against j}`` for every pair that met (both directions)."""
    tot: dict[tuple[str, str], list[float]] = {}
    for a, b, s in comparisons:
        tot.setdefault((a, b), []).append(float(s))
        tot.setdefault((b, a), []).append(1.0 - float(s))
    return {k: sum(v) / len(v) for k, v in tot.items()}
