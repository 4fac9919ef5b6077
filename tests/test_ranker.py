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
