"""Latency lookup tables measured on this machine: their entries, file format and prediction
(profiling them, saving and resuming: :mod:`pnag.latency.profile`).

Entries. At one width and resolution the once-for-all MobileNetV3 space has 94 distinct layer
configurations: the stem, the first block, for each of the 5 units the first layer (stride of the
unit, previous unit's width in) and the later layers (stride 1, the unit's width in), each x 3
kernels x 3 expand ratios (5 x 2 x 9 = 90), the final expand layer with the global pooling, and
the head (feature mix + classifier). Each is built from the network's own building blocks and
timed in isolation at its real input shape (:func:`lut_entries` lists them with their shapes, from
:func:`pnag.nn.mobilenetv3.layer_specs`).

Prediction. The latency of an architecture is ``a * sum + b`` where ``sum`` is the sum of its
layers' entries and ``a, b`` are fitted (Theil-Sen, robust) on whole-network measurements of
``calibration`` architectures (default 20: the smallest and the largest of the space and 18 drawn
with the seed), timed in the same interleaved rounds as the entries. The correction absorbs what a sum of isolated
layers misses: the per-call overhead each isolated measurement pays once (framework dispatch,
input set-up), which the whole network pays once in total (``b`` < 0, ``a`` near 1), and cache
effects between consecutive layers (a layer in a network finds its input in cache).

Resolutions. One table may cover several input resolutions at one width (``resolutions``): the
entry keys name their feature-map sizes, so the entries of all resolutions sit in one mapping (an
entry two resolutions share, the head after the global pooling, is timed once), and the
calibration networks and the correction are per resolution (``calibration`` networks at each,
the same structures, and one ``(a, b)`` fitted on each resolution's own networks: the per-call
overhead ``b`` is about the same, but the cache effects that ``a`` absorbs depend on the feature-map
sizes). All resolutions are timed in the same interleaved rounds.

Files are JSON and carry the environment and the protocol (profiled in interleaved rounds, resumable:
:mod:`pnag.latency.profile`). Format version 2 (``resolutions``, a list,
and ``corrections``, resolution -> ``{a, b, n}``) is written; version 1 (one ``resolution`` and
one ``correction``), as pnag wrote before, is read (and resumed) as a version-2 table of one resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._io import read_json_file
from ..errors import DataError, PnagError, allowed, check_number
from ..nn.mobilenetv3 import Classifier, MBBlock, MBConvLayer, conv_bn_act, layer_specs
from ..space.mbv3 import (EXPANDS, KERNELS, MAX_DEPTH, N_SLOTS, N_UNITS, MBV3Arch, MBV3Space,
                          check_resolution, check_resolutions, check_width)
from .measure import check_batch, check_threads
from .base import TableSource, hwc as _hwc

FORMAT = "pnag-latency-lut"
VERSION = 2
READ_VERSIONS = (1, 2)  # version 1: one resolution (pnag before multi-resolution tables)


def lut_keys(spec: dict) -> tuple[str, ...]:
    """Keys of pnag's measured tables for one layer spec (the classifier is part of the head)."""
    kind, s, cin, cout = spec["kind"], spec["input_size"], spec["in_channels"], spec["out_channels"]
    if kind == "stem":
        return (f"stem-input:{_hwc(s, cin)}-output:{_hwc(spec['output_size'], cout)}-kernel:3-stride:2",)
    if kind in ("first_block", "mbconv"):
        return (f"mbconv-input:{_hwc(s, cin)}-output:{_hwc(spec['output_size'], cout)}-expand:{spec['expand']}"
                f"-mid:{spec['mid_channels']}-kernel:{spec['kernel']}-stride:{spec['stride']}"
                f"-idskip:{int(spec['shortcut'])}-se:{int(spec['se'])}-act:{spec['act']}",)
    if kind == "final_expand":
        return (f"final_expand-input:{_hwc(s, cin)}-output:{_hwc(1, cout)}",)
    if kind == "feature_mix":
        return (f"head-input:{_hwc(1, cin)}-output:1000",)
    if kind == "classifier":
        return ()
    raise ValueError(f"layer kind {kind!r}")


