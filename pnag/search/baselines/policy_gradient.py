"""Per-budget policy gradient (MnasNet / TuNAS rewards) with the project's LSTM generator."""

from __future__ import annotations

import numpy as np
import torch

from ...errors import PnagError, allowed
from ...space.base import SearchSpace
from ..generator import Generator
from ..indices import canonical
from ..policy import policy_gradient_step
from ..rewards import mnas_reward, tunas_reward
from ._common import ScoreFn, SearchResult, best_result, check_budget, checked_scores, positive_int

REWARDS = ("mnas", "tunas")


def policy_gradient_search(
    space: SearchSpace,
    score_fn: ScoreFn,
    latency_fn: ScoreFn,
    budget: float,
    reward: str = "mnas",
    steps: int = 100,
    batch: int = 32,
    lr: float = 1e-2,
    entropy: float = 1e-3,
    seed: int | None = None,
    acc_scale: float = 100.0,
    hidden: int = 64,
) -> SearchResult:
    """Per-budget policy gradient with the project's LSTM :class:`~pnag.search.generator.Generator`.

    The generator is trained for this one budget only, with reward ``mnas`` or ``tunas``
    (:mod:`pnag.search.rewards`) on predicted accuracy (divided by ``acc_scale``: a % score becomes
    the fraction the rewards assume) and latency (ms). Batches of ``batch`` samples, Adam ``lr``
    (default 1e-2: the published 3e-4 barely moves in a per-budget share of queries), entropy bonus
    ``entropy``; the step is the run's own (:func:`pnag.search.policy.policy_gradient_step`:
    leave-one-out baseline, standardised). Spends ``steps * batch`` predictor queries and returns the
    sampled architecture with the highest reward: these rewards are soft constraints, so it may exceed
    the budget.
    """
    b = check_budget(budget)
    if reward not in REWARDS:
        raise PnagError(f"reward: {reward!r} is not a per-budget policy-gradient reward; allowed: {allowed(REWARDS)}")
    steps = positive_int(steps, "policy-gradient steps")
    batch = positive_int(batch, "policy-gradient batch", 2)
    reward_fn = mnas_reward if reward == "mnas" else tunas_reward
    seed = 0 if seed is None else int(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = Generator(space, (0.0, 2.0 * b), hidden=hidden)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    seen_i, seen_a, seen_l, seen_r = [], [], [], []

    def scored(idx: torch.Tensor, budgets: torch.Tensor) -> torch.Tensor:
        idx_np = canonical(space, idx.numpy())
        acc = checked_scores(score_fn, idx_np, "score_fn")
        lat = checked_scores(latency_fn, idx_np, "latency_fn")
        r = reward_fn(acc / acc_scale, lat, b)
        seen_i.append(idx_np)
        seen_a.append(acc)
        seen_l.append(lat)
        seen_r.append(np.asarray(r, dtype=np.float64))
        return torch.as_tensor(r, dtype=torch.float64)

    for _ in range(steps):
        policy_gradient_step(policy, opt, torch.full((1,), b), batch, scored, entropy, g)
    idx_all = np.concatenate(seen_i)
    acc_all, lat_all, rew = np.concatenate(seen_a), np.concatenate(seen_l), np.concatenate(seen_r)
    i = int(np.argmax(rew))
    top = best_result("pg", space, b, idx_all, acc_all, lat_all, 0, 0).top
    return SearchResult(f"pg-{reward}", b, tuple(int(x) for x in idx_all[i]), space.from_indices(idx_all[i]),
                        float(acc_all[i]), float(lat_all[i]), bool(lat_all[i] <= b), steps * batch, steps * batch,
                        0, top)
