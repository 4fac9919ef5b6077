"""The budget archive (MAP-Elites along latency) and its offspring operators."""

import numpy as np
import torch

from pnag.search.archive import BudgetArchive, offspring
from pnag.space import NB201Space


def _offer_random(archive, n, seed):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(5, (n, 6), generator=g)
    score = torch.rand(n, generator=g, dtype=torch.float64) * 100
    lat = torch.rand(n, generator=g, dtype=torch.float64) * 12
    archive.offer(idx, score, lat, torch.ones(n, dtype=torch.bool))
    return idx, score, lat


def test_elites_at_grid_budgets_equal_brute_force_and_rows_stay_distinct():
    grid = torch.linspace(1.0, 10.0, 10, dtype=torch.float64)
    arch = BudgetArchive(grid, 6, per_bin=3)
    seen_i, seen_s, seen_l = [], [], []
    for seed in range(4):  # several offers: the archive keeps the best of everything offered so far
        i, s, la = _offer_random(arch, 200, seed)
        seen_i.append(i), seen_s.append(s), seen_l.append(la)
    idx, score, lat = torch.cat(seen_i), torch.cat(seen_s), torch.cat(seen_l)
    # one score per distinct row (the first offered), as the archive keeps it
    first = {}
    for r, s, la in zip(idx.tolist(), score.tolist(), lat.tolist()):
        first.setdefault(tuple(r), (s, la))
    elite, ok = arch.elites(grid)
    for g, e, has in zip(grid.tolist(), elite.tolist(), ok.tolist()):
        within = [(s, r) for r, (s, la) in first.items() if la <= g]
        assert has == bool(within)
        if within:
            assert first[tuple(e)][0] == max(within)[0]
    rows = arch.idx[arch.filled]
    assert len({tuple(r) for r in rows.tolist()}) == len(rows)  # distinct
    per_bin = torch.searchsorted(grid, arch.latency[arch.filled]).bincount(minlength=10)
    assert int(per_bin.max()) <= 3


def test_rows_slower_than_the_range_are_dropped_and_state_round_trips():
    arch = BudgetArchive(torch.tensor([1.0, 2.0]), 6, per_bin=2)
    arch.offer(torch.zeros(1, 6, dtype=torch.long), torch.tensor([50.0]), torch.tensor([3.0]), torch.tensor([True]))
    assert not bool(arch.filled.any())
    _offer_random(arch, 50, 1)
    back = BudgetArchive.from_state_dict(arch.state_dict())
    for k in ("idx", "score", "latency", "predicted"):
        assert torch.equal(getattr(back, k), getattr(arch, k))


def test_calibration_shift_applies_to_predicted_rows_only():
    arch = BudgetArchive(torch.tensor([10.0]), 6, per_bin=4)
    idx = torch.tensor([[1] * 6, [2] * 6])
    arch.offer(idx, torch.tensor([80.0, 79.0], dtype=torch.float64), torch.tensor([5.0, 6.0], dtype=torch.float64),
               torch.tensor([True, False]))
    b = torch.tensor([10.0])
    assert arch.elites(b)[0][0].tolist() == [1] * 6
    assert arch.elites(b, shift=torch.tensor([-2.0]))[0][0].tolist() == [2] * 6  # the measured row wins now


def test_offspring_mutate_and_cross_over():
    space = NB201Space()
    g = torch.Generator().manual_seed(0)
    a = torch.randint(5, (400, 6), generator=g)
    b = torch.randint(5, (400, 6), generator=g)
    kids = offspring(space, a, b, 0.1, g)
    half = 200
    assert bool(((kids[:half] != a[:half]).sum(1) >= 1).all())  # every mutant changes a decision
    assert float((kids[:half] != a[:half]).float().mean()) < 0.35  # ... but few of them
    cross = kids[half:]
    assert bool(((cross == a[half:]) | (cross == b[half:])).all())
    took_a = (cross == a[half:]) & (a[half:] != b[half:])
    frac = float(took_a.sum()) / float((a[half:] != b[half:]).sum())
    assert 0.4 < frac < 0.6  # uniform crossover
    assert np.array_equal(offspring(space, a, b, 0.1, torch.Generator().manual_seed(1)).numpy(),
                          offspring(space, a, b, 0.1, torch.Generator().manual_seed(1)).numpy())
