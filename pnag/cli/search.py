"""``pnag search``: the main job. Train one generator for a budget range on this machine's latency
and print (and plot) the architecture it chooses across the range.

Accuracy comes from the public measured dataset (``dataset:ofa-mbv3-w1.0-imagenet``, width 1.0)
when it can be had (cache, mirror or download); otherwise from a training-free proxy, and the output
says so. Latency defaults to this machine's per-layer table (``local``: profiled once, then cached).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import DataError, PnagError
from ..sources.latency import SPEC_FORMS
from ..sources import ACCURACY_KINDS
from . import one_line
from ._common import (MAX_ARCH_SAMPLES, MAX_DRAWS, check_draws, check_output_path, positive_int, print_json,
                      removed_on_error, seed_int, table, threads_int)

DATASET = "dataset:ofa-mbv3-w1.0-imagenet"
# synflow: Kendall tau 0.84 against measured ImageNet top-1 at about 0.4 s per network on 2 cores
# (zico ranks slightly better, 0.86, but costs about 2.6 s per network; see BENCHMARKS.md).
FALLBACK_PROXY = "synflow"
FALLBACK_SAMPLES = 150
DEFAULT_OUTPUT = "pnag-search"
# Training threads: torch's default (all cores) spins against any other busy process; measured 2026-12-07 on a
# 2-core Xeon beside one busy benchmark, the default run with lut:i7-8700k took 399 s with 2 threads, 30 s with 1
TRAIN_THREADS = 1


def _resolve_accuracy(args: argparse.Namespace, space) -> tuple[str, str | None]:
    """The accuracy spec to use and, when it is a fallback, one line saying why and what fixes it."""
    import logging

    from ..sources import get_accuracy_source

    if args.accuracy:
        return args.accuracy, None
    pooch_log = logging.getLogger("pooch")  # its "Downloading data from ..." line: the note below says it
    level = pooch_log.level
    pooch_log.setLevel(logging.WARNING)
    try:
        get_accuracy_source(DATASET, space)
        return DATASET, None
    except DataError as exc:
        why = _why_missing(str(exc))
        fetch = f"{'unset PNAG_OFFLINE and ' if why.startswith('offline') else ''}run 'pnag data fetch " \
                f"{DATASET.split(':', 1)[1]}'"
        note = (f"NOTE: no measured ImageNet accuracies ({why}); using the training-free proxy '{FALLBACK_PROXY}', "
                f"a score, not a measured accuracy. To fix: set PNAG_DATA_DIR to a mirror or {fetch}.")
        return f"proxy:{FALLBACK_PROXY}", note
    finally:
        pooch_log.setLevel(level)


def _why_missing(message: str) -> str:
    """A few words from the data registry's full message (which lists every place it looked)."""
    if "PNAG_OFFLINE=1" in message:
        return "offline: PNAG_OFFLINE=1"
    failed = re.search(r"download from \S+: failed \((\w+)", message)
    if failed:
        return f"download failed: {failed.group(1)}"
    damaged = re.search(r"is (truncated|altered) in the offline mirror", message)
    if damaged:
        return f"the mirror's copy is {damaged.group(1)}"
    return one_line(message)[:60]


def _default_budgets(acc_spec: str, lat_spec: str, space, train_samples: int | None) -> tuple[float, float, str]:
    """Budget range (ms): 10 %..90 % of the latencies of the measured architectures (dataset sources) or
    of 1,000 uniformly sampled ones (other sources, which would otherwise be scored twice); and a
    sentence saying so."""
    from ..sources import VectorLatency, get_accuracy_source, get_latency_source
    from ..search.indices import canonical

    import torch

    if acc_spec.startswith("dataset:"):
        archs, _ = get_accuracy_source(acc_spec, space).table(train_samples, 0)
        of = f"the {len(archs)} measured architectures"
    else:
        archs = space.sample(1000, seed=0)
        of = "1000 random architectures"
    idx = canonical(space, torch.as_tensor(np.stack([space.to_indices(a) for a in archs])))
    lat = VectorLatency(space, get_latency_source(lat_spec, space))(idx).numpy()
    lo, hi = np.quantile(lat, [0.1, 0.9])
    lo, hi = float(f"{lo:.3g}"), float(f"{hi:.3g}")
    return lo, hi, f"{lo:g}..{hi:g} ms, 10 %..90 % of the latencies of {of} (--budgets LO:HI to choose)"


