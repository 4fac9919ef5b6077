"""``pnag search``: the main job. Train one generator for a budget range on this machine's latency
and print (and plot) the architecture it chooses across the range.

Accuracy comes from the public measured dataset (``dataset:ofa-mbv3-w1.0-imagenet``, width 1.0)
when it can be had (cache, mirror or download); otherwise from a training-free proxy, and the output
says so. Latency defaults to this machine's per-layer table (``local``: profiled once, then cached).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..errors import DataError
from ._common import (MAX_ARCH_SAMPLES, MAX_DRAWS, check_draws, check_output_path, positive_int, print_json,
                      removed_on_error, seed_int, table, threads_int)

DATASET = "dataset:ofa-mbv3-w1.0-imagenet"
# synflow: Kendall tau 0.84 against measured ImageNet top-1 at about 0.4 s per network on 2 cores
# (zico ranks slightly better, 0.86, but costs about 2.6 s per network; see BENCHMARKS.md).
FALLBACK_PROXY = "synflow"
FALLBACK_SAMPLES = 150


def _resolve_accuracy(args: argparse.Namespace, space) -> tuple[str, str | None]:
    """The accuracy spec to use and, when it is a fallback, a plain note saying why."""
    from ..sources import get_accuracy_source

    if args.accuracy:
        return args.accuracy, None
    try:
        get_accuracy_source(DATASET, space)
        return DATASET, None
    except DataError as exc:
        note = (f"NOTE: the measured ImageNet dataset is not available ({exc}).\n"
                f"NOTE: accuracy comes from the training-free proxy '{FALLBACK_PROXY}' instead: a score that "
                "ranks architectures, not a measured accuracy.")
        return f"proxy:{FALLBACK_PROXY}", note


def _default_budgets(acc_spec: str, lat_spec: str, space, train_samples: int | None) -> tuple[float, float]:
    """Budget range (ms): 10 %..90 % of the latencies of the measured architectures (dataset sources) or
    of 1,000 uniformly sampled ones (other sources, which would otherwise be scored twice)."""
    from ..sources import VectorLatency, get_accuracy_source, get_latency_source
    from ..search.indices import canonical

    import torch

    if acc_spec.startswith("dataset:"):
        archs, _ = get_accuracy_source(acc_spec, space).table(train_samples, 0)
    else:
        archs = space.sample(1000, seed=0)
    idx = canonical(space, torch.as_tensor(np.stack([space.to_indices(a) for a in archs])))
    lat = VectorLatency(space, get_latency_source(lat_spec, space))(idx).numpy()
    lo, hi = np.quantile(lat, [0.1, 0.9])
    return float(f"{lo:.3g}"), float(f"{hi:.3g}")


def _search(args: argparse.Namespace) -> int:
    from ..search import TrainConfig, train
    from ..space import MBV3Space
    from .train import parse_range, plot_run

    check_draws(args.n, args.samples)
    check_output_path(args.output, "-o/--output", folder=True)
    space = MBV3Space(width=1.0, resolution=224)
    acc_spec, note = _resolve_accuracy(args, space)
    if note:
        print(note, file=sys.stderr)
        if not args.json:
            print(note)
    train_samples = args.train_samples
    if acc_spec.startswith("proxy:") and train_samples is None:
        train_samples = FALLBACK_SAMPLES
    if args.budgets:
        budgets = parse_range(args.budgets)
    else:
        budgets = _default_budgets(acc_spec, args.latency, space, train_samples)
    out = Path(args.output)
    config = TrainConfig(space="mbv3", accuracy=acc_spec, latency=args.latency, budgets=budgets, width=1.0,
                         train_samples=train_samples, seed=args.seed)
    with removed_on_error(out):
        run = train(config, out / "run", progress=not args.quiet, threads=args.threads)
    lo, hi = run.budget_range
    grid = np.linspace(max(lo, run.min_latency_ms), hi, args.n)
    gens = run.generate(grid, samples=args.samples, seed=args.seed)
    png = plot_run(run, out / "search.png", budgets=grid, samples=args.samples)
    if args.json:
        print_json({"accuracy": acc_spec, "latency": args.latency, "budgets_ms": [lo, hi], "run": str(out / "run"),
                    "plot": str(png), "note": note, "generated": [g.to_json() for g in gens]})
        return 0
    unit = "%" if not acc_spec.startswith("proxy:") else "score"
    print(f"pnag search: one generator for {lo:g}..{hi:g} ms on latency '{args.latency}', accuracy '{acc_spec}'")
    rows = [[f"{g.budget:.3g}", f"{g.predicted_accuracy:.2f}", f"{g.predicted_latency_ms:.3f}",
             "" if g.madds_m is None else f"{g.madds_m:.1f}", g.origin, g.arch] for g in gens]
    print(table(rows, ["budget_ms", f"accuracy_{unit}", "latency_ms", "madds_m", "origin", "arch"]))
    print(f"run: {out / 'run'}   plot: {png}")
    print(f"more budgets: pnag generate --run {out / 'run'} --budgets {lo:g}:{hi:g}:{(hi - lo) / 10:.3g}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search", help="the main job: train once for a budget range on this machine, print and plot the result",
        description="Train predictors, the Pareto-aware ranker and one budget-conditioned generator on this "
                    "machine's latency, then print and plot the architecture chosen across the budget range.")
    p.add_argument("--latency", default="local", help="latency source (default: this machine's table, 'local')")
    p.add_argument("--accuracy", default=None,
                   help=f"accuracy source (default: {DATASET} when available, else proxy:{FALLBACK_PROXY})")
    p.add_argument("--budgets", default=None, help="LO:HI in ms (default: 10 %%..90 %% of the measured latencies)")
    p.add_argument("--train-samples", type=positive_int("--train-samples", MAX_ARCH_SAMPLES), default=None)
    p.add_argument("-n", type=positive_int("-n", MAX_DRAWS), default=8,
                   help="budgets to report across the range (default 8)")
    p.add_argument("--samples", type=positive_int("--samples", MAX_DRAWS, " (memory)"), default=16,
                   help=f"generator draws per budget, at most {MAX_DRAWS} (default 16)")
    p.add_argument("--seed", type=seed_int(), default=0, help="random seed, 0..2**63-1 (default 0)")
    p.add_argument("--threads", type=threads_int(), default=None,
                   help="torch threads while training (default: torch's, all cores; 1 is faster on a busy machine)")
    p.add_argument("-o", "--output", default="pnag-search", help="output directory (default ./pnag-search)")
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_search)
