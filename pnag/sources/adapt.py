"""``pnag latency adapt``: a latency model for a new device from K of its measurements, with the full tables
of other devices as the prior (the method: :mod:`pnag.latency.adapt`; the file: :mod:`pnag.latency.adapted`).

Any split of devices works: the training devices (``from``) are any latency sources that price the whole
space cheaply (``nb201:DEVICE``, ``table:help-ofa-gpu:GPU_BATCH``, ``lut:...``, ``local``, ``adapted:FILE``),
the target any source of the same space (a table is looked up; ``measure:BACKEND`` and ``local`` time the
K networks on this machine). Nothing here names a device.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from .._progress import Progress, say
from ..errors import PnagError, allowed
from ..latency.adapt import (ALPHA, DELTA, FLOOR_FRACTION, POOL, SIGMA, LatencyFeatures, choose_networks,
                             device_prior, device_weights, fit_device)
from ..latency import adapt
from ..latency.adapted import FORMAT, VERSION, AdaptedSource, load_adapted, save_adapted
from ..latency.base import MeasuredSource, NB201Source, WholeNetworkTable
from ..latency.validate import error_metrics
from .latency import get_latency_source

GENERIC = 2000         # networks drawn (seed 0) to fit a training source that is no table, and to normalise
GENERIC_SEED = 0
EVALUATION = 5000      # networks drawn to evaluate against a target that prices any network (not a table)
EVALUATION_SEED = 20211
TRAINING_FORMS = "nb201:DEVICE, table:help-ofa-gpu:GPU_BATCH, lut:FILE, lut:note10, lut:i7-8700k, local or adapted:FILE"


def _space_of(spec: str) -> str:
    if spec.startswith("nb201:"):
        return "nb201"
    if spec.startswith("adapted:"):
        return load_adapted(spec.split(":", 1)[1]).space
    return "mbv3"


def _clean_specs(from_specs: Sequence[str] | str, target: str) -> tuple[list[str], str]:
    if isinstance(from_specs, str):
        from_specs = from_specs.split(",")
    specs = [str(s).strip() for s in from_specs]
    if not specs or any(not s for s in specs):
        raise PnagError(f"--from: {','.join(specs)!r} names an empty source; allowed: SRC[,SRC...] ({TRAINING_FORMS})")
    dup = next((s for i, s in enumerate(specs) if s in specs[:i]), None)
    if dup:
        raise PnagError(f"--from: {dup!r} is given twice; allowed: each training device once")
    target = str(target).strip()
    if not target:
        raise PnagError("--target: empty; allowed: a latency source of the new device (e.g. nb201:DEVICE, "
                        "table:help-ofa-gpu:GPU_BATCH, measure:BACKEND, local)")
    if target in specs:
        raise PnagError(f"--from: includes the target {target!r}; allowed: training devices other than the target")
    return specs, target


def _target_source(spec: str, space: Any, progress: bool | None) -> Any:
    if spec == "local":  # the new device is this machine: time the K networks whole, as measure:torch does
        return MeasuredSource("torch")
    return get_latency_source(spec, space=space, progress=progress)


def _mbv3_resolutions(tables: Sequence[WholeNetworkTable], width: float, requested: Sequence[int] | None):
    if requested is not None:
        return tuple(sorted(set(int(r) for r in requested)))
    if not tables:
        return (224,)
    common = set(tables[0].resolutions(width))
    for t in tables[1:]:
        common &= set(t.resolutions(width))
    if not common:
        raise PnagError(f"--from/--target: the whole-network tables share no input resolution at width {width}; "
                        f"allowed: tables with networks of a common resolution ({', '.join(t.name for t in tables)})")
    return tuple(sorted(common))


def _setting(specs: list[str], target: str, width: float | None, resolutions: Sequence[int] | None,
             progress: bool | None) -> tuple[LatencyFeatures, list, Any]:
    """The features (space, width, resolutions), the training sources and the target source."""
    spaces = {s: _space_of(s) for s in specs + [target]}
    if (target.startswith("measure:") or target == "local") and spaces[specs[0]] == "nb201":
        raise PnagError(f"--target {target}: NAS-Bench-201 cells are not measured on this machine; allowed: "
                        "nb201:DEVICE or adapted:FILE")
    if len(set(spaces.values())) > 1:
        nb = next(s for s, v in spaces.items() if v == "nb201")
        mb = next(s for s, v in spaces.items() if v == "mbv3")
        raise PnagError(f"--from/--target: {nb} prices NAS-Bench-201 cells and {mb} MobileNetV3 networks; allowed: "
                        "sources of one space")
    space = spaces[target]
    if space == "nb201":
        if width is not None or resolutions is not None:
            raise PnagError("--width/--resolutions: NAS-Bench-201 has neither; allowed: them with MobileNetV3 sources")
        features = LatencyFeatures("nb201")
        srcs = [get_latency_source(s) for s in specs]
        return features, srcs, get_latency_source(target)
    w = 1.2 if width is None else width
    pre = {s: get_latency_source(s) for s in specs + [target] if s.startswith("table:")}
    features = LatencyFeatures("mbv3", w, _mbv3_resolutions([v for v in pre.values()
                                                             if isinstance(v, WholeNetworkTable)], w, resolutions))
    mspace = features.search_space()
    srcs = [pre[s] if s in pre else get_latency_source(s, space=mspace, progress=progress) for s in specs]
    tgt = pre[target] if target in pre else _target_source(target, mspace, progress)
    return features, srcs, tgt


def generic_networks(features: LatencyFeatures) -> list:
    """The networks that normalise every training device (and price those that are no table): every
    NAS-Bench-201 cell, or :data:`GENERIC` MobileNetV3 networks drawn with seed :data:`GENERIC_SEED`."""
    space = features.search_space()
    return space.all_archs() if features.space == "nb201" else space.sample(GENERIC, seed=GENERIC_SEED)


def _networks(source: Any, features: LatencyFeatures, generic: list) -> list:
    """The networks a source is priced on: a table's own (those the features cover), else ``generic``."""
    if features.space != "nb201" and isinstance(source, WholeNetworkTable):
        return [a for a in source.archs() if a.width == features.width and a.resolution in features.resolutions]
    return generic


