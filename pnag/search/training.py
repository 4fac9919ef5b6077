"""Train once, generate for any budget: predictors, Pareto-aware ranker and generator in one run directory.

Stages (each saved atomically in the run directory; an interrupted run resumes from the last saved one,
and the generator from its last checkpoint):

1. ``data``: the measured table (architectures as decision indices, accuracy %, latency ms);
2. ``predictors``: an accuracy ensemble (:class:`pnag.predict.MLPPredictor`; none when the accuracy
   source is itself a model) and, with ``latency_samples``, a latency ensemble;
3. ``ranker``: the Pareto-aware ranker (``reward="pareto"``), trained on pairs of the measured table
   and random architectures, all labelled on one scale (the accuracy model's mean - k * spread); its
   pair accuracy is reported on held-out architectures;
4. ``generator``: policy gradient (Adam, entropy bonus) on batches of ``budgets_per_step`` budgets
   drawn across the range times ``samples_per_budget`` architectures each; advantages are
   leave-one-out and standardised per budget (:mod:`pnag.search.policy`);
5. ``eval`` (``eval_budget > 0``): look-up rounds (:mod:`pnag.search.active`).

:meth:`pnag.search.run.Run.generate` serves budgets from the finished run.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import PnagError
from .config import TrainConfig
from .generator_stage import reward_fn, train_generator
from .stages import (RANKER_HOLDOUT, fit_predictors, fit_ranker, stage_data, stage_data_devices, stage_predictors,
                     stage_ranker)
from .. import sources
from .run import Run, config_document, read_config


# -- the run -----------------------------------------------------------------------------------------
def train(config: TrainConfig, run_dir: str | Path, progress: bool = True, threads: int | None = None,
          accuracy: Any = None, latency: Any = None) -> Run:
    """Train (or resume) a run in ``run_dir``; returns the finished :class:`~pnag.search.run.Run`.

    ``accuracy`` / ``latency``: Python objects in place of ``config.accuracy`` / ``config.latency``
    (a callable ``archs -> accuracy %`` or an :class:`~pnag.sources.AccuracySource`; an object with
    ``latency_ms(archs) -> ms`` or a callable; a list of specs or objects for several devices); the run
    records their names
    (:func:`pnag.sources.source_name`), and :meth:`Run.load` takes them again where it needs them.

    ``threads``: torch intra-op threads while training (restored afterwards; None keeps torch's
    setting, all cores). On an idle 2-core machine 2 threads are faster (MobileNetV3 default run:
    23 s against 33 s with 1); on a machine whose cores are busy with other work, 1 thread avoids
    threads spinning against it (measured beside one busy process: 28 s with 1 thread, over 5
    minutes with 2).
    """
    if isinstance(latency, (list, tuple)):
        config = replace(config, latency=tuple(sources.source_name(v) for v in latency))
    elif latency is not None:
        config = replace(config, latency=sources.source_name(latency))
    if accuracy is not None:
        config = replace(config, accuracy=sources.source_name(accuracy))
    if threads is None:
        return _train(config, run_dir, progress, accuracy, latency)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise PnagError(f"threads: {threads!r} is not allowed; allowed: an integer >= 1 or None")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(config, run_dir, progress, accuracy, latency)
    finally:
        torch.set_num_threads(previous)


def stored_difference(run_dir: Path, settled: TrainConfig) -> tuple[str, Any, Any] | None:
    """The first setting (by name) in which the run stored in ``run_dir`` differs from ``settled``, a
    config as :func:`train` stores it (:func:`resolved`): ``(name, stored, settled's)``; None when they
    are the same (the run resumes)."""
    old, new = read_config(run_dir).to_json(), settled.to_json()
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return (diff[0], old.get(diff[0]), new.get(diff[0])) if diff else None


def _open_run_dir(config: TrainConfig, run_dir: Path) -> None:
    """Check ``run_dir`` is new, empty or a run of the same settings; raises before anything is written."""
    if run_dir.exists() and not run_dir.is_dir():
        raise PnagError(f"-o: {str(run_dir)!r} exists and is not a directory; allowed: a new or run directory")
    if (run_dir / "config.json").exists():
        diff = stored_difference(run_dir, config)
        if diff:
            k, was, now = diff
            raise PnagError(f"-o {str(run_dir)!r}: holds a run with {k}={was!r}, not {now!r}; "
                            "allowed: the same settings (to resume) or another directory")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise PnagError(f"-o: {str(run_dir)!r} is a non-empty directory that is not a run; allowed: a new or "
                        "empty directory, or an earlier run to resume")


def exact_objective(config: TrainConfig, acc_source: Any) -> bool:
    """Whether a run's objective is exact: its accuracy source is itself a model (``ofa-predictor``,
    ``nb201-exact:*``: no predictor is fitted) and latency comes from the source (no ``latency_samples``)."""
    return getattr(acc_source, "model", None) is not None and not config.latency_samples


def resolved(config: TrainConfig, accuracy: Any = None, latency: Any = None) -> tuple[TrainConfig, str]:
    """``config`` with its schedule decided (``TrainConfig.scheduled``: "fast" for an exact objective on
    MobileNetV3, :func:`exact_objective`) and its MobileNetV3 input resolutions (see ``TrainConfig.resolutions``), and
    a sentence saying which resolutions and why ("" for NAS-Bench-201)."""
    probe_cfg = replace(config, resolutions=(config.resolution,)) if config.space == "mbv3" else config
    probe = Run(Path("."), probe_cfg, accuracy, latency)
    # NAS-Bench-201 keeps "full": there the fast schedule's generator-own regret was 0.28-0.34 points, not
    # <= 0.05 (BENCHMARKS.md, "How the defaults were chosen")
    config = config.scheduled(config.space == "mbv3" and exact_objective(config, probe.acc_source))
    if config.space != "mbv3":
        return config, ""
    from ..sources.latency import get_latency_source

    # the latency specs first (their errors cost nothing to find), unchecked: asked below what they cover
    lats = [get_latency_source(s, probe.space, check=False) for s in probe.latencies]
    lat = lats[0] if len(lats) == 1 else _EveryDevice(lats)
    res, note = sources.resolve_resolutions(config, probe.acc_source, lat, config.resolutions)
    return replace(config, resolutions=res), note


class _EveryDevice:
    """Several latency sources as one that covers a (width, resolution) where every one of them does."""

    def __init__(self, lats: list):
        self.lats = lats

    def covers(self, width: float, resolution: int) -> bool:
        return all(sources.latency_resolutions(lat, width, [resolution]) in (None, (resolution,)) for lat in self.lats)


def _train(config: TrainConfig, run_dir: str | Path, progress: bool, accuracy: Any, latency: Any) -> Run:
    from .._io import exclusive_writer, remove_stale_temporaries, write_json_atomic

    run_dir = Path(run_dir)
    config, note = resolved(config, accuracy, latency)
    run = Run(run_dir, config, accuracy, latency)
    run.resolution_note = note
    if config.eval_budget > 0 and run.acc_source.measure is None:  # found before any work is written
        raise PnagError(f"--eval-budget: {config.eval_budget}; the accuracy source {config.accuracy!r} cannot measure "
                        "new architectures; allowed: 0 with this source (nb201:* sources can)")
    for d in range(len(run.latencies)):  # resolve the latency specs too before anything is written
        run.device_latency(d)
    with exclusive_writer(run_dir, "-o"):  # one writer per run directory
        if run_dir.is_dir():  # what a process killed mid-write left: of config.json (may be all there is), then any
            remove_stale_temporaries(run_dir, "config.json")
        _open_run_dir(config, run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir)
        if not (run_dir / "config.json").exists():
            write_json_atomic(run_dir / "config.json", config_document(config))
        return _run_stages(run, progress)


def refit(run: Run, metrics: dict, r: int, progress: bool) -> dict[str, Any]:
    """After look-up round ``r`` (from 0): predictors, ranker and generator refitted on the grown table;
    returns the predictors' fit."""
    cfg = run.config
    fit = fit_predictors(run, seed=cfg.seed + r + 1, tag=f"eval{r + 1}-predictors")
    run.save_models()
    if cfg.reward == "pareto":
        fit_ranker(run, seed=cfg.seed + r + 1, tag=f"eval{r + 1}-ranker")
    train_generator(run, metrics, max(1, cfg.steps // 4), tag=f"eval{r + 1}", progress=progress,
                    seed_offset=1000 * (r + 1))
    return fit


def _run_stages(run: Run, progress: bool) -> Run:
    """Run (or resume) every stage not yet done in ``run``'s directory."""
    from .active import stage_eval

    config = run.config
    done = run.state()["done"]
    run.restore([s for s in done if s != "generator"])
    metrics = dict(run.metrics)
    t0 = time.perf_counter()
    timings = metrics.setdefault("seconds", {})
    stages: list[tuple[str, Callable[[Run, dict], None]]] = [
        ("data", stage_data_devices if config.device_conditioned else stage_data), ("predictors", stage_predictors),
        ("ranker", stage_ranker),
        ("generator", lambda r, m: train_generator(r, m, config.steps, tag="generator", progress=progress)),
        ("eval", lambda r, m: stage_eval(r, m, partial(refit, progress=progress)))]
    for name, stage in stages:
        if name == "ranker" and config.reward != "pareto" or name == "eval" and config.eval_budget == 0:
            continue
        if name in done:
            if name == "generator":
                run.restore(["generator"])
            continue
        t = time.perf_counter()
        stage(run, metrics)
        timings[name] = time.perf_counter() - t + (timings.get(name, 0.0) if name in ("generator", "eval") else 0.0)
        run.save_metrics(metrics)
        run.mark(name)
    metrics["min_latency_ms"] = run.metrics.get("min_latency_ms", metrics.get("min_latency_ms"))
    timings["total_this_session"] = time.perf_counter() - t0
    run.metrics = metrics
    run.save_metrics(metrics)
    run.mark("done")
    run.generator.eval()
    return run


__all__ = ["train", "exact_objective", "resolved", "stored_difference", "fit_predictors", "fit_ranker", "train_generator", "reward_fn", "RANKER_HOLDOUT"]
