"""Vectorised pricing of MobileNetV3 architectures from a per-layer latency table.

At one width and resolution every layer slot of the once-for-all space has a fixed shape (its
input width, stride and feature-map size depend only on the slot's unit and position), so a
per-layer table collapses into

* a constant: stem, first block, final expand and head, and
* ``slot_ms[slot, expand_index, kernel_index]``, 20 x 3 x 3 values,

and the latency of a batch of decision-index vectors is one gather and one masked sum, in numpy
or torch, with no Python loop over architectures. The slot shapes come from
:func:`pnag.nn.mobilenetv3.layer_specs` (nothing here re-derives a shape).

A table that lacks an entry gets NaN in that cell; pricing an architecture that uses it raises a
:class:`pnag.errors.DataError` naming the missing key.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from ..errors import DataError
from ..nn.mobilenetv3 import layer_specs
from ..space.mbv3 import DEPTHS, EXPANDS, KERNELS, MAX_DEPTH, N_SLOTS, N_UNITS, MBV3Arch, MBV3Space

KeysOf = Callable[[dict], Sequence[str]]
"""Maps one layer spec (from ``layer_specs``) to the table keys that price it (summed; may be empty)."""


def _positions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    names = MBV3Space().decision_names
    depth = [names.index(f"unit{u}.depth") for u in range(N_UNITS)]
    exp = [names.index(f"unit{s // MAX_DEPTH}.layer{s % MAX_DEPTH}.expand") for s in range(N_SLOTS)]
    ker = [names.index(f"unit{s // MAX_DEPTH}.layer{s % MAX_DEPTH}.kernel") for s in range(N_SLOTS)]
    return np.array(depth), np.array(exp), np.array(ker)


class SlotTable:
    """A per-layer table reduced to ``fixed_ms`` + ``slot_ms[20, 3, 3]`` at one width and resolution.

    Args:
        width, resolution: the network variant priced.
        keys_of: layer spec -> table keys (see :data:`KeysOf`).
        lookup: table key -> latency in ms (missing keys give NaN and are remembered by name).
        name: the table's name, for error messages.
        coverage: a sentence saying what the table covers, for error messages.
    """

    def __init__(self, width: float, resolution: int, keys_of: KeysOf, lookup: Mapping[str, float],
                 name: str = "table", coverage: str = ""):
        self.width, self.resolution, self.name, self.coverage = width, resolution, name, coverage
        self._depth_pos, self._exp_pos, self._ker_pos = _positions()
        self.slot_ms = np.full((N_SLOTS, len(EXPANDS), len(KERNELS)), np.nan)
        self.slot_keys: list[list[list[tuple[str, ...]]]] = [[[()] * len(KERNELS) for _ in EXPANDS]
                                                              for _ in range(N_SLOTS)]
        self.fixed_keys: tuple[str, ...] = ()
        self.fixed_ms = 0.0
        self._lookup = lookup
        self._fixed_by_kind: dict[str, tuple[str, ...]] = {}

        def price(keys: Sequence[str]) -> float:
            vals = [lookup.get(k) for k in keys]
            return float("nan") if any(v is None for v in vals) else float(sum(vals))

        for ei, e in enumerate(EXPANDS):
            for ki, k in enumerate(KERNELS):
                arch = MBV3Arch((MAX_DEPTH,) * N_UNITS, (k,) * N_SLOTS, (e,) * N_SLOTS, width, resolution)
                fixed: list[str] = []
                for spec in layer_specs(arch):
                    keys = tuple(keys_of(spec))
                    if spec["kind"] == "mbconv":
                        s = spec["unit"] * MAX_DEPTH + spec["layer"]
                        self.slot_keys[s][ei][ki] = keys
                        self.slot_ms[s, ei, ki] = price(keys)
                    else:
                        fixed.extend(keys)
                        self._fixed_by_kind[spec["kind"]] = keys
                self.fixed_keys = tuple(fixed)  # the same for every (e, k)
        self.fixed_ms = price(self.fixed_keys)
        self._missing = {k for k in self.all_keys() if k not in lookup}
        self._torch: dict[str, tuple[torch.Tensor, ...]] = {}

    # -- introspection ---------------------------------------------------------------------------
    def all_keys(self) -> set[str]:
        """Every table key an architecture at this width and resolution can use."""
        keys = set(self.fixed_keys)
        for s in self.slot_keys:
            for row in s:
                for ks in row:
                    keys.update(ks)
        return keys

    @property
    def complete(self) -> bool:
        """True when the table prices every architecture at this width and resolution."""
        return not self._missing

    def missing_keys(self) -> list[str]:
        """The table keys an architecture at this width and resolution can use but the table lacks:
        the fixed layers' (stem first) and then the slots', in network order."""
        order = list(self.fixed_keys) + [k for s in self.slot_keys for row in s for ks in row for k in ks]
        return [k for k in dict.fromkeys(order) if k in self._missing]

    def keys_for(self, arch: MBV3Arch) -> list[tuple[str, str, float]]:
        """``(layer, key, ms)`` for every table entry ``arch`` uses, in network order (NaN if missing)."""
        rows = []
        for spec in layer_specs(arch):
            label = spec["kind"] if spec["kind"] != "mbconv" else f"unit{spec['unit']}.layer{spec['layer']}"
            if spec["kind"] == "mbconv":
                s = spec["unit"] * MAX_DEPTH + spec["layer"]
                keys = self.slot_keys[s][EXPANDS.index(spec["expand"])][KERNELS.index(spec["kernel"])]
            else:
                keys = self._fixed_by_kind[spec["kind"]]
            for k in keys:
                rows.append((label, k, float("nan") if k in self._missing else float(self._lookup[k])))
        return rows

    # -- pricing ---------------------------------------------------------------------------------
    def sum_indices(self, idx: np.ndarray) -> np.ndarray:
        """Summed table latency (ms, float64 ``(B,)``) of decision-index vectors ``idx (B, 45)``."""
        idx = np.asarray(idx, dtype=np.int64)
        if idx.ndim == 1:
            idx = idx[None]
        depth = np.asarray(DEPTHS)[idx[:, self._depth_pos]]  # (B, 5)
        active = (np.arange(MAX_DEPTH)[None, None, :] < depth[:, :, None]).reshape(len(idx), N_SLOTS)
        vals = self.slot_ms[np.arange(N_SLOTS)[None, :], idx[:, self._exp_pos], idx[:, self._ker_pos]]
        out = self.fixed_ms + np.where(active, vals, 0.0).sum(axis=1)
        if self._missing and np.isnan(out).any():
            self._raise_missing(idx[int(np.flatnonzero(np.isnan(out))[0])])
        return out

    def sum_indices_torch(self, idx: torch.Tensor) -> torch.Tensor:
        """Torch version of :meth:`sum_indices`: long ``(B, 45)`` -> float32 ``(B,)`` on ``idx.device``."""
        dev = str(idx.device)
        if dev not in self._torch:
            self._torch[dev] = (torch.as_tensor(self.slot_ms, dtype=torch.float32, device=idx.device),) + tuple(
                torch.as_tensor(p, device=idx.device) for p in (self._depth_pos, self._exp_pos, self._ker_pos))
        table, dpos, epos, kpos = self._torch[dev]
        fixed = float(self.fixed_ms)
        depth = torch.as_tensor(DEPTHS, device=idx.device)[idx[:, dpos]]
        active = (torch.arange(MAX_DEPTH, device=idx.device)[None, None, :] < depth[:, :, None]).reshape(-1, N_SLOTS)
        vals = table[torch.arange(N_SLOTS, device=idx.device)[None, :], idx[:, epos], idx[:, kpos]]
        out = fixed + torch.where(active, vals, torch.zeros((), device=idx.device)).sum(dim=1)
        if self._missing:  # only tables with holes pay for the check (a device sync)
            bad = torch.isnan(out)
            if bool(bad.any()):
                self._raise_missing(idx[int(torch.nonzero(bad)[0, 0])].cpu().numpy())
        return out

    def _raise_missing(self, idx_row: np.ndarray) -> None:
        arch = MBV3Space(self.width, self.resolution).from_indices(idx_row)
        keys = [k for _, k, v in self.keys_for(arch) if np.isnan(v)]
        raise DataError(
            f"{self.name}: no entry {keys[0]!r} needed by arch {arch.to_legacy()} (width {self.width}, "
            f"resolution {self.resolution}); {self.coverage or 'the table does not cover this layer'}"
        )


def indices_of(archs: Iterable[MBV3Arch]) -> np.ndarray:
    """Decision-index matrix ``(B, 45)`` of MobileNetV3 architectures."""
    space = MBV3Space()
    rows = [space.to_indices(a) for a in archs]
    return np.stack(rows) if rows else np.zeros((0, 45), dtype=np.int64)
