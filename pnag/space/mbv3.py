"""The once-for-all MobileNetV3 search space (``ofa_mbv3_d234_e346_k357``): its decisions, encodings
and sampling (:class:`MBV3Space`).

The architecture value, its checks and text forms are :mod:`pnag.space.mbv3_arch`, re-exported here
(``from pnag.space.mbv3 import MBV3Arch, parse_arch, check_width, ...`` keeps working).

The input resolution can be a searched decision too (``MBV3Space(resolutions=(160, ..., 224))``: one
more decision after the 45 structural ones); a space with one resolution keeps it fixed.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..errors import ArchError, allowed
from .base import SearchSpace
from .mbv3_arch import (DEFAULT_RESOLUTION, DEFAULT_RESOLUTIONS, DEFAULT_WIDTH, DEPTHS, ENC_RESOLUTIONS, EXPANDS,
                        KERNELS, MAX_DEPTH, N_SLOTS, N_UNITS, RESOLUTION_RANGE, WIDTHS, MBV3Arch, check_resolution,
                        check_resolutions, check_width, parse_arch, parse_dict_literal, parse_legacy, parse_ofa_dict)


# -- the space -----------------------------------------------------------------------------------
def _decision_layout() -> tuple[tuple[tuple, ...], tuple[str, ...]]:
    choices, names = [], []
    for u in range(N_UNITS):
        choices.append(DEPTHS)
        names.append(f"unit{u}.depth")
        for i in range(MAX_DEPTH):
            choices += [EXPANDS, KERNELS]
            names += [f"unit{u}.layer{i}.expand", f"unit{u}.layer{i}.kernel"]
    return tuple(choices), tuple(names)


_CHOICES, _NAMES = _decision_layout()
_T = len(_CHOICES)  # 45 decisions: per unit a depth, then per layer an expand ratio and a kernel
_DEPTH_POS = torch.tensor([u * 9 for u in range(N_UNITS)])
_EXPAND_POS = torch.tensor([u * 9 + 1 + 2 * i for u in range(N_UNITS) for i in range(MAX_DEPTH)])
_KERNEL_POS = _EXPAND_POS + 1


class MBV3Space(SearchSpace[MBV3Arch]):
    """The once-for-all MobileNetV3 space at one width, at one input resolution or searching several.

    Decisions: per unit a depth, then per layer an expand ratio and a kernel (45); with more than one
    of ``resolutions``, a last decision picks the input resolution (46).

    Encodings: ``"pnag"`` (120-d: 20 kernel one-hots then 20 expand one-hots, zero in unused slots;
    plus a one-hot over ``resolutions`` when the resolution is searched) or ``"ofa"`` (128-d: those 120
    plus a resolution one-hot over 112, 128, ..., 224).
    """

    name = "mbv3"
    activity_controls: frozenset[int] | None = frozenset(int(p) for p in _DEPTH_POS)  # the units' depths

    def __init__(self, width: float = DEFAULT_WIDTH, resolution: int = DEFAULT_RESOLUTION, encoding: str = "pnag",
                 resolutions: Sequence[int] | None = None):
        self.width = check_width(width)
        self.resolutions = check_resolutions(resolutions) if resolutions is not None else (check_resolution(resolution),)
        # the default for text forms that carry no resolution: the given one where searched, else the largest
        self.resolution = check_resolution(resolution) if resolutions is None or check_resolution(resolution) in \
            self.resolutions else self.resolutions[-1]
        if encoding not in ("pnag", "ofa"):
            raise ArchError(f"encoding: {encoding!r} is not known; allowed: pnag or ofa")
        bad = [r for r in self.resolutions if r not in ENC_RESOLUTIONS]
        if encoding == "ofa" and bad:
            raise ArchError(f"resolution: {bad[0]} has no slot in the 128-d encoding; allowed: {allowed(ENC_RESOLUTIONS)}")
        self.encoding = encoding
        self.searches_resolution = len(self.resolutions) > 1
        self.encoding_size = 128 if encoding == "ofa" else 120 + (len(self.resolutions) if self.searches_resolution else 0)
        self._choices = _CHOICES + ((self.resolutions,) if self.searches_resolution else ())
        self._names = _NAMES + (("resolution",) if self.searches_resolution else ())

    def __repr__(self) -> str:
        res = f"resolutions={self.resolutions}" if self.searches_resolution else f"resolution={self.resolution}"
        return f"MBV3Space(width={self.width}, {res}, encoding={self.encoding!r})"

    # text
    def parse(self, text: str) -> MBV3Arch:
        """Any text form; at a fixed resolution the space's own, where searched the text's (``r``) when it
        says one (it must be one of the space's), else the default resolution."""
        if not self.searches_resolution:
            return parse_arch(text, width=self.width, resolution=self.resolution)
        s = text.strip() if isinstance(text, str) else text
        arch = parse_arch(s, width=self.width,
                          resolution=None if isinstance(s, str) and s.startswith("{") else self.resolution)
        return self._check_res(arch)

    def format(self, arch: MBV3Arch) -> str:
        """The legacy string at a fixed resolution; the once-for-all dict (JSON, with ``r``) where the
        resolution is searched, so that the text names it."""
        if self.searches_resolution:
            return json.dumps(arch.to_ofa_dict(), separators=(", ", ": "))
        return arch.to_legacy()

    def _check_res(self, arch: MBV3Arch) -> MBV3Arch:
        if arch.resolution not in self.resolutions:
            raise ArchError(f"arch resolution: {arch.resolution} is not one of the space's; allowed: "
                            f"{allowed(self.resolutions)}")
        return arch

    def validate(self, arch: Any) -> MBV3Arch:
        if isinstance(arch, MBV3Arch):
            return arch
        if isinstance(arch, Mapping):
            return parse_ofa_dict(arch, width=self.width)
        raise ArchError(f"arch: {arch!r} is not a MobileNetV3 architecture; allowed: MBV3Arch, legacy string or OFA dict")

    # vectors
    def encode(self, arch: MBV3Arch) -> np.ndarray:
        if self.searches_resolution and self.encoding == "pnag":
            return self.encode_many([arch])[0]
        return encode(arch, self.encoding)

    def encode_many(self, archs):
        if len(archs) == 0:
            return np.zeros((0, self.encoding_size), dtype=np.float32)
        idx = torch.as_tensor(np.stack([self.to_indices(a, strict=False) for a in archs]))
        out = self.encode_indices(idx).numpy()
        if self.encoding == "ofa":
            res = np.array([a.resolution for a in archs])
            out[:, 120:] = 0.0
            out[np.arange(len(archs)), 120 + _res_index(res)] = 1.0
        return out

    # decisions
    @property
    def decision_choices(self):
        return self._choices

    @property
    def decision_names(self):
        return self._names

    def to_indices(self, arch: MBV3Arch, strict: bool = True) -> np.ndarray:
        """Decision indices of ``arch``; ``strict`` refuses a resolution the space does not search."""
        out = np.zeros(len(self._choices), dtype=np.int64)
        for u in range(N_UNITS):
            out[u * 9] = DEPTHS.index(arch.depths[u])
            for i in range(arch.depths[u]):
                s = u * MAX_DEPTH + i
                out[u * 9 + 1 + 2 * i] = EXPANDS.index(arch.expands[s])
                out[u * 9 + 2 + 2 * i] = KERNELS.index(arch.kernels[s])
        if self.searches_resolution:
            if arch.resolution in self.resolutions:
                out[_T] = self.resolutions.index(arch.resolution)
            elif strict:
                self._check_res(arch)
        return out

    def from_indices(self, idx) -> MBV3Arch:
        idx = [int(x) for x in idx]
        T = len(self._choices)
        if len(idx) != T:
            raise ArchError(f"decision indices: got {len(idx)}; allowed: exactly {T}")
        for t, (x, ch) in enumerate(zip(idx, self._choices)):
            if not 0 <= x < len(ch):
                raise ArchError(f"decision {self._names[t]}: index {x} is out of range; allowed: 0..{len(ch) - 1}")
        depths, ks, es = [], [0] * N_SLOTS, [0] * N_SLOTS
        for u in range(N_UNITS):
            d = DEPTHS[idx[u * 9]]
            depths.append(d)
            for i in range(d):
                s = u * MAX_DEPTH + i
                es[s] = EXPANDS[idx[u * 9 + 1 + 2 * i]]
                ks[s] = KERNELS[idx[u * 9 + 2 + 2 * i]]
        res = self.resolutions[idx[_T]] if self.searches_resolution else self.resolution
        return MBV3Arch(tuple(depths), tuple(ks), tuple(es), self.width, res)

    def resolution_of(self, idx: torch.Tensor) -> torch.Tensor:
        """Input resolution (pixels) of each row of ``idx (B, T)``."""
        if not self.searches_resolution:
            return torch.full((idx.shape[0],), self.resolution, dtype=torch.long, device=idx.device)
        return torch.as_tensor(self.resolutions, device=idx.device)[idx[:, _T]]

    def active_mask(self, idx: torch.Tensor) -> torch.Tensor:
        """Decisions of layers beyond their unit's depth are inactive. Causal: whether decision ``t``
        is active depends on earlier decisions only (a unit's depth precedes its layers)."""
        depth = torch.as_tensor(DEPTHS, device=idx.device)[idx[:, _DEPTH_POS.to(idx.device)]]  # (B, 5)
        layer = torch.arange(MAX_DEPTH, device=idx.device)
        used = layer[None, None, :] < depth[:, :, None]  # (B, 5, 4)
        mask = torch.ones_like(idx, dtype=torch.bool)
        slot_used = used.reshape(idx.shape[0], N_SLOTS)
        mask[:, _EXPAND_POS.to(idx.device)] = slot_used
        mask[:, _KERNEL_POS.to(idx.device)] = slot_used
        return mask

    def encode_indices(self, idx: torch.Tensor) -> torch.Tensor:
        B = idx.shape[0]
        dev = idx.device
        mask = self.active_mask(idx)
        slot_used = mask[:, _EXPAND_POS.to(dev)].float()  # (B, 20)
        k = torch.nn.functional.one_hot(idx[:, _KERNEL_POS.to(dev)], 3).float() * slot_used[..., None]
        e = torch.nn.functional.one_hot(idx[:, _EXPAND_POS.to(dev)], 3).float() * slot_used[..., None]
        parts = [k.reshape(B, 60), e.reshape(B, 60)]
        if self.encoding == "ofa":
            r = torch.zeros(B, 8, device=dev)
            slot = (self.resolution_of(idx) - 112) // 16
            r[torch.arange(B, device=dev), slot] = 1.0
            parts.append(r)
        elif self.searches_resolution:
            parts.append(torch.nn.functional.one_hot(idx[:, _T], len(self.resolutions)).float())
        return torch.cat(parts, dim=1)


def _res_index(res: np.ndarray) -> np.ndarray:
    bad = [int(r) for r in np.atleast_1d(res) if int(r) not in ENC_RESOLUTIONS]
    if bad:
        raise ArchError(f"resolution: {bad[0]} has no slot in the 128-d encoding; allowed: {allowed(ENC_RESOLUTIONS)}")
    return (np.asarray(res) - 112) // 16


def encode(arch: MBV3Arch, encoding: str = "pnag") -> np.ndarray:
    """One architecture as a float32 vector: ``"pnag"`` 120-d or ``"ofa"`` 128-d (see MBV3Space)."""
    v = np.zeros(128 if encoding == "ofa" else 120, dtype=np.float32)
    for s in range(N_SLOTS):
        if arch.kernels[s]:
            v[3 * s + KERNELS.index(arch.kernels[s])] = 1.0
            v[60 + 3 * s + EXPANDS.index(arch.expands[s])] = 1.0
    if encoding == "ofa":
        v[120 + int(_res_index(np.array([arch.resolution]))[0])] = 1.0
    elif encoding != "pnag":
        raise ArchError(f"encoding: {encoding!r} is not known; allowed: pnag or ofa")
    return v


def decode(vec: Sequence[float], width: float = DEFAULT_WIDTH, resolution: int | None = None) -> MBV3Arch:
    """Inverse of :func:`encode` (120-d or 128-d one-hot vector)."""
    v = np.asarray(vec, dtype=np.float32).ravel()
    if v.size not in (120, 128):
        raise ArchError(f"encoding: got a vector of length {v.size}; allowed: 120 or 128")
    ks, es, depths = [0] * N_SLOTS, [0] * N_SLOTS, []
    for s in range(N_SLOTS):
        kh, eh = v[3 * s: 3 * s + 3], v[60 + 3 * s: 63 + 3 * s]
        if kh.sum() > 0:
            ks[s] = KERNELS[int(kh.argmax())]
            es[s] = EXPANDS[int(eh.argmax())]
    for u in range(N_UNITS):
        depths.append(sum(1 for i in range(MAX_DEPTH) if ks[u * MAX_DEPTH + i]))
    if resolution is None:
        resolution = ENC_RESOLUTIONS[int(v[120:].argmax())] if v.size == 128 else DEFAULT_RESOLUTION
    return MBV3Arch(tuple(depths), tuple(ks), tuple(es), width, resolution)


__all__ = ["MBV3Space", "encode", "decode",
           # re-exported from pnag.space.mbv3_arch
           "N_UNITS", "MAX_DEPTH", "N_SLOTS", "DEPTHS", "KERNELS", "EXPANDS", "WIDTHS", "RESOLUTION_RANGE",
           "ENC_RESOLUTIONS", "DEFAULT_WIDTH", "DEFAULT_RESOLUTION", "DEFAULT_RESOLUTIONS", "check_width",
           "check_resolution", "check_resolutions", "MBV3Arch", "parse_legacy", "parse_ofa_dict", "parse_dict_literal",
           "parse_arch"]
