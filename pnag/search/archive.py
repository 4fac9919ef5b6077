"""The budget archive: the best architectures seen so far along the latency axis, and the evolution that
feeds it while the generator trains.

The trained range is cut into ``G`` latency bins (edges at a grid of budgets, ms); each bin keeps its
``E`` best distinct architectures by the run's objective (a MAP-Elites archive along latency). The
best architecture within a budget ``B`` is the best stored one with latency <= ``B``: what is found for
one budget serves every larger budget, so the budgets share what they learn.

While the generator trains, every step offers the archive the generator's draws and a batch of
offspring of its elites (once-for-all's operators: mutation, each decision redrawn with probability
0.1, and uniform crossover of two elites of nearby bins). The generator learns to reproduce the elite of
each budget (an imitation term beside its policy gradient), so its own draws carry what the archive
holds; the archive is saved with the run, and :meth:`pnag.search.run.Run.generate` weighs its elites
(origin ``archive``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .indices import canonical


class BudgetArchive:
    """``E`` elites per latency bin; bins end at ``grid (G,)`` (ms, ascending), the first starts at 0.

    Stored rows: ``idx (G * E, T)``, ``score (G * E,)`` (the objective, -inf where empty), ``latency``
    ``(G * E,)`` ms and ``predicted`` (bool: the score is an estimate, not a measured accuracy).
    """

    def __init__(self, grid: torch.Tensor, T: int, per_bin: int = 8):
        self.grid = torch.as_tensor(grid, dtype=torch.float64).reshape(-1)
        self.per_bin = int(per_bin)
        n = len(self.grid) * self.per_bin
        self.idx = torch.zeros(n, T, dtype=torch.long)
        self.score = torch.full((n,), -math.inf, dtype=torch.float64)
        self.latency = torch.full((n,), math.inf, dtype=torch.float64)
        self.predicted = torch.ones(n, dtype=torch.bool)

    @property
    def filled(self) -> torch.Tensor:
        return torch.isfinite(self.score)

    def offer(self, idx: torch.Tensor, score: torch.Tensor, latency: torch.Tensor, predicted: torch.Tensor) -> int:
        """Offer rows ``idx (N, T)`` with their objective ``score (N,)``, ``latency (N,)`` ms and
        ``predicted (N,)``; rows slower than the last bin are dropped. Returns how many more rows the
        archive holds than before."""
        keep = latency <= self.grid[-1] + 1e-9
        if not bool(keep.any()):
            return 0
        rows = torch.cat([self.idx[self.filled], idx[keep]])
        sc = torch.cat([self.score[self.filled], score[keep].double()])
        lat = torch.cat([self.latency[self.filled], latency[keep].double()])
        pr = torch.cat([self.predicted[self.filled], predicted[keep].bool()])
        before = int(self.filled.sum())
        uniq, first = _first_of_each(rows)
        rows, sc, lat, pr = uniq, sc[first], lat[first], pr[first]
        b = torch.searchsorted(self.grid, lat.contiguous(), right=False).clamp_max(len(self.grid) - 1)
        order = torch.argsort(b.double() * 1e6 - sc.clamp(-1e5, 1e5), stable=True)  # by bin, best first
        b_sorted = b[order]
        start = torch.searchsorted(b_sorted, torch.arange(len(self.grid)))
        rank = torch.arange(len(order)) - start[b_sorted]
        take = rank < self.per_bin
        slot = b_sorted[take] * self.per_bin + rank[take]
        src = order[take]
        self.idx.zero_()
        self.score.fill_(-math.inf)
        self.latency.fill_(math.inf)
        self.predicted.fill_(True)
        self.idx[slot], self.score[slot], self.latency[slot], self.predicted[slot] = rows[src], sc[src], lat[src], pr[src]
        return int(self.filled.sum()) - before

    def elites(self, budgets: torch.Tensor, shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """For each budget (ms) the best stored row within it (score + ``shift`` per budget where
        predicted), and whether there is one: ``(B, T)``, ``(B,)``."""
        b = budgets.double().reshape(-1)
        s = self.score[None, :] + (0.0 if shift is None else shift.double()[:, None] * self.predicted[None, :])
        ok = self.filled[None, :] & (self.latency[None, :] <= b[:, None] + 1e-9)
        s = torch.where(ok, s, torch.tensor(-math.inf, dtype=torch.float64))
        return self.idx[s.argmax(1)], ok.any(1)

    def parents(self, n: int, generator: torch.Generator, top: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` elites drawn uniformly among the stored rows (``top`` > 0: among the best ``top`` of each
        bin), and for each a partner from a bin at most two away (for crossover): ``(n, T)`` twice (empty
        when the archive is)."""
        ok = self.filled
        if 0 < top < self.per_bin:  # rows are stored best first within their bin
            ok = ok & (torch.arange(len(ok)) % self.per_bin < top)
        rows = torch.nonzero(ok).flatten()
        if len(rows) == 0:
            return self.idx[:0], self.idx[:0]
        a = rows[torch.randint(len(rows), (n,), generator=generator)]
        bins = a // self.per_bin
        near = (bins + torch.randint(-2, 3, (n,), generator=generator)).clamp(0, len(self.grid) - 1)
        cand = near * self.per_bin + torch.randint(self.per_bin, (n,), generator=generator)
        partner = torch.where(self.filled[cand], cand, a)
        return self.idx[a], self.idx[partner]

    def state_dict(self) -> dict[str, Any]:
        return {"grid": self.grid, "per_bin": torch.tensor(self.per_bin), "idx": self.idx, "score": self.score,
                "latency": self.latency, "predicted": self.predicted}

    @classmethod
    def from_state_dict(cls, st: dict[str, Any]) -> "BudgetArchive":
        a = cls(st["grid"], st["idx"].shape[1], int(st["per_bin"]))
        for k in ("idx", "score", "latency", "predicted"):
            if st[k].shape[0] != a.score.shape[0]:
                raise ValueError(f"archive {k}: {tuple(st[k].shape)} rows, not {a.score.shape[0]}")
        a.idx, a.score, a.latency, a.predicted = (st["idx"].long(), st["score"].double(), st["latency"].double(),
                                                  st["predicted"].bool())
        return a