def lut_entries(width: float, resolution: int) -> dict[str, dict]:
    """Every distinct table entry of the space at ``width`` and ``resolution``: key -> layer spec
    (one representative spec with the entry's real shapes), in network order."""
    width, resolution = check_width(width), check_resolution(resolution)
    out: dict[str, dict] = {}
    for e in EXPANDS:
        for k in KERNELS:
            arch = MBV3Arch((MAX_DEPTH,) * N_UNITS, (k,) * N_SLOTS, (e,) * N_SLOTS, width, resolution)
            for spec in layer_specs(arch):
                for key in lut_keys(spec):
                    out.setdefault(key, spec)
    order = {"stem": 0, "first_block": 1, "mbconv": 2, "final_expand": 3, "feature_mix": 4}
    return dict(sorted(out.items(), key=lambda kv: (order[kv[1]["kind"]], kv[1].get("unit", 0),
                                                    kv[1].get("layer", 0) > 0, kv[0])))


class _GlobalPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


def entry_module(spec: dict) -> tuple[nn.Module, tuple[int, int, int]]:
    """The module timed for a table entry and its input shape ``(C, H, W)``, built from the same
    blocks as :class:`pnag.nn.MobileNetV3` (and with the same forward computation)."""
    kind, s, cin, cout = spec["kind"], spec["input_size"], spec["in_channels"], spec["out_channels"]
    if kind == "stem":
        return conv_bn_act(cin, cout, 3, 2, act="h_swish"), (cin, s, s)
    if kind in ("first_block", "mbconv"):
        conv = MBConvLayer(cin, cout, spec["kernel"], spec["stride"], spec["expand"], spec["act"], spec["se"])
        return MBBlock(conv), (cin, s, s)
    if kind == "final_expand":
        return nn.Sequential(conv_bn_act(cin, cout, 1, act="h_swish"), _GlobalPool()), (cin, s, s)
    if kind == "feature_mix":
        mix = conv_bn_act(cin, cout, 1, act="h_swish", bn=False)
        return nn.Sequential(mix, nn.Flatten(1), Classifier(cout, 1000, 0.1)), (cin, 1, 1)
    raise ValueError(f"layer kind {kind!r} has no entry of its own")


def calibration_archs(width: float, resolution: int, n: int, seed: int) -> list[MBV3Arch]:
    """The archs whose whole-network latency fits the correction: the smallest and the largest of
    the space, then ``n - 2`` drawn with ``seed``."""
    if n < 2:
        raise PnagError(f"calibration: {n} is not allowed; allowed: an integer >= 2")
    lo = MBV3Arch((2,) * N_UNITS, (3, 3, 0, 0) * N_UNITS, (3, 3, 0, 0) * N_UNITS, width, resolution)
    hi = MBV3Arch((4,) * N_UNITS, (7,) * N_SLOTS, (6,) * N_SLOTS, width, resolution)
    return [lo, hi] + MBV3Space(width, resolution).sample(n - 2, seed=seed)


def fit_correction(sum_ms: Sequence[float], measured_ms: Sequence[float]) -> tuple[float, float]:
    """``(a, b)`` of ``measured = a * sum + b``, fitted robustly (Theil-Sen: the median of pairwise
    slopes, so one disturbed measurement cannot tilt the line); a pure ratio when the sums barely
    vary or the slope is not positive."""
    from scipy.stats import theilslopes

    x, y = np.asarray(sum_ms, dtype=np.float64), np.asarray(measured_ms, dtype=np.float64)
    if x.size >= 2 and np.ptp(x) > 1e-6 * max(abs(x).max(), 1e-12):
        a, b = theilslopes(y, x, method="joint")[:2]
        if a > 0:
            return float(a), float(b)
    return float(np.median(y / x)), 0.0


