"""Accuracy specs: the one grammar ``pnag train``, ``pnag search``, ``pnag collect`` and the Python
API use to name where accuracy comes from.

* ``dataset:NAME``: the measured records of a public dataset or a records file
  (``pnag.data.load_dataset``); the architectures with an accuracy are the training data; it scores
  no other architecture.
* ``nb201:cifar10|cifar100|ImageNet16-120`` (``nb201`` alone: cifar10): NAS-Bench-201; a run knows
  only ``train_samples`` seeded random cells, the rest of the table stays unseen ground truth that
  :attr:`AccuracySource.measure` may look up (standing for training that cell) under an eval budget.
* ``nb201-exact:DATASET``: the whole NAS-Bench-201 table used as the accuracy model (exact
  objective: no predictor error, for judging search quality alone).
* ``ofa-predictor``: the published once-for-all predictor (MobileNetV3 width 1.2), used directly as
  the accuracy model.
* ``proxy:NAME``: a training-free proxy (``pnag.predict.proxies``; its unit is a score, not %).
* ``supernet:CKPT|random``: top-1 (%) on ImageNet val with the supernet's inherited weights and
  recalibrated batch norm (needs the ``imagenet`` option, ``--imagenet DIR``).
* ``none``: no accuracy, where a command allows it (``pnag collect``).
* a prefix added with :func:`register_accuracy_source`.

Where a spec goes, a Python object may go instead: an :class:`AccuracySource`, or a callable
``archs -> accuracy %`` (it is asked about the architectures a run samples, and about more under an
eval budget).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import DataError, PnagError, allowed
from .vector import NB201Lookup, mixed_radix_codes

ACCURACY_KINDS = ("dataset:NAME", "nb201:cifar10|cifar100|ImageNet16-120", "nb201-exact:DATASET", "ofa-predictor",
                  "proxy:NAME", "supernet:CKPT")

Table = Callable[[int | None, int], tuple[list, np.ndarray]]  # (n, seed) -> (archs, accuracy)
Scores = Callable[[Sequence], Any]  # archs -> one value each


@dataclass
class AccuracySource:
    """Accuracy of architectures (values in ``unit``: ``%``, ``fraction`` or ``score``).

    ``table``: ``(n, seed) -> (archs, values)``, the measured table a run starts from (None: ``n``
    sampled architectures, scored). ``measure``: look up more architectures under an eval budget
    (None when the source cannot). ``model``: a callable ``idx (B, T) -> accuracy % (B,)`` when the
    source is itself a model (``ofa-predictor``); then no predictor is fitted. ``score``: the value
    of any architecture, what ``pnag collect`` records (default: ``measure``; None when the source
    knows only its table). ``measured_on`` says on what (default: ``note``); ``collective``: under
    torchrun every rank must call ``score`` with the same architectures, in order.
    """

    spec: str
    unit: str
    table: Table | None = None
    measure: Scores | None = None
    model: Callable[[torch.Tensor], torch.Tensor] | None = None
    note: str = ""
    resolutions: tuple[int, ...] | None = None  # MobileNetV3 input resolutions it covers (None: any)
    score: Scores | None = None
    measured_on: str = ""
    collective: bool = False

    def __post_init__(self) -> None:
        self.score = self.measure if self.score is None else self.score
        self.measured_on = self.measured_on or self.note or self.spec

    @property
    def name(self) -> str:
        return self.spec

    def check_scores(self) -> "AccuracySource":
        """This source, when it can score any architecture (else a :class:`PnagError` saying so)."""
        if self.score is None:
            raise PnagError(f"--accuracy {self.spec}: gives the accuracy of its own records only, not of new "
                            "architectures; allowed here: a source that scores any architecture (ofa-predictor, "
                            "proxy:NAME, nb201:DATASET, supernet:CKPT or a Python function)")
        return self

    def accuracy(self, archs: Sequence) -> np.ndarray:
        """The value (``unit``, float64 ``(len(archs),)``) of each architecture."""
        return np.asarray(self.check_scores().score(list(archs)), dtype=np.float64).reshape(-1)


AccuracyFactory = Callable[[str, Any, dict], AccuracySource]
_ACCURACY_SOURCES: dict[str, AccuracyFactory] = {}


def register_accuracy_source(prefix: str, factory: AccuracyFactory) -> None:
    """Make ``--accuracy PREFIX:REST`` available everywhere: ``factory(rest, space, options) -> AccuracySource``.

    ``options`` carries free-form settings from the caller (e.g. ``{"imagenet": DIR}`` from the CLI,
    ``seed``, ``proxy_config``, ``progress``)."""
    if not prefix or ":" in prefix:
        raise PnagError(f"accuracy source prefix: {prefix!r} is not allowed; allowed: a non-empty name without ':'")
    _ACCURACY_SOURCES[prefix] = factory


def accuracy_source_prefixes() -> list[str]:
    """Every prefix an accuracy spec may start with."""
    _register_builtin()
    return sorted(_ACCURACY_SOURCES)


def source_name(source: Any) -> str:
    """What a run records for a source: a spec as it is, a source object's own name, else
    ``python:QUALNAME`` of the callable or of the object's type."""
    if isinstance(source, str):
        return source.strip()
    own = getattr(source, "spec", None) or getattr(source, "name", None)
    if isinstance(own, str) and own:
        return own
    return "python:" + str(getattr(source, "__qualname__", None) or type(source).__qualname__)


