"""Latency lookup tables measured on this machine: profile, save, resume, predict.

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

Rounds. Every entry and every calibration network is timed in each of ``rounds`` (default 10)
interleaved rounds, and its value is the median of its round medians, so that a slow spell of the
machine (on a shared VM: seconds long, 20-60 % slower) touches one round of many values rather
than all the timing of a few.

Resolutions. One table may cover several input resolutions at one width (``resolutions``): the
entry keys name their feature-map sizes, so the entries of all resolutions sit in one mapping (an
entry two resolutions share, the head after the global pooling, is timed once), and the
calibration networks and the correction are per resolution (``calibration`` networks at each,
the same structures, and one ``(a, b)`` fitted on each resolution's own networks: the per-call
overhead ``b`` is about the same, but the cache effects that ``a`` absorbs depend on the feature-map
sizes). All resolutions are timed in the same interleaved rounds.

Files are JSON and carry the environment and the protocol. Profiling writes the file atomically
every few seconds (and on Ctrl-C); a re-run with the same output file and settings resumes and
measures only what is missing (per entry and round). Format version 2 (``resolutions``, a list,
and ``corrections``, resolution -> ``{a, b, n}``) is written; version 1 (one ``resolution`` and
one ``correction``), as pnag wrote before, is read (and resumed) as a version-2 table of one resolution.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._io import exclusive_writer, read_json_file, write_json_atomic
from ..errors import DataError, PnagError, allowed, check_number
from ..nn.mobilenetv3 import Classifier, MBBlock, MBConvLayer, MobileNetV3, conv_bn_act, layer_specs
from ..space.mbv3 import (DEFAULT_RESOLUTION, EXPANDS, KERNELS, MAX_DEPTH, N_SLOTS, N_UNITS, MBV3Arch, MBV3Space,
                          check_resolution, check_resolutions, check_width)
from .backends import Backend, get_backend
from .measure import MeasureProtocol, check_batch, check_threads, environment, runner_pool, time_runs
from .base import TableSource, cache_dir, hwc as _hwc

FORMAT = "pnag-latency-lut"
VERSION = 2
READ_VERSIONS = (1, 2)  # version 1: one resolution (pnag before multi-resolution tables)
# A table entry is timed with a shorter protocol than a whole network: 94 entries must fit in a
# few minutes on a 2-core machine (see benchmarks/latency_lut.py for the figures).
DEFAULT_PROTOCOL = MeasureProtocol(warmup=5, runs=20, min_time_s=0.5)
# Whole networks (calibration here, and validation) get at least a second of timing each.
NETWORK_PROTOCOL = MeasureProtocol(warmup=5, runs=20, min_time_s=2.0)
# Profiling is done in interleaved rounds (see profile_lut); whole networks fit the correction.
DEFAULT_ROUNDS = 10
DEFAULT_CALIBRATION = 20
CORRECTION_NOTE = ("measured_ms = a * sum_ms + b, Theil-Sen fit over whole-network measurements of the "
                   "calibration archs; corrects per-layer isolation overhead (each isolated entry pays the "
                   "per-call dispatch/input cost once) and cache effects between consecutive layers")


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
    """A measured latency table (from :func:`profile_lut` / :func:`load_lut`).

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


def _check_lut_data(data: Any, where: str) -> dict:
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


def _read(path: Path) -> dict:
    return read_json_file(path, f"latency table {path}", "a table written by 'pnag latency profile'")


