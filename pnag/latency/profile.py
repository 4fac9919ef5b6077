"""Profiling a latency lookup table on this machine (:func:`profile_lut`), and this machine's own cached
table (:func:`local_lut`). What a table holds and how it predicts: :mod:`pnag.latency.lut`.

Rounds. Every entry and every calibration network is timed in each of ``rounds`` (default 10)
interleaved rounds, and its value is the median of its round medians, so that a slow spell of the
machine (on a shared VM: seconds long, 20-60 % slower) touches one round of many values rather
than all the timing of a few.

Files. Profiling writes the file atomically every few seconds (and on Ctrl-C); a re-run with the same
output file and settings resumes and measures only what is missing (per entry and round). One
profiler per file (:func:`pnag._io.exclusive_writer`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .._io import exclusive_writer, write_json_atomic
from ..errors import PnagError
from ..nn.mobilenetv3 import MobileNetV3
from ..space.mbv3 import DEFAULT_RESOLUTION, check_resolution, check_resolutions, check_width
from .backends import Backend, get_backend
from .base import cache_dir
from .lut import (FORMAT, LUT, VERSION, calibration_archs, check_table, entry_module, fit_correction, lut_entries,
                  read_table)
from .measure import MeasureProtocol, check_batch, check_threads, environment, runner_pool, time_runs

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
            data = check_table(read_table(out_path), str(out_path))
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
        entry_round = per_round(protocol, rounds)
        network_round = per_round(network_protocol, rounds)
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


def per_round(protocol: MeasureProtocol, rounds: int) -> MeasureProtocol:
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
        data = read_table(path)
        if isinstance(data, dict) and data.get("complete"):
            return LUT(check_table(data, str(path)), path, resolution)
    report = profile_lut("torch", threads, width, None, path, protocol=protocol, progress=progress,
                         network_protocol=protocol, rounds=LOCAL_ROUNDS, calibration=LOCAL_CALIBRATION, resolutions=res)
    return LUT(report.lut.data, path, resolution)


__all__ = ["DEFAULT_PROTOCOL", "NETWORK_PROTOCOL", "DEFAULT_ROUNDS", "DEFAULT_CALIBRATION", "CORRECTION_NOTE",
           "ProfileReport", "profile_lut", "per_round", "LOCAL_ROUNDS", "LOCAL_CALIBRATION", "local_lut"]
