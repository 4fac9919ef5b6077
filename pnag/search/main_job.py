"""The main job, ``pnag.search(...)`` and ``pnag search``: train one generator for a budget range on this
machine's latency, then answer a few budgets across the range, write them (``results.csv``) and plot
them (``search.png``).

Accuracy comes from the public measured dataset (``dataset:ofa-mbv3-w1.0-imagenet``, width 1.0)
when it can be had (cache, mirror or download); otherwise from a training-free proxy, and a line
says so. Latency defaults to this machine's per-layer table (``local``: profiled once, then cached).
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .._io import check_output_path, removed_on_error
from ..errors import DataError, PnagError, one_line
from .answers import Generations
from .config import TrainConfig
from .run import Run
from .stage_lines import StageLines
from .training import resolved, stored_difference

DATASET = "dataset:ofa-mbv3-w1.0-imagenet"
# synflow: Kendall tau 0.84 against measured ImageNet top-1 at about 0.4 s per network on 2 cores
# (zico ranks slightly better, 0.86, but costs about 2.6 s per network; see BENCHMARKS.md).
FALLBACK_PROXY = "synflow"
FALLBACK_SAMPLES = 150
DEFAULT_OUTPUT = "pnag-search"
# Training threads: torch's default (all cores) spins against any other busy process; measured 2026-12-07 on a
# 2-core Xeon beside one busy benchmark, the default run with lut:i7-8700k took 399 s with 2 threads, 30 s with 1
TRAIN_THREADS = 1


@dataclass(frozen=True)
class SearchOutputs:
    """What :func:`search` wrote beside the run (``run.search_outputs``): the answers at the reported
    budgets, ``results.csv`` (:meth:`Generations.to_csv` of them), ``search.png``, and the one-line note
    when the accuracy fell back to a proxy (None otherwise)."""

    answers: Generations
    results_csv: Path
    plot: Path
    note: str | None


def search(output: str | os.PathLike | None = None, *, accuracy: str | None = None, latency: str = "local",
           budgets: tuple[float, float] | None = None, train_samples: int | None = None, n: int = 8,
           samples: int = 16, seed: int = 0, threads: int | None = TRAIN_THREADS, progress: bool = True,
           say: Callable[[str], None] | None = None) -> Run:
    """The main job: train one generator on MobileNetV3 (width 1.0, 224 px) for a latency budget range
    and answer ``n`` budgets across it. Returns the trained :class:`Run` (in ``<output>/run``); its
    ``search_outputs`` (:class:`SearchOutputs`) holds the answers and the files written.

    ``accuracy``: a spec (default: the measured dataset when it can be had, else ``proxy:synflow`` on
    150 sampled networks, said in a line); ``latency``: a spec (default ``local``, this machine's table,
    profiled on first use); ``budgets``: ``(lo, hi)`` ms (default 10 %..90 % of the latencies of the
    measured architectures). ``output``: the folder (default ``./pnag-search``; when that holds a run of
    other settings, the next free ``./pnag-search-N``, said in a line; a given folder that holds one is
    an error). ``n`` budgets reported, ``samples`` generator draws per budget, ``threads`` torch threads
    while training. ``say``: where the few lines that say what the run is go (default: stderr);
    ``progress``: lines while training. A Python object in place of a spec: :func:`pnag.train`.
    """
    for name, value in (("accuracy", accuracy), ("latency", latency)):
        if value is not None and not isinstance(value, str):
            raise PnagError(f"{name}: {type(value).__name__} object; allowed: a source spec (for a Python object in "
                            "its place, train with pnag.train(..., accuracy=OBJ, latency=OBJ))")
    for name, value in (("n", n), ("samples", samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PnagError(f"{name}: {value!r}; allowed: an integer >= 1")
    check_output_path(DEFAULT_OUTPUT if output is None else output, "-o/--output", folder=True)
    if say is None:
        def say(line: str) -> None:
            print(line, file=sys.stderr, flush=True)
    from ..space import MBV3Space
    from .training import train

    space = MBV3Space(width=1.0, resolution=224)
    acc_spec, note = _resolve_accuracy(accuracy, space)
    if acc_spec.startswith("proxy:") and train_samples is None:
        train_samples = FALLBACK_SAMPLES
    say(note or f"accuracy: '{acc_spec}'" + (" (measured ImageNet top-1)" if acc_spec == DATASET else ""))
    for line in _latency_lines(latency, space, progress):
        say(line)
    if budgets is not None:
        config_budgets = TrainConfig(budgets=budgets).budgets  # checked
        budgets_text = f"{config_budgets[0]:g}..{config_budgets[1]:g} ms, given by --budgets"
    else:
        *config_budgets, budgets_text = _default_budgets(acc_spec, latency, space, train_samples)
    say(f"budgets: {budgets_text}")
    config = TrainConfig(space="mbv3", accuracy=acc_spec, latency=latency, budgets=tuple(config_budgets), width=1.0,
                         train_samples=train_samples, seed=seed)
    out = _output_folder(output, config)
    with removed_on_error(out), StageLines(out / "run", progress):
        # off a terminal the stage lines above report; the trainer's own bar only on a terminal
        run = train(config, out / "run", progress=None if progress else False, threads=threads)
    lo, hi = run.budget_range
    grid = budget_grid(max(lo, run.min_latency_ms), hi, n)
    gens = run.generate(grid, samples=samples, seed=seed)
    from .plot import plot_run

    png = plot_run(run, out / "search.png", budgets=grid, samples=samples, gens=gens,
                   title=f"pnag search: {len(gens)} budgets in {lo:g}..{hi:g} ms")
    run.search_outputs = SearchOutputs(gens, gens.to_csv(out / "results.csv"), png, note)
    return run


def _resolve_accuracy(accuracy: str | None, space) -> tuple[str, str | None]:
    """The accuracy spec to use and, when it is a fallback, one line saying why and what fixes it."""
    import logging

    from ..sources import get_accuracy_source

    if accuracy:
        return accuracy, None
    pooch_log = logging.getLogger("pooch")  # its "Downloading data from ..." line: the note below says it
    level = pooch_log.level
    pooch_log.setLevel(logging.WARNING)
    try:
        get_accuracy_source(DATASET, space)
        return DATASET, None
    except DataError as exc:
        why = why_missing(str(exc))
        fetch = f"{'unset PNAG_OFFLINE and ' if why.startswith('offline') else ''}run 'pnag data fetch " \
                f"{DATASET.split(':', 1)[1]}'"
        note = (f"NOTE: no measured ImageNet accuracies ({why}); using the training-free proxy '{FALLBACK_PROXY}', "
                f"a score, not a measured accuracy. To fix: set PNAG_DATA_DIR to a mirror or {fetch}.")
        return f"proxy:{FALLBACK_PROXY}", note
    finally:
        pooch_log.setLevel(level)


def why_missing(message: str) -> str:
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
    import torch

    from ..sources import VectorLatency, get_accuracy_source, get_latency_source
    from .indices import canonical

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
    from ..latency.describe import device_words, noisy, table_noise
    from ..sources import get_latency_source

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


def _output_folder(output: str | os.PathLike | None, config: TrainConfig) -> Path:
    """The output folder. One that holds a run of other settings is not resumed: with the default
    output, the next free ``pnag-search-N`` is used (and said); with ``output`` given, a one-line error
    says what to pass."""
    base = Path(DEFAULT_OUTPUT if output is None else output)
    settled: list[TrainConfig] = []  # this config as a run stores it (its schedule decided), made when first needed

    def clash(folder: Path) -> str:
        """'' when ``folder`` can take this run (new, or a run of these settings to resume); else why not."""
        if not (folder / "run" / "config.json").exists():
            return ""
        if not settled:
            settled.append(resolved(config)[0])
        try:
            diff = stored_difference(folder / "run", settled[0])
        except PnagError as exc:
            return one_line(exc)[:80]
        return f"{diff[0]}={diff[1]!r}, not {diff[2]!r}" if diff else ""

    why = clash(base)
    if not why:
        return base
    nxt = _free_folder(base, clash)
    if output is not None:
        raise PnagError(f"-o {str(base)!r}: holds a run of other settings ({why}); allowed: a new folder, e.g. "
                        f"-o {str(nxt)!r}, or delete {str(base)!r} first")
    check_output_path(nxt, "-o/--output", folder=True)
    print(f"output: {str(base)!r} holds a run of other settings ({why}); this run goes to {str(nxt)!r} "
          "(-o to choose)", file=sys.stderr)
    return nxt


def _free_folder(base: Path, clash) -> Path:
    for i in range(2, 10_000):
        cand = base.with_name(f"{base.name}-{i}")
        if not clash(cand):
            return cand
    raise PnagError(f"-o: {str(base)!r} and its numbered siblings hold runs of other settings; allowed: another -o")


def budget_grid(lo: float, hi: float, n: int) -> list[float]:
    """``n`` budgets (ms) from ``lo`` to ``hi``, at 0.01 ms, the ends kept inside ``[lo, hi]``."""
    grid = np.round(np.linspace(lo, hi, n), 2)
    grid[0], grid[-1] = math.ceil(lo * 100 - 1e-6) / 100, math.floor(hi * 100 + 1e-6) / 100
    return [float(b) for b in np.clip(grid, grid[0], grid[-1])]


__all__ = ["search", "SearchOutputs", "DATASET", "FALLBACK_PROXY", "FALLBACK_SAMPLES", "DEFAULT_OUTPUT",
           "TRAIN_THREADS", "budget_grid", "why_missing"]
