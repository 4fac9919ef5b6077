"""Any latency source as a vectorised function of decision indices, and NAS-Bench-201 values in the
order of the project's own enumeration."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


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


class VectorLatency:
    """Vectorised latency ``idx (B, T) -> ms (B,)`` (float64 tensor) of any latency source.

    For small enumerable spaces (NAS-Bench-201) prices every architecture once (with the source's own
    ``latency_from_indices`` where it has one) and indexes; otherwise uses ``latency_from_indices``, or
    falls back to pricing architecture by architecture.
    """

    def __init__(self, space, source: Any):
        self.space, self.source = space, source
        self._lookup: torch.Tensor | None = None
        self.exhaustive = False
        vec = getattr(source, "latency_from_indices", None)
        # a vectorised source of another space (a MobileNetV3 table) refuses what it cannot price when asked
        own_space = getattr(source, "space", None) in (None, getattr(space, "name", None))
        if _enumerable(space) and not getattr(space, "searches_resolution", False) and (vec is None or own_space):
            idx = _all_indices(space)
            self._lookup = torch.as_tensor(vec(idx) if vec is not None else self._by_arch(idx),
                                           dtype=torch.float64).reshape(-1)
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

    def all_latencies(self) -> torch.Tensor | None:
        """Latency (ms, float64) of every architecture in ``space.all_archs()`` order when the space was
        priced exhaustively, else None."""
        return self._lookup

    def min_latency(self) -> float | None:
        """The fastest architecture's latency (ms) when the space was priced exhaustively."""
        return float(self._lookup.min()) if self._lookup is not None else None


__all__ = ["VectorLatency", "NB201Lookup", "mixed_radix_codes"]