class LUT(TableSource):
    """A measured latency table (from :func:`pnag.latency.profile.profile_lut` / :func:`load_lut`).

    Attributes: ``backend``, ``threads``, ``batch``, ``width``, ``resolutions`` (the profiled ones),
    ``resolution`` (the default for text-form archs and :meth:`latency_from_indices`: the given one
    where profiled, else the largest), ``protocol`` (dict), ``env`` (dict), ``entries`` (key -> ms),
    ``calibration`` (list of dicts, each naming its ``resolution``), ``corrections`` (resolution ->
    (a, b)), ``correction`` (the one at ``resolution``), ``path``. ``data`` is the file's content as
    read (a version-1 table keeps its layout there).
    """

    def __init__(self, data: dict, path: str | Path | None = None, resolution: int | None = None):
        self.data, self.path = data, None if path is None else Path(path)
        where = str(path) if path else "LUT"
        cur = _upgraded(data)
        self.backend, self.threads, self.batch = cur["backend"], int(cur["threads"]), int(cur["batch"])
        self.protocol, self.env = dict(cur["protocol"]), dict(cur.get("env") or {})
        self.entries = {k: float(v["median_ms"]) for k, v in cur["entries"].items()}
        self.calibration = list(cur.get("calibration", {}).get("archs", []))
        w, res = check_width(cur["width"]), check_resolutions(cur["resolutions"], "resolutions")
        self.resolutions = res
        default = res[-1] if resolution is None or check_resolution(resolution) not in res else int(resolution)
        corrections = {int(r): (c["a"], c["b"]) for r, c in (cur.get("corrections") or {}).items()}
        said = f"resolution {res[0]}" if len(res) == 1 else f"resolutions {allowed(res)}"
        coverage = (f"{where} was profiled at width {cur['width']} and {said} only "
                    f"({self.backend}, {self.threads} thread(s)); profile another table for other settings")
        super().__init__(f"lut:{where}", lut_keys, lambda ww, rr: self.entries if ww == w and rr in res else {},
                         w, default, coverage, corrections.get(default, (1.0, 0.0)),
                         device=self.env.get("device", ""), corrections=corrections)

    @property
    def complete(self) -> bool:
        return bool(self.data.get("complete"))

    def missing_keys(self) -> list[str]:
        """The entries some architecture at a profiled resolution needs but the table lacks."""
        return list(dict.fromkeys(k for r in self.resolutions for k in self.slot_table(self.width, r).missing_keys()))

    def predict_ms(self, arch: Any) -> float:
        """Predicted latency (ms) of one architecture: corrected sum of its layers' entries."""
        return self.latency_of(arch)

    def predict_many(self, archs: Sequence[Any]) -> np.ndarray:
        """Vectorised :meth:`predict_ms` (float64 array, ms)."""
        return self.latency_ms(archs)


def _upgraded(data: dict) -> dict:
    """A version-1 table (one ``resolution``, one ``correction``) in the current layout (a copy that
    shares the entries); a current one as it is."""
    if data.get("version") != 1:
        return data
    r, corr = data["resolution"], data.get("correction")
    cal = dict(data.get("calibration") or {})
    cal["archs"] = [dict(c, resolution=r) for c in cal.get("archs", []) if isinstance(c, dict)]
    out = {k: v for k, v in data.items() if k not in ("resolution", "correction")}
    out.update(version=VERSION, resolutions=[r], calibration=cal, corrections=None if corr is None else {str(r): corr})
    return out


def _check_field(value: Any, check, what: str, where: str) -> Any:
    try:
        if value is None or isinstance(value, (bool, str)):
            raise PnagError(f"{value!r} is a {type(value).__name__}")
        return check(value)
    except PnagError as exc:
        raise DataError(f"{where}: field {what!r}: {exc}") from None


def _check_correction(corr: Any, where: str) -> None:
    if not isinstance(corr, dict):
        raise DataError(f"{where} is a {type(corr).__name__}; allowed: an object with a and b")
    check_number(corr.get("a"), f"{where} a", positive=True)
    check_number(corr.get("b"), f"{where} b (ms)")


