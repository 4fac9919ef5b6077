"""Devices: what a device-conditioned run reads of a latency source, and serving any device from a run.

A run trained on several latency sources (``pnag train --latency SRC1,SRC2,...``) conditions its
generator and ranker on the device. What they read of a device:

* its **signature**: its latency (log ms) on ``device_reference`` seeded reference architectures (the
  same for every device of the run; the run stores them), standardised over them (mean 0, spread 1).
  It says how the device's latency is *structured* (which operations cost), not how fast the device
  is; HELP uses the same as a hardware embedding. It is computed from any latency source, a new one
  included, without training.
* a budget's **position**: the fraction of the space's architectures whose latency on the device is
  within the budget (the device's latency distribution over every cell of an enumerable space, else
  over ``quantile_samples`` seeded architectures; interpolated in log ms between 1,001 quantiles).
  Budget ``q0.3`` is position 0.3 on every device however fast it is, so one network serves devices
  of very different speeds; budgets ``qLO:qHI`` are these quantiles.

Any device is served by a *view* of the run (:func:`serving_view`): the run as if it had been trained
for that device alone. Its latency model is the device's own source (feasibility is judged there), its
budget range the run's range of positions in the device's ms (a device the run was not trained on: any
budget from its fastest architecture to its slowest, since its quantiles are only as good as its
source, perhaps a model fitted to a few measurements), its generator the run's generator
conditioned on the device's signature and the budget's position, and its archive every training
device's elites scored again on the device, then grown under the device's latency before the first
answer (:func:`served_archive`: ``serve_steps`` steps of the archive's evolution, every cell of a space
small enough to list). The training devices' elites are the best of *their* trade-offs; without the
evolution a device unlike them was answered 0.21 point below a run trained for it, on average, on
MobileNetV3 (help-ofa-gpu, tuning seeds 10-11: benchmarks/results/tuning/serve_steps_mbv3_*.md). A run
of one device in ms serves another device too: a budget goes to the same position on the run's device,
where its generator proposes, and the choice is made under the served device's latency.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import BudgetError, PnagError, allowed
from .. import sources
from .archive import BudgetArchive, evolve, offer
from .config import SCHEDULES
from .indices import canonical, random_indices
from .models import RunModels

GRID = 1001  # quantiles kept per device: positions exact at multiples of 0.001
_PROBS = np.linspace(0.0, 1.0, GRID)
REFERENCE_SEED, SAMPLE_SEED = 21, 23  # offsets of the run's seed for the reference and quantile architectures


@dataclass(frozen=True)
class DeviceProfile:
    """One device as a run sees it: ``signature (R,)`` (float32), ``log_grid (GRID,)`` (log ms of its
    latency quantiles over the space), its fastest architecture ``fastest_idx (T,)`` and that one's
    latency (ms), and whether the quantiles cover the whole space (``exact``)."""

    name: str
    signature: torch.Tensor
    log_grid: torch.Tensor
    fastest_idx: torch.Tensor
    min_latency_ms: float
    exact: bool

    def position(self, budgets_ms: Any) -> torch.Tensor:
        """Position (fraction of the space within the budget) of each budget (ms), float64."""
        b = np.log(np.maximum(np.asarray(budgets_ms, dtype=np.float64).reshape(-1), 1e-300))
        return torch.from_numpy(np.interp(b, self.log_grid.numpy(), _PROBS))

    def budget_ms(self, quantiles: Any) -> np.ndarray:
        """The budget (ms) at each position / quantile (fractions in [0, 1])."""
        q = np.asarray(quantiles, dtype=np.float64).reshape(-1)
        return np.exp(np.interp(q, _PROBS, self.log_grid.numpy()))


def reference_indices(space, n: int, seed: int) -> torch.Tensor:
    """The ``n`` seeded reference architectures of a run (canonical index rows ``(n, T)``)."""
    return canonical(space, random_indices(space, n, torch.Generator().manual_seed(seed + REFERENCE_SEED)))


def fastest_indices(space, vlat, pool: torch.Tensor) -> torch.Tensor:
    """The fastest architecture ``(T,)`` under ``vlat``: over the whole space where it was priced
    exhaustively, else among ``pool`` and the all-first-choice architecture."""
    if vlat.exhaustive:
        sizes = [len(c) for c in space.decision_choices]
        code = int(torch.argmin(vlat.all_latencies()))
        fastest = torch.tensor(np.unravel_index(code, sizes), dtype=torch.long).view(1, -1)
    else:
        pool = torch.cat([pool, torch.zeros(1, pool.shape[1], dtype=torch.long)])
        fastest = pool[int(torch.argmin(vlat(pool)))].view(1, -1)
    return canonical(space, fastest)[0]


def device_latency(spec: Any, space):
    """The latency source of a device of a device-conditioned run or a served device, vectorised; a
    :class:`PnagError` for a source that prices only a fixed list of networks (a whole-network table) or
    times each network (``measure:``: a device's quantiles price thousands)."""
    from ..latency.base import MeasuredSource, WholeNetworkTable

    src = sources.get_latency_source(spec, space)
    if isinstance(src, MeasuredSource):
        raise PnagError(f"--latency: {sources.source_name(spec)!r} times each network, and a device's quantiles "
                        "price thousands of them; allowed: a table of the device (pnag latency profile, then "
                        "lut:FILE) or a model of a few of its measurements (pnag latency adapt --target "
                        f"{sources.source_name(spec)}, then adapted:FILE)")
    if isinstance(src, WholeNetworkTable):
        raise PnagError(f"--latency: {sources.source_name(spec)!r} prices only its {len(src)} measured networks, and "
                        "a device must price every architecture the generator proposes; allowed: a table or model "
                        "of the device (lut:FILE, lut:note10, lut:i7-8700k, nb201:DEVICE, measure:BACKEND, local, or "
                        "adapted:FILE, a latency model fitted to the table by pnag latency adapt)")
    return sources.VectorLatency(space, src)


def device_profile(name: str, space, vlat, reference: torch.Tensor, samples: int, seed: int,
                   pool: torch.Tensor | None = None) -> DeviceProfile:
    """The profile of the device priced by ``vlat`` (:class:`pnag.sources.VectorLatency`): its signature on
    ``reference``, its quantiles over every architecture (enumerable space) or ``samples`` seeded ones,
    its fastest architecture (also looked for in ``pool``)."""
    if vlat.exhaustive:
        lat = vlat.all_latencies().numpy()
        found = torch.zeros(0, reference.shape[1], dtype=torch.long)
    else:
        found = canonical(space, random_indices(space, samples, torch.Generator().manual_seed(seed + SAMPLE_SEED)))
        lat = vlat(found).numpy()
    if not np.all(np.isfinite(lat)) or np.any(lat <= 0):
        raise PnagError(f"latency source {name!r}: a latency that is not a positive number of ms; allowed: "
                        "a source whose latencies are > 0 ms")
    grid = torch.from_numpy(np.log(np.quantile(lat, _PROBS)))
    ref = np.log(np.maximum(vlat(reference).numpy(), 1e-300))
    spread = float(ref.std())
    sig = torch.from_numpy((ref - ref.mean()) / spread if spread > 0 else np.zeros_like(ref)).float()
    fastest = fastest_indices(space, vlat, torch.cat([found] + ([pool] if pool is not None else [])))
    return DeviceProfile(name, sig, grid, fastest, float(vlat(fastest.view(1, -1))[0]), bool(vlat.exhaustive))


def profiles_state(profiles: Sequence[DeviceProfile], reference: torch.Tensor) -> dict[str, Any]:
    """What ``devices.pt`` holds of the devices (tensors only; the names are the run's config)."""
    return {"reference_idx": reference, "signature": torch.stack([p.signature for p in profiles]),
            "log_grid": torch.stack([p.log_grid for p in profiles]),
            "fastest_idx": torch.stack([p.fastest_idx for p in profiles]),
            "min_latency_ms": torch.tensor([p.min_latency_ms for p in profiles], dtype=torch.float64),
            "exact": torch.tensor([p.exact for p in profiles])}


def profiles_from_state(st: dict[str, Any], names: Sequence[str], T: int, R: int) -> list[DeviceProfile]:
    """The profiles saved by :func:`profiles_state`; a ``ValueError`` when shapes do not fit."""
    D = len(names)
    shapes = {"reference_idx": (R, T), "signature": (D, R), "log_grid": (D, GRID), "fastest_idx": (D, T),
              "min_latency_ms": (D,), "exact": (D,)}
    for k, shape in shapes.items():
        if not isinstance(st.get(k), torch.Tensor) or tuple(st[k].shape) != shape:
            raise ValueError(f"{k} is not a tensor of shape {shape}")
    return [DeviceProfile(n, st["signature"][d].float(), st["log_grid"][d].double(), st["fastest_idx"][d].long(),
                          float(st["min_latency_ms"][d]), bool(st["exact"][d])) for d, n in enumerate(names)]


class ServingGenerator:
    """A trained generator seen from one served device: ``draw`` and ``log_prob`` take budgets in that
    device's ms (``condition``: budgets ms -> what the generator reads)."""

    def __init__(self, generator, condition: Callable[[torch.Tensor], torch.Tensor]):
        self.generator, self.condition = generator, condition
        self.T, self.space = generator.T, generator.space

    def draw(self, budgets, greedy: bool = False, generator: torch.Generator | None = None,
             temperature: float = 1.0) -> torch.Tensor:
        return self.generator.draw(self.condition(budgets), greedy=greedy, generator=generator,
                                   temperature=temperature)

    def log_prob(self, budgets, idx: torch.Tensor) -> torch.Tensor:
        return self.generator.log_prob(self.condition(budgets), idx)

    def eval(self) -> "ServingGenerator":
        self.generator.eval()
        return self


def union_archive(view, archives: Sequence[BudgetArchive | None], budget_range: tuple[float, float],
                  ) -> BudgetArchive | None:
    """An archive over ``budget_range`` (ms) holding the elites of every archive in ``archives``, scored by
    ``view``'s objective (its device's latency)."""
    rows = [a.idx[a.filled] for a in archives if a is not None]
    if not rows:
        return None
    cfg = view.config
    lo, hi = budget_range
    out = BudgetArchive(torch.linspace(lo, hi, cfg.archive_grid, dtype=torch.float64), view.generator.T,
                        cfg.archive_per_bin)
    offer(view, out, torch.unique(torch.cat(rows), dim=0))
    return out


def served_archive(view, union: BudgetArchive | None, start: BudgetArchive | None) -> BudgetArchive | None:
    """The archive a view answers from: ``union`` (the training devices' elites scored on its device) grown by
    ``serve_steps`` steps of the archive's evolution under the view's objective (:func:`pnag.search.archive.
    evolve`), or, on a space small enough to list (``all_indices``), by every architecture. ``start``: an
    earlier view's archive of the same device (its model refitted since): its rows are offered too and a
    tenth of the steps taken."""
    cfg = view.config
    if union is None or cfg.serve_steps <= 0:
        return union
    space = view.space
    if callable(getattr(space, "all_indices", None)):
        offer(view, union, canonical(space, torch.as_tensor(space.all_indices())))
        return union
    if start is not None and bool(start.filled.any()):
        offer(view, union, start.idx[start.filled])
    steps = cfg.serve_steps if start is None else max(1, cfg.serve_steps // 10)
    n = SCHEDULES["full"]["archive_offspring"] if cfg.archive_offspring is None else cfg.archive_offspring
    return evolve(view, union, steps, n, cfg.archive_parents or 0, cfg.seed, progress=None if start is None else False,
                  desc=f"serving {view.served}: its archive")  # a bar on a terminal, the first time


def serving_view(run, latency: Any = None, archive_from: BudgetArchive | None = None):
    """``run`` as it serves the device of ``latency`` (a spec or a source object; None: the run's own
    device when it has one): ``run`` itself for its own device of a run in ms, else a view
    (module docstring). A device the run was trained on is the one of the same name. ``archive_from``: an
    earlier view's archive of the same device (:func:`served_archive`)."""
    cfg = run.config
    names = [sources.source_name(s) for s in run.latencies]
    if latency is None:
        if len(names) > 1:
            raise PnagError(f"latency: none given for a run trained on {len(names)} devices; allowed: one of "
                            f"{allowed(names)}, or a new device's latency source")
        latency = run.latencies[0]
    name = sources.source_name(latency)
    known = names.index(name) if name in names else None
    if known is not None and not cfg.device_conditioned:
        return run
    own = None if cfg.device_conditioned else run.own_profile()  # a run in ms: its device's quantiles
    if known is not None:
        vlat, profile = run.device_latency(known), run.profiles[known]
    else:
        vlat = device_latency(latency, run.space)
        profile = device_profile(name, run.space, vlat, run.reference, cfg.quantile_samples, cfg.seed,
                                 pool=run.data["idx"])
    if cfg.device_conditioned:
        lo, hi = cfg.budgets
        sig = profile.signature

        def condition(b: torch.Tensor) -> torch.Tensor:
            pos = profile.position(b).clamp(lo, hi)
            return torch.cat([pos.reshape(-1, 1).float(), sig.expand(len(pos), -1)], 1)

        archives = run.archives
    else:
        lo, hi = (float(p) for p in own.position(cfg.budgets))
        b_lo, b_hi = cfg.budgets

        def condition(b: torch.Tensor) -> torch.Tensor:
            ms = own.budget_ms(profile.position(b).numpy())
            return torch.from_numpy(np.clip(ms, b_lo, b_hi)).float()

        archives = [run.archive]
    trained = tuple(float(x) for x in profile.budget_ms([lo, hi]))
    trained = (trained[0], max(trained[1], trained[0] * (1 + 1e-9)))
    # a device the run was not trained on: its quantiles come from its source, an estimate perhaps (a model
    # fitted to a few measurements), so every budget from its fastest to its slowest architecture is served;
    # outside the trained positions the generator reads the nearest end of them
    served = trained if known is not None else (profile.min_latency_ms, float(profile.budget_ms(1.0)[0]))
    return device_view(run, name, latency, vlat, profile, ServingGenerator(run.generator, condition), archives,
                       served, archive_from)


def own_profile(run) -> DeviceProfile:
    """The profile of the device of a run of one device in ms (its reference architectures drawn with the
    run's seed, as a device-conditioned run draws them)."""
    cfg = run.config
    if run.reference is None:
        run.reference = reference_indices(run.space, cfg.device_reference, cfg.seed)
    return device_profile(sources.source_name(run.latencies[0]), run.space, run.lat_source, run.reference,
                          cfg.quantile_samples, cfg.seed, pool=run.data["idx"])


def quantile_budgets(run, quantiles: Sequence[float], latency: Any = None) -> np.ndarray:
    """Budgets (ms) at ``quantiles`` (fractions in [0, 1]) of the latency over the space of the device of
    ``latency`` (a spec or source object; None: the run's own device)."""
    q = np.asarray(quantiles, dtype=np.float64).reshape(-1)
    bad = q[~((q >= 0) & (q <= 1))]
    if len(bad):
        raise BudgetError(f"budget: q{bad[0]:g}; allowed: quantiles q0..q1")
    view = serving_view(run, latency)
    return (view.profile if view is not run else run.own_profile()).budget_ms(q)


def device_view(run, name: str, source: Any, vlat, profile: DeviceProfile, generator: ServingGenerator,
                archives: Sequence[BudgetArchive | None], budget_range: tuple[float, float],
                archive_from: BudgetArchive | None = None):
    """A shallow copy of ``run`` that serves one device (see :func:`serving_view`): budgets (ms) in
    ``budget_range``; its archive, built when an answer first needs it, holds the elites of ``archives`` over
    that range, grown under the device's latency (:func:`served_archive`, from ``archive_from``)."""
    view = copy.copy(run)
    view.latency, view._lat_source = source, vlat
    view.config = replace(run.config, latency=name, budgets=budget_range, budget_unit="ms", latency_samples=None,
                          eval_budget=0)
    m = run.models
    view.models = RunModels(run.space, view.config, m.acc_model, m.acc_pred, vlat, None, memo=m.serving_memo)
    view.data = dict(run.data, latency=vlat(run.data["idx"]).double(), fastest_idx=profile.fastest_idx)
    view.metrics = dict(run.metrics, min_latency_ms=profile.min_latency_ms)
    view.generator = generator
    view.served, view.profile = name, profile
    view.trained_on = name in [sources.source_name(s) for s in run.latencies]
    view.archive_later(lambda: served_archive(view, union_archive(view, archives, budget_range), archive_from))
    return view


__all__ = ["DeviceProfile", "GRID", "device_latency", "reference_indices", "fastest_indices", "device_profile",
           "profiles_state", "profiles_from_state", "ServingGenerator", "union_archive", "served_archive",
           "serving_view", "own_profile", "quantile_budgets", "device_view"]
