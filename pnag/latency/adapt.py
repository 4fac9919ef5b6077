"""Few-shot latency for a new device: a linear latency model over architecture features whose prior is
learned from other devices' full tables and whose device-specific part is fitted to K measurements.

Model. A network's latency is close to a sum over its layers, so on each device ``d`` the latency (ms) of
an architecture ``x`` is about ``phi(x) . w_d`` with :class:`LatencyFeatures` ``phi`` (NAS-Bench-201: a
constant and the operation one-hot of every edge, executed or not; MobileNetV3: a constant and the
(expand, kernel) one-hot of each of the 20 layer slots, and where the input resolution varies the same
times ``(r / 224)^2`` and ``(r / 224)^2`` itself). Fitted to each training device's whole table and
divided by its mean latency over a reference set (so that only the *shape* is compared), these weights
give a Gaussian prior over a device's normalised weights (:func:`device_prior`)::

    theta ~ N(mu, C + delta * tr(C) / p * I + alpha * mu mu^T)

``mu`` and ``C`` are the mean and covariance of the training devices' weights (a new device resembles
some mix of them), the ``delta`` term lets it leave their span, and the ``alpha`` term lets its overall
speed differ freely. :func:`adapted_weights` gives the posterior mean from K measurements with relative
noise ``sigma`` (Bayesian linear regression; the scale is set first from the measurements' geometric
mean ratio to the prior mean), and the adapted model prices any architecture as ``phi(x) . w``.
:func:`fit_device` chooses ``sigma`` for each device from its own measurements (of :data:`SIGMAS`, the one of
least leave-one-out error, at most ``SIGMA``): a device whose latency the features sum exactly, such as a
per-layer table, is fitted closely, and a network near measured ones is priced from them; one whose latency they
sum loosely, a phone, keeps ``SIGMA``. ``pnag latency adapt`` and every refit of ``--verify`` use it.

Which K networks: :func:`choose_samples` picks them before any target measurement, greedily, each time
the candidate whose relative latency the prior (updated with the networks already chosen) knows least,
from a pool drawn with the seed: informative under the training devices, and never the target's values.

``DELTA`` and ``SIGMA`` (the prior's own noise, which chooses the K) were chosen by leave-one-out over the 21
NAS-Bench-201 devices outside HELP's test split (``benchmarks/devices.py latency --tune``: the results hardly move
over two decades of either), never on its test devices; ``ALPHA`` = 1 only says that a device's overall speed is
free to differ.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ArchError, PnagError, allowed
from ..space.mbv3 import DEPTHS, EXPANDS, KERNELS, MAX_DEPTH, N_SLOTS, MBV3Arch, MBV3Space, check_resolutions
from ..space.mbv3 import check_width, parse_arch
from ..space.nb201 import N_EDGES, OPS, NB201Arch, NB201Space, parse_nb201
from ._table import _positions

DELTA = 1e-2   # off-span prior variance, as a fraction of the training devices' mean variance per feature
ALPHA = 1.0    # prior variance of the overall speed, relative (1.0: a standard deviation of 100 %)
SIGMA = 0.03   # relative measurement noise of one target latency (3 %)
RIDGE = 1e-4   # ridge of each training device's fit, relative to its features' mean square
SPACES = ("nb201", "mbv3")
R_REF = 224.0  # resolution (pixels) at which the resolution terms are 1
POOL = 2000    # candidate networks the K are chosen from (drawn with the seed)
# the relative noise levels a model's fit chooses from by its leave-one-out error (fit_device): a device whose latency
# the features sum exactly (a per-layer table) is fitted more tightly than the prior's SIGMA, never more loosely
# (looser, 0.1, was no better on the NAS-Bench-201 tuning devices: benchmarks/results/tuning/fit_sigma_*.md)
SIGMAS = (0.001, 0.003, 0.01, SIGMA)
FLOOR_FRACTION = 0.01  # predictions are never below this fraction of the fastest measured network


@dataclass(frozen=True)
class LatencyFeatures:
    """The features a latency model of a space is linear in (module docstring).

    ``space``: ``nb201`` or ``mbv3``; for ``mbv3`` also ``width`` and ``resolutions`` (pixels, sorted):
    the networks the model prices (text forms without a resolution get the largest).
    """

    space: str
    width: float | None = None
    resolutions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise PnagError(f"latency features: space {self.space!r} is not known; allowed: {allowed(SPACES)}")
        if self.space == "mbv3":
            object.__setattr__(self, "width", check_width(1.2 if self.width is None else self.width))
            object.__setattr__(self, "resolutions", check_resolutions(self.resolutions or (224,), "resolutions"))
        else:
            object.__setattr__(self, "width", None)
            object.__setattr__(self, "resolutions", None)

    @property
    def varies_resolution(self) -> bool:
        return self.space == "mbv3" and len(self.resolutions) > 1

    @property
    def size(self) -> int:
        """Number of features ``p``."""
        if self.space == "nb201":
            return 1 + N_EDGES * len(OPS)
        slots = N_SLOTS * len(EXPANDS) * len(KERNELS)
        return 1 + slots + (slots + 1 if self.varies_resolution else 0)

    def search_space(self) -> Any:
        """The search space of the architectures priced (``NB201Space`` or ``MBV3Space``)."""
        if self.space == "nb201":
            return NB201Space()
        if self.varies_resolution:
            return MBV3Space(self.width, self.resolutions[-1], resolutions=self.resolutions)
        return MBV3Space(self.width, self.resolutions[0])

    # -- architectures -> decision indices ---------------------------------------------------------
    def coerce(self, arch: Any) -> Any:
        """An architecture value of this space from a value or a text form; a MobileNetV3 network of
        another width or of a resolution the model does not cover is an :class:`ArchError`."""
        if self.space == "nb201":
            return arch if isinstance(arch, NB201Arch) else parse_nb201(arch)
        if isinstance(arch, MBV3Arch):
            a = arch
        elif isinstance(arch, str):
            a = _parse_mbv3(arch, self.width, self.resolutions[-1])
        else:
            a = self.search_space().validate(arch)
        if a.width != self.width or a.resolution not in self.resolutions:
            raise ArchError(f"arch {a.to_legacy()} (width {a.width}, resolution {a.resolution}): the adapted latency "
                            f"model prices width {self.width} at resolutions {allowed(self.resolutions)}; allowed: "
                            "networks of those")
        return a

    def indices_of(self, archs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """Decision indices ``(B, 6)`` or ``(B, 45)`` and, for MobileNetV3, the resolution of each (pixels)."""
        archs = [self.coerce(a) for a in archs]
        if self.space == "nb201":
            sp = NB201Space()
            rows = [sp.to_indices(a) for a in archs]
            return (np.stack(rows) if rows else np.zeros((0, N_EDGES), np.int64)), None
        sp = MBV3Space(self.width)
        rows = [sp.to_indices(a) for a in archs]
        idx = np.stack(rows) if rows else np.zeros((0, 45), np.int64)
        return idx, np.array([a.resolution for a in archs], dtype=np.int64)

    # -- features --------------------------------------------------------------------------------
    def of_archs(self, archs: Sequence[Any]) -> np.ndarray:
        """Features (float64 ``(len(archs), size)``) of architectures (values or text forms)."""
        idx, res = self.indices_of(archs)
        return self.of_indices(torch.as_tensor(idx), None if res is None else torch.as_tensor(res)).numpy()

    def of_indices(self, idx: torch.Tensor, resolution: Any = None) -> torch.Tensor:
        """Features (float64 ``(B, size)``, on ``idx.device``) of decision indices ``idx (B, 6)`` (NAS-Bench-201)
        or ``(B, 45)`` (MobileNetV3, structural decisions) at ``resolution`` (pixels: one for all, or a
        tensor ``(B,)``; default the model's only resolution)."""
        idx = torch.as_tensor(idx).long()
        dev, B = idx.device, idx.shape[0]
        one = torch.ones(B, 1, dtype=torch.float64, device=dev)
        if self.space == "nb201":
            return torch.cat([one, torch.nn.functional.one_hot(idx, len(OPS)).double().reshape(B, N_EDGES * len(OPS))], 1)
        dpos, epos, kpos = (torch.as_tensor(p, device=dev) for p in _positions())
        depth = torch.as_tensor(DEPTHS, device=dev)[idx[:, dpos]]
        active = (torch.arange(MAX_DEPTH, device=dev)[None, None, :] < depth[:, :, None]).reshape(B, N_SLOTS)
        code = idx[:, epos] * len(KERNELS) + idx[:, kpos]
        slots = (torch.nn.functional.one_hot(code, len(EXPANDS) * len(KERNELS)).double()
                 * active[..., None]).reshape(B, N_SLOTS * len(EXPANDS) * len(KERNELS))
        if not self.varies_resolution:
            if resolution is not None and bool((torch.as_tensor(resolution) != self.resolutions[0]).any()):
                raise ArchError(f"resolution: {resolution!r}; allowed: {self.resolutions[0]} (the model's only one)")
            return torch.cat([one, slots], 1)
        if resolution is None:
            raise PnagError(f"resolution: none given; allowed: one of {allowed(self.resolutions)} (the model covers "
                            "several)")
        r = torch.as_tensor(resolution, dtype=torch.float64, device=dev).reshape(-1)
        if r.device.type == "cpu":  # (a check on another device would wait for it)
            bad = sorted(set(int(x) for x in r.unique().tolist()) - set(self.resolutions))
            if bad:
                raise ArchError(f"resolution: {bad[0]} is not covered by the model; allowed: "
                                f"{allowed(self.resolutions)}")
        q = ((r / R_REF) ** 2).expand(B)[:, None]
        return torch.cat([one, slots, slots * q, q], 1)

    def to_dict(self) -> dict:
        return {"space": self.space, "width": self.width,
                "resolutions": None if self.resolutions is None else list(self.resolutions)}


@lru_cache(maxsize=1 << 13)
def _parse_mbv3(text: str, width: float, resolution: int) -> MBV3Arch:
    """A MobileNetV3 text form parsed (``resolution``: where the text gives none), kept: a ``--verify`` call reads
    its few hundred measured networks' texts at every refit, which took a sixth of its time."""
    s = text.strip()
    return parse_arch(s, width=width, resolution=None if s.startswith("{") else resolution)


# -- the prior from the training devices -----------------------------------------------------------------
@dataclass(frozen=True)
class DevicePrior:
    """Gaussian prior over a device's normalised weights (module docstring): ``mean (p,)``, ``cov (p, p)``;
    ``sigma`` the relative noise of one measurement; ``devices`` the training devices' names."""

    mean: np.ndarray
    cov: np.ndarray
    sigma: float
    devices: tuple[str, ...]


def device_weights(features: np.ndarray, latency_ms: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """Least-squares weights ``w (p,)`` with ``features @ w ~ latency_ms`` (a small ridge keeps collinear
    features, such as an edge's one-hot beside the constant, determined)."""
    X, y = np.asarray(features, np.float64), np.asarray(latency_ms, np.float64)
    lam = ridge * float(np.mean(X * X)) * len(X)
    return np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ y)


def device_prior(weights: Sequence[np.ndarray], reference: np.ndarray, devices: Sequence[str], delta: float = DELTA,
                 alpha: float = ALPHA, sigma: float = SIGMA) -> DevicePrior:
    """The prior from the training devices' weights (each ``(p,)``, ms), each divided by its mean latency
    over the ``reference`` features ``(n, p)``."""
    if not len(weights):
        raise PnagError("training devices: none given; allowed: one or more latency sources with full tables")
    theta = []
    for name, w in zip(devices, weights):
        m = float(np.mean(reference @ w))
        if not m > 0:
            raise PnagError(f"training device {name}: its fitted mean latency is {m:.4g} ms; allowed: a table of "
                            "positive latencies")
        theta.append(np.asarray(w, np.float64) / m)
    T = np.stack(theta)
    mu = T.mean(0)
    C = np.cov(T.T, bias=True) if len(T) > 1 else np.zeros((len(mu), len(mu)))
    scale = float(np.trace(C)) / len(mu) if len(T) > 1 else float(mu @ mu) / len(mu)
    P = C + delta * scale * np.eye(len(mu)) + alpha * np.outer(mu, mu)
    return DevicePrior(mu, P, float(sigma), tuple(devices))


def _relative(prior: DevicePrior, features: np.ndarray) -> np.ndarray:
    m = features @ prior.mean
    return features / np.maximum(m, 1e-9 * max(float(np.abs(m).max(initial=0.0)), 1e-12))[:, None]


def draw_pool(n: int, seed: int, size: int = POOL) -> np.ndarray:
    """Indices of the candidate pool: ``size`` of ``n`` candidates drawn with ``seed`` (all when ``n <= size``),
    sorted."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def choose_samples(prior: DevicePrior, features: np.ndarray, k: int) -> list[int]:
    """``k`` rows of ``features (n, p)`` (a candidate pool) to measure: greedily the one of largest
    predictive variance of its relative latency under the prior updated with those chosen so far."""
    n = len(features)
    if not 1 <= k <= n:
        raise PnagError(f"samples: {k}; allowed: 1..{n} (the candidate networks)")
    X = _relative(prior, features)
    P = prior.cov
    var = np.einsum("ij,jk,ik->i", X, P, X)
    s2 = prior.sigma ** 2
    chosen: list[int] = []
    taken = np.zeros(n, dtype=bool)
    U: list[np.ndarray] = []
    for _ in range(k):
        j = int(np.argmax(np.where(taken, -np.inf, var)))
        chosen.append(j)
        taken[j] = True
        Px = P @ X[j] - sum((u @ X[j]) * u for u in U)  # the updated covariance times x_j
        u = Px / np.sqrt(max(float(X[j] @ Px) + s2, 1e-300))
        U.append(u)
        var = var - (X @ u) ** 2
    return chosen


def choose_networks(prior: DevicePrior, features: LatencyFeatures, candidates: Sequence[Any], k: int,
                    seed: int) -> list:
    """The ``k`` networks of ``candidates`` to measure: :func:`choose_samples` over a pool of them drawn
    with ``seed`` (:func:`draw_pool`, at least twice ``k``)."""
    pool = draw_pool(len(candidates), seed, max(POOL, 2 * k))
    picked = choose_samples(prior, features.of_archs([candidates[i] for i in pool]), k)
    return [candidates[pool[i]] for i in picked]


def _posterior(prior: DevicePrior, features: np.ndarray, latency_ms: np.ndarray):
    """The terms of :func:`adapted_weights`: ``s`` (the target's speed relative to the prior mean), ``base``
    (each row's latency under the prior mean, ms), row weights ``wts``, weighted features ``Xw``, weighted
    residuals ``r`` and their Gram matrix ``G``."""
    X, y = np.asarray(features, np.float64), np.asarray(latency_ms, np.float64)
    if len(y) != len(X) or len(y) == 0:
        raise PnagError(f"measurements: {len(y)} latencies for {len(X)} networks; allowed: one per network, >= 1")
    if not np.all(np.isfinite(y)) or not np.all(y > 0):
        raise PnagError(f"measurements: {y.tolist()!r}; allowed: finite latencies > 0 ms")
    base = X @ prior.mean
    if not np.all(base > 0):
        raise PnagError("training devices: their mean model prices a measured network at <= 0 ms; allowed: tables "
                        "of positive latencies")
    s = float(np.exp(np.mean(np.log(y / base))))  # the target's speed relative to the prior mean
    yt = y / s
    wts = 1.0 / yt  # relative noise: each row's error counts as a fraction of its latency
    Xw, r = X * wts[:, None], (yt - base) * wts
    G = Xw @ prior.cov @ Xw.T + prior.sigma ** 2 * np.eye(len(y))
    return s, base, wts, Xw, r, G


def adapted_weights(prior: DevicePrior, features: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
    """Posterior-mean weights ``w (p,)`` (ms) of the target from its measured ``latency_ms (K,)`` at
    ``features (K, p)``: ``features_of(x) @ w`` is its predicted latency (ms)."""
    s, _, _, Xw, r, G = _posterior(prior, features, latency_ms)
    theta = prior.mean + prior.cov @ Xw.T @ np.linalg.solve(G, r)
    return s * theta


def fit_device(prior: DevicePrior, features: np.ndarray, latency_ms: np.ndarray,
               sigmas: Sequence[float] = SIGMAS) -> tuple[np.ndarray, float]:
    """:func:`adapted_weights` with the relative noise ``sigma`` chosen from the measurements: of ``sigmas``, the one
    whose model predicts the measured networks best when each is left out (the least median
    ``|log(predicted / measured)|`` of :func:`loo_latency`; the smallest on a tie). Returns the weights (ms) and the
    ``sigma`` chosen (the prior's own with a single measurement)."""
    X, y = np.asarray(features, np.float64), np.asarray(latency_ms, np.float64)
    if len(y) < 2:
        return adapted_weights(prior, X, y), prior.sigma
    floor = FLOOR_FRACTION * float(np.min(y))
    errors = [float(np.median(np.abs(np.log(loo_ratios(replace(prior, sigma=float(s)), X, y, floor))))) for s in sigmas]
    sigma = float(sigmas[int(np.argmin(errors))])
    return adapted_weights(replace(prior, sigma=sigma), X, y), sigma


def loo_latency(prior: DevicePrior, features: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
    """Each measured network's latency (ms) as :func:`adapted_weights` fitted to the others predicts it, with
    the target's relative speed held at its value over all of them (the closed form of a Gaussian process's
    leave-one-out mean: one solve, not one per network)."""
    s, base, wts, _, r, G = _posterior(prior, features, latency_ms)
    Ginv = np.linalg.inv(G)
    r_loo = r - (Ginv @ r) / np.diag(Ginv)
    return s * (base + r_loo / wts)


def loo_ratios(prior: DevicePrior, features: np.ndarray, latency_ms: np.ndarray, floor_ms: float) -> np.ndarray:
    """``predicted / measured`` of each measured network, predicted by :func:`loo_latency` (never below
    ``floor_ms``)."""
    y = np.asarray(latency_ms, np.float64)
    return np.maximum(loo_latency(prior, features, y), floor_ms) / y


__all__ = ["LatencyFeatures", "DevicePrior", "device_weights", "device_prior", "choose_samples", "choose_networks",
           "adapted_weights", "fit_device", "loo_latency", "loo_ratios", "draw_pool", "DELTA", "ALPHA", "SIGMA",
           "SIGMAS", "RIDGE", "POOL", "FLOOR_FRACTION"]