def load_lut(path: str | Path, resolution: int | None = None) -> LUT:
    """A table written by :func:`profile_lut` (either format version); an unfinished one is an error
    (re-run profile to resume). ``resolution``: the default for text-form archs and
    :meth:`LUT.latency_from_indices`, where the table covers it (else the table's largest)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"latency table {p}: no such file; create one with 'pnag latency profile -o {p}'")
    data = _check_lut_data(_read(p), str(p))
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


@dataclass(frozen=True)
class ProfileReport:
    """What a :func:`profile_lut` call did."""

    lut: LUT
    measured: int  # entries + calibration networks measured in this call
    reused: int  # ... found already saved in the file
    seconds: float  # wall time of this call


def profile_lut(backend: str | Backend = "torch", threads: int | None = None, width: float = 1.2,
                resolution: int | None = None, out_path: str | Path = "lut.json", batch: int = 1,
                protocol: MeasureProtocol | None = None, calibration: int = DEFAULT_CALIBRATION, seed: int = 0,
                progress: bool | None = None, save_every_s: float = 2.0,
                network_protocol: MeasureProtocol | None = None, rounds: int = DEFAULT_ROUNDS,
                resolutions: Sequence[int] | None = None) -> ProfileReport:
    """Measure every table entry of the space at ``width`` and ``resolution`` (pixels, default 224)
    or at each of ``resolutions`` (one table over several; give one of the two) on this machine,
    and ``calibration`` whole networks at each resolution, fit the correction per resolution, and
    write ``out_path`` (JSON). ``protocol`` times the entries (default :data:`DEFAULT_PROTOCOL`),
    ``network_protocol`` the whole networks (default :data:`NETWORK_PROTOCOL`).

    Interleaved: the work is done in ``rounds`` rounds, each of which times every entry and every
    calibration network once for ``1/rounds`` of its protocol (``runs // rounds`` passes at least,
    ``min_time_s / rounds`` seconds at least, the full warm-up); a value is the median of its round
    medians. A slow spell of the machine then touches one round of many values instead of all the
    timing of a few, and the entries and the networks that fit the correction see the same
    machine (measured back to back, a spell during the calibration networks tilted the correction).

    Resumable: the file is rewritten atomically at most every ``save_every_s`` seconds and when
    interrupted; a re-run with the same settings measures only what the file lacks (per entry and
    round). A file made with other settings is an error (pick another ``out_path``), and so is a
    second profiler on the same file while the first runs (:func:`pnag._io.exclusive_writer`).
    """
    be = backend if isinstance(backend, Backend) else get_backend(backend)
    threads, batch = check_threads(threads), check_batch(batch)
    width, res = check_width(width), _profiled_resolutions(resolution, resolutions)
    protocol = protocol or DEFAULT_PROTOCOL
    network_protocol = network_protocol or NETWORK_PROTOCOL
    if isinstance(save_every_s, bool) or not isinstance(save_every_s, (int, float)) or not save_every_s >= 0:
        raise PnagError(f"save_every_s: {save_every_s!r} is not allowed; allowed: seconds >= 0")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise PnagError(f"rounds: {rounds!r} is not allowed; allowed: an integer >= 1")
    if isinstance(calibration, bool) or not isinstance(calibration, (int, np.integer)) or calibration < 2:
        raise PnagError(f"calibration: {calibration!r} is not allowed; allowed: an integer >= 2")
    rounds = int(rounds)
    out_path = Path(out_path)
    header = {"format": FORMAT, "version": VERSION, "space": "mbv3", "width": width, "resolutions": list(res),
              "batch": batch, "backend": be.name, "threads": threads, "protocol": protocol.to_dict(),
              "network_protocol": network_protocol.to_dict(), "rounds": rounds}
    env = environment(be, threads, batch, res[0] if len(res) == 1 else None).to_dict()
    cal_archs = [a for r in res for a in calibration_archs(width, r, calibration, seed)]
    cal_head = {"n": calibration, "seed": seed}
    with exclusive_writer(out_path, "-o"):  # one profiler per file: two would duplicate the work
        if out_path.exists():
            data = _check_lut_data(_read(out_path), str(out_path))
            for field, want in list(header.items()) + [("calibration", cal_head)]:
                if field == "calibration":
                    have = {k: data.get("calibration", {}).get(k) for k in cal_head}
                else:
                    have = data.get(field, 1 if field == "rounds" else None)
                if have != want:
                    raise PnagError(f"-o {out_path}: the file was profiled with {field}={have!r}, this run asks "
                                    f"{field}={want!r}; allowed: the same settings (to resume) or another output file")
            old_cpu = (data.get("env") or {}).get("cpu_model")
            if old_cpu and old_cpu != env["cpu_model"]:
                raise PnagError(f"-o {out_path}: the file was profiled on {old_cpu!r}, this machine is "
                                f"{env['cpu_model']!r}; allowed: resume on the same machine or use another output file")
            if data.get("complete"):  # nothing to do: the file is left as it is
                return ProfileReport(LUT(data, out_path), 0, rounds * (len(data["entries"]) + len(cal_archs)), 0.0)
        else:
            data = dict(header, env=env, entries={}, calibration=dict(cal_head, archs=[]), corrections=None,
                        complete=False, profile_s=0.0)
        entries: dict[str, dict] = {}
        for r in res:  # keys name their feature-map sizes: an entry two resolutions share is timed once
            for key, spec in lut_entries(width, r).items():
                entries.setdefault(key, spec)
        saved: dict = data["entries"]
        cal_saved: list = data["calibration"]["archs"]
        for i in range(len(cal_saved), len(cal_archs)):  # every calibration network has its record from the start
            cal_saved.append({"arch": cal_archs[i].to_legacy(), "resolution": cal_archs[i].resolution, "rounds_ms": []})
        for key, rec in saved.items():  # a table from before rounds holds one value per record: its round 1
            rec.setdefault("rounds_ms", [rec["median_ms"]])
        for c in cal_saved:
            c.setdefault("rounds_ms", [c["measured_ms"]] if "measured_ms" in c else [])
        entry_round = _per_round(protocol, rounds)
        network_round = _per_round(network_protocol, rounds)
        # the jobs, in network order: (records, key, module factory, input shape, per-round protocol);
        # records[key] holds the job's round medians once it has one
        jobs = []
        for key, spec in entries.items():
            module, chw = entry_module(spec)
            jobs.append((saved, key, lambda module=module: module, (batch, *chw), entry_round))
        for i in range(len(cal_archs)):
            size = cal_archs[i].resolution
            jobs.append((cal_saved, i, lambda a=cal_archs[i]: MobileNetV3(a), (batch, 3, size, size), network_round))
        total = rounds * len(jobs)
        def done(records, key) -> int:
            return len(records[key]["rounds_ms"]) if (isinstance(records, list) or key in records) else 0

        reused = sum(min(rounds, done(records, key)) for records, key, *_ in jobs)
        measured = 0
        t_start = time.perf_counter()
        last_save = t_start
        prev_s = float(data.get("profile_s", 0.0))

        def save() -> None:
            data["profile_s"] = prev_s + time.perf_counter() - t_start
            write_json_atomic(out_path, data)

        from .._progress import Progress

        bar = Progress(total, f"profile {be.name} w{width} r{'/'.join(map(str, res))}", progress, initial=reused,
                       unit="timing")
        summary = ""
        try:
            with runner_pool(be, threads) as runner:
                for r in range(rounds):
                    for j, (records, key, make, shape, proto) in enumerate(jobs):
                        if done(records, key) > r:
                            continue
                        times = time_runs(runner(j, make, shape), proto)
                        if isinstance(records, dict) and key not in records:
                            records[key] = {"rounds_ms": []}
                        _add_round(records[key], float(np.median(times)), len(times))
                        measured += 1
                        bar.update(1)
                        if time.perf_counter() - last_save >= save_every_s:
                            save()
                            last_save = time.perf_counter()
            sums = LUT(dict(data, corrections=None), out_path).table_sum_ms(cal_archs)
            for c, s in zip(cal_saved, sums):
                c["sum_ms"] = float(s)
            data["corrections"] = {}
            for r in res:  # one fit per resolution, on that resolution's own networks
                mine = [c for c in cal_saved if c["resolution"] == r]
                a, b = fit_correction([c["sum_ms"] for c in mine], [c["measured_ms"] for c in mine])
                data["corrections"][str(r)] = {"a": a, "b": b, "n": len(mine)}
            data["correction_note"] = CORRECTION_NOTE
            data["complete"] = True
            summary = f"table {out_path}"
        finally:
            bar.close(summary)
            save()
        return ProfileReport(LUT(data, out_path), measured, reused, time.perf_counter() - t_start)


def _profiled_resolutions(resolution: int | None, resolutions: Sequence[int] | None) -> tuple[int, ...]:
    """The resolutions a table is profiled at: ``resolutions`` or ``(resolution,)`` (default 224)."""
    if resolutions is None:
        return (check_resolution(DEFAULT_RESOLUTION if resolution is None else resolution),)
    if resolution is not None:
        raise PnagError(f"resolution {resolution!r} and resolutions {resolutions!r}: give one; allowed: "
                        "resolution=R (one) or resolutions=[R1, R2, ...] (one table over several)")
    return check_resolutions(resolutions, "resolutions")


def _per_round(protocol: MeasureProtocol, rounds: int) -> MeasureProtocol:
    """One round's share of a protocol: the full warm-up, ``1/rounds`` of the timed passes and time."""
    return replace(protocol, runs=max(1, protocol.runs // rounds), min_time_s=protocol.min_time_s / rounds,
                   max_runs=max(1, protocol.max_runs // rounds, protocol.runs // rounds))


def _add_round(rec: dict, median_ms: float, runs: int) -> None:
    """Record one round's median (ms) and refresh the record's summary (median and IQR of its rounds)."""
    vals = rec.setdefault("rounds_ms", [])
    vals.append(float(median_ms))
    p25, med, p75 = np.percentile(vals, [25, 50, 75])
    rec["runs"] = int(rec.get("runs", 0)) + int(runs)
    rec["iqr_ms"] = float(p75 - p25)
    rec["measured_ms" if "arch" in rec else "median_ms"] = float(med)


def _no_progress(progress: bool | None) -> bool:
    """True when a bar for ``progress`` would not be shown (see :mod:`pnag._progress`)."""
    from .._progress import shows

    return not shows(progress)


LOCAL_ROUNDS, LOCAL_CALIBRATION = 5, 10


def local_lut(width: float = 1.2, resolution: int = 224, threads: int | None = None,
              progress: bool | None = None, protocol: MeasureProtocol | None = None,
              resolutions: Sequence[int] | None = None) -> LUT:
    """This machine's table (torch backend), profiled on first use and cached under the cache dir
    (``$PNAG_CACHE_DIR/latency/``); an interrupted first profile resumes next time. ``protocol``
    (entries and networks alike) defaults to the profiling defaults. Made with half the rounds and
    calibration networks of ``pnag latency profile`` (5 and 10: 80 s on a 2-core machine, against
    about 130 s), since it is made unasked, on the first run of ``pnag search``; profile a table
    with the defaults and pass it as ``lut:FILE`` where the latency figures matter.

    ``resolutions`` (pixels): one table over several input resolutions (each costs about as much
    as one table more; cached apart from the one-resolution tables); ``resolution`` is then the
    default for text-form archs where it is one of them."""
    threads = check_threads(threads)
    width, resolution = check_width(width), check_resolution(resolution)
    res = (resolution,) if resolutions is None else check_resolutions(resolutions, "resolutions")
    from .backends import cpu_model

    tag = hashlib.sha256(f"{cpu_model()}|{torch.__version__}".encode()).hexdigest()[:10]
    r_tag = "-".join(map(str, res))  # one resolution: the name the cache had before multi-resolution tables
    path = cache_dir() / "latency" / f"local-torch-t{threads}-w{width}-r{r_tag}-x{LOCAL_ROUNDS}-{tag}.json"
    if path.is_file():
        data = _read(path)
        if isinstance(data, dict) and data.get("complete"):
            return LUT(_check_lut_data(data, str(path)), path, resolution)
    report = profile_lut("torch", threads, width, None, path, protocol=protocol, progress=progress,
                         network_protocol=protocol, rounds=LOCAL_ROUNDS, calibration=LOCAL_CALIBRATION, resolutions=res)
    return LUT(report.lut.data, path, resolution)