def check_table(data: Any, where: str) -> dict:
    """``data`` checked, in the current layout (a version-1 table converted, see :func:`_upgraded`)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"{where}: not a pnag latency table (format {FORMAT!r} expected)")
    version = data.get("version")
    if version not in READ_VERSIONS:
        raise DataError(f"{where}: table version {version!r}; allowed: {allowed(READ_VERSIONS)}")
    res_field = "resolution" if version == 1 else "resolutions"
    for field in ("width", res_field, "backend", "threads", "batch", "protocol", "entries"):
        if field not in data:
            raise DataError(f"{where}: missing field {field!r}")
    for field, check in (("width", check_width), (res_field, check_resolution if version == 1 else check_resolutions),
                         ("threads", check_threads), ("batch", check_batch)):
        _check_field(data[field], check, field, where)
    if not isinstance(data["entries"], dict):
        raise DataError(f"{where}: 'entries' is a {type(data['entries']).__name__}; allowed: an object "
                        "table key -> {\"median_ms\": ms, ...}")
    for key, v in data["entries"].items():
        if not isinstance(v, dict) or "median_ms" not in v:
            raise DataError(f"{where}: entry {key!r} has no median_ms")
        _check_times(v, ("median_ms",), f"{where}: entry {key!r}")
    cal = data.get("calibration") or {}
    archs = cal.get("archs", []) if isinstance(cal, dict) else None
    if not isinstance(archs, list) or not all(isinstance(c, dict) for c in archs):
        raise DataError(f"{where}: 'calibration' must be an object with a list 'archs' of objects")
    for i, c in enumerate(archs):
        _check_times(c, ("measured_ms", "sum_ms"), f"{where}: calibration arch {i}")
    if version == 1:
        if data.get("correction") is not None:
            _check_correction(data["correction"], f"{where}: correction")
        elif data.get("complete"):
            raise DataError(f"{where}: a complete table without 'correction'; allowed: an object with a and b")
        return _upgraded(data)
    res = check_resolutions(data["resolutions"])
    for i, c in enumerate(archs):
        if c.get("resolution") not in res:
            raise DataError(f"{where}: calibration arch {i} resolution {c.get('resolution')!r}; allowed: "
                            f"{allowed(res)} (the table's resolutions)")
    corrs = data.get("corrections")
    if corrs is not None or data.get("complete"):
        if not isinstance(corrs, dict) or sorted(corrs) != sorted(str(r) for r in res):
            raise DataError(f"{where}: 'corrections' is {corrs!r}; allowed: an object resolution -> {{a, b}} for "
                            f"each of the table's resolutions {allowed(res)}")
        for r, corr in corrs.items():
            _check_correction(corr, f"{where}: correction at resolution {r}")
    return data


def _check_times(rec: dict, fields: Sequence[str], where: str) -> None:
    """The times (ms) of one table record: ``fields`` where present, and every round median."""
    for f in fields:
        if f in rec:
            check_number(rec[f], f"{where} {f}", positive=True)
    rounds = rec.get("rounds_ms", [])
    if not isinstance(rounds, list):
        raise DataError(f"{where} rounds_ms: {rounds!r}; allowed: a list of times (ms)")
    for j, v in enumerate(rounds):
        check_number(v, f"{where} rounds_ms[{j}]", positive=True)


def read_table(path: Path) -> Any:
    """The JSON value of a table file (checked by :func:`check_table`); a DataError when it is not JSON."""
    return read_json_file(path, f"latency table {path}", "a table written by 'pnag latency profile'")


def load_lut(path: str | Path, resolution: int | None = None) -> LUT:
    """A table written by :func:`pnag.latency.profile.profile_lut` (either format version); an unfinished one is
    an error (re-run profile to resume). ``resolution``: the default for text-form archs and
    :meth:`LUT.latency_from_indices`, where the table covers it (else the table's largest)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"latency table {p}: no such file; create one with 'pnag latency profile -o {p}'")
    data = check_table(read_table(p), str(p))
    if not data.get("complete"):
        n = len(data["entries"])
        raise DataError(f"latency table {p}: profiling was interrupted ({n} entries saved); re-run "
                        "'pnag latency profile' with the same options and -o to finish it")
    lut = LUT(data, p, resolution)
    missing = lut.missing_keys()
    if missing:
        raise DataError(f"latency table {p}: marked complete but {len(missing)} of its entries are missing "
                        f"(e.g. {missing[0]!r}); allowed: a table written by 'pnag latency profile'")
    return lut


__all__ = ["FORMAT", "VERSION", "READ_VERSIONS", "LUT", "lut_keys", "lut_entries", "entry_module", "calibration_archs",
           "fit_correction", "load_lut", "read_table", "check_table"]
