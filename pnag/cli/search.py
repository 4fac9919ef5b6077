"""``pnag search``: the main job (:func:`pnag.search.main_job.search`, also ``pnag.search(...)``). Train one
generator for a budget range on this machine's latency and print (and plot) the architecture it chooses
across the range.
"""

from __future__ import annotations

import argparse
import sys

from ..search.main_job import DATASET, DEFAULT_OUTPUT, FALLBACK_PROXY, FALLBACK_SAMPLES, TRAIN_THREADS
from ..sources import ACCURACY_KINDS
from ..sources.latency import SPEC_FORMS
from ._common import MAX_ARCH_SAMPLES, MAX_DRAWS, check_draws, positive_int, print_json, seed_int, table, threads_int


def _search(args: argparse.Namespace) -> int:
    from ..latency.describe import device_words
    from ..search.main_job import search
    from ..search.config import parse_range

    check_draws(args.n, args.samples)
    info = sys.stderr if args.json else sys.stdout  # the few lines that say what this run is

    def say(line: str) -> None:
        print(line, file=info, flush=True)

    run = search(args.output, accuracy=args.accuracy, latency=args.latency,
                 budgets=parse_range(args.budgets) if args.budgets else None, train_samples=args.train_samples,
                 n=args.n, samples=args.samples, seed=args.seed, threads=args.threads, progress=not args.quiet,
                 say=say)
    done, gens = run.search_outputs, run.search_outputs.answers
    lo, hi = run.budget_range
    if args.json:
        print_json({"accuracy": run.config.accuracy, "accuracy_column": gens.accuracy_column,
                    "latency": run.config.latency, "latency_is": gens[0].latency_is,
                    "device": device_words(run.lat_source.source), "budgets_ms": [lo, hi], "run": str(run.dir),
                    "plot": str(done.plot), "results": str(done.results_csv), "note": done.note,
                    "generated": gens.to_json()})
        return 0
    print(f"pnag search: one generator for {lo:g}..{hi:g} ms; accuracy_is and latency_is say what each value is")
    print(table(gens.table_rows(), gens.columns()))
    print(f"results: {done.results_csv}   plot: {done.plot}   run: {run.dir}")
    print(f"more budgets: pnag generate --run {run.dir} --budgets {lo:g}:{hi:g}:{(hi - lo) / 10:.3g}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search", help="the main job: train once for a budget range on this machine, print and plot the result",
        description="Train predictors, the Pareto-aware ranker and one budget-conditioned generator on this "
                    "machine's latency, then print and plot the architecture chosen across the budget range, and "
                    "write it to results.csv. The space is MobileNetV3 at width 1.0 and 224 px, those of the "
                    "measured dataset (pnag arch info and pnag train with other sources default to width 1.2). "
                    "Every accuracy printed says whether it is measured, predicted or a proxy score "
                    "(accuracy_is), and every latency whether it is measured, a lookup-table estimate or "
                    "predicted (latency_is).")
    p.add_argument("--latency", default="local",
                   help=f"latency source: {', '.join(SPEC_FORMS)} (default: local, this machine's per-layer table, "
                        "profiled once with torch's threads and cached; pnag train's default is lut:i7-8700k)")
    p.add_argument("--accuracy", default=None,
                   help=f"accuracy source: {', '.join(ACCURACY_KINDS)} (default: {DATASET} when available, else "
                        f"proxy:{FALLBACK_PROXY} on {FALLBACK_SAMPLES} sampled networks, said in the output)")
    p.add_argument("--budgets", default=None, help="LO:HI in ms (default: 10 %%..90 %% of the measured latencies)")
    p.add_argument("--train-samples", type=positive_int("--train-samples", MAX_ARCH_SAMPLES), default=None)
    p.add_argument("-n", type=positive_int("-n", MAX_DRAWS), default=8,
                   help="budgets to report across the range (default 8)")
    p.add_argument("--samples", type=positive_int("--samples", MAX_DRAWS, " (memory)"), default=16,
                   help=f"generator draws per budget, at most {MAX_DRAWS} (default 16)")
    p.add_argument("--seed", type=seed_int(), default=0, help="random seed, 0..2**63-1 (default 0)")
    p.add_argument("--threads", type=threads_int(), default=TRAIN_THREADS,
                   help=f"torch threads while training (default {TRAIN_THREADS}: on a 2-core machine beside one busy "
                        "process the default run took 30 s with 1 thread and 399 s with 2; on an idle one 2 threads "
                        "are about 1.4x faster; pnag train's default is torch's, all cores). The 'local' table is "
                        "profiled with torch's threads (OMP_NUM_THREADS) whatever this says")
    p.add_argument("-o", "--output", default=None,
                   help=f"output folder: results.csv, search.png and the run (default ./{DEFAULT_OUTPUT}; when that "
                        f"holds a run of other settings, the next free ./{DEFAULT_OUTPUT}-N)")
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress (default: bars on a terminal, else a line every 15 s; a line per finished step)")
    p.set_defaults(func=_search)
