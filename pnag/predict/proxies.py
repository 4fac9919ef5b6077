"""Training-free accuracy proxies: scores that rank architectures without training or data.

Every score is "higher predicts more accurate". Proxies on the real network (the static
:class:`pnag.nn.MobileNetV3` with freshly initialised weights) use seeded random inputs:

* ``madds`` / ``params``: the analytic cost (:func:`pnag.nn.cost.arch_cost`), counts.
* ``synflow`` (Tanaka et al. 2020; as a NAS proxy, Abdelfattah et al. 2021): weights replaced by
  their absolute values, an all-ones input, score = sum |w * dR/dw| with R the summed output.
  Computed in float64 with batch norm in eval mode at its initial statistics (so batch norm is an
  identity, as synflow assumes a network without it).
* ``gradnorm`` (Abdelfattah et al. 2021): sum over weights of ||dL/dw||_2 for a cross-entropy loss
  on one random batch with random labels.
* ``zico`` (Li et al. 2023): per layer log(sum |mean_b g| / std_b g) over ``n_batches`` random
  batches, summed over layers with a non-zero gradient spread.

Choices for speed (ranking, not accuracy, is the goal): batch ``batch_size`` (default 8) at
``resolution`` (default 96 px) instead of 224 px, ``n_batches`` = 2 for ZiCo, weights initialised
from ``seed`` (the global torch RNG is left untouched), on ``device`` (CPU by default; inputs are
drawn on the CPU so scores agree across devices up to floating-point order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import PnagError, allowed
from ..space.mbv3 import MBV3Arch

PROXIES = ("madds", "params", "synflow", "gradnorm", "zico")
NETWORK_PROXIES = ("synflow", "gradnorm", "zico")


@dataclass(frozen=True)
class ProxyConfig:
    """Inputs of the network proxies: ``batch_size`` images of ``resolution`` px (square), ``n_batches``
    batches for ZiCo, ``n_classes`` random-label classes."""

    batch_size: int = 8
    resolution: int = 96
    n_batches: int = 2
    n_classes: int = 1000
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("batch_size", "resolution", "n_batches", "n_classes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise PnagError(f"proxy {name}: {v!r} is not allowed; allowed: an integer >= 1")
        if self.n_batches < 2:
            raise PnagError(f"proxy n_batches: {self.n_batches} is not allowed; allowed: an integer >= 2 "
                            "(ZiCo needs a gradient spread)")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise PnagError(f"proxy device: {self.device!r} is not allowed; allowed: cpu, cuda or cuda:N")
        if self.resolution < 32:
            raise PnagError(f"proxy resolution: {self.resolution} px is not allowed; allowed: >= 32")


def check_proxy(name: str) -> str:
    if name not in PROXIES:
        raise PnagError(f"proxy: {name!r} is not known; allowed: {allowed(PROXIES)}")
    return name


def _as_mbv3(arch: Any) -> MBV3Arch:
    if not isinstance(arch, MBV3Arch):
        raise PnagError(f"proxy: architecture {arch!r} is not a MobileNetV3 (space "
                        f"{getattr(arch, 'space', type(arch).__name__)!r}); allowed: mbv3 architectures")
    return arch


def _network(arch: MBV3Arch, seed: int, cfg: ProxyConfig, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    from ..nn.mobilenetv3 import MobileNetV3

    with torch.random.fork_rng(devices=[]):  # weights from ``seed``; the global RNG is left as it was
        torch.manual_seed(seed)
        net = MobileNetV3(arch, n_classes=cfg.n_classes, dropout=0.0)
    return net.to(device=cfg.device, dtype=dtype)


def _inputs(seed: int, cfg: ProxyConfig, batch: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed * 1009 + batch)  # drawn on the CPU: same inputs on every device
    x = torch.randn(cfg.batch_size, 3, cfg.resolution, cfg.resolution, generator=g, dtype=dtype)
    y = torch.randint(0, cfg.n_classes, (cfg.batch_size,), generator=g)
    return x.to(cfg.device), y.to(cfg.device)


def _weights(net: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """Convolution and linear weights (the parameters the published proxies score)."""
    return [(n, p) for n, p in net.named_parameters() if p.dim() > 1]


def synflow(arch: MBV3Arch, seed: int = 0, cfg: ProxyConfig = ProxyConfig()) -> float:
    net = _network(arch, seed, cfg, torch.float64).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    x = torch.ones(1, 3, cfg.resolution, cfg.resolution, dtype=torch.float64, device=cfg.device)
    net.zero_grad()
    net(x).sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for _, p in _weights(net) if p.grad is not None)
    return math.log(total) if total > 0 else float("-inf")  # log: raw values span many decades


def gradnorm(arch: MBV3Arch, seed: int = 0, cfg: ProxyConfig = ProxyConfig()) -> float:
    net = _network(arch, seed, cfg).train()
    x, y = _inputs(seed, cfg, 0)
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    return float(sum(float(p.grad.norm()) for _, p in _weights(net) if p.grad is not None))


def zico(arch: MBV3Arch, seed: int = 0, cfg: ProxyConfig = ProxyConfig()) -> float:
    net = _network(arch, seed, cfg).train()
    grads: dict[str, list[torch.Tensor]] = {}
    for b in range(cfg.n_batches):
        x, y = _inputs(seed, cfg, b)
        net.zero_grad()
        F.cross_entropy(net(x), y).backward()
        for n, p in _weights(net):
            if p.grad is not None:
                grads.setdefault(n, []).append(p.grad.detach().reshape(-1).clone())
    score = 0.0
    for g in grads.values():
        g = torch.stack(g)  # (n_batches, numel)
        std = g.std(0)
        nz = std > 0
        if nz.any():
            s = float((g.mean(0).abs()[nz] / std[nz]).sum())
            if s > 0:
                score += math.log(s)
    return score


_NETWORK_FNS: dict[str, Callable[[MBV3Arch, int, ProxyConfig], float]] = {
    "synflow": synflow, "gradnorm": gradnorm, "zico": zico}


def proxy_score(name: str, arch: MBV3Arch, seed: int = 0, config: ProxyConfig | None = None) -> float:
    """One architecture's score under proxy ``name`` (higher predicts more accurate)."""
    return float(proxy_scores(name, [arch], seed=seed, config=config)[0])


def proxy_scores(name: str, archs: Sequence[MBV3Arch], seed: int = 0, config: ProxyConfig | None = None,
                 progress: bool | None = None) -> np.ndarray:
    """Scores (float64, ``len(archs)``) of proxy ``name`` (one of :data:`PROXIES`); deterministic in ``seed``.

    ``madds`` / ``params`` are counts; network proxies follow the module docstring. ``progress``
    shows a bar on stderr (default: when stderr is a terminal and there are many archs).
    """
    check_proxy(name)
    cfg = config or ProxyConfig()
    archs = [_as_mbv3(a) for a in archs]
    if name in ("madds", "params"):
        from ..nn.cost import arch_cost

        return np.array([getattr(arch_cost(a), name) for a in archs], dtype=np.float64)
    fn = _NETWORK_FNS[name]
    import sys

    from tqdm import tqdm

    show = sys.stderr.isatty() and len(archs) > 20 if progress is None else progress
    out = np.empty(len(archs), dtype=np.float64)
    for i, a in enumerate(tqdm(archs, desc=f"proxy {name}", disable=not show, file=sys.stderr)):
        out[i] = fn(a, seed, cfg)
    return out


__all__ = ["PROXIES", "NETWORK_PROXIES", "ProxyConfig", "proxy_score", "proxy_scores", "synflow", "gradnorm",
           "zico", "check_proxy"]
