"""The Pareto-aware ranker (the published "reward estimator").

An MLP scores ``[encoding ; budget embedding]``. For a latency budget ``B`` (ms) and a pair of
architectures it is trained with the pairwise logistic loss ``log(1 + exp(-y (s_i - s_j)))`` where

* both within ``B``  -> the more accurate ranks higher (``y = sign(acc_i - acc_j)``);
* otherwise          -> the faster ranks higher (``y = sign(lat_j - lat_i)``), so a feasible
  architecture always outranks an infeasible one.

Everything is vectorised over pairs. The budget enters as a continuous value normalised to the
trained range (``budget_mode="continuous"``, default: any budget inside the range is served) or, as
published, as a one-hot over a fixed list of budgets (``budget_mode="onehot"``: only those budgets).

With ``cond_dim`` > 0 the ranker also reads a condition vector per row (a device signature,
:mod:`pnag.search.devices`) and learns from latencies of several devices at once: ``fit`` takes a
latency matrix ``(N, D)`` (one column per device, in the unit of the budgets) and the ``(D, cond_dim)``
conditions, and draws a device for every pair.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import BudgetError, DataError, PnagError, allowed, check_fraction
from .resume import restore_training, training_state

BUDGET_MODES = ("continuous", "onehot")


def pareto_pair_targets(acc_i: torch.Tensor, lat_i: torch.Tensor, acc_j: torch.Tensor, lat_j: torch.Tensor,
                        budget: torch.Tensor | float) -> torch.Tensor:
    """Pair labels in {-1, 0, +1} (float): +1 when ``i`` should rank above ``j`` under ``budget`` (ms).

    All arguments broadcast together; latencies and budget in the same unit.
    """
    acc_i, lat_i, acc_j, lat_j = (torch.as_tensor(t, dtype=torch.float64) for t in (acc_i, lat_i, acc_j, lat_j))
    budget = torch.as_tensor(budget, dtype=torch.float64)
    both = (lat_i <= budget) & (lat_j <= budget)
    return torch.where(both, torch.sign(acc_i - acc_j), torch.sign(lat_j - lat_i)).float()


def pareto_ranking_loss(s_i: torch.Tensor, s_j: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean of ``log(1 + exp(-y (s_i - s_j)))`` over all pairs (numerically stable softplus)."""
    return torch.nn.functional.softplus(-y * (s_i - s_j)).mean()