def training_prior(sources: Sequence[Any], names: Sequence[str], features: LatencyFeatures, generic: list,
                   progress: bool | None = None):
    """The prior (:func:`~pnag.latency.adapt.device_prior`) from the training devices' latency sources, each
    fitted on its own table's networks or, when it is no table, on ``generic`` (which also normalises)."""
    bar = Progress(len(sources), "pricing the training devices", progress, unit="device")
    weights = []
    for src in sources:
        nets = _networks(src, features, generic)
        if len(nets) < features.size:
            where = "" if features.space == "nb201" else \
                f" of width {features.width} at resolutions {allowed(features.resolutions)}"
            raise PnagError(f"--from {src.name}: prices only {len(nets)} networks{where}; allowed: a table of at "
                            f"least {features.size} (the model's weights)")
        weights.append(device_weights(features.of_archs(nets), src.latency_ms(nets)))
        bar.update()
    bar.close()
    return device_prior(weights, features.of_archs(generic), list(names), DELTA, ALPHA, SIGMA)


def adapt_latency(from_specs: Sequence[str] | str, target: str, samples: int, output: str, seed: int = 0,
                  width: float | None = None, resolutions: Sequence[int] | None = None,
                  progress: bool | None = None) -> dict:
    """Adapt a latency model to the device ``target`` from ``samples`` (K) of its networks, with the
    training devices ``from_specs`` as the prior; write it to ``output`` (an ``adapted:`` file) and return
    a summary: ``samples``, ``measured`` (architecture text, ms), the metrics over the target's whole table
    when it has one (``spearman``, ``kendall_tau``, ``median_abs_error_pct``, ``evaluated_on``; else None).
    """
    t0 = time.perf_counter()
    specs, target = _clean_specs(from_specs, target)
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise PnagError(f"--samples: {samples!r}; allowed: an integer >= 2 (networks of the target measured)")
    features, srcs, tgt = _setting(specs, target, width, resolutions, progress)
    for spec, src in zip(specs, srcs):
        if isinstance(src, MeasuredSource):
            raise PnagError(f"--from: {spec} measures each network; allowed: training devices with full tables "
                            f"({TRAINING_FORMS})")
        if src.name == tgt.name:
            raise PnagError(f"--from: {spec} is the target {target!r}; allowed: training devices other than the target")
    space = features.search_space()
    generic = generic_networks(features)
    table = isinstance(tgt, (NB201Source, WholeNetworkTable))
    candidates = _networks(tgt, features, generic) if table else space.sample(max(POOL, 2 * samples), seed=seed)
    if not candidates:
        raise PnagError(f"--target {target}: prices no network of width {features.width} at resolutions "
                        f"{allowed(features.resolutions)}; allowed: --resolutions that the target's table holds")
    if samples > len(candidates):
        where = "NAS-Bench-201 has" if features.space == "nb201" else f"the target {target} prices"
        raise PnagError(f"--samples: {samples}; allowed: 2..{len(candidates)} ({where} {len(candidates)} networks)")
    prior = training_prior(srcs, specs, features, generic, progress)
    chosen = choose_networks(prior, features, candidates, samples, seed)
    pool = min(len(candidates), max(POOL, 2 * samples))
    measured = _measure(tgt, chosen, progress)
    w, sigma = fit_device(prior, features.of_archs(chosen), measured)
    fmt = space.format
    data = {"format": FORMAT, "version": VERSION, "features": features.to_dict(), "target": target,
            "device": str(getattr(tgt, "device", "") or target), "from": specs, "samples": int(samples),
            "seed": int(seed), "selection": "max-variance",
            "hyper": {"delta": DELTA, "alpha": ALPHA, "sigma": sigma, "pool": pool},
            "measured": [{"arch": fmt(a), "ms": float(v)} for a, v in zip(chosen, measured)],
            "weights_ms": [float(x) for x in w], "floor_ms": FLOOR_FRACTION * float(np.min(measured)),
            "evaluation": None}
    data["evaluation"] = _evaluate(AdaptedSource(data), tgt, features, generic, table)
    save_adapted(output, data)
    ev = data["evaluation"] or {}
    return {"output": str(output), "space": features.space, "width": features.width,
            "resolutions": features.to_dict()["resolutions"], "from": specs, "target": target, "samples": int(samples),
            "seed": int(seed), "measured": data["measured"], "spearman": ev.get("spearman"),
            "kendall_tau": ev.get("kendall_tau"), "median_abs_error_pct": ev.get("median_abs_error_pct"),
            "evaluated_on": ev.get("evaluated_on"), "seconds": round(time.perf_counter() - t0, 2)}


