"""Where accuracy and latency come from when training a generator.

Accuracy specs (:func:`get_accuracy_source`), all in top-1 percent:

* ``dataset:NAME``: the measured records of a public dataset (``pnag.data.load_dataset``);
  the architectures with an accuracy are the training data; nothing else can be measured.
* ``nb201:cifar10|cifar100|ImageNet16-120``: NAS-Bench-201; accuracy is *known* only for
  ``train_samples`` seeded random cells, the rest of the table stays unseen ground truth that
  :meth:`AccuracySource.measure` may look up (standing for training that cell) under an eval budget.
* ``nb201-exact:cifar10|cifar100|ImageNet16-120``: the whole NAS-Bench-201 table used as the accuracy
  model (exact objective: no predictor error, for judging search quality alone); ``train_samples``
  seeded cells form the measured table.
* ``ofa-predictor``: the published once-for-all predictor (MobileNetV3 width 1.2); it serves any
  architecture, so it is used directly as the accuracy model and labels ``train_samples`` samples.
* ``proxy:NAME``: a training-free proxy (``pnag.predict.proxies``) scored on ``train_samples``
  samples (its unit is the proxy's score, not %).

Latency specs resolve through ``pnag.latency.sources.get_latency_source(spec, space)``;
:class:`VectorLatency` turns any such source into a vectorised ``idx (B, T) -> ms (B,)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import DataError, PnagError, allowed

ACCURACY_KINDS = ("dataset:NAME", "nb201:cifar10|cifar100|ImageNet16-120", "nb201-exact:DATASET", "ofa-predictor",
                  "proxy:NAME")


def mixed_radix_codes(space, idx: torch.Tensor) -> torch.Tensor:
    """Index vectors ``(B, T)`` -> their rank in ``space.all_archs()`` order (first decision most significant)."""
    sizes = [len(c) for c in space.decision_choices]
    mult = torch.tensor(np.cumprod([1] + sizes[::-1][:-1])[::-1].copy(), dtype=torch.long)
    return (idx.long() * mult).sum(1)


def _all_indices(space) -> torch.Tensor:
    sizes = [len(c) for c in space.decision_choices]
    grids = torch.meshgrid(*[torch.arange(s) for s in sizes], indexing="ij")
    return torch.stack(grids, -1).reshape(-1, len(sizes))


def _enumerable(space) -> bool:
    return hasattr(space, "all_archs") and int(np.prod([len(c) for c in space.decision_choices])) <= 200_000


@dataclass
class AccuracySource:
    """Accuracy (%) of architectures: an initial measured table, and optionally more look-ups.

    ``model``: a callable ``idx (B, T) -> accuracy % (B,)`` when the source is itself a model
    (``ofa-predictor``); then no predictor is fitted. ``measure``: look up more architectures
    (None when the source cannot).
    """

    spec: str
    unit: str
    table: Callable[[int, int], tuple[list, np.ndarray]]  # (n, seed) -> (archs, accuracy)
    measure: Callable[[Sequence], np.ndarray] | None = None
    model: Callable[[torch.Tensor], torch.Tensor] | None = None
    note: str = ""
    resolutions: tuple[int, ...] | None = None  # MobileNetV3 input resolutions it covers (None: any)


def _dataset_source(spec: str, name: str, space) -> AccuracySource:
    from ..data import load_dataset

    ds = load_dataset(name)

    def table(n: int | None, seed: int) -> tuple[list, np.ndarray]:
        archs, acc = [], []
        for r in ds.records:
            if r.accuracy is None or getattr(r.arch, "space", None) != space.name:
                continue
            a = r.arch
            if getattr(space, "width", None) is not None and getattr(a, "width", space.width) != space.width:
                continue
            archs.append(space.validate(a))
            acc.append(r.accuracy.percent)
        if not archs:
            raise DataError(f"accuracy {spec!r}: no records with an accuracy for space {space!r}")
        if n is not None and n < len(archs):
            keep = np.sort(np.random.default_rng(seed).choice(len(archs), n, replace=False))
            archs, acc = [archs[i] for i in keep], [acc[i] for i in keep]
        return archs, np.asarray(acc, dtype=np.float64)

    res = tuple(sorted({r.arch.resolution for r in ds.records if r.accuracy is not None
                        and getattr(r.arch, "space", None) == "mbv3"})) or None
    return AccuracySource(spec, "%", table, note=f"{len(ds)} measured records", resolutions=res)


class NB201Lookup:
    """NAS-Bench-201 values in this project's base-5 code order (``NB201Space.all_archs()``)."""

    def __init__(self, space):
        from ..data.nb201 import load_nb201

        self.space = space
        self.tab = load_nb201()
        archs = space.all_archs()
        self.perm = np.array([self.tab.index_of(a) for a in archs])  # code -> benchmark index
        self.archs = archs

    def accuracy(self, dataset: str) -> np.ndarray:
        """Accuracy (%) per code."""
        return self.tab.accuracy(dataset)[self.perm]

    def latency(self, device: str) -> np.ndarray:
        """Latency (ms) per code."""
        return self.tab.latency(device)[self.perm]

    def codes(self, archs: Sequence) -> np.ndarray:
        idx = torch.as_tensor(np.stack([self.space.to_indices(a) for a in archs])) if len(archs) else \
            torch.zeros(0, len(self.space.decision_choices), dtype=torch.long)
        return mixed_radix_codes(self.space, idx).numpy()


