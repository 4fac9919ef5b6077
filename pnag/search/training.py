"""Train once, generate for any budget: predictors, Pareto-aware ranker and generator in one run directory.

Stages (each saved atomically in the run directory; an interrupted run resumes from the last saved one,
and inside a stage from its last checkpoint, :mod:`pnag.search.checkpoint`, with the same result):

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

import numpy as np
import torch

from .._io import torch_save_atomic
from ..errors import BudgetError, PnagError
from ..predict.mlp import MLPPredictor, PredictorConfig
from ..predict.ranker import ParetoRanker
from ..predict.resume import restore_training, restoring, training_state
from .archive import BudgetArchive, offspring
from .checkpoint import StageCheckpoint
from .config import TrainConfig
from .indices import canonical, index_keys, random_indices
from .policy import policy_gradient_step
from .rewards import mnas_reward, tunas_reward
from .. import sources
from .run import Run, RunModels, config_document, read_config

RANKER_HOLDOUT = 0.2  # fraction of the ranker's architectures held out to report its pair accuracy


def progress_bar(total: int, initial: int, enabled: bool | None, desc: str):
    """``enabled`` True: a bar on a terminal, a line every 15 s elsewhere, a summary line at the end;
    None: the bar on a terminal only; False: nothing (:class:`pnag._progress.Progress`)."""
    from .._progress import Progress

    return Progress(total, desc, enabled, initial=initial, unit="step")


# -- stages ------------------------------------------------------------------------------------------
def stage_data(run: Run, metrics: dict) -> None:
    cfg, space = run.config, run.space
    exact = run.lat_source  # resolve both specs before any long work
    src = run.acc_source
    archs, acc = src.table(cfg.train_samples, cfg.seed)
    idx = canonical(space, torch.as_tensor(np.stack([space.to_indices(a) for a in archs])))
    keep = sorted({k: i for i, k in enumerate(index_keys(idx))}.values())  # one row per architecture
    idx, acc = idx[keep], np.asarray(acc)[keep]
    lat = exact(idx)
    # the fastest architecture known: exhaustive minimum, else among the table and the all-first-choice one
    lows = torch.zeros(1, idx.shape[1], dtype=torch.long)
    if exact.exhaustive:
        codes_min = int(torch.argmin(exact._lookup))
        sizes = [len(c) for c in space.decision_choices]
        fastest = torch.tensor(np.unravel_index(codes_min, sizes), dtype=torch.long).view(1, -1)
    else:
        pool = torch.cat([idx, lows])
        fastest = pool[int(torch.argmin(exact(pool)))].view(1, -1)
    run.data = {"idx": idx, "accuracy": torch.as_tensor(acc, dtype=torch.float64), "latency": lat.double(),
                "fastest_idx": canonical(space, fastest)[0]}
    run.metrics["min_latency_ms"] = metrics["min_latency_ms"] = float(exact(fastest)[0])
    metrics["data"] = {"n": int(len(idx)), "accuracy_source": cfg.accuracy, "accuracy_unit": src.unit,
                       "note": src.note, "latency_source": cfg.latency,
                       "resolution_note": getattr(run, "resolution_note", ""),
                       "accuracy_range": [float(acc.min()), float(acc.max())],
                       "latency_range_ms": [float(lat.min()), float(lat.max())]}
    lo, hi = cfg.budgets
    if hi < metrics["min_latency_ms"]:
        raise BudgetError(f"--budgets: {lo:g}:{hi:g} ms lies below the fastest architecture "
                          f"({metrics['min_latency_ms']:.4g} ms); allowed: a range reaching above it")
    run.save_data()


def fit_predictors(run: Run, seed: int, tag: str = "predictors") -> dict[str, Any]:
    """Fit the run's predictors (checkpoints ``TAG-accuracy`` and ``TAG-latency``); returns their fits."""
    cfg, space = run.config, run.space
    pc = PredictorConfig.preset_config(cfg.predictor_preset, seed=seed) if cfg.predictor_preset == "published" else \
        PredictorConfig.preset_config(cfg.predictor_preset, ensemble=cfg.ensemble, seed=seed,
                                      hidden=cfg.predictor_hidden or (128 if cfg.space == "nb201" else 64),
                                      epochs=cfg.predictor_epochs or (150 if cfg.space == "nb201" else 60))
    out: dict[str, Any] = {}
    acc_model, acc_pred = run.acc_source.model, None
    if acc_model is None:
        target = cfg.predictor_target or ("log-error" if run.acc_source.unit == "%" else "identity")
        acc_pred = MLPPredictor(space, replace(pc, target=target))
        x = space.encode_indices(run.data["idx"]).numpy()
        out["accuracy"] = acc_pred.fit(x, run.data["accuracy"].numpy(),
                                       checkpoint=StageCheckpoint(run, f"{tag}-accuracy"))
    lat_pred, lat_exact = None, run.lat_source
    if cfg.latency_samples:
        if run.models is not None and run.models.lat_pred is not None:
            lat_pred = run.models.lat_pred  # fitted once; eval rounds add accuracy, not latency
        else:
            g = torch.Generator().manual_seed(seed + 11)
            li = canonical(space, random_indices(space, cfg.latency_samples, g))
            lat_pred = MLPPredictor(space, replace(pc, seed=seed + 12))
            out["latency"] = lat_pred.fit(space.encode_indices(li).numpy(), lat_exact(li).numpy(),
                                          checkpoint=StageCheckpoint(run, f"{tag}-latency"))
        lat_exact = None
    run.models = RunModels(space, cfg, acc_model, acc_pred, lat_exact, lat_pred)
    return out


