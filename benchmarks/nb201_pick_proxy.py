"""A fast stand-in for PNAG's final pick at eval budget 0 on NAS-Bench-201, for tuning the accuracy predictor.

    python benchmarks/nb201_pick_proxy.py --dataset ImageNet16-120 --device titanx_1 --seeds 10 11 \\
        [--set target=log-gap --set gap_pct=3] [--k 0 1] [--cal 5]

Per seed: the accuracy predictor of ``pnag train --space nb201`` (5-member bootstrap ensemble, 3 x 128,
150 epochs, on the seed's 1,000 measured cells; ``--set FIELD=VALUE`` overrides a PredictorConfig field;
without ``--set target=...`` it regresses log-error), then per budget (the 20 of
``benchmarks/nb201_regret.py``) the best of *all* 15,625 cells by the run's objective
(``pnag.search.choice``): measured cells at their accuracy, the others at the predicted mean lowered by
the calibration shift (``--cal`` = ``choice_calibration``) and ``--k`` (= ``choice_pessimism``) x the
spread. That is the pick if the generator found the objective's maximum; on ImageNet16-120/titanx_1
seeds 10-19 it gives nearly the full benchmark's paired figure (log-error: -0.352 ± 0.269 against
-0.353 ± 0.269; log-gap: -0.405 ± 0.231 against -0.407 ± 0.231), in about a minute. Prints per seed and the mean ± sd over seeds of (pick's regret - best-measured's regret),
points, and the predictor's Kendall tau on the unmeasured cells and on their top 10 %.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nb201_regret import Problem  # noqa: E402

from pnag.predict.mlp import MLPPredictor, PredictorConfig, kendall_tau  # noqa: E402
from pnag.search.choice import calibration_shift  # noqa: E402
from pnag.search.pareto import best_within_budgets  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="ImageNet16-120")
    ap.add_argument("--device", default="titanx_1")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10, 20)))
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a PredictorConfig field")
    ap.add_argument("--k", type=float, nargs="+", default=[0.0], help="choice_pessimism values")
    ap.add_argument("--cal", type=int, nargs="+", default=[5], help="choice_calibration values")
    a = ap.parse_args(argv)
    over = {}
    for t in a.set:
        k, _, v = t.partition("=")
        try:
            over[k] = json.loads(v)
        except json.JSONDecodeError:
            over[k] = v
    P = Problem(a.dataset, a.device)
    X = P.space.encode_indices(torch.as_tensor(P.idx)).numpy()
    res: dict[tuple[int, float], list[float]] = {}
    taus = []
    for seed in a.seeds:
        tab = P.measured(1000, seed)
        codes = P.code_of(tab.indices)
        cfg = replace(PredictorConfig.preset_config("fast", ensemble=5, seed=seed, hidden=128, epochs=150,
                                                    target="log-error"), **over)
        pr = MLPPredictor(None, cfg, d_in=X.shape[1])
        t0 = time.perf_counter()
        pr.fit(X[codes], tab.accuracy)
        fit_s = time.perf_counter() - t0
        mean, std = pr.predict_dist(X)
        known = np.zeros(len(X), bool)
        known[codes] = True
        rest = np.flatnonzero(~known)
        top = rest[P.acc[rest] >= np.quantile(P.acc[rest], 0.9)]
        taus.append((kendall_tau(mean[rest], P.acc[rest]), kendall_tau(mean[top], P.acc[top])))
        bm = P.score(best_within_budgets(np.where(known, P.acc, -1e9), P.lat, P.budgets))["mean_regret"]
        for c in a.cal:
            sh = calibration_shift(torch.as_tensor(P.budgets), torch.as_tensor(tab.latency_ms),
                                   torch.as_tensor(tab.accuracy), torch.as_tensor(pr.oob_pred), c).numpy()
            for k in a.k:
                picks = [best_within_budgets(np.where(known, P.acc, mean - k * std + sh[i]), P.lat,
                                             P.budgets[i:i + 1])[0] for i in range(len(P.budgets))]
                res.setdefault((c, k), []).append(P.score(np.array(picks))["mean_regret"] - bm)
        print(f"seed {seed}: fit {fit_s:.1f} s, tau {taus[-1][0]:.3f}, top 10 % {taus[-1][1]:.3f}, best-measured "
              f"regret {bm:.3f}; pick - best-measured: "
              + ", ".join(f"cal {c} k {k}: {v[-1]:+.3f}" for (c, k), v in res.items()), flush=True)
    t = np.array(taus)
    print(f"{a.dataset}/{a.device}, seeds {' '.join(map(str, a.seeds))}, settings {over or 'none'}: "
          f"tau {t[:, 0].mean():.3f}, top 10 % {t[:, 1].mean():.3f}")
    for (c, k), v in res.items():
        v = np.array(v)
        print(f"  choice_calibration {c}, choice_pessimism {k}: pick - best-measured {v.mean():+.3f} ± {v.std():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