def _nb201_source(spec: str, dataset: str, space, exact: bool = False) -> AccuracySource:
    from ..data.nb201 import check_nb201_dataset

    if getattr(space, "name", "") != "nb201":
        raise PnagError(f"accuracy {spec!r}: needs --space nb201, not {space.name}")
    dataset = check_nb201_dataset(dataset)
    look = NB201Lookup(space)
    acc = look.accuracy(dataset)

    def table(n: int | None, seed: int) -> tuple[list, np.ndarray]:
        n = 1000 if n is None else n
        if not 1 <= n <= len(acc):
            raise PnagError(f"--train-samples: {n}; allowed: 1..{len(acc)} for NAS-Bench-201")
        codes = np.sort(np.random.default_rng(seed).choice(len(acc), n, replace=False))
        return [look.archs[c] for c in codes], acc[codes].copy()

    def measure(archs: Sequence) -> np.ndarray:
        return acc[look.codes(archs)].copy()

    if exact:
        by_code = torch.as_tensor(acc, dtype=torch.float64)
        return AccuracySource(spec, "%", table, measure=measure, model=lambda idx: by_code[mixed_radix_codes(space, idx)],
                              note=f"NAS-Bench-201 {dataset} 200-epoch test accuracy, the whole table as the model")
    return AccuracySource(spec, "%", table, measure=measure, note=f"NAS-Bench-201 {dataset} 200-epoch test accuracy")


def _sampled_table(space, score: Callable[[list], np.ndarray]) -> Callable[[int | None, int], tuple[list, np.ndarray]]:
    def table(n: int | None, seed: int) -> tuple[list, np.ndarray]:
        n = 1000 if n is None else n
        archs = list(dict.fromkeys(space.sample(n, seed=seed)))
        return archs, np.asarray(score(archs), dtype=np.float64)

    return table


def _ofa_source(spec: str, space) -> AccuracySource:
    from ..predict.ofa import OFAAccuracyPredictor

    pred = OFAAccuracyPredictor(space)
    from ..space.mbv3 import ENC_RESOLUTIONS

    return AccuracySource(spec, "%", _sampled_table(space, pred.predict_archs), model=pred.predict_indices,
                          note="published once-for-all accuracy predictor (width 1.2)", resolutions=ENC_RESOLUTIONS)


def _proxy_source(spec: str, name: str, space) -> AccuracySource:
    from ..predict import proxies

    name = proxies.check_proxy(name)
    if getattr(space, "name", "") != "mbv3":
        raise PnagError(f"accuracy {spec!r}: proxies score MobileNetV3 networks; allowed with --space mbv3")
    return AccuracySource(spec, "score", _sampled_table(space, lambda archs: proxies.proxy_scores(name, archs)),
                          note=f"training-free proxy {name} (a score, not a measured accuracy)")


def get_accuracy_source(spec: str, space) -> AccuracySource:
    """Resolve an accuracy spec (see the module docstring) for ``space``."""
    if not isinstance(spec, str) or not spec.strip():
        raise PnagError(f"--accuracy: {spec!r} is empty; allowed: {allowed(ACCURACY_KINDS)}")
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    if kind == "dataset" and arg:
        return _dataset_source(spec, arg, space)
    if kind in ("nb201", "nb201-exact") and arg:
        return _nb201_source(spec, arg, space, exact=kind == "nb201-exact")
    if spec == "ofa-predictor":
        return _ofa_source(spec, space)
    if kind == "proxy" and arg:
        return _proxy_source(spec, arg, space)
    raise PnagError(f"--accuracy: {spec!r} is not a known source; allowed: {allowed(ACCURACY_KINDS)}")


def get_latency_source(spec: str, space) -> Any:
    """A latency source (``.latency_ms(archs) -> ms``) for ``spec``, from :mod:`pnag.latency.sources`."""
    if not isinstance(spec, str) or not spec.strip():
        raise PnagError(f"--latency: {spec!r} is empty; allowed: lut:FILE, lut:note10, lut:i7-8700k, nb201:DEVICE, "
                        "table:help-ofa-gpu:GPU_BATCH or local")
    from ..latency.sources import get_latency_source as resolve

    return resolve(spec.strip(), space)


