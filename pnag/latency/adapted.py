"""The adapted latency model as a latency source (``adapted:FILE``) and its file.

File (JSON, written atomically)::

    {"format": "pnag-adapted-latency", "version": 1,
     "features": {"space": "nb201" | "mbv3", "width": 1.2 | null, "resolutions": [...] | null},
     "target": SPEC, "device": NAME, "from": [SPEC, ...], "samples": K, "seed": S,
     "selection": "max-variance", "hyper": {"delta": ..., "alpha": ..., "sigma": ..., "pool": ...},
     "measured": [{"arch": TEXT, "ms": ...}, ...], "verified": N,
     "weights_ms": [p numbers], "floor_ms": ..., "evaluation": {...} | null}

``measured`` are the networks of the target measured so far and their latency (ms): the K chosen
by ``pnag latency adapt``, then any that ``pnag generate --verify`` measured (``verified``: how many of
them; absent means 0); ``samples`` counts them all. ``hyper.sigma`` is the relative noise the last fit chose
(:func:`~pnag.latency.adapt.fit_device`). ``weights_ms`` the model: a network's latency is
``features(arch) . weights_ms`` (:class:`~pnag.latency.adapt.LatencyFeatures`), never below ``floor_ms`` (a
linear model can extrapolate below zero), and a measured network's is its measurement. Every field is
checked on reading; a file that fails is a :class:`~pnag.errors.DataError` naming the file, the field and
what is allowed.
"""

from __future__ import annotations

import math
import numbers
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .._io import read_json_file, write_json_atomic
from ..errors import DataError, PnagError, allowed
from .adapt import SPACES, LatencyFeatures
from .base import LatencySource

FORMAT = "pnag-adapted-latency"
VERSION = 1
SELECTIONS = ("max-variance",)
EXPECTED = "a file written by 'pnag latency adapt'"


def _keys(features: np.ndarray) -> list[bytes]:
    """Each network's features (a row of ``features (n, p)``) as a dictionary key (rounded to 1e-9; -0.0 made
    0.0), rounded in one call (a call per row took 5 % of a MobileNetV3 search's time)."""
    rows = np.round(np.atleast_2d(np.asarray(features, np.float64)), 9) + 0.0
    return [r.tobytes() for r in np.ascontiguousarray(rows)]


@lru_cache(maxsize=None)
def _projection(p: int) -> np.ndarray:
    """Fixed weights in [0, 1) (seed 0) that project a feature row on one number for the prefilter of
    :meth:`AdaptedSource._measured_row` (keying every row asked took a tenth of a MobileNetV3 search's time): rows
    whose keys (:func:`_keys`) are equal differ by at most 1e-9 in each feature, so their projections by less than
    ``p`` x 1e-9; the prefilter keys every row within twice that (and float rounding) of a measured one."""
    return np.random.default_rng(0).random(p)


