"""Per-budget baselines on a synthetic additive NAS-Bench-201 problem whose optimum is known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pnag.errors import BudgetError, DataError, PnagError
from pnag.search.baselines import (
    IndexTable,
    Measured,
    best_measured,
    canonical,
    equal_share,
    evolutionary_search,
    policy_gradient_search,
    random_search,
    refine_with_measurements,
)
from pnag.search.pareto import best_within_budget
from pnag.space import MBV3Space, NB201Space

SPACE = NB201Space()
_R = np.random.default_rng(0)
W_ACC = _R.normal(0, 1, (6, 5))
W_LAT = _R.uniform(0.1, 1.0, (6, 5))
ALL = np.stack([SPACE.to_indices(a) for a in SPACE.all_archs()])


def acc_fn(idx: np.ndarray) -> np.ndarray:
    return 70.0 + W_ACC[np.arange(6), idx].sum(1)


def lat_fn(idx: np.ndarray) -> np.ndarray:
    return W_LAT[np.arange(6), idx].sum(1)


A_ALL, L_ALL = acc_fn(ALL), lat_fn(ALL)
BUDGET = float(np.quantile(L_ALL, 0.3))
OPT = best_within_budget(A_ALL, L_ALL, BUDGET)


class Counting:
    def __init__(self, fn):
        self.fn, self.rows = fn, 0

    def __call__(self, idx):
        self.rows += idx.shape[0]
        return self.fn(idx)


def test_index_table_nb201_and_mbv3():
    t = IndexTable(SPACE, ALL[::7], A_ALL[::7])
    np.testing.assert_allclose(t.lookup(ALL[::7]), A_ALL[::7])
    assert np.isnan(t.lookup(ALL[1:2])).all() and len(t) == len(ALL[::7])
    ms = MBV3Space(width=1.0)
    idx = np.stack([ms.to_indices(a) for a in ms.sample(30, seed=1)])
    noisy = idx.copy()
    mask = ms.active_mask(torch.from_numpy(idx)).numpy()
    noisy[~mask] = 2  # values in inactive decisions do not change the architecture
    tm = IndexTable(ms, idx, np.arange(30.0))
    np.testing.assert_allclose(tm.lookup(noisy), np.arange(30.0))
    np.testing.assert_array_equal(canonical(ms, noisy), idx)
    assert np.isnan(IndexTable(SPACE, ALL[:0], []).lookup(ALL[:2])).all()
    with pytest.raises(DataError, match="3 architectures but 2 values"):
        IndexTable(SPACE, ALL[:3], [1.0, 2.0])


def test_best_measured_is_best_within_budget():
    sub = np.random.default_rng(1).choice(len(ALL), 300, replace=False)
    table = Measured(ALL[sub], A_ALL[sub], L_ALL[sub])
    r = best_measured(SPACE, table, BUDGET)
    i = best_within_budget(A_ALL[sub], L_ALL[sub], BUDGET)
    assert r.indices == tuple(ALL[sub][i]) and r.queries == 0 and r.feasible
    assert r.predicted_accuracy == pytest.approx(A_ALL[sub][i])
    tiny = best_measured(SPACE, table, float(L_ALL[sub].min()) / 2)
    assert not tiny.feasible and tiny.predicted_latency_ms == pytest.approx(L_ALL[sub].min())


def test_random_search_spends_exactly_n_and_is_deterministic():
    score = Counting(acc_fn)
    r = random_search(SPACE, score, lat_fn, BUDGET, 400, seed=3)
    assert score.rows == 400 and r.queries == 400 and r.feasible
    assert r == random_search(SPACE, acc_fn, lat_fn, BUDGET, 400, seed=3)
    # more samples, nearer the known optimum; enough samples to cover the space find it
    def regret(n):
        return np.mean([A_ALL[OPT] - random_search(SPACE, acc_fn, lat_fn, BUDGET, n, seed=s).predicted_accuracy
                        for s in range(5)])

    assert regret(400) < regret(25)
    assert random_search(SPACE, acc_fn, lat_fn, BUDGET, 20 * len(ALL), seed=0).predicted_accuracy == \
        pytest.approx(A_ALL[OPT])
    # It returns the best of what it sampled.
    assert r.predicted_accuracy == pytest.approx(acc_fn(r.top[:1])[0])
    assert (acc_fn(r.top)[:-1] >= acc_fn(r.top)[1:]).all() and (lat_fn(r.top) <= BUDGET).all()


def test_evolution_finds_the_optimum_within_its_queries():
    score = Counting(acc_fn)
    r = evolutionary_search(SPACE, score, lat_fn, BUDGET, 1000, population=50, seed=0)
    assert score.rows == 1000 == r.queries
    assert r.feasible and r.predicted_accuracy == pytest.approx(A_ALL[OPT])
    assert r == evolutionary_search(SPACE, acc_fn, lat_fn, BUDGET, 1000, population=50, seed=0)
    # At equal queries it beats random search on this problem (seeded; averaged over 5 seeds).
    evo = np.mean([evolutionary_search(SPACE, acc_fn, lat_fn, BUDGET, 300, population=50, seed=s).predicted_accuracy
                   for s in range(5)])
    rnd = np.mean([random_search(SPACE, acc_fn, lat_fn, BUDGET, 300, seed=s).predicted_accuracy for s in range(5)])
    assert evo > rnd


def test_evolution_on_mbv3_finds_the_known_optimum():
    ms = MBV3Space(width=1.0)
    score = lambda i: i.sum(1).astype(float)  # noqa: E731
    lat = lambda i: i.sum(1).astype(float) + 1  # noqa: E731
    r = evolutionary_search(ms, score, lat, 70.0, 1000, seed=0)
    assert r.predicted_accuracy == 69.0 and r.queries == 1000  # the known optimum: score = latency - 1 <= 69
    assert random_search(ms, score, lat, 70.0, 1000, seed=0).predicted_accuracy < 69.0  # not found by chance
    assert ms.validate(r.arch) == r.arch


@pytest.mark.parametrize("reward", ["mnas", "tunas"])
def test_policy_gradient_learns_and_counts_queries(reward):
    score = Counting(acc_fn)
    r = policy_gradient_search(SPACE, score, lat_fn, BUDGET, reward, steps=40, batch=16, lr=0.1, seed=0)
    assert score.rows == 640 == r.queries
    again = policy_gradient_search(SPACE, acc_fn, lat_fn, BUDGET, reward, steps=40, batch=16, lr=0.1, seed=0)
    assert again.indices == r.indices
    # Better than the average cell by a wide margin (the soft reward may trade a little accuracy).
    assert r.predicted_accuracy > np.quantile(A_ALL, 0.9)


def test_refine_with_measurements_picks_true_best_of_candidates():
    sub = np.random.default_rng(2).choice(len(ALL), 200, replace=False)
    table = Measured(ALL[sub], A_ALL[sub], L_ALL[sub])
    noisy = lambda i: acc_fn(i) + np.random.default_rng(i.sum()).normal(0, 1.0, len(i))  # noqa: E731
    r = random_search(SPACE, noisy, lat_fn, BUDGET, 2000, seed=0)
    true = Counting(acc_fn)
    best = refine_with_measurements(SPACE, r, table, true, lat_fn, 8)
    known = IndexTable(SPACE, table.indices, table.accuracy)
    fresh = r.top[np.isnan(known.lookup(r.top))][:8]
    assert true.rows == best.true_queries == len(fresh) <= 8
    want = max(acc_fn(fresh).max(), A_ALL[sub][L_ALL[sub] <= BUDGET].max())
    assert best.predicted_accuracy == pytest.approx(want) and best.feasible
    assert refine_with_measurements(SPACE, r, table, acc_fn, lat_fn, 0) is r


def test_equal_share():
    assert equal_share(64_000, 20) == 3200
    assert equal_share(5, 20) == 1


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: random_search(SPACE, acc_fn, lat_fn, -1.0, 10), BudgetError, "budget: -1.0"),
        (lambda: random_search(SPACE, acc_fn, lat_fn, "x", 10), BudgetError, "'x' is not a number"),
        (lambda: random_search(SPACE, acc_fn, lat_fn, 1.0, 0), PnagError, "samples: 0"),
        (lambda: random_search(SPACE, lambda i: np.zeros(1), lat_fn, 9.0, 5), DataError, "score_fn: returned 1"),
        (lambda: evolutionary_search(SPACE, acc_fn, lat_fn, 1.0, 10, population=1), PnagError, "population: 1"),
        (lambda: evolutionary_search(SPACE, acc_fn, lat_fn, 1.0, 10, parent_ratio=0), PnagError, "parent ratio"),
        (lambda: evolutionary_search(SPACE, acc_fn, lat_fn, 1.0, 10, mutate_prob=2), PnagError, r"\[0, 1\]"),
        (lambda: policy_gradient_search(SPACE, acc_fn, lat_fn, 1.0, "pareto"), PnagError, "mnas or tunas"),
        (lambda: best_measured(SPACE, Measured(ALL[:0], A_ALL[:0], L_ALL[:0]), 1.0), DataError, "empty"),
        (lambda: Measured(ALL[:3], A_ALL[:2], L_ALL[:3]), DataError, "one accuracy and one latency"),
        (lambda: equal_share(0, 3), PnagError, "total queries: 0"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
