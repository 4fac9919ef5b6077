"""Pareto utilities against brute force on seeded random sets (with ties and duplicates)."""

from __future__ import annotations

import numpy as np
import pytest

from pnag.errors import BudgetError, DataError, PnagError
from pnag.search.pareto import (
    best_within_budget,
    best_within_budgets,
    hypervolume_2d,
    pareto_front,
    regret,
    regrets,
)


def _random_set(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    # Few distinct values so ties and exact duplicates are common.
    if rng.random() < 0.5:
        return rng.integers(0, 6, n).astype(float), rng.integers(0, 6, n).astype(float)
    return rng.normal(70, 5, n), rng.lognormal(2, 0.5, n)


def _front_brute(acc, lat):
    n = len(acc)
    out = np.ones(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if acc[j] >= acc[i] and lat[j] <= lat[i] and (acc[j] > acc[i] or lat[j] < lat[i]):
                out[i] = False
    return out


def _hv_brute(acc, lat, ra, rl):
    """Area of the union of rectangles [lat_i, rl] x [ra, acc_i] on the compressed grid."""
    keep = (acc > ra) & (lat < rl)
    acc, lat = acc[keep], lat[keep]
    xs = np.unique(np.r_[lat, rl])
    ys = np.unique(np.r_[acc, ra])
    area = 0.0
    for x0, x1 in zip(xs[:-1], xs[1:]):
        for y0, y1 in zip(ys[:-1], ys[1:]):
            if np.any((lat <= x0) & (acc >= y1)):
                area += (x1 - x0) * (y1 - y0)
    return area


def _best_brute(acc, lat, b):
    best = -1
    for i in range(len(acc)):
        if lat[i] <= b and (best < 0 or acc[i] > acc[best] or (acc[i] == acc[best] and lat[i] < lat[best])):
            best = i
    return best


@pytest.mark.parametrize("seed", range(40))
def test_pareto_front_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    acc, lat = _random_set(rng, int(rng.integers(1, 60)))
    np.testing.assert_array_equal(pareto_front(acc, lat), _front_brute(acc, lat))


def test_pareto_front_small_cases():
    assert pareto_front([], []).tolist() == []
    # (acc, lat): b dominates a; c and d are exact duplicates on the front; e is slower at equal acc.
    acc = [1.0, 2.0, 3.0, 3.0, 3.0]
    lat = [5.0, 4.0, 6.0, 6.0, 7.0]
    assert pareto_front(acc, lat).tolist() == [False, True, True, True, False]


@pytest.mark.parametrize("seed", range(40))
def test_hypervolume_matches_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    acc, lat = _random_set(rng, int(rng.integers(1, 30)))
    ra = float(np.quantile(acc, 0.2)) - 0.5 * rng.random()
    rl = float(np.quantile(lat, 0.8)) + 0.5 * rng.random()
    assert hypervolume_2d(acc, lat, ra, rl) == pytest.approx(_hv_brute(acc, lat, ra, rl), rel=1e-12, abs=1e-12)


def test_hypervolume_hand_values():
    # Two points (acc 2 @ 1 ms, acc 3 @ 2 ms), reference (0, 4): 3*2 + 2*1 = 8.
    assert hypervolume_2d([2, 3], [1, 2], 0, 4) == pytest.approx(8.0)
    # A dominated point and points outside the reference box add nothing.
    assert hypervolume_2d([2, 3, 1, 9, -1], [1, 2, 3, 5, 0.5], 0, 4) == pytest.approx(8.0)
    assert hypervolume_2d([], [], 0, 1) == 0.0


@pytest.mark.parametrize("seed", range(30))
def test_best_within_budget_matches_brute_force(seed):
    rng = np.random.default_rng(200 + seed)
    acc, lat = _random_set(rng, int(rng.integers(1, 50)))
    budgets = np.r_[rng.choice(lat, 5), rng.uniform(lat.min() - 1, lat.max() + 1, 5)]
    got = best_within_budgets(acc, lat, budgets)
    for b, g in zip(budgets, got):
        want = _best_brute(acc, lat, b)
        # Ties on (accuracy, latency) may pick any of the tied indices; the brute force keeps the first.
        assert g == want
        assert best_within_budget(acc, lat, b) == want


def test_regret_values_and_errors():
    acc = np.array([70.0, 80.0, 90.0, 60.0])
    lat = np.array([1.0, 2.0, 3.0, 0.5])
    assert regret(acc, lat, 0, 2.5) == pytest.approx(10.0)
    assert regret(acc, lat, 1, 2.0) == pytest.approx(0.0)
    assert regret(acc, lat, 2, 2.0) == pytest.approx(-10.0)  # infeasible choice: feasibility is separate
    assert np.isnan(regret(acc, lat, -1, 2.0))
    np.testing.assert_allclose(regrets(acc, lat, [3, 0, 2], [0.5, 1.0, 10.0]), [0.0, 0.0, 0.0])
    with pytest.raises(BudgetError, match="0.1 ms.*>= 0.5 ms"):
        regret(acc, lat, 0, 0.1)
    with pytest.raises(DataError, match=r"chosen\[0\]: index 7 .*0..3 or -1"):
        regret(acc, lat, 7, 2.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: pareto_front([1, 2], [1]), "lengths 2 and 1"),
        (lambda: pareto_front([[1]], [[1]]), "1-D"),
        (lambda: pareto_front([1, float("nan")], [1, 2]), r"accuracy\[1\]: nan"),
        (lambda: hypervolume_2d([1], [1], float("inf"), 2), "reference point"),
        (lambda: best_within_budget([1], [1], "fast"), "budget: 'fast' is not a number"),
        (lambda: best_within_budgets([1], [1], [1, float("nan")]), r"budgets\[1\]"),
        (lambda: regrets([1, 2], [1, 2], [0], [1, 2]), "one choice per budget"),
        (lambda: regrets([1, 2], [1, 2], [0.5], [1]), "integer index"),
    ],
)
def test_bad_input_names_value(call, match):
    with pytest.raises(PnagError, match=match):
        call()