_PRIORS: dict[tuple, Any] = {}


def _prior_of(model: AdaptedSource, progress: bool | None = None):
    """The prior a model was adapted with, rebuilt from its training devices (kept for this process)."""
    d = model.data
    key = (tuple(d["from"]), repr(sorted(d["features"].items())))
    if key not in _PRIORS:
        features = model.features
        srcs = [get_latency_source(s) if s.startswith(("nb201:", "table:")) else
                get_latency_source(s, space=features.search_space(), progress=progress) for s in d["from"]]
        _PRIORS[key] = training_prior(srcs, d["from"], features, generic_networks(features), progress)
        if len(_PRIORS) > 4:
            _PRIORS.pop(next(iter(_PRIORS)))
    return _PRIORS[key]


def target_of(model: AdaptedSource, progress: bool | None = None) -> Any:
    """The latency source that measures the model's device (its ``target``)."""
    space = model.features.search_space()
    t = model.data["target"]
    if t.startswith(("nb201:", "table:")):
        return get_latency_source(t)
    return _target_source(t, space, progress)


def add_measurements(model: AdaptedSource, archs: Sequence[Any], progress: bool | None = None,
                     measure: Any = None) -> AdaptedSource:
    """Measure ``archs`` on the model's device (its ``target``: a table look-up, or a timing on this machine;
    ``measure``: any latency source in its place, e.g. a Python object timing the device), refit the model with
    them beside those it has, write it back to its file (atomically) and return it. Networks already measured
    are not measured again."""
    if model.path is None:
        raise PnagError(f"{model.name}: a model not read from a file; allowed: adapted:FILE")
    new, seen = [], set()
    for a in archs:
        a = model.features.coerce(a)
        text = model.features.search_space().format(a)
        if text not in seen and not bool(model.is_measured([a])[0]):
            seen.add(text)
            new.append(a)
    if not new:
        return model
    target = target_of(model, progress) if measure is None else get_latency_source(measure, space=model.features.search_space())
    ms = _measure(target, new, progress)
    fmt = model.features.search_space().format
    rows = list(model.data["measured"]) + [{"arch": fmt(a), "ms": float(v)} for a, v in zip(new, ms)]
    all_ms = np.array([r["ms"] for r in rows], dtype=np.float64)
    w, sigma = fit_device(_prior_of(model, progress), model.features.of_archs([r["arch"] for r in rows]), all_ms)
    data = dict(model.data, measured=rows, hyper=dict(model.data["hyper"], sigma=sigma), samples=len(rows),
                verified=int(model.data.get("verified", 0)) + len(new),
                weights_ms=[float(x) for x in w], floor_ms=FLOOR_FRACTION * float(np.min(all_ms)))
    save_adapted(model.path, data)
    return AdaptedSource(data, model.path)