class ParetoRanker(nn.Module):
    """Score ``(B,)`` of architectures (encodings ``(B, D)``) under budgets ``(B,)`` in ms; higher is better.

    ``budget_range`` (lo, hi) ms normalises a continuous budget to [0, 1]; ``budgets`` lists the
    one-hot budgets (``budget_mode="onehot"``).
    """

    def __init__(self, d_in: int, budget_range: tuple[float, float], budget_mode: str = "continuous",
                 budgets: Sequence[float] | None = None, hidden: int = 128, layers: int = 2, cond_dim: int = 0):
        super().__init__()
        if budget_mode not in BUDGET_MODES:
            raise PnagError(f"ranker budget mode: {budget_mode!r} is not known; allowed: {allowed(BUDGET_MODES)}")
        lo, hi = float(budget_range[0]), float(budget_range[1])
        if not hi > lo:
            raise BudgetError(f"ranker budget range: {lo}:{hi} ms; allowed: LO < HI")
        self.d_in, self.budget_mode, self.budget_range = int(d_in), budget_mode, (lo, hi)
        self.budgets = tuple(float(b) for b in budgets) if budgets is not None else ()
        if budget_mode == "onehot" and not self.budgets:
            raise PnagError("ranker budget mode onehot: give the list of budgets (ms)")
        d_b = len(self.budgets) if budget_mode == "onehot" else 1
        self.hidden, self.layers, self.cond_dim = int(hidden), int(layers), int(cond_dim)
        if self.cond_dim and budget_mode != "continuous":
            raise PnagError(f"ranker budget mode: {budget_mode!r} with conditions; allowed: continuous")
        dims = [self.d_in + d_b + self.cond_dim] + [self.hidden] * self.layers
        mods: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(a, b), nn.ReLU()]
        mods.append(nn.Linear(dims[-1], 1))
        self.mlp = nn.Sequential(*mods)

    def config(self) -> dict[str, Any]:
        return {"d_in": self.d_in, "budget_range": list(self.budget_range), "budget_mode": self.budget_mode,
                "budgets": list(self.budgets), "hidden": self.hidden, "layers": self.layers,
                **({"cond_dim": self.cond_dim} if self.cond_dim else {})}

    def budget_features(self, budget: torch.Tensor) -> torch.Tensor:
        """``(B, d_b)`` budget embedding; one-hot mode refuses budgets outside its list."""
        budget = torch.as_tensor(budget, dtype=torch.float32).reshape(-1)
        if self.budget_mode == "continuous":
            lo, hi = self.budget_range
            return ((budget - lo) / (hi - lo)).unsqueeze(1)
        table = torch.tensor(self.budgets, dtype=torch.float32)
        d = (budget[:, None] - table[None, :]).abs()
        near = d.argmin(1)
        if bool((d.gather(1, near[:, None]).squeeze(1) > 1e-6).any()):
            bad = float(budget[(d.min(1).values > 1e-6)][0])
            raise BudgetError(f"budget: {bad:g} ms is not one of the one-hot ranker's budgets; allowed: "
                              f"{allowed(f'{b:g}' for b in self.budgets)}")
        return torch.nn.functional.one_hot(near, len(self.budgets)).float()

    def forward(self, x: torch.Tensor, budget: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``(B,)``; ``cond (B, cond_dim)`` where the ranker reads conditions."""
        parts = [x, self.budget_features(budget)]
        if self.cond_dim:
            if cond is None or cond.shape != (len(x), self.cond_dim):
                raise PnagError(f"ranker conditions: {None if cond is None else tuple(cond.shape)}; allowed: "
                                f"({len(x)}, {self.cond_dim})")
            parts.append(torch.as_tensor(cond, dtype=torch.float32))
        return self.mlp(torch.cat(parts, dim=1)).squeeze(-1)

    def sample_budgets(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` training budgets (ms): uniform over the range, or uniform over the one-hot list."""
        if self.budget_mode == "onehot":
            table = torch.tensor(self.budgets)
            return table[torch.randint(len(table), (n,), generator=generator)]
        lo, hi = self.budget_range
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    def fit(self, X: Any, acc: Any, lat: Any, steps: int = 400, pairs: int = 1024, lr: float = 3e-3,
            seed: int = 0, top_pairs: float = 0.0, top_draws: int = 5, cond: Any = None,
            checkpoint: Any = None) -> dict[str, float]:
        """Train on encodings ``X (N, D)``, accuracies ``acc (N,)`` and latencies ``lat (N,)`` (ms).

        Each step draws ``pairs`` pairs, each with its own budget: a fraction ``top_pairs`` of them
        within their budget and near its top (each member the most accurate of ``top_draws`` uniform
        draws among the architectures within the budget; :meth:`top_pair_indices`), the rest uniformly.
        Uniform pairs are mostly decided by latency or by a wide accuracy gap; the top pairs teach the
        order that a search under the budget acts on. Returns ``{"loss", "pair_accuracy"}`` on a fresh
        seeded set of uniform pairs (fraction of decided pairs ordered correctly).

        ``cond (D, cond_dim)`` (a ranker with conditions): ``lat`` is ``(N, D)``, each pair is judged
        on one device drawn uniformly, and reads its condition row.

        ``checkpoint`` (:mod:`pnag.predict.resume`): the fit saves its state after any step where
        ``checkpoint.due()`` and resumes from ``checkpoint.state``; the result is the same as an
        uninterrupted fit's.
        """
        X, acc, lat, cond = self._data(X, acc, lat, cond)
        n = len(X)
        top_pairs = check_fraction(top_pairs, "ranker top_pairs")
        if top_pairs and cond is not None:
            raise PnagError("ranker top_pairs: > 0 with conditions; allowed: 0 (uniform pairs) with several devices")
        if isinstance(top_draws, bool) or not isinstance(top_draws, int) or top_draws < 1:
            raise PnagError(f"ranker top_draws: {top_draws!r}; allowed: an integer >= 1")
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for m in self.mlp:
                if isinstance(m, nn.Linear):
                    m.reset_parameters()
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
        n_top = int(round(top_pairs * pairs))
        order = torch.argsort(lat) if n_top else None
        saved = None if checkpoint is None else checkpoint.state
        start = 0 if saved is None else restore_training(saved, steps, self.mlp, opt, gen, checkpoint.damaged, sched)
        self.train()
        for step in range(start, steps):
            i = torch.randint(n, (pairs,), generator=gen)
            j = torch.randint(n, (pairs,), generator=gen)
            b = self.sample_budgets(pairs, gen)
            if n_top:
                i[:n_top], j[:n_top] = self.top_pair_indices(acc, lat, b[:n_top], top_draws, gen, order)
            s, y = self._pair_scores(X, acc, lat, cond, i, j, b, gen)
            loss = pareto_ranking_loss(s[:pairs], s[pairs:], y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if checkpoint is not None and step + 1 < steps and checkpoint.due():
                checkpoint.save(training_state(step + 1, self.mlp, opt, gen, sched))
        self.eval()
        return self.evaluate(X, acc, lat, pairs=4 * pairs, seed=seed + 1, cond=cond)

    def _data(self, X: Any, acc: Any, lat: Any, cond: Any) -> tuple:
        """The training or test data as tensors, checked: ``lat (N,)``, or ``(N, D)`` with ``cond (D, cond_dim)``."""
        X = torch.as_tensor(np.asarray(X, dtype=np.float32))
        acc = torch.as_tensor(np.asarray(acc, dtype=np.float64))
        lat = torch.as_tensor(np.asarray(lat, dtype=np.float64))
        n = len(X)
        if X.ndim != 2 or X.shape[1] != self.d_in or len(acc) != n or len(lat) != n or n < 2:
            raise DataError(f"ranker training data: X {tuple(X.shape)}, acc {tuple(acc.shape)}, lat {tuple(lat.shape)}; "
                            f"allowed: X (N, {self.d_in}) with N >= 2 and one accuracy and latency per row")
        if (cond is None) != (self.cond_dim == 0):
            raise PnagError(f"ranker conditions: {'none' if cond is None else 'given'} for a ranker with "
                            f"cond_dim {self.cond_dim}; allowed: conditions exactly when cond_dim > 0")
        if cond is not None:
            cond = torch.as_tensor(np.asarray(cond, dtype=np.float32))
            if cond.ndim != 2 or cond.shape[1] != self.cond_dim or lat.shape != (n, len(cond)):
                raise DataError(f"ranker training data: lat {tuple(lat.shape)}, conditions {tuple(cond.shape)}; "
                                f"allowed: lat (N, D) and conditions (D, {self.cond_dim})")
        return X, acc, lat, cond

    def _pair_scores(self, X, acc, lat, cond, i, j, b, gen) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores ``(2P,)`` of pairs ``(i, j)`` under budgets ``b`` (each pair on a device drawn from ``gen``
        where there are conditions) and their labels ``(P,)``."""
        if cond is None:
            y = pareto_pair_targets(acc[i], lat[i], acc[j], lat[j], b)
            return self(torch.cat([X[i], X[j]]), torch.cat([b, b])), y
        d = torch.randint(len(cond), (len(i),), generator=gen)
        y = pareto_pair_targets(acc[i], lat[i, d], acc[j], lat[j, d], b)
        return self(torch.cat([X[i], X[j]]), torch.cat([b, b]), torch.cat([cond[d], cond[d]])), y

    @staticmethod
    def top_pair_indices(acc: torch.Tensor, lat: torch.Tensor, budgets: torch.Tensor, draws: int,
                         generator: torch.Generator,
                         order: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Two index tensors ``(len(budgets),)``: per budget (ms), each the most accurate of ``draws``
        uniform draws among the rows with latency within the budget (the fastest row where none is).
        ``order`` is ``argsort(lat)`` when the caller has it."""
        order = torch.argsort(lat) if order is None else order
        within = torch.searchsorted(lat[order].contiguous(), budgets.to(lat.dtype).contiguous(), right=True)
        count = within.clamp_min(1)[:, None]  # rows order[:count] are within the budget
        out = []
        for _ in range(2):
            pos = (torch.rand(len(budgets), draws, generator=generator) * count).long().clamp_max(count - 1)
            rows = order[pos]
            out.append(rows.gather(1, acc[rows].argmax(1, keepdim=True)).squeeze(1))
        return out[0], out[1]

    @torch.no_grad()
    def evaluate(self, X: Any, acc: Any, lat: Any, pairs: int = 8192, seed: int = 0,
                 cond: Any = None) -> dict[str, float]:
        """Loss and pair accuracy (fraction) on ``pairs`` random pairs with random budgets (and devices,
        with ``cond``: see :meth:`fit`)."""
        X, acc, lat, cond = self._data(X, acc, lat, cond)
        gen = torch.Generator().manual_seed(seed)
        n = len(X)
        i, j = torch.randint(n, (pairs,), generator=gen), torch.randint(n, (pairs,), generator=gen)
        b = self.sample_budgets(pairs, gen)
        s, y = self._pair_scores(X, acc, lat, cond, i, j, b, gen)
        d = s[:pairs] - s[pairs:]
        decided = y != 0
        correct = (torch.sign(d) == y)[decided].float().mean() if bool(decided.any()) else torch.tensor(float("nan"))
        return {"loss": float(pareto_ranking_loss(s[:pairs], s[pairs:], y)), "pair_accuracy": float(correct)}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "ParetoRanker":
        try:
            c = state["config"]
            r = cls(c["d_in"], tuple(c["budget_range"]), c["budget_mode"], c["budgets"] or None, c["hidden"], c["layers"],
                    int(c.get("cond_dim", 0)))
            r.load_state_dict(state["weights"])
        except (KeyError, TypeError, RuntimeError) as exc:
            raise DataError(f"ranker state: not a saved ParetoRanker ({exc})") from None
        r.eval()
        return r

    def to_state(self) -> dict[str, Any]:
        return {"config": self.config(), "weights": self.state_dict()}


__all__ = ["ParetoRanker", "pareto_pair_targets", "pareto_ranking_loss", "BUDGET_MODES"]
