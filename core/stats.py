"""Small statistics helpers shared by several layers (plain functions, numpy only).

`ratio_interval`: a seeded percentile bootstrap of a score that is a ratio of sums over independent units —
a pass rate over items (each item: passes, attempts), a mean judge rating over answers (each answer: the sum
of its parsed ratings, how many parsed). The units are resampled with replacement ``n_boot`` times and the
2.5th and 97.5th percentiles of the resampled ratio are the 95 % interval. A fixed seed makes the same data
give the same interval. For a plain pass rate over n items this is the percentile interval of
Binomial(n, p̂)/n (up to resampling noise), e.g. 3 of 4 passed → [0.25, 1.0].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_BOOT = 2000
DEFAULT_SEED = 20261202


def ratio_interval(
    sums: Sequence[float],
    counts: Sequence[float],
    *,
    level: float = 0.95,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float, float] | None:
    """(Σsums/Σcounts, low, high) over the units with a positive count; None when there is none."""
    if len(sums) != len(counts):
        raise ValueError("sums and counts need the same length")
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError("level must be in (0, 1) and n_boot >= 1")
    s = np.asarray(sums, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    keep = c > 0
    s, c = s[keep], c[keep]
    if not len(c):
        return None
    point = float(s.sum() / c.sum())
    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(c), size=(n_boot, len(c)))
    boots = s[k].sum(axis=1) / c[k].sum(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boots, [tail, 100 - tail])
    return point, float(low), float(high)