LOO_QUANTILE = 0.9  # loo_error: the share of the model's leave-one-out errors it covers


def loo_ratios(model: AdaptedSource, progress: bool | None = None) -> np.ndarray:
    """``predicted / measured`` latency of each of the model's measured networks, each predicted by the model
    fitted to the others (leave-one-out, in closed form with the target's relative speed held at its value over
    all of them: :func:`pnag.latency.adapt.loo_latency`)."""
    rows = model.data["measured"]
    X = model.features.of_archs([r["arch"] for r in rows])
    y = np.array([r["ms"] for r in rows], dtype=np.float64)
    prior = replace(_prior_of(model, progress), sigma=float(model.data["hyper"].get("sigma", SIGMA)))  # as fitted
    return adapt.loo_ratios(prior, X, y, model.floor_ms)


def relative_error(ratios: np.ndarray) -> float:
    """A model's relative error (a fraction) from its ``predicted / measured`` ``ratios``: the
    :data:`LOO_QUANTILE` quantile of ``|ratio - 1|``."""
    return float(np.quantile(np.abs(np.asarray(ratios) - 1), LOO_QUANTILE))


def loo_error(model: AdaptedSource, progress: bool | None = None) -> float:
    """The model's relative error (a fraction, :func:`relative_error`) over its measured networks, each
    predicted by the model fitted to the others (:func:`loo_ratios`)."""
    return relative_error(loo_ratios(model, progress))


def _measure(target: Any, archs: list, progress: bool | None) -> np.ndarray:
    if not isinstance(target, MeasuredSource):
        return np.asarray(target.latency_ms(archs), dtype=np.float64)
    if progress is not False:
        say(f"measuring {len(archs)} networks on this machine ({target.device})")
    bar = Progress(len(archs), "measuring the target", True if progress is None else progress, unit="network")
    out = []
    for a in archs:
        out.append(float(target.latency_ms([a])[0]))
        bar.update()
    bar.close()
    return np.asarray(out)


def _evaluate(model: AdaptedSource, target: Any, features: LatencyFeatures, generic: list, table: bool) -> dict | None:
    """The model against the target's whole table (NAS-Bench-201: every cell; a whole-network table: its
    networks; a source that prices any network cheaply: :data:`EVALUATION` drawn ones); None when it measures."""
    if isinstance(target, MeasuredSource):
        return None
    if table:
        nets = _networks(target, features, generic)
        on = f"the target's whole table ({len(nets)} networks)"
    else:
        nets = features.search_space().sample(EVALUATION, seed=EVALUATION_SEED)
        on = f"{EVALUATION} random networks (seed {EVALUATION_SEED})"
    m = error_metrics(model.latency_ms(nets), target.latency_ms(nets))
    return {"spearman": m["spearman_rho"], "kendall_tau": m["kendall_tau"],
            "median_abs_error_pct": m["median_abs_error_pct"], "n": m["n"], "evaluated_on": on}


__all__ = ["adapt_latency", "add_measurements", "loo_error", "loo_ratios", "relative_error", "target_of",
           "generic_networks", "training_prior"]