def stage_predictors(run: Run, metrics: dict) -> None:
    metrics.setdefault("predictors", {}).update(fit_predictors(run, run.config.seed))
    run.save_models()
    if run.models.lat_pred is not None:  # feasibility is judged by the latency model: its fastest architecture
        d = run.data
        pool = torch.cat([d["idx"], d["fastest_idx"].view(1, -1), torch.zeros_like(d["fastest_idx"]).view(1, -1)])
        lat = run.models.latency(pool)
        d["fastest_idx"] = pool[int(torch.argmin(lat))].clone()
        # its latency as generate() computes it (alone: float32 results can depend on the batch)
        fastest_ms = float(run.models.latency(d["fastest_idx"].view(1, -1))[0])
        run.metrics["min_latency_ms"] = metrics["min_latency_ms"] = fastest_ms
        run.save_data()


def fit_ranker(run: Run, seed: int, tag: str = "ranker") -> dict[str, float]:
    """Train the ranker on the measured table and ``ranker_pool`` random architectures, every row
    labelled by the accuracy model's ``mean - pessimism * spread`` (one scale: a measured row's true
    accuracy beside pessimistic estimates would teach the generator to reproduce measured rows).
    Returns the fit's figures with ``pair_accuracy`` on the held-out rows (``RANKER_HOLDOUT``);
    checkpoint ``TAG``."""
    cfg, space = run.config, run.space
    lo, hi = cfg.budgets
    rb = cfg.ranker_budgets or tuple(np.linspace(lo, hi, 5).tolist())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 5)
        ranker = ParetoRanker(space.encoding_size, cfg.budgets, cfg.ranker_mode,
                              rb if cfg.ranker_mode == "onehot" else None)
    g = torch.Generator().manual_seed(seed + 6)
    pool = canonical(space, random_indices(space, cfg.ranker_pool, g))
    idx = torch.cat([run.data["idx"], pool])
    acc = run.models.pessimistic(idx)
    lat = run.models.latency(idx)
    x = space.encode_indices(idx).numpy()
    perm = torch.randperm(len(idx), generator=g)
    n_out = max(2, int(round(RANKER_HOLDOUT * len(idx))))
    test, fit_rows = perm[:n_out], perm[n_out:]
    res = ranker.fit(x[fit_rows], acc[fit_rows].numpy(), lat[fit_rows].numpy(), steps=cfg.ranker_steps,
                     seed=seed + 7, top_pairs=cfg.ranker_top_pairs, checkpoint=StageCheckpoint(run, tag))
    held = ranker.evaluate(x[test], acc[test].numpy(), lat[test].numpy(), seed=seed + 8)
    run.ranker = ranker
    torch_save_atomic(ranker.to_state(), run.dir / "ranker.pt")
    return {"loss": held["loss"], "pair_accuracy": held["pair_accuracy"], "pair_accuracy_train": res["pair_accuracy"],
            "held_out": int(n_out)}


def stage_ranker(run: Run, metrics: dict) -> None:
    metrics["ranker"] = fit_ranker(run, run.config.seed)


