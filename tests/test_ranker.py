"""Pareto-aware ranker: pair labels and loss against a brute-force double loop; training and modes."""

import math

import numpy as np
import pytest
import torch

from pnag.errors import BudgetError, PnagError
from pnag.predict.ranker import ParetoRanker, pareto_pair_targets, pareto_ranking_loss


def _brute(acc, lat, scores, budget):
    """Loops over every ordered pair (i, j), following the rule in words."""
    total, n = 0.0, 0
    for i in range(len(acc)):
        for j in range(len(acc)):
            if lat[i] <= budget and lat[j] <= budget:
                y = 1.0 if acc[i] > acc[j] else (-1.0 if acc[i] < acc[j] else 0.0)
            else:
                y = 1.0 if lat[i] < lat[j] else (-1.0 if lat[i] > lat[j] else 0.0)
            total += math.log(1.0 + math.exp(-y * (scores[i] - scores[j])))
            n += 1
    return total / n


@pytest.mark.parametrize("budget", [0.5, 3.0, 5.5, 100.0])
def test_loss_matches_brute_force(budget):
    rng = np.random.default_rng(1)
    acc = rng.integers(60, 80, 9).astype(float)  # repeated values exercise y = 0
    lat = rng.integers(1, 8, 9).astype(float)
    s = rng.normal(size=9)
    i, j = np.meshgrid(np.arange(9), np.arange(9), indexing="ij")
    i, j = i.ravel(), j.ravel()
    y = pareto_pair_targets(acc[i], lat[i], acc[j], lat[j], budget)
    got = pareto_ranking_loss(torch.tensor(s[i]), torch.tensor(s[j]), y.double())
    assert float(got) == pytest.approx(_brute(acc, lat, s, budget), rel=1e-9)


def test_targets_rule():
    # both feasible: accuracy decides; one infeasible: the faster (feasible) one wins; both infeasible: faster
    y = pareto_pair_targets(torch.tensor([70., 80., 80., 70.]), torch.tensor([5., 9., 12., 11.]),
                            torch.tensor([75., 70., 60., 90.]), torch.tensor([4., 8., 9., 12.]), torch.tensor(10.))
    assert y.tolist() == [-1.0, 1.0, -1.0, 1.0]
    # per-pair budgets broadcast
    y = pareto_pair_targets(torch.tensor([80., 80.]), torch.tensor([9., 9.]), torch.tensor([70., 70.]),
                            torch.tensor([5., 5.]), torch.tensor([10., 8.]))
    assert y.tolist() == [1.0, -1.0]


def _toy(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 2, (n, 8)).astype(np.float32)
    lat = X @ np.arange(1, 9) / 4.0 + 1.0
    acc = 60 + X @ np.array([3, 1, 2, 0.5, 2.5, 1, 0.2, 3]) + rng.normal(0, 0.1, n)
    return X, acc, lat


def test_ranker_learns_pairs():
    X, acc, lat = _toy()
    r = ParetoRanker(8, (3.0, 9.0), hidden=32, layers=2)
    before = r.evaluate(X, acc, lat, seed=3)["pair_accuracy"]
    res = r.fit(X, acc, lat, steps=150, pairs=256, lr=1e-2, seed=0)
    assert res["pair_accuracy"] > 0.9 > before
    state = r.to_state()
    r2 = ParetoRanker.from_state_dict(state)
    x = torch.from_numpy(X[:5])
    assert torch.equal(r(x, torch.full((5,), 4.0)), r2(x, torch.full((5,), 4.0)))


def test_onehot_mode_serves_only_its_budgets():
    r = ParetoRanker(8, (3.0, 9.0), budget_mode="onehot", budgets=[3, 6, 9], hidden=8, layers=1)
    assert r(torch.zeros(2, 8), torch.tensor([3.0, 9.0])).shape == (2,)
    with pytest.raises(BudgetError, match="3, 6 or 9"):
        r(torch.zeros(1, 8), torch.tensor([4.0]))
    with pytest.raises(PnagError, match="continuous or onehot"):
        ParetoRanker(8, (3.0, 9.0), budget_mode="binary")
    with pytest.raises(BudgetError):
        ParetoRanker(8, (9.0, 3.0))


def test_top_pair_indices_stay_within_budget_and_reach_the_top():
    acc = torch.tensor([70., 75., 72., 90., 60., 80.], dtype=torch.float64)
    lat = torch.tensor([3., 4., 5., 9., 2., 6.], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    budgets = torch.tensor([5.0, 6.5, 1.0, 100.0]).repeat(50)
    i, j = ParetoRanker.top_pair_indices(acc, lat, budgets, draws=40, generator=g)
    # 40 draws among at most 6 rows find each budget's most accurate row; below the fastest: the fastest
    expect = torch.tensor([1, 5, 4, 3]).repeat(50)
    assert torch.equal(i, expect) and torch.equal(j, expect)
    # one draw: uniform among the rows within the budget, never outside it
    i, j = ParetoRanker.top_pair_indices(acc, lat, torch.full((2000,), 5.0), draws=1, generator=g)
    both = torch.cat([i, j])
    assert set(both.tolist()) == {0, 1, 2, 4}
    assert bool((lat[both] <= 5.0).all())


def _top_shortfall(r, X, acc, lat, budgets):
    """Mean over budgets (ms) of the best accuracy within the budget minus that of the ranker's pick there."""
    out = []
    with torch.no_grad():
        for b in budgets:
            ok = lat <= b
            s = r(torch.from_numpy(X), torch.full((len(X),), float(b))).numpy()
            out.append(acc[ok].max() - acc[ok][np.argmax(s[ok])])
    return float(np.mean(out))


def test_top_pairs_sharpen_the_pick_within_each_budget():
    X, acc, lat = _toy()
    budgets = np.linspace(3.5, 9.0, 12)
    short = {}
    for top in (0.0, 0.75):
        r = ParetoRanker(8, (3.0, 9.0), hidden=32, layers=2)
        r.fit(X, acc, lat, steps=150, pairs=256, lr=1e-2, seed=0, top_pairs=top)
        short[top] = _top_shortfall(r, X, acc, lat, budgets)
    # measured on toy seeds 0-4: 0.85-1.60 points with uniform pairs, 0.11-0.33 with top pairs
    assert short[0.75] < 0.5 < short[0.0]


def test_top_pairs_bad_values():
    X, acc, lat = _toy(n=20)
    r = ParetoRanker(8, (3.0, 9.0), hidden=8, layers=1)
    for bad in (-0.1, 1.5, True, "half"):
        with pytest.raises(PnagError, match="top_pairs"):
            r.fit(X, acc, lat, steps=1, top_pairs=bad)
    with pytest.raises(PnagError, match="top_draws"):
        r.fit(X, acc, lat, steps=1, top_pairs=0.5, top_draws=0)