def _first_of_each(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct rows (in lexicographic order) and, for each, the position of its first occurrence in ``rows``."""
    radix = rows.max(0).values.clamp_min(0) + 1 if len(rows) else None
    if radix is not None and bool((rows >= 0).all()) and float(radix.double().log2().sum()) < 62:
        # one integer per row, mixed radix with the first column most significant: its order is the rows'
        # lexicographic order, and a 1-D unique is many times faster than unique(dim=0)
        mult = torch.cat([torch.cumprod(radix.flip(0), 0).flip(0)[1:], torch.ones(1, dtype=radix.dtype)])
        keys, inv = torch.unique((rows * mult).sum(1), return_inverse=True)
        uniq = rows.new_zeros(len(keys), rows.shape[1]).index_copy_(0, inv, rows)
    else:
        uniq, inv = torch.unique(rows, dim=0, return_inverse=True)
    pos = torch.arange(len(rows))
    first = torch.full((len(uniq),), len(rows), dtype=torch.long).scatter_reduce(0, inv, pos, reduce="amin")
    return uniq, first


def offspring(space, a: torch.Tensor, b: torch.Tensor, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Once-for-all's operators on parent rows ``a``, ``b (n, T)``: the first half mutants of ``a`` (every
    decision redrawn uniformly with probability ``prob``, at least one changed), the rest uniform
    crossovers of ``a`` and ``b``; canonical ``(n, T)``."""
    n, T = a.shape
    if n == 0:
        return a
    sizes = torch.tensor([len(c) for c in space.decision_choices])
    half = n // 2 + n % 2
    flip = torch.rand(half, T, generator=generator) < prob
    flip[torch.arange(half), torch.randint(T, (half,), generator=generator)] = True
    shift = 1 + (torch.rand(half, T, generator=generator) * (sizes - 1).clamp_min(1)).long()
    mut = torch.where(flip & (sizes > 1), (a[:half] + shift) % sizes, a[:half])
    pick = torch.rand(n - half, T, generator=generator) < 0.5
    cross = torch.where(pick, a[half:], b[half:])
    return canonical(space, torch.cat([mut, cross]))


def offer(run, archive: BudgetArchive, idx: torch.Tensor) -> int:
    """Score ``idx`` by ``run``'s objective (no calibration shift: it depends on the budget and is applied
    when elites are read) and offer it to ``archive``. Returns the number of rows scored (queries)."""
    _, base, predicted, lat = run.estimates(idx)
    archive.offer(idx, base, lat, predicted)
    return len(idx)


def evolve(run, archive: BudgetArchive, steps: int, n: int, top: int, seed: int, progress: bool | None = False,
           desc: str = "evolving the archive") -> BudgetArchive:
    """``steps`` steps of the archive's evolution without a generator: each offers ``n`` offspring of its
    elites (:func:`offspring`; parents among the best ``top`` of each bin, 0: every elite) scored by ``run``'s
    objective. Deterministic given ``seed``; returns ``archive``, grown in place. ``progress``: as
    :class:`pnag._progress.Progress` (``desc`` its label)."""
    from .._progress import Progress

    rng = torch.Generator().manual_seed(seed)
    bar = Progress(steps, desc, progress)
    for _ in range(steps):
        a, b = archive.parents(n, rng, top)
        if not len(a):
            break
        offer(run, archive, offspring(run.space, a, b, 0.1, rng))
        bar.update()
    bar.close()
    return archive


__all__ = ["BudgetArchive", "offspring", "offer", "evolve"]
