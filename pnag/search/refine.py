"""A short evolution per budget after the choice (``refine_generations``): :func:`refined`."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .baselines import EVOLUTION_PEER, evolution_queries, evolutionary_search
from .choice import ORIGIN_CODE
from .indices import neighbours


@torch.no_grad()
def refined(run, budgets: Sequence[float], cand: torch.Tensor, chosen: dict[str, torch.Tensor],
            generations: int) -> dict[str, torch.Tensor]:
    """Per budget a short evolution (once-for-all's operators, population 100, ``generations``
    generations) under the run's objective, started from ``cand (B, K, T)``, the chosen answer and the
    archive's elites within the budget;
    its best replaces the answer when the objective rates it higher (origin ``refined``)."""
    if generations <= 0:
        return chosen
    peer = EVOLUTION_PEER
    q = evolution_queries(peer["population"], generations, peer["parent_ratio"])
    rows = []
    for i, b in enumerate(np.asarray(budgets, dtype=np.float64).tolist()):
        bt = torch.tensor([b], dtype=torch.float64)

        def score(idx: np.ndarray) -> np.ndarray:
            return run.objective(torch.from_numpy(idx), bt)[0][:, 0].numpy()

        def latency(idx: np.ndarray) -> np.ndarray:
            return run.models.latency(torch.from_numpy(idx)).numpy()

        start = [chosen["idx"][i:i + 1], cand[i]]
        if run.archive is not None:  # the archive's front up to this budget: diverse starting points
            keep = run.archive.filled & (run.archive.latency <= b + 1e-9)
            start.append(run.archive.idx[keep])
        start = torch.cat(start).numpy()
        r = evolutionary_search(run.space, score, latency, b, q, population=peer["population"],
                                parent_ratio=peer["parent_ratio"], mutation_ratio=peer["mutation_ratio"],
                                mutate_prob=peer["mutate_prob"], seed=i, initial=start)
        rows.append(torch.as_tensor(np.asarray(r.indices), dtype=torch.long))
    found = torch.stack(rows)[:, None, :]
    both = torch.cat([chosen["idx"][:, None, :], found], 1)
    origin = torch.cat([chosen["origin"][:, None], torch.full((len(rows), 1), ORIGIN_CODE["refined"])], 1)
    return run.choose(budgets, both, origin, include_table=False)


@torch.no_grad()
def polished(run, budgets: Sequence[float], chosen: dict[str, torch.Tensor], rounds: int) -> dict[str, torch.Tensor]:
    """Up to ``rounds`` rounds of hill climbing: each budget's answer against its one-decision
    neighbours, under the run's objective (origin ``refined`` where a neighbour wins); stops early
    when no answer changes."""
    for _ in range(rounds):
        idx = chosen["idx"]
        B, T = idx.shape
        near = neighbours(run.space, idx).view(B, -1, T)
        cand = torch.cat([idx[:, None, :], near], 1)
        origin = torch.cat([chosen["origin"][:, None], torch.full(near.shape[:2], ORIGIN_CODE["refined"])], 1)
        new = run.choose(budgets, cand, origin, include_table=False)
        if torch.equal(new["idx"], idx):
            break
        chosen = new
    return chosen


__all__ = ["refined", "polished"]