def get_accuracy_source(spec: Any, space: Any, options: dict | None = None,
                        optional: bool = False) -> AccuracySource | None:
    """The accuracy source for ``spec`` (forms in the module docstring) on ``space``.

    ``spec`` may also be an :class:`AccuracySource` or a callable ``archs -> accuracy %``.
    ``optional``: ``none`` (or an empty spec) gives None instead of an error."""
    _register_builtin()
    if isinstance(spec, AccuracySource):
        src = spec
    elif spec is not None and not isinstance(spec, str):
        if not callable(spec):
            raise PnagError(f"--accuracy: {spec!r} is neither a spec, an AccuracySource nor a callable archs -> "
                            "accuracy %")
        src = AccuracySource(source_name(spec), str(getattr(spec, "unit", "%")), measure=spec,
                             note=f"the Python function {source_name(spec)[len('python:'):]}")
    elif spec is None or spec.strip() in ("", "none"):
        if optional:
            return None
        raise PnagError(f"--accuracy: {spec!r} names no source; allowed: {allowed(_kinds())}")
    else:
        spec = spec.strip()
        prefix, _, rest = spec.partition(":")
        if prefix not in _ACCURACY_SOURCES:
            if prefix == "python":
                raise PnagError(f"--accuracy {spec!r}: names a Python object a run was trained with; allowed: pass "
                                "the object again (accuracy=OBJ)")
            raise PnagError(f"--accuracy: {spec!r} is not a known source; allowed: "
                            f"{'none or ' if optional else ''}{allowed(_kinds())}")
        src = _ACCURACY_SOURCES[prefix](rest, space, dict(options or {}))
    if src.table is None:
        if src.score is None:
            raise PnagError(f"--accuracy {src.spec}: has neither a table nor a way to score architectures")
        src = replace(src, table=_sampled_table(space, src.score))
    return src


def _kinds() -> list[str]:
    extra = [p + ":..." for p in sorted(_ACCURACY_SOURCES) if p not in _BUILTIN]
    return list(ACCURACY_KINDS) + extra


# -- the built-in sources ------------------------------------------------------------------------------
def _sampled_table(space, score: Scores) -> Table:
    def table(n: int | None, seed: int) -> tuple[list, np.ndarray]:
        n = 1000 if n is None else n
        archs = list(dict.fromkeys(space.sample(n, seed=seed)))
        return archs, np.asarray(score(archs), dtype=np.float64)

    return table


def _dataset_factory(rest: str, space: Any, options: dict) -> AccuracySource:
    from ..data import load_dataset

    spec = f"dataset:{rest}"
    if not rest:
        raise PnagError(f"--accuracy: {spec!r} names no dataset; allowed: dataset:NAME (see `pnag data list`) or "
                        "dataset:FILE")
    ds = load_dataset(rest)

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


def _nb201_source(rest: str, space: Any, exact: bool) -> AccuracySource:
    from ..data.nb201 import check_nb201_dataset

    dataset = check_nb201_dataset(rest or "cifar10")
    spec = f"{'nb201-exact' if exact else 'nb201'}:{dataset}"
    if getattr(space, "name", "") != "nb201":
        raise PnagError(f"--accuracy {spec}: a NAS-Bench-201 table; allowed with --space nb201, not "
                        f"{getattr(space, 'name', space)}")
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

    on = f"{dataset}-test (200 epochs)"
    if exact:
        by_code = torch.as_tensor(acc, dtype=torch.float64)
        return AccuracySource(spec, "%", table, measure=measure,
                              model=lambda idx: by_code[mixed_radix_codes(space, idx)], note=f"NAS-Bench-201 {dataset} 200-epoch test accuracy, the whole table as the model",
                              measured_on=on)
    return AccuracySource(spec, "%", table, measure=measure, note=f"NAS-Bench-201 {dataset} 200-epoch test accuracy",
                          measured_on=on)


def _nb201_factory(rest: str, space: Any, options: dict) -> AccuracySource:
    return _nb201_source(rest, space, exact=False)


