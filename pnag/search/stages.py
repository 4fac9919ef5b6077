"""The data, predictors and ranker stages of a run (:mod:`pnag.search.training` runs them in order).

A device-conditioned run (several latency sources, or quantile budgets; :mod:`pnag.search.devices`)
also profiles each device in its data stage (``devices.pt``), and its ranker reads each device's
signature and judges latencies as budget positions on each device.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .._io import torch_save_atomic
from ..errors import BudgetError
from ..predict.mlp import MLPPredictor, PredictorConfig
from ..predict.ranker import ParetoRanker
from .checkpoint import StageCheckpoint
from .. import sources
from .devices import device_profile, fastest_indices, profiles_state, reference_indices
from .indices import canonical, index_keys, random_indices
from .models import RunModels
from .run import Run

RANKER_HOLDOUT = 0.2  # fraction of the ranker's architectures held out to report its pair accuracy


def measured_table(run: Run) -> tuple[torch.Tensor, np.ndarray]:
    """The accuracy source's table: canonical index rows ``(N, T)`` (one per architecture) and accuracy."""
    cfg, space = run.config, run.space
    archs, acc = run.acc_source.table(cfg.train_samples, cfg.seed)
    idx = canonical(space, torch.as_tensor(np.stack([space.to_indices(a) for a in archs])))
    keep = sorted({k: i for i, k in enumerate(index_keys(idx))}.values())  # one row per architecture
    return idx[keep], np.asarray(acc)[keep]


def data_metrics(run: Run, acc: np.ndarray, lat: torch.Tensor) -> dict[str, Any]:
    """What ``metrics["data"]`` says of the measured table (``lat``: its latency, ms, on the run's device)."""
    cfg, src = run.config, run.acc_source
    return {"n": int(len(acc)), "accuracy_source": cfg.accuracy, "accuracy_unit": src.unit, "note": src.note,
            "latency_source": cfg.latency if isinstance(cfg.latency, str) else list(cfg.latency),
            "resolution_note": getattr(run, "resolution_note", ""),
            "accuracy_range": [float(acc.min()), float(acc.max())],
            "latency_range_ms": [float(lat.min()), float(lat.max())]}


def stage_data(run: Run, metrics: dict) -> None:
    cfg, space = run.config, run.space
    exact = run.lat_source  # resolve both specs before any long work
    idx, acc = measured_table(run)
    lat = exact(idx)
    # the fastest architecture known: exhaustive minimum, else among the table and the all-first-choice one
    fastest = fastest_indices(space, exact, idx).view(1, -1)
    run.data = {"idx": idx, "accuracy": torch.as_tensor(acc, dtype=torch.float64), "latency": lat.double(),
                "fastest_idx": fastest[0]}
    run.metrics["min_latency_ms"] = metrics["min_latency_ms"] = float(exact(fastest)[0])
    metrics["data"] = data_metrics(run, acc, lat)
    lo, hi = cfg.budgets
    if hi < metrics["min_latency_ms"]:
        raise BudgetError(f"--budgets: {lo:g}:{hi:g} ms lies below the fastest architecture "
                          f"({metrics['min_latency_ms']:.4g} ms); allowed: a range reaching above it")
    run.save_data()


def stage_data_devices(run: Run, metrics: dict) -> None:
    """The data stage of a device-conditioned run: the measured table, and each device's profile
    (:func:`pnag.search.devices.device_profile`) and latency of the table (``devices.pt``)."""
    cfg, space = run.config, run.space
    names = [sources.source_name(s) for s in run.latencies]
    vlats = [run.device_latency(d) for d in range(len(names))]
    idx, acc = measured_table(run)
    ref = reference_indices(space, cfg.device_reference, cfg.seed)
    profiles = [device_profile(n, space, v, ref, cfg.quantile_samples, cfg.seed, pool=idx) for n, v in zip(names, vlats)]
    lat = torch.stack([v(idx).double() for v in vlats], 1)  # (N, D) ms
    run.reference, run.profiles, run.table_latency = ref, profiles, lat
    run.data = {"idx": idx, "accuracy": torch.as_tensor(acc, dtype=torch.float64), "latency": lat[:, 0].clone(),
                "fastest_idx": profiles[0].fastest_idx}
    run.metrics["min_latency_ms"] = metrics["min_latency_ms"] = profiles[0].min_latency_ms
    metrics["data"] = data_metrics(run, acc, lat[:, 0])
    metrics["devices"] = [{"latency_source": n, "budget_range_ms": [float(x) for x in p.budget_ms(cfg.budgets)],
                           "min_latency_ms": p.min_latency_ms,
                           "quantiles_over": "every architecture" if p.exact else f"{cfg.quantile_samples} sampled"}
                          for n, p in zip(names, profiles)]
    torch_save_atomic(dict(profiles_state(profiles, ref), latency=lat), run.dir / "devices.pt")
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
        target = cfg.predictor_target or (("log-gap" if cfg.space == "nb201" else "log-error")
                                          if run.acc_source.unit == "%" else "identity")
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
    # a device-conditioned run: budgets and latencies as positions on each device, its signature read too
    sig = torch.stack([p.signature for p in run.profiles]) if cfg.device_conditioned else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 5)
        ranker = ParetoRanker(space.encoding_size, cfg.budgets, cfg.ranker_mode,
                              rb if cfg.ranker_mode == "onehot" else None, cond_dim=0 if sig is None else sig.shape[1])
    g = torch.Generator().manual_seed(seed + 6)
    pool = canonical(space, random_indices(space, cfg.ranker_pool, g))
    idx = torch.cat([run.data["idx"], pool])
    acc = run.models.pessimistic(idx)
    if sig is None:
        lat = run.models.latency(idx)
    else:
        lat = torch.stack([p.position(run.device_latency(d)(idx).numpy()) for d, p in enumerate(run.profiles)], 1)
    x = space.encode_indices(idx).numpy()
    perm = torch.randperm(len(idx), generator=g)
    n_out = max(2, int(round(RANKER_HOLDOUT * len(idx))))
    test, fit_rows = perm[:n_out], perm[n_out:]
    res = ranker.fit(x[fit_rows], acc[fit_rows].numpy(), lat[fit_rows].numpy(), steps=cfg.ranker_steps,
                     seed=seed + 7, top_pairs=cfg.ranker_top_pairs, cond=sig,
                     checkpoint=StageCheckpoint(run, tag))
    held = ranker.evaluate(x[test], acc[test].numpy(), lat[test].numpy(), seed=seed + 8, cond=sig)
    run.ranker = ranker
    torch_save_atomic(ranker.to_state(), run.dir / "ranker.pt")
    return {"loss": held["loss"], "pair_accuracy": held["pair_accuracy"], "pair_accuracy_train": res["pair_accuracy"],
            "held_out": int(n_out)}


def stage_ranker(run: Run, metrics: dict) -> None:
    metrics["ranker"] = fit_ranker(run, run.config.seed)


__all__ = ["RANKER_HOLDOUT", "measured_table", "data_metrics", "stage_data", "stage_data_devices", "fit_predictors",
           "stage_predictors", "fit_ranker", "stage_ranker"]