def reward_fn(run: Run) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The generator's reward ``(idx (N, T), budgets (N,) ms) -> (N,)``: the Pareto-aware ranker's score
    (``pareto``, as published), the run's objective with the same rule (``objective``: within the
    budget the objective, outside it below every feasible architecture and the lower the slower), or
    a soft-constraint reward (``mnas``, ``tunas``)."""
    cfg, space, models = run.config, run.space, run.models
    floor = float(run.data["accuracy"].min()) - 1.0

    def reward(idx: torch.Tensor, budgets: torch.Tensor) -> torch.Tensor:
        if cfg.reward == "pareto":
            return run.ranker(space.encode_indices(idx), budgets).double()
        b = budgets.double()
        if cfg.reward == "objective":
            _, base, predicted, lat = run.estimates(idx)
            value = base + predicted.double() * run.shifts(b)
            return torch.where(lat <= b + 1e-9, value, floor - 100.0 * (lat / b - 1.0))
        acc = models.pessimistic(idx) / 100.0  # the rewards take a fraction
        lat = models.latency(idx)
        return mnas_reward(acc, lat, b) if cfg.reward == "mnas" else tunas_reward(acc, lat, b)

    return reward


def new_archive(run: Run, old: BudgetArchive | None = None) -> BudgetArchive:
    """An empty archive over the run's budget grid, or ``old``'s rows re-scored by the current objective."""
    lo, hi = run.config.budgets
    arch = BudgetArchive(torch.linspace(lo, hi, run.config.archive_grid, dtype=torch.float64), run.generator.T,
                         run.config.archive_per_bin)
    if old is not None and bool(old.filled.any()):
        offer(run, arch, old.idx[old.filled])
    return arch


def offer(run: Run, archive: BudgetArchive, idx: torch.Tensor) -> int:
    """Score ``idx`` by the run's objective (no calibration shift: it depends on the budget and is applied
    when elites are read) and offer it to ``archive``. Returns the number of rows scored (queries)."""
    _, base, predicted, lat = run.estimates(idx)
    archive.offer(idx, base, lat, predicted)
    return len(idx)


def train_generator(run: Run, metrics: dict, steps: int, tag: str, progress: bool, seed_offset: int = 0) -> None:
    """Policy gradient for ``steps`` steps, checkpointing (``TAG``) every ``checkpoint_every`` steps and
    whenever the checkpoint is due, and once more at the end: a look-up round's fine-tuning starts from
    the generator.pt it overwrites, so a stop after that write resumes from the checkpoint, not from it.

    With ``imitation > 0`` each step also offers the generator's draws and ``archive_offspring``
    offspring of the archive's elites to the budget archive (:mod:`pnag.search.archive`) and adds
    ``imitation x -log p(elite | budget)`` to the loss."""
    cfg = run.config
    fresh = run.generator is None or tag == "generator"
    gen = run.new_generator() if fresh else run.generator
    run.generator = gen
    opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr)
    rng = torch.Generator().manual_seed(cfg.seed + 9 + seed_offset)
    ck = StageCheckpoint(run, tag, ("model", "optim", "rng", "step", "curve", "archive", "queries"))
    start, curve, queries = 0, [], 0
    archive = new_archive(run, None if fresh else run.archive)
    if ck.state is not None:
        st = ck.state
        start = restore_training(st, steps, gen, opt, rng, ck.damaged)
        with restoring(ck.damaged):
            archive = BudgetArchive.from_state_dict(st["archive"])
            curve, queries = [float(c) for c in st["curve"]], int(st["queries"])
            if len(curve) != start:
                raise ValueError(f"{len(curve)} rewards for {start} steps")
    reward = reward_fn(run)
    lo, hi = cfg.budgets
    gen.train()
    bar = progress_bar(steps, start, progress, f"pnag train ({tag})")
    for step in range(start, steps):
        # both ends of the range in every step: the tightest budget has the fewest feasible draws to learn from
        b = lo + (hi - lo) * torch.rand(cfg.budgets_per_step, generator=rng)
        if len(b) >= 2:
            b[:2] = torch.tensor([lo, hi], dtype=b.dtype)
        elite, has = archive.elites(b, run.shifts(b.double()))

        def imitation() -> torch.Tensor:
            if not bool(has.any()):
                return torch.zeros(())
            return -cfg.imitation * gen.log_prob(b[has], elite[has]).mean()

        drawn, r = policy_gradient_step(gen, opt, b, cfg.samples_per_budget, reward, cfg.entropy, rng,
                                        imitation if cfg.imitation > 0 else None)
        queries += drawn.shape[0]
        if cfg.imitation > 0:
            with torch.no_grad():
                pa, pb = archive.parents(cfg.archive_offspring, rng)
                queries += offer(run, archive, torch.cat([drawn, offspring(run.space, pa, pb, 0.1, rng)]))
        curve.append(float(r.mean()))
        bar.update(1)
        if step + 1 == steps or (step + 1) % cfg.checkpoint_every == 0 or ck.due():
            ck.save(training_state(step + 1, gen, opt, rng, curve=curve, archive=archive.state_dict(), queries=queries))
    bar.close()
    gen.eval()
    run.archive = archive
    torch_save_atomic({"model": gen.state_dict(), "archive": archive.state_dict()}, run.dir / "generator.pt")
    metrics.setdefault("reward_curve", {})[tag] = [float(np.mean(curve[i:i + 10])) for i in range(0, len(curve), 10)]
    metrics.setdefault("queries", {})[tag] = queries


# -- the run -----------------------------------------------------------------------------------------
def train(config: TrainConfig, run_dir: str | Path, progress: bool = True, threads: int | None = None,
          accuracy: Any = None, latency: Any = None) -> Run:
    """Train (or resume) a run in ``run_dir``; returns the finished :class:`~pnag.search.run.Run`.

    ``accuracy`` / ``latency``: Python objects in place of ``config.accuracy`` / ``config.latency``
    (a callable ``archs -> accuracy %`` or an :class:`~pnag.sources.AccuracySource`; an object with
    ``latency_ms(archs) -> ms`` or a callable); the run records their names
    (:func:`pnag.sources.source_name`), and :meth:`Run.load` takes them again where it needs them.

    ``threads``: torch intra-op threads while training (restored afterwards; None keeps torch's
    setting, all cores). On an idle 2-core machine 2 threads are faster (MobileNetV3 default run:
    23 s against 33 s with 1); on a machine whose cores are busy with other work, 1 thread avoids
    threads spinning against it (measured beside one busy process: 28 s with 1 thread, over 5
    minutes with 2).
    """
    config = replace(config, **{k: sources.source_name(v) for k, v in (("accuracy", accuracy), ("latency", latency))
                                if v is not None})
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


def _open_run_dir(config: TrainConfig, run_dir: Path) -> None:
    """Check ``run_dir`` is new, empty or a run of the same settings; raises before anything is written."""
    if run_dir.exists() and not run_dir.is_dir():
        raise PnagError(f"-o: {str(run_dir)!r} exists and is not a directory; allowed: a new or run directory")
    if (run_dir / "config.json").exists():
        old = read_config(run_dir).to_json()
        new = config.to_json()
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if diff:
            k = diff[0]
            raise PnagError(f"-o {str(run_dir)!r}: holds a run with {k}={old.get(k)!r}, not {new.get(k)!r}; "
                            "allowed: the same settings (to resume) or another directory")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise PnagError(f"-o: {str(run_dir)!r} is a non-empty directory that is not a run; allowed: a new or "
                        "empty directory, or an earlier run to resume")


def resolved(config: TrainConfig, accuracy: Any = None, latency: Any = None) -> tuple[TrainConfig, str]:
    """``config`` with its MobileNetV3 input resolutions decided (see ``TrainConfig.resolutions``), and
    a sentence saying which and why ("" for NAS-Bench-201)."""
    if config.space != "mbv3":
        return config, ""
    from ..sources.latency import get_latency_source

    probe = Run(Path("."), replace(config, resolutions=(config.resolution,)), accuracy, latency)
    # the latency spec first (its errors cost nothing to find), unchecked: asked below what it covers
    lat = get_latency_source(probe.latency, probe.space, check=False)
    res, note = sources.resolve_resolutions(config, probe.acc_source, lat, config.resolutions)
    return replace(config, resolutions=res), note


def _train(config: TrainConfig, run_dir: str | Path, progress: bool, accuracy: Any, latency: Any) -> Run:
    from .._io import exclusive_writer, write_json_atomic

    run_dir = Path(run_dir)
    config, note = resolved(config, accuracy, latency)
    run = Run(run_dir, config, accuracy, latency)
    run.resolution_note = note
    if config.eval_budget > 0 and run.acc_source.measure is None:  # found before any work is written
        raise PnagError(f"--eval-budget: {config.eval_budget}; the accuracy source {config.accuracy!r} cannot measure "
                        "new architectures; allowed: 0 with this source (nb201:* sources can)")
    run.lat_source  # noqa: B018 - resolve the latency spec too before anything is written
    with exclusive_writer(run_dir, "-o"):  # one writer per run directory
        _open_run_dir(config, run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
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
        ("data", stage_data), ("predictors", stage_predictors), ("ranker", stage_ranker),
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


__all__ = ["train", "fit_predictors", "fit_ranker", "train_generator", "reward_fn", "RANKER_HOLDOUT"]