class AdaptedSource(LatencySource):
    """Latency (ms) predicted by a model adapted to a device from K measurements (``pnag latency adapt``);
    a network that was measured is priced at its measurement.

    Attributes: ``features`` (:class:`LatencyFeatures`), ``weights_ms (p,)``, ``floor_ms``, ``data``
    (the file's fields), ``path`` (None for a record not read from a file), ``width`` / ``resolution`` /
    ``resolutions`` (MobileNetV3 models)."""

    kind = "predicted"

    def __init__(self, data: dict, path: str | Path | None = None):
        self.data = data
        self.features = LatencyFeatures(**data["features"])
        self.weights_ms = np.asarray(data["weights_ms"], dtype=np.float64)
        self.floor_ms = float(data["floor_ms"])
        self.space = self.features.space
        self.device = str(data["device"])
        self.path = None if path is None else Path(path)
        self.name = f"adapted:{path}" if path is not None else f"adapted:{self.device}"
        m = data["measured"]
        self.measured_ms = np.array([row["ms"] for row in m], dtype=np.float64)
        measured = self.features.of_archs([row["arch"] for row in m]) if m else np.zeros((0, self.features.size))
        self._measured_index = {k: i for i, k in enumerate(_keys(measured))}  # a network by its features
        # a prefilter: each measured network's features projected on fixed weights, sorted between -inf and inf (only
        # a query whose projection is near one of them can have its key, and only those are keyed: _measured_row)
        self._measured_proj = np.concatenate([[-np.inf], np.sort(measured @ _projection(measured.shape[1])), [np.inf]])
        if self.space == "mbv3":
            self.width, self.resolutions = self.features.width, self.features.resolutions
            self.resolution = self.resolutions[-1]
        self._torch: dict[str, torch.Tensor] = {}

    def _measured_row(self, features: np.ndarray) -> np.ndarray:
        """Per row of ``features`` (canonical: inactive layers do not enter them), the index of the measured network
        it is, -1 for none. (By the features themselves: a one-number key of them once priced a MobileNetV3 network
        at another's measurement, their keys 4.5e-8 apart, and the answer was 34 % over its budget.)"""
        out = np.full(len(features), -1, dtype=np.int64)
        if not self._measured_index or not len(features):
            return out
        f = np.asarray(features, np.float64)
        h, ref = f @ _projection(f.shape[1]), self._measured_proj
        pos = np.searchsorted(ref, h)  # in 1..len(ref) - 1: ref[pos - 1] < h <= ref[pos]
        gap = np.minimum(ref[pos] - h, h - ref[pos - 1])
        near = np.flatnonzero(gap <= 2e-9 * f.shape[1] + 1e-12 * np.abs(h))  # (_projection)
        if len(near):
            get = self._measured_index.get
            out[near] = [get(k, -1) for k in _keys(f[near])]
        return out

    def _price(self, features: np.ndarray) -> np.ndarray:
        out = np.maximum(features @ self.weights_ms, self.floor_ms)
        row = self._measured_row(features)
        return np.where(row >= 0, self.measured_ms[np.maximum(row, 0)], out) if len(self.measured_ms) else out

    def is_measured(self, archs: Sequence[Any]) -> np.ndarray:
        """Whether each architecture (value or text form) is one of the measured networks (bool ``(n,)``)."""
        return self._measured_row(self.features.of_archs(list(archs))) >= 0

    def latency_ms(self, archs: Sequence[Any]) -> np.ndarray:
        """Latency (ms, float64 ``(len(archs),)``) of architectures (values or text forms): predicted, or
        measured for a measured network."""
        return self._price(self.features.of_archs(list(archs)))

    def latency_from_indices(self, idx: torch.Tensor | np.ndarray, width: float | None = None,
                             resolution: Any = None):
        """Predicted latency (ms) of decision-index vectors ``(B, 6)`` (NAS-Bench-201) or ``(B, 45)``
        (MobileNetV3) at ``resolution``: a torch tensor gives float64 ``(B,)`` on its device, numpy gives numpy."""
        if width is not None and self.space == "mbv3" and abs(float(width) - self.width) > 1e-9:
            raise PnagError(f"width: {width}; allowed: {self.width} (the adapted model's)")
        if self.features.varies_resolution and resolution is None:
            resolution = self.resolution
        as_numpy = not isinstance(idx, torch.Tensor)
        t = torch.as_tensor(np.asarray(idx) if as_numpy else idx).long()
        if len(self.measured_ms):  # (priced on the CPU: a look-up of the measured networks)
            res = resolution.cpu() if isinstance(resolution, torch.Tensor) else resolution
            out = self._price(self.features.of_indices(t.cpu(), res).numpy())
            return out if as_numpy else torch.from_numpy(out).to(t.device)
        dev = str(t.device)
        if dev not in self._torch:
            self._torch[dev] = torch.as_tensor(self.weights_ms, dtype=torch.float64, device=t.device)
        out = torch.clamp(self.features.of_indices(t, resolution) @ self._torch[dev], min=self.floor_ms)
        return out.numpy() if as_numpy else out

    def covers(self, width: float, resolution: int) -> bool:
        """True when the model prices MobileNetV3 networks of ``width`` at ``resolution`` (pixels)."""
        return self.space == "mbv3" and abs(float(width) - self.width) < 1e-9 and int(resolution) in self.resolutions

    def refuse_uncovered(self, width: float, resolutions: Sequence[int], what: str = "--latency") -> None:
        """A PnagError naming ``what`` unless the model prices MobileNetV3 networks of ``width`` at every one
        of ``resolutions`` (pixels)."""
        for r in resolutions:
            if not self.covers(width, r):
                covered = "NAS-Bench-201 cells" if self.space == "nb201" else \
                    f"width {self.width} at resolutions {allowed(self.resolutions)}"
                raise PnagError(f"{what} {self.name}: the model does not price width {width} at resolution {r}; "
                                f"it prices {covered}")


# -- the file ----------------------------------------------------------------------------------------------
def save_adapted(path: str | Path, data: dict) -> None:
    """Write an adapted model (the fields of the module docstring) atomically, after checking it."""
    check_adapted_data(data, str(path))
    write_json_atomic(path, data)


