"""One policy-gradient step of a budget-conditioned :class:`~pnag.search.generator.Generator`,
shared by the run's generator stage and the per-budget policy-gradient baseline."""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

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


def policy_gradient_step(policy, opt: Any, budgets: torch.Tensor, m: int, reward: RewardFn,
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


class Adam:
    """``torch.optim.Adam``'s update (its single-tensor form, no weight decay) with its ``state_dict``
    layout, for the generator stage. Not ``torch.optim``: building any of its optimizers first imports
    ``torch._dynamo`` (1-2 s on the project's 2-core machines, as long as the whole generator stage of an
    exact objective's fast schedule), and such a run builds no other optimizer."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.param_groups = [{"params": list(params), "lr": float(lr), "betas": tuple(betas), "eps": float(eps)}]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        (b1, b2), lr, eps = group["betas"], group["lr"], group["eps"]
        for p in group["params"]:
            if p.grad is None:
                continue
            st = self.state.get(p)
            if st is None:
                st = self.state[p] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p),
                                      "exp_avg_sq": torch.zeros_like(p)}
            st["step"] += 1
            t = float(st["step"])
            st["exp_avg"].lerp_(p.grad, 1 - b1)
            st["exp_avg_sq"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            denom = (st["exp_avg_sq"].sqrt() / math.sqrt(1 - b2 ** t)).add_(eps)
            p.addcdiv_(st["exp_avg"], denom, value=-lr / (1 - b1 ** t))

    def state_dict(self) -> dict[str, Any]:
        params = self.param_groups[0]["params"]
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group.update(weight_decay=0.0, amsgrad=False, maximize=False, params=list(range(len(params))))
        return {"state": {i: dict(self.state[p]) for i, p in enumerate(params) if p in self.state},
                "param_groups": [group]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """A state from :meth:`state_dict` or from ``torch.optim.Adam`` over the same parameters (no weight
        decay, no amsgrad); raises ValueError for any other."""
        params = self.param_groups[0]["params"]
        groups = state["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(params):
            raise ValueError("an optimizer state of other parameters")
        g = groups[0]
        if g.get("weight_decay", 0) or g.get("amsgrad", False) or g.get("maximize", False):
            raise ValueError("an optimizer state of another kind (weight decay, amsgrad or maximize)")
        self.param_groups[0].update(lr=float(g["lr"]), betas=tuple(float(b) for b in g["betas"]), eps=float(g["eps"]))
        self.state = {params[int(i)]: {"step": torch.as_tensor(st["step"], dtype=torch.float32).clone(),
                                       "exp_avg": st["exp_avg"].clone(), "exp_avg_sq": st["exp_avg_sq"].clone()}
                      for i, st in state["state"].items()}


__all__ = ["policy_gradient_step", "budget_advantages", "RewardFn", "Adam"]