def latency_resolutions(source: Any, width: float, candidates: Sequence[int]) -> tuple[int, ...] | None:
    """Which of ``candidates`` (pixels) a MobileNetV3 latency source prices at ``width``: a table, the
    resolutions it covers completely; a whole-network table, those of its networks; a source that
    measures, all (None: it does not say, e.g. NAS-Bench-201)."""
    if hasattr(source, "covers"):
        return tuple(r for r in candidates if source.covers(width, r))
    if hasattr(source, "_index"):  # a whole-network table
        return tuple(sorted({a.resolution for a in source._index if a.width == width} & set(candidates)))
    if str(getattr(source, "name", "")).startswith("measure:"):
        return tuple(candidates)
    return None


def resolve_resolutions(config, acc_source: AccuracySource, lat_source: Any, requested: Sequence[int] | None):
    """The input resolutions a MobileNetV3 run searches, and a sentence saying why.

    ``requested`` None: once-for-all's default list where both sources cover more than one of it, else
    the config's one resolution (fixed); a list: exactly those, each covered by both sources (a
    :class:`PnagError` naming the first that is not and what each source covers)."""
    from ..space.mbv3 import DEFAULT_RESOLUTIONS, RESOLUTION_RANGE

    width = config.resolved_width
    cands = tuple(requested) if requested is not None else DEFAULT_RESOLUTIONS
    every = tuple(range(RESOLUTION_RANGE[0], RESOLUTION_RANGE[1] + 1, 16))
    acc_cov = acc_source.resolutions
    lat_cov = latency_resolutions(lat_source, width, sorted(set(every) | set(cands) | {config.resolution}))
    ok = [r for r in cands if (acc_cov is None or r in acc_cov) and (lat_cov is None or r in lat_cov)]

    def says(name, cov):
        return f"{name} covers {'any resolution' if cov is None else allowed(cov) or 'none of them'}"

    covers = f"{says(config.accuracy, acc_cov)}; {says(config.latency, lat_cov)} (width {width:g})"
    if requested is not None:
        bad = [r for r in cands if r not in ok]
        if bad:
            raise PnagError(f"--resolutions: {bad[0]} is not covered by the sources; {covers}; allowed: "
                            f"{allowed(ok) or 'none of those asked'}")
        return tuple(ok), f"resolution searched over {allowed(ok)}" if len(ok) > 1 else f"resolution fixed at {ok[0]}"
    if len(ok) > 1:
        return tuple(ok), f"resolution searched over {allowed(ok)} ({covers})"
    both = [r for r in every if (acc_cov is None or r in acc_cov) and (lat_cov is None or r in lat_cov)]
    fixed = config.resolution if config.resolution in both or not both else both[-1]
    return (fixed,), f"resolution fixed at {fixed}: the sources share no other of {allowed(cands)} ({covers})"


class VectorLatency:
    """Vectorised latency ``idx (B, T) -> ms (B,)`` (float64 tensor) of any latency source.

    Uses the source's own ``latency_from_indices`` when it has one; for small enumerable spaces
    (NAS-Bench-201) prices every architecture once and indexes; otherwise falls back to pricing
    architecture by architecture.
    """

    def __init__(self, space, source: Any):
        self.space, self.source = space, source
        self._lookup: torch.Tensor | None = None
        self.exhaustive = False
        if not hasattr(source, "latency_from_indices") and _enumerable(space):
            idx = _all_indices(space)
            self._lookup = torch.as_tensor(self._by_arch(idx), dtype=torch.float64)
            self.exhaustive = True

    def _by_arch(self, idx: torch.Tensor) -> np.ndarray:
        archs = [self.space.from_indices(r) for r in idx.tolist()]
        return np.asarray(self.source.latency_ms(archs), dtype=np.float64).reshape(-1)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(idx, dtype=torch.long)
        if self._lookup is not None:
            return self._lookup[mixed_radix_codes(self.space, idx)]
        if hasattr(self.source, "latency_from_indices"):
            if not getattr(self.space, "searches_resolution", False):
                return torch.as_tensor(self.source.latency_from_indices(idx), dtype=torch.float64).reshape(-1)
            out = torch.empty(idx.shape[0], dtype=torch.float64)
            res = self.space.resolution_of(idx)
            for r in self.space.resolutions:  # one table per resolution, on the 45 structural decisions
                rows = torch.nonzero(res == r).flatten()
                if len(rows):
                    part = self.source.latency_from_indices(idx[rows, :45], resolution=r)
                    out[rows] = torch.as_tensor(part, dtype=torch.float64).reshape(-1)
            return out
        return torch.as_tensor(self._by_arch(idx), dtype=torch.float64)

    def min_latency(self) -> float | None:
        """The fastest architecture's latency (ms) when the space was priced exhaustively."""
        return float(self._lookup.min()) if self._lookup is not None else None


__all__ = ["AccuracySource", "get_accuracy_source", "get_latency_source", "VectorLatency", "NB201Lookup",
           "latency_resolutions", "resolve_resolutions",
           "mixed_radix_codes", "ACCURACY_KINDS"]