def load_adapted(path: str | Path) -> AdaptedSource:
    """The adapted model in ``path`` as a latency source; a missing or malformed file is a DataError."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"adapted:{p}: no such file; allowed: {EXPECTED}")
    data = read_json_file(p, f"adapted:{p}", EXPECTED)
    return AdaptedSource(check_adapted_data(data, f"adapted:{p}"), p)


def _bad(where: str, field: str, value: Any, rule: str) -> DataError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:45] + "..."
    return DataError(f"{where}: field {field!r} is {shown}; allowed: {rule} ({EXPECTED})")


def _number(where: str, field: str, value: Any, positive: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and not value > 0):
        raise _bad(where, field, value, "a finite number" + (" > 0" if positive else ""))
    return float(value)


def _int(where: str, field: str, value: Any, low: int, high: int = 2**63 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(where, field, value, f"an integer in {low}..{high}")
    return value


def check_adapted_data(data: Any, where: str) -> dict:
    """``data`` when it is a valid adapted-model record; else a DataError naming ``where`` and the field."""
    if not isinstance(data, dict):
        raise DataError(f"{where}: a JSON {type(data).__name__}; allowed: a JSON object ({EXPECTED})")
    if data.get("format") != FORMAT:
        raise _bad(where, "format", data.get("format"), repr(FORMAT))
    if data.get("version") != VERSION:
        raise _bad(where, "version", data.get("version"), str(VERSION))
    need = ("features", "target", "device", "from", "samples", "seed", "selection", "hyper", "measured",
            "weights_ms", "floor_ms")
    missing = [k for k in need if k not in data]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}; allowed: {EXPECTED}")
    f = data["features"]
    if not isinstance(f, dict) or set(f) != {"space", "width", "resolutions"} or f.get("space") not in SPACES:
        raise _bad(where, "features", f, f"{{'space': {allowed(SPACES)}, 'width': ..., 'resolutions': ...}}")
    try:
        features = LatencyFeatures(**f)
    except PnagError as exc:
        raise _bad(where, "features", f, str(exc).split("allowed: ", 1)[-1]) from None
    if features.to_dict() != f:
        raise _bad(where, "features", f, f"as written by pnag ({features.to_dict()})")
    for key in ("target", "device", "selection"):
        if not isinstance(data[key], str) or not data[key]:
            raise _bad(where, key, data[key], "a non-empty string")
    if data["selection"] not in SELECTIONS:
        raise _bad(where, "selection", data["selection"], allowed(SELECTIONS))
    specs = data["from"]
    if not isinstance(specs, list) or not specs or not all(isinstance(s, str) and s for s in specs):
        raise _bad(where, "from", data["from"], "a non-empty list of latency source specs")
    k = _int(where, "samples", data["samples"], 2)
    _int(where, "seed", data["seed"], 0)
    if not isinstance(data["hyper"], dict):
        raise _bad(where, "hyper", data["hyper"], "an object of numbers")
    for name, v in data["hyper"].items():
        _number(where, f"hyper.{name}", v)
    m = data["measured"]
    if not isinstance(m, list) or len(m) != k:
        raise _bad(where, "measured", m, f"a list of {k} (samples) objects {{'arch': TEXT, 'ms': NUMBER}}")
    for i, row in enumerate(m):
        if not isinstance(row, dict) or set(row) != {"arch", "ms"} or not isinstance(row["arch"], str):
            raise _bad(where, f"measured[{i}]", row, "{'arch': TEXT, 'ms': NUMBER}")
        _number(where, f"measured[{i}].ms", row["ms"], positive=True)
        try:
            features.coerce(row["arch"])
        except PnagError as exc:
            raise _bad(where, f"measured[{i}].arch", row["arch"], f"an architecture the model prices ({exc})") from None
    w = data["weights_ms"]
    if not isinstance(w, list) or len(w) != features.size:
        raise _bad(where, "weights_ms", w if not isinstance(w, list) else f"a list of {len(w)}",
                   f"a list of {features.size} numbers (the features of {features.space})")
    for i, v in enumerate(w):
        _number(where, f"weights_ms[{i}]", v)
    _number(where, "floor_ms", data["floor_ms"], positive=True)
    if "verified" in data:
        _int(where, "verified", data["verified"], 0, k)
    ev = data.get("evaluation")
    if ev is not None and not isinstance(ev, dict):
        raise _bad(where, "evaluation", ev, "null or an object")
    return data


__all__ = ["AdaptedSource", "load_adapted", "save_adapted", "check_adapted_data", "FORMAT", "VERSION"]