def _latency_lines(spec: str, space, progress: bool | None) -> list[str]:
    """Resolve the latency source now (profiling this machine when 'local' has no table yet, with
    progress) and say what it is: the device, and for a table pnag profiled, where it is and its noise."""
    from ..sources import get_latency_source
    from ._report import device_words, noisy, table_noise

    t0 = time.time()
    source = get_latency_source(spec, space, progress=progress)
    lines = [f"latency: '{spec}' = {device_words(source)}"]
    path = getattr(source, "path", None)
    if path is not None:
        profile_s = float(source.data.get("profile_s", 0.0))
        when = "profiled now" if path.stat().st_mtime >= t0 else \
            f"profiled {time.strftime('%Y-%m-%d %H:%M', time.localtime(path.stat().st_mtime))}, cached"
        lines.append(f"latency table: {path} ({when}; {profile_s:.0f} s of profiling)")
        lines.append(f"latency table noise: {table_noise(source)}")
        if noisy(source):
            lines.append(f"WARNING: this table is too noisy to trust (the machine was busy while profiling); to "
                         f"re-profile, delete {path} and re-run when the machine is idle")
    return lines


def _output_folder(args: argparse.Namespace, config) -> Path:
    """The output folder. One that holds a run of other settings is not resumed: with the default
    -o, the next free ``pnag-search-N`` is used (and said); with -o given, a one-line error says what to pass."""
    from ..search.run import read_config

    base = Path(args.output or DEFAULT_OUTPUT)

    def clash(folder: Path) -> str:
        """'' when ``folder`` can take this run (new, or a run of these settings to resume); else why not."""
        if not (folder / "run" / "config.json").exists():
            return ""
        try:
            old = read_config(folder / "run").to_json()
        except PnagError as exc:
            return one_line(exc)[:80]
        new = config.to_json()
        if new["resolutions"] is None:
            old["resolutions"] = None
        diff = [k for k in new if old.get(k) != new[k]]
        return f"{diff[0]}={old.get(diff[0])!r}, not {new[diff[0]]!r}" if diff else ""

    why = clash(base)
    if not why:
        return base
    if args.output is not None:
        nxt = _free_folder(base, clash)
        raise PnagError(f"-o {str(base)!r}: holds a run of other settings ({why}); allowed: a new folder, e.g. "
                        f"-o {str(nxt)!r}, or delete {str(base)!r} first")
    out = _free_folder(base, clash)
    check_output_path(out, "-o/--output", folder=True)
    print(f"output: {str(base)!r} holds a run of other settings ({why}); this run goes to {str(out)!r} "
          "(-o to choose)", file=sys.stderr)
    return out


def _free_folder(base: Path, clash) -> Path:
    for i in range(2, 10_000):
        cand = base.with_name(f"{base.name}-{i}")
        if not clash(cand):
            return cand
    raise PnagError(f"-o: {str(base)!r} and its numbered siblings hold runs of other settings; allowed: another -o")


def _search(args: argparse.Namespace) -> int:
    from ..search import TrainConfig, train
    from ..space import MBV3Space
    from ._report import accuracy_column, answer_header, answer_json, answer_rows, latency_kind, write_csv
    from .train import parse_range, plot_run

    check_draws(args.n, args.samples)
    check_output_path(args.output or DEFAULT_OUTPUT, "-o/--output", folder=True)
    progress = False if args.quiet else True  # True: bars on a terminal, else a line every few seconds
    info = sys.stderr if args.json else sys.stdout  # the few lines that say what this run is

    def say(line: str) -> None:
        print(line, file=info, flush=True)

    space = MBV3Space(width=1.0, resolution=224)
    acc_spec, note = _resolve_accuracy(args, space)
    train_samples = args.train_samples
    if acc_spec.startswith("proxy:") and train_samples is None:
        train_samples = FALLBACK_SAMPLES
    if note:
        say(note)
    else:
        say(f"accuracy: '{acc_spec}'" + (" (measured ImageNet top-1)" if acc_spec == DATASET else ""))
    for line in _latency_lines(args.latency, space, progress):
        say(line)
    if args.budgets:
        budgets, why = parse_range(args.budgets), "given by --budgets"
        budgets_text = f"{budgets[0]:g}..{budgets[1]:g} ms, {why}"
    else:
        *budgets, budgets_text = _default_budgets(acc_spec, args.latency, space, train_samples)
    say(f"budgets: {budgets_text}")
    config = TrainConfig(space="mbv3", accuracy=acc_spec, latency=args.latency, budgets=tuple(budgets), width=1.0,
                         train_samples=train_samples, seed=args.seed)
    out = _output_folder(args, config)
    with removed_on_error(out), _StageLines(out / "run", progress):
        # off a terminal the stage lines above report; the trainer's own bar only on a terminal
        run = train(config, out / "run", progress=None if progress else False, threads=args.threads)
    lo, hi = run.budget_range
    grid = _budget_grid(max(lo, run.min_latency_ms), hi, args.n)
    gens = run.generate(grid, samples=args.samples, seed=args.seed)
    header, rows = answer_header(run), answer_rows(run, gens)
    csv_path = write_csv(out / "results.csv", header, rows)
    png = plot_run(run, out / "search.png", budgets=grid, samples=args.samples, gens=gens,
                   title=f"pnag search: {len(gens)} budgets in {lo:g}..{hi:g} ms")
    if args.json:
        print_json({"accuracy": acc_spec, "accuracy_column": accuracy_column(run), "latency": args.latency,
                    "latency_is": latency_kind(run), "device": _device(run), "budgets_ms": [lo, hi],
                    "run": str(out / "run"), "plot": str(png), "results": str(csv_path), "note": note,
                    "generated": [answer_json(run, g) for g in gens]})
        return 0
    print(f"pnag search: one generator for {lo:g}..{hi:g} ms; accuracy_is and latency_is say what each value is")
    print(table(rows, header))
    print(f"results: {csv_path}   plot: {png}   run: {out / 'run'}")
    print(f"more budgets: pnag generate --run {out / 'run'} --budgets {lo:g}:{hi:g}:{(hi - lo) / 10:.3g}")
    return 0


