"""NAS-Bench-201 accuracy predictor: encodings (plain one-hot vs effective graph) and regression targets.

    python benchmarks/nb201_encoding.py [--seeds 0] [--train-samples 1000]

For each dataset and seed, the run's default accuracy predictor (5-member bootstrap ensemble, 3 x 128
hidden, 150 epochs: what ``pnag train --space nb201`` fits) is trained on the same seeded 1,000
cells with

* (a) the one-hot of the six edge operations, regressing the accuracy itself;
* (b) the one-hot of the cell's effective graph (``pnag.space.nb201.effective_indices``: an edge on no
  input-to-output path counts as ``none``), regressing the accuracy itself;
* (c) the effective graph, regressing -log(100.5 - accuracy) (``PredictorConfig.target="log-error"``,
  the default of ``pnag train`` for an accuracy in % on MobileNetV3),
* (d) the effective graph, regressing -log(best measured + 3 - accuracy) (``target="log-gap"``, the
  default of ``pnag train --space nb201`` for an accuracy in %),

and scored by Kendall tau on the other 14,625 cells, and on the top 10 % of them by true accuracy
(where a search chooses). Prints a markdown table (means over the seeds, and per seed).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from pnag.predict.mlp import MLPPredictor, PredictorConfig, kendall_tau
from pnag.sources import NB201Lookup
from pnag.space import NB201Space
from pnag.space.nb201 import OPS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--train-samples", type=int, default=1000)
    args = p.parse_args(argv)
    space = NB201Space()
    look = NB201Lookup(space)
    idx = torch.as_tensor(np.stack([space.to_indices(a) for a in look.archs]))
    plain = torch.nn.functional.one_hot(idx, len(OPS)).float().reshape(len(idx), -1).numpy()
    effective = space.encode_indices(idx).numpy()
    variants = {"(a) one-hot of the 6 edges, accuracy": (plain, "identity"),
                "(b) effective graph, accuracy": (effective, "identity"),
                "(c) effective graph, log-error": (effective, "log-error"),
                "(d) effective graph, log-gap (pnag)": (effective, "log-gap")}
    rows = []
    for dataset in ("cifar10", "cifar100", "ImageNet16-120"):
        acc = look.accuracy(dataset)
        for seed in args.seeds:
            codes = np.sort(np.random.default_rng(seed).choice(len(acc), args.train_samples, replace=False))
            rest = np.setdiff1d(np.arange(len(acc)), codes)
            top = rest[acc[rest] >= np.quantile(acc[rest], 0.9)]
            for name, (x, target) in variants.items():
                t0 = time.perf_counter()
                cfg = PredictorConfig.preset_config("fast", ensemble=5, seed=seed, hidden=128, epochs=150, target=target)
                pred = MLPPredictor(None, cfg, d_in=x.shape[1])
                pred.fit(x[codes], acc[codes])
                p_rest = pred.predict(x[rest])
                tau = kendall_tau(p_rest, acc[rest])
                tau_top = kendall_tau(pred.predict(x[top]), acc[top])
                rows.append((dataset, name, seed, tau, tau_top, time.perf_counter() - t0))
                print(f"{dataset} seed {seed} {name}: tau {tau:.3f}, top 10 % {tau_top:.3f}", file=sys.stderr)
    n_rest = 15625 - args.train_samples
    print(f"Seeds {', '.join(map(str, args.seeds))}; {args.train_samples} measured cells each; Kendall tau on the "
          f"other {n_rest} cells, and on the top 10 % of them by true accuracy. Means over the seeds "
          "(per seed in brackets).\n")
    print("| dataset | predictor | Kendall tau | tau, top 10 % | fit s |\n|---|---|---:|---:|---:|")
    for dataset in ("cifar10", "cifar100", "ImageNet16-120"):
        for name in variants:
            r = [x for x in rows if x[0] == dataset and x[1] == name]
            per = lambda i: ", ".join(f"{x[i]:.3f}" for x in r)  # noqa: E731
            print(f"| {dataset} | {name} | {np.mean([x[3] for x in r]):.3f} ({per(3)}) | "
                  f"{np.mean([x[4] for x in r]):.3f} ({per(4)}) | {np.mean([x[5] for x in r]):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
