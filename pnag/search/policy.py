"""One policy-gradient step of a budget-conditioned :class:`~pnag.search.generator.Generator`,
shared by the run's generator stage and the per-budget policy-gradient baseline."""

from __future__ import annotations

from typing import Callable

import torch

RewardFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (idx (N, T), budgets (N,) ms) -> reward (N,)


def budget_advantages(r: torch.Tensor) -> torch.Tensor:
    """Advantages ``(nb, m)`` of rewards ``r (nb, m)`` (``m`` samples for each of ``nb`` budgets): each
    sample's reward less the mean of the other samples of its budget (leave-one-out baseline), divided
    by the spread of its budget's advantages. Standardising per budget keeps a budget whose rewards
    spread widely (a tight budget, where most samples are infeasible) from drowning out the others."""
    m = r.shape[1]
    adv = r - (r.sum(1, keepdim=True) - r) / (m - 1)
    return adv / (adv.std(1, keepdim=True) + 1e-8)


def policy_gradient_step(policy, opt: torch.optim.Optimizer, budgets: torch.Tensor, m: int, reward: RewardFn,
                         entropy: float, generator: torch.Generator | None,
                         imitate: tuple[torch.Tensor, torch.Tensor, float] | None = None,
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``m`` architectures for each budget (ms) of ``budgets (nb,)`` (or condition row of ``budgets
    (nb, F)``: the policy's and the reward's to read), score them with ``reward``
    and take one optimiser step on ``-(advantage x logp) - entropy x H``, plus, with ``imitate =
    (conditions, idx, weight)``, ``weight x -mean log p(idx | conditions)`` (the draws and these rows
    are evaluated in one pass). ``policy`` has ``draw`` and ``evaluate`` (:class:`~pnag.search.generator.Generator`).

    Returns the drawn index rows ``(nb * m, T)`` and rewards ``(nb, m)``."""
    if m < 2:
        raise ValueError("policy_gradient_step needs m >= 2 samples per budget (leave-one-out baseline)")
    nb = len(budgets)
    bud = budgets.repeat_interleave(m, dim=0)
    idx = policy.draw(bud, generator=generator)
    with torch.no_grad():
        r = reward(idx, bud).view(nb, m)
        adv = budget_advantages(r.double()).flatten().float()
    n = len(idx)
    if imitate is not None and len(imitate[1]):
        logp, ent = policy.evaluate(torch.cat([bud, imitate[0].to(bud.dtype)]), torch.cat([idx, imitate[1]]))
        extra = -imitate[2] * logp[n:].mean()
    else:
        logp, ent = policy.evaluate(bud, idx)
        extra = 0.0
    loss = -(adv * logp[:n]).mean() - entropy * ent[:n].mean() + extra
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return idx, r


__all__ = ["policy_gradient_step", "budget_advantages", "RewardFn"]