def _device(run) -> str:
    from ._report import device_words

    return device_words(run.lat_source.source)


def _budget_grid(lo: float, hi: float, n: int) -> list[float]:
    """``n`` budgets (ms) from ``lo`` to ``hi``, at 0.01 ms, the ends kept inside ``[lo, hi]``."""
    grid = np.round(np.linspace(lo, hi, n), 2)
    grid[0], grid[-1] = math.ceil(lo * 100 - 1e-6) / 100, math.floor(hi * 100 + 1e-6) / 100
    return [float(b) for b in np.clip(grid, grid[0], grid[-1])]


class _StageLines:
    """While a run trains in ``run_dir``: one line per finished stage (from the run's own ``state.json``
    and ``metrics.json``), and when stderr is not a terminal a line every :data:`pnag._progress.EVERY_S`
    seconds saying which stage is running. ``progress`` as in :mod:`pnag._progress`."""

    STAGES = ("data", "predictors", "ranker", "generator", "eval")

    def __init__(self, run_dir: Path, progress: bool | None):
        from .._progress import shows

        self.run_dir, self.on = Path(run_dir), shows(progress)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        if self.on:
            self.seen = set(self._read("state.json").get("done", []))
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.on:
            self.stop.set()
            self.thread.join()
            if exc[0] is None:
                self._report()

    def _read(self, name: str) -> dict:
        try:
            value = json.loads((self.run_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def _report(self) -> list[str]:
        from .._progress import say

        done = [s for s in self._read("state.json").get("done", []) if s in self.STAGES]
        metrics = self._read("metrics.json")
        for stage in done:
            if stage not in self.seen:
                self.seen.add(stage)
                seconds = metrics.get("seconds", {}).get(stage, 0.0)
                say(f"train: {stage} done ({seconds:.1f} s){_stage_detail(stage, metrics)}")
        return done

    def _watch(self) -> None:
        from .._progress import EVERY_S, say

        t0 = last = time.perf_counter()
        tty = sys.stderr.isatty()
        while not self.stop.wait(1.0):
            done = self._report()
            if not tty and time.perf_counter() - last >= EVERY_S:
                last = time.perf_counter()
                running = next((s for s in self.STAGES if s not in done), "the last stage")
                say(f"train: {running} running, {last - t0:.0f} s so far")


def _stage_detail(stage: str, metrics: dict) -> str:
    """What a finished stage gave, in a few words."""
    data = metrics.get("data", {})
    if stage == "data" and data:
        return f": {data.get('n')} architectures, {data.get('note', '')}"
    if stage == "predictors" and "accuracy" in metrics.get("predictors", {}):
        acc = metrics["predictors"]["accuracy"]
        unit = "points of top-1 %" if data.get("accuracy_unit", "%") == "%" else "score units"
        return f": accuracy predictor RMSE {acc['rmse']:.3f} {unit}, Kendall tau {acc['kendall_tau']:.3f} (held out)"
    if stage == "ranker" and "ranker" in metrics:
        return f": pair accuracy {metrics['ranker']['pair_accuracy']:.3f} (held out)"
    return ""


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
