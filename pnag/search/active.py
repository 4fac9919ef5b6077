"""The closed loop of a run with an eval budget: look up the true accuracy of the most promising
unmeasured proposals, add them to the table, refit predictors and ranker, fine-tune the generator.

Each round spends its share of ``eval_budget`` look-ups on the proposals with the highest upper
confidence bound within each budget (round robin over budgets); proposals are the generator's own
draws and the one-decision neighbours of its greedy draw and of the best measured architectures.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from ..errors import PnagError
from .indices import index_keys
from .run import Run

# (run, metrics, round) -> the predictors' fit: refit predictors, ranker and generator on the grown table
# (pnag.search.training.refit, passed in: the training stages sit above this loop)
Refit = Callable[[Run, dict, int], dict[str, Any]]


def eval_proposals(run: Run, budgets: np.ndarray, seed: int) -> torch.Tensor:
    """Look-up proposals ``(len(budgets), K', T)`` per budget: the generator's greedy proposal and
    ``eval_candidates - 1`` draws (at ``eval_temperature``), plus every one-decision neighbour of
    the greedy proposal and of the ``eval_parents`` most accurate measured architectures within
    the budget. The neighbours let the loop climb from what it has measured: the generator is
    trained on pessimistic scores, so on its own it proposes architectures like the measured ones
    rather than better ones."""
    cfg = run.config
    cand = run.candidates(budgets, cfg.eval_candidates, seed=seed, temperature=cfg.eval_temperature)
    return run.with_neighbours(budgets, cand, cfg.eval_parents)


def stage_eval(run: Run, metrics: dict, refit: Refit) -> None:
    """Closed loop: look up the true accuracy of up to ``eval_budget`` proposals (:func:`eval_proposals`),
    ``refit`` after each round."""
    cfg, space = run.config, run.space
    measure = run.acc_source.measure
    if measure is None:
        raise PnagError(f"--eval-budget: {cfg.eval_budget}; the accuracy source {cfg.accuracy!r} cannot measure new "
                        "architectures; allowed: 0 with this source (nb201:* sources can)")
    st = run.state()
    rounds = min(cfg.eval_rounds, cfg.eval_budget)
    per = [cfg.eval_budget // rounds + (1 if r < cfg.eval_budget % rounds else 0) for r in range(rounds)]
    lo, hi = cfg.budgets
    hist = metrics.setdefault("eval", [])
    for r in range(int(st.get("eval_round", 0)), rounds):
        seed = cfg.seed + 100 * (r + 1)
        budgets = np.linspace(max(lo, run.min_latency_ms), hi, per[r])
        # rounds measured are counted inside data.pt, saved in one write with what they measured: a stop
        # between that write and the state's can neither lose nor repeat a round's look-ups. The round's
        # figures are saved just before: a stop between the two measures the round again (the same
        # look-ups: nothing they depend on has changed) and replaces them
        if int(run.data.get("eval_measured", torch.tensor(0))) < r + 1:
            hist[:] = [h for h in hist if not (isinstance(h, dict) and h.get("round") == r + 1)]
            cand = eval_proposals(run, budgets, seed).reshape(-1, run.generator.T)
            mean, std = run.models.accuracy(cand)
            ucb = (mean + cfg.optimism * std).view(len(budgets), -1)
            lat = run.models.latency(cand).view(len(budgets), -1)
            known = set(index_keys(run.data["idx"]))
            ck = index_keys(cand)
            chosen: list[int] = []
            picked: set[bytes] = set()
            K = ucb.shape[1]
            orders = []
            for i, b in enumerate(budgets):  # per budget: unmeasured feasible proposals, most promising first
                s = torch.where(lat[i] <= b, ucb[i], torch.tensor(-math.inf, dtype=torch.float64))
                orders.append([j for j in torch.argsort(s, descending=True).tolist() if math.isfinite(float(s[j]))])
            pos = [0] * len(budgets)
            progress_made = True
            while len(chosen) < per[r] and progress_made:  # round robin over budgets until the quota is spent
                progress_made = False
                for i in range(len(budgets)):
                    while pos[i] < len(orders[i]) and len(chosen) < per[r]:
                        j = i * K + orders[i][pos[i]]
                        pos[i] += 1
                        if ck[j] not in known and ck[j] not in picked:
                            picked.add(ck[j])
                            chosen.append(j)
                            progress_made = True
                            break
            if chosen:
                new_idx = cand[chosen]
                archs = [space.from_indices(x) for x in new_idx.tolist()]
                new_acc = torch.as_tensor(np.asarray(measure(archs), dtype=np.float64))
                run.data["idx"] = torch.cat([run.data["idx"], new_idx])
                run.data["accuracy"] = torch.cat([run.data["accuracy"], new_acc])
                run.data["latency"] = torch.cat([run.data["latency"], run.lat_source(new_idx).double()
                                                 if run.models.lat_pred is None else run.models.latency(new_idx)])
                pred_mean = mean[chosen]
                hist.append({"round": r + 1, "measured": len(chosen), "mean_true": float(new_acc.mean()),
                             "mean_predicted": float(pred_mean.mean())})
            else:
                hist.append({"round": r + 1, "measured": 0})
            run.save_metrics(metrics)
            run.data["eval_measured"] = torch.tensor(r + 1)
            run.save_data()
        fit = refit(run, metrics, r)
        metrics.setdefault("predictors_after_eval", {})[str(r + 1)] = fit
        run.save_metrics(metrics)
        run.mark("eval-round", eval_round=r + 1)


__all__ = ["stage_eval", "eval_proposals"]
