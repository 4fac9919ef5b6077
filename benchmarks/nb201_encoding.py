"""NAS-Bench-201 accuracy predictor: plain one-hot encoding against the effective-graph one.

    python benchmarks/nb201_encoding.py [--seed 0] [--train-samples 1000]

For each dataset, the run's default accuracy predictor (5-member bootstrap ensemble, 3 x 128
hidden, 150 epochs: what ``pnag train --space nb201`` fits) is trained on the same seeded 1,000
cells with (a) the one-hot of the six edge operations and (b) the one-hot of the cell's effective
graph (``pnag.space.nb201.effective_indices``: an edge on no input-to-output path counts as
``none``), and scored by Kendall tau on the other 14,625 cells. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from pnag.predict.mlp import MLPPredictor, PredictorConfig, kendall_tau
from pnag.search.sources import NB201Lookup
from pnag.space import NB201Space
from pnag.space.nb201 import OPS, effective_indices


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-samples", type=int, default=1000)
    args = p.parse_args(argv)
    space = NB201Space()
    look = NB201Lookup(space)
    idx = torch.as_tensor(np.stack([space.to_indices(a) for a in look.archs]))
    encodings = {"one-hot of the 6 edges": torch.nn.functional.one_hot(idx, len(OPS)).float().reshape(len(idx), -1),
                 "one-hot of the effective graph (pnag)": space.encode_indices(idx)}
    rows = []
    for dataset in ("cifar10", "cifar100", "ImageNet16-120"):
        acc = look.accuracy(dataset)
        codes = np.sort(np.random.default_rng(args.seed).choice(len(acc), args.train_samples, replace=False))
        rest = np.setdiff1d(np.arange(len(acc)), codes)
        for name, x in encodings.items():
            x = x.numpy()
            t0 = time.perf_counter()
            cfg = PredictorConfig.preset_config("fast", ensemble=5, seed=args.seed, hidden=128, epochs=150)
            pred = MLPPredictor(None, cfg, d_in=x.shape[1])
            pred.fit(x[codes], acc[codes])
            tau = kendall_tau(pred.predict(x[rest]), acc[rest])
            rows.append((dataset, name, tau, time.perf_counter() - t0))
            print(f"{dataset} {name}: tau {tau:.3f}", file=sys.stderr)
    print(f"Seed {args.seed}; {args.train_samples} measured cells; Kendall tau on the other "
          f"{15625 - args.train_samples} cells.\n")
    print("| dataset | encoding | Kendall tau | fit s |\n|---|---|---:|---:|")
    for d, n, t, s in rows:
        print(f"| {d} | {n} | {t:.3f} | {s:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