def _nb201_exact_factory(rest: str, space: Any, options: dict) -> AccuracySource:
    return _nb201_source(rest, space, exact=True)


def _ofa_factory(rest: str, space: Any, options: dict) -> AccuracySource:
    from ..predict.ofa import OFAAccuracyPredictor
    from ..space.mbv3 import ENC_RESOLUTIONS

    if rest:
        raise PnagError(f"--accuracy: 'ofa-predictor:{rest}' is not a known source; allowed: ofa-predictor")
    pred = OFAAccuracyPredictor(space)
    return AccuracySource("ofa-predictor", "%", _sampled_table(space, pred.predict_archs), model=pred.predict_indices,
                          score=pred.predict_archs, note="published once-for-all accuracy predictor (width 1.2)",
                          resolutions=ENC_RESOLUTIONS)


def _proxy_factory(rest: str, space: Any, options: dict) -> AccuracySource:
    from ..predict.proxies import ProxyConfig, check_proxy, proxy_scores

    name = check_proxy(rest)
    if getattr(space, "name", "") != "mbv3":
        raise PnagError(f"--accuracy proxy:{name}: proxies run on MobileNetV3 networks; allowed with --space mbv3")
    seed = int(options.get("seed", 0))
    cfg = options.get("proxy_config") or ProxyConfig()
    progress = options.get("progress")

    def score(archs: Sequence) -> np.ndarray:
        return proxy_scores(name, archs, seed=seed, config=cfg, progress=progress)

    return AccuracySource(f"proxy:{name}", "score", _sampled_table(space, score), score=score,
                          note=f"training-free proxy {name} (a score, not a measured accuracy)",
                          measured_on=f"proxy:{name} (seed {seed})")


def _supernet_factory(rest: str, space: Any, options: dict) -> AccuracySource:
    """``supernet:CKPT|random``: top-1 (%) on ImageNet val with inherited weights (``pnag.evaluate``).

    ``rest`` is the checkpoint path or ``random``; the supernet's width is the space's. ``options``:
    ``imagenet`` (required), and optionally ``calib_images`` (2000), ``batch_size`` (100), ``workers``
    (2), ``device`` (auto), ``seed`` (for ``random``). Accuracy is top-1 in %, with recalibrated batch
    norm. Under torchrun it joins the process group; every rank must then score the same
    architectures in the same order (images are sharded, counts summed).
    """
    from ..evaluate.distributed import init_distributed, leave_at_exit  # lazily: the evaluation stack is heavy
    from ..evaluate.imagefolder import find_split
    from ..evaluate.imagenet import CALIB_IMAGES, evaluate_supernet_arch, load_supernet_spec

    if not rest:
        raise PnagError("--accuracy supernet: needs a checkpoint, as supernet:PATH or supernet:random")
    if not options.get("imagenet"):
        raise PnagError(f"--accuracy supernet:{rest}: needs --imagenet DIR (an ImageNet folder with train/ and val/)")
    if getattr(space, "name", "") != "mbv3":
        raise PnagError(f"--accuracy supernet:{rest}: the once-for-all supernet serves MobileNetV3 architectures; "
                        "allowed with --space mbv3")
    data_dir = options["imagenet"]
    calib = int(options.get("calib_images", CALIB_IMAGES))
    find_split(data_dir, "val")
    if calib:
        find_split(data_dir, "train")
    ctx = init_distributed(options.get("device", "auto"))
    leave_at_exit(ctx)
    supernet = load_supernet_spec(rest, space.width, int(options.get("seed", 0))).to(ctx.device)
    kw = dict(calib_images=calib, batch_size=int(options.get("batch_size", 100)),
              workers=int(options.get("workers", 2)), progress=False)

    def top1(archs) -> list[float]:
        return [evaluate_supernet_arch(supernet, a, data_dir, ctx, **kw).top1 for a in archs]

    return AccuracySource(f"supernet:{rest}", "%", score=top1, collective=True,
                          measured_on=f"imagenet-val, weights of {supernet.name}, BN recalibrated on {calib} "
                                      "train images")


_BUILTIN: dict[str, AccuracyFactory] = {
    "dataset": _dataset_factory, "nb201": _nb201_factory, "nb201-exact": _nb201_exact_factory,
    "ofa-predictor": _ofa_factory, "proxy": _proxy_factory, "supernet": _supernet_factory}


def _register_builtin() -> None:
    for prefix, factory in _BUILTIN.items():
        _ACCURACY_SOURCES.setdefault(prefix, factory)


__all__ = ["ACCURACY_KINDS", "AccuracySource", "accuracy_source_prefixes", "get_accuracy_source",
           "register_accuracy_source", "source_name"]
