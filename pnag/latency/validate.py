"""How good a measured table is: predicted vs measured end-to-end latency of random architectures."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._progress import shows
from ..errors import PnagError
from ..nn.mobilenetv3 import MobileNetV3
from ..space.mbv3 import N_UNITS, MBV3Arch, MBV3Space, parse_arch
from .backends import get_backend
from .lut import LUT
from .profile import DEFAULT_ROUNDS, NETWORK_PROTOCOL, per_round
from .measure import MeasureProtocol, runner_pool, time_runs


def error_metrics(predicted_ms: Any, measured_ms: Any) -> dict:
    """Agreement of predictions with measurements: absolute percentage errors (% of measured) and
    Kendall's tau (rank agreement, -1..1)."""
    from scipy.stats import kendalltau, spearmanr

    p, m = np.asarray(predicted_ms, dtype=np.float64), np.asarray(measured_ms, dtype=np.float64)
    err = np.abs(p - m) / m * 100.0
    tau = float(kendalltau(p, m).statistic) if len(p) > 1 else float("nan")
    rho = float(spearmanr(p, m).statistic) if len(p) > 1 else float("nan")
    return {"n": int(len(p)), "median_abs_error_pct": float(np.median(err)), "mean_abs_error_pct": float(err.mean()),
            "max_abs_error_pct": float(err.max()), "kendall_tau": tau, "spearman_rho": rho}


# Validation measures each network for this many times the rounds the table was profiled in (each
# round the table's per-round share of its network protocol): measured on this project's 2-core VM,
# the validation's own noise, not the table, set the Kendall tau (tau against the table rose with
# every added round up to 10 and had not levelled off; one-off timings of 2026-12-02, in the git history
# of BENCHMARKS.md, commit 38e584d).
VALIDATION_ROUND_FACTOR = 2


def split_half(round_medians: np.ndarray) -> dict:
    """Agreement of a measurement with itself: Kendall's tau between the medians of its odd and its
    even rounds (``round_medians``: ``(rounds, n)`` ms) and the median absolute difference of the
    two (% of their mean). None for fewer than two rounds or networks."""
    from scipy.stats import kendalltau

    m = np.asarray(round_medians, dtype=np.float64)
    if m.shape[0] < 2 or m.shape[1] < 2:
        return {"split_half_tau": None, "split_half_diff_pct": None}
    a, b = np.median(m[0::2], axis=0), np.median(m[1::2], axis=0)
    return {"split_half_tau": float(kendalltau(a, b).statistic),
            "split_half_diff_pct": float(np.median(np.abs(a - b) / ((a + b) / 2)) * 100.0)}


# The reference network timed between the networks of a validation (see time_networks_in_rounds):
# a short look at the machine's speed, warmed up as each network's timing is, then at least 3 passes
# and 50 ms. With 1 warm-up pass right after another network (then 3 passes, or 50 ms), a 4 ms
# onnxruntime x2 reference read cold, spread 27-57 % and dividing by it added that noise (tau
# against the table 0.918 -> 0.605); warmed up, 6.9 % (0.930 -> 0.940). Measured on this project's VM
# (the git history of BENCHMARKS.md, commit 3a5b62e).
REFERENCE_PROTOCOL = MeasureProtocol(warmup=NETWORK_PROTOCOL.warmup, runs=3, min_time_s=0.05)


def reference_arch(width: float, resolution: int) -> MBV3Arch:
    """The network a validation times between the others to follow the machine's speed: the middle
    of the space (depth 3, kernel 5, expand 4 in every unit)."""
    return MBV3Arch((3,) * N_UNITS, (5, 5, 5, 0) * N_UNITS, (4, 4, 4, 0) * N_UNITS, width, resolution)


def speed_factors(probe_ms: np.ndarray) -> np.ndarray:
    """How slow the machine ran around each timing, from the reference network timed before the
    first network of each round and after every network: ``probe_ms (rounds, n + 1)`` (ms, in time
    order) -> ``(rounds, n)``, the mean of the reference's reading just before and just after
    network ``i`` divided by the median of all its readings (1.0: the validation's typical speed;
    2.0: the machine ran at half speed while network ``i`` was timed)."""
    p = np.asarray(probe_ms, dtype=np.float64)
    return (p[:, :-1] + p[:, 1:]) / 2.0 / float(np.median(p))


def time_networks_in_rounds(lut: LUT, archs: list, protocol: MeasureProtocol | None, rounds: int,
                            progress: bool | None = None,
                            reference: MBV3Arch | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Time the whole networks of ``archs`` (each at its own resolution) with ``lut``'s backend,
    threads and batch in ``rounds`` interleaved rounds: every network once per round, each time for the table's
    per-round share of ``protocol`` (``1 / the table's rounds`` of its passes and time, the full
    warm-up; None: the protocol the table's calibration networks were timed with), so that more
    rounds mean more measurement.

    With a ``reference`` architecture, the reference network is also timed briefly
    (:data:`REFERENCE_PROTOCOL`) before each round's first network and after every network.
    Returns ``(round medians (rounds, len(archs)), reference readings (rounds, len(archs) + 1) or
    None)``, both in ms and unscaled (:func:`speed_factors` turns the readings into each timing's
    slowdown)."""
    from tqdm import tqdm

    be = get_backend(lut.backend)
    if protocol is None:
        stored = lut.data.get("network_protocol")
        protocol = MeasureProtocol(**stored) if stored else NETWORK_PROTOCOL
    one_round = per_round(protocol, int(lut.data.get("rounds", DEFAULT_ROUNDS)))
    nets = [MobileNetV3(a) for a in archs]
    shapes = [(lut.batch, 3, a.resolution, a.resolution) for a in archs]
    medians = np.zeros((rounds, len(nets)))
    probes = None if reference is None else np.zeros((rounds, len(nets) + 1))
    bar = tqdm(total=rounds * len(nets), desc=f"validate {lut.backend}", unit="net", disable=not shows(progress),
               leave=False)
    with runner_pool(be, lut.threads) as runner:
        probe = None if reference is None else runner("reference", lambda: MobileNetV3(reference),
                                                      (lut.batch, 3, reference.resolution, reference.resolution))
        for r in range(rounds):
            if probe is not None:
                probes[r, 0] = float(np.median(time_runs(probe, REFERENCE_PROTOCOL)))
            for i, net in enumerate(nets):
                medians[r, i] = float(np.median(time_runs(runner(i, lambda net=net: net, shapes[i]), one_round)))
                if probe is not None:
                    probes[r, i + 1] = float(np.median(time_runs(probe, REFERENCE_PROTOCOL)))
                bar.update(1)
    bar.close()
    return medians, probes


def validate_lut(lut: LUT, samples: int = 50, seed: int = 1, protocol: MeasureProtocol | None = None,
                 progress: bool | None = None, rounds: int | None = None, reference: bool = True) -> dict:
    """Measure ``samples`` random architectures (drawn with ``seed``) end to end with the table's own
    backend, threads, batch, width and resolution (and, unless ``protocol`` is given, the protocol
    its calibration networks were timed with), and compare with the table's predictions.

    A table over several resolutions is validated across them: the architectures are drawn from the
    space that searches its resolutions (each with a resolution drawn among them, priced with that
    resolution's correction), all of them make the overall figures, and ``by_resolution`` gives the
    errors and tau of each resolution's share. The reference network runs at the table's largest
    resolution; the drift networks are its first resolution's smallest and largest.

    The networks are measured in ``rounds`` interleaved rounds (default: :data:`VALIDATION_ROUND_FACTOR`
    times the table's own; every network once per round, each time for the table's per-round share
    of the protocol) and each network's latency is the median of its round medians. A slow spell of
    the machine (another tenant, a frequency drop) then touches one round of many networks instead
    of every measurement of a few: on this project's shared VM, back-to-back measurement put a separate cluster of
    networks 20-60 % above the table while the rest sat on it.

    Reference (default on). The machine's speed moves in spells longer than one timing and shorter
    than a round: on this project's VM a network's runs within one timing varied by 4 % (CV) and its
    round medians by 14 %, one round running 50 % slow throughout. So a reference network (the
    middle of the space, :func:`reference_arch`) is timed briefly before each round and after
    every network, and each round median is divided by the reference's slowdown around it
    (:func:`speed_factors`): the latencies are those of the machine at its typical speed during
    the validation. Measured on that VM (git history of BENCHMARKS.md, commit c3f57fd): in one
    validation round IQR 22.5 -> 10.8 %, split-half tau 0.30 -> 0.69, tau against the table 0.67 ->
    0.82; in another tau 0.76 -> 0.79; beside a job of ours on the other core (faster contention) tau
    0.92 -> 0.90. The reference is
    read with a network's warm-up (:data:`REFERENCE_PROTOCOL`): read cold, it divided noise in. With
    it, 50 networks took 6.5-8 minutes to validate on that VM's Intel host.
    ``reference`` reports the reference (arch, median ms, ``spread_pct``: the interquartile range
    of its readings, % of their median: how much the machine's speed moved) and ``unreferenced``
    the errors, tau and split half of the same timings without the division.

    Drift. The table's first two calibration networks (the smallest and the largest of the space)
    are measured again in the same rounds. ``drift_pct`` is the median of their change since
    profiling (% of the value then): how much faster (< 0) or slower (> 0) the machine runs now
    than when the table was made. It is reported, never used to correct the predictions; beside the
    errors, ``drift_adjusted`` gives them once more for predictions scaled by ``1 + drift_pct / 100``
    (how well the table describes the machine as fast as it runs now; the rank agreement is the same).

    Split half. ``split_half_tau`` is Kendall's tau between the medians of the odd and of the even
    rounds over the sampled architectures, ``split_half_diff_pct`` the median absolute difference
    between the two (% of their mean): how well the measurement agrees with itself on this machine
    now. Each half holds half the measurement, so even a perfect table would show a tau only
    somewhat above it: where it is low, the machine is too noisy to judge the table (measure more
    rounds, or on a quieter machine). None with one round.

    Returns a dict with ``n``, ``median_abs_error_pct``, ``max_abs_error_pct``, ``mean_abs_error_pct``
    (% of measured), ``kendall_tau``, ``spearman_rho``, the same errors without the correction
    (``uncorrected``), ``drift_pct`` (None for a table without two calibration networks) and
    ``drift`` (per calibration network re-measured), ``drift_adjusted`` (None without drift),
    ``split_half_tau`` and ``split_half_diff_pct``, ``reference`` and ``unreferenced`` (None with
    ``reference=False``), ``by_resolution`` (resolution -> errors; None for a one-resolution table),
    the table's settings (``resolutions``, ``corrections`` among them), and ``rows`` (arch,
    resolution, predicted_ms, measured_ms, iqr_ms).
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise PnagError(f"samples: {samples!r} is not allowed; allowed: an integer >= 2")
    if rounds is None:
        rounds = VALIDATION_ROUND_FACTOR * int(lut.data.get("rounds", DEFAULT_ROUNDS))
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise PnagError(f"rounds: {rounds!r} is not allowed; allowed: an integer >= 1")
    get_backend(lut.backend)  # an unknown or absent backend fails before any work
    several = len(lut.resolutions) > 1
    space = MBV3Space(lut.width, resolutions=lut.resolutions) if several else MBV3Space(lut.width, lut.resolution)
    archs = space.sample(samples, seed=seed)
    predicted = lut.predict_many(archs)
    raw = lut.table_sum_ms(archs)
    drift_nets = [c for c in lut.calibration[:2] if "measured_ms" in c]  # re-measured to report the drift
    timed = list(archs) + [parse_arch(c["arch"], width=lut.width, resolution=c["resolution"]) for c in drift_nets]
    ref = reference_arch(lut.width, lut.resolutions[-1]) if reference else None
    plain, probes = time_networks_in_rounds(lut, timed, protocol, rounds, progress, reference=ref)
    medians = plain if probes is None else plain / speed_factors(probes)
    ref_info = unreferenced = None
    if probes is not None:
        p25, p50, p75 = np.percentile(probes, [25, 50, 75])
        ref_info = {"arch": ref.to_legacy(), "median_ms": float(p50), "spread_pct": float((p75 - p25) / p50 * 100)}
        unreferenced = dict(error_metrics(predicted, np.median(plain, axis=0)[:samples]),
                            **split_half(plain[:, :samples]))
    all_measured = np.median(medians, axis=0)
    measured = all_measured[:samples].tolist()
    iqr = (np.percentile(medians, 75, axis=0) - np.percentile(medians, 25, axis=0))[:samples].tolist()
    out = error_metrics(predicted, measured)
    out["uncorrected"] = error_metrics(raw, measured)
    drift = [{"arch": c["arch"], "profiled_ms": float(c["measured_ms"]), "now_ms": float(m),
              "change_pct": float((m / c["measured_ms"] - 1.0) * 100.0)}
             for c, m in zip(drift_nets, all_measured[samples:])]
    out["drift"] = drift
    out["reference"], out["unreferenced"] = ref_info, unreferenced
    out.update(split_half(medians[:, :samples]))
    out["drift_pct"] = float(np.median([d["change_pct"] for d in drift])) if len(drift) == 2 else None
    out["drift_adjusted"] = None if out["drift_pct"] is None else \
        error_metrics(np.asarray(predicted) * (1.0 + out["drift_pct"] / 100.0), measured)
    at = np.array([a.resolution for a in archs])
    out["by_resolution"] = {str(r): error_metrics(np.asarray(predicted)[at == r], np.asarray(measured)[at == r])
                            for r in lut.resolutions if (at == r).any()} if several else None
    out.update(backend=lut.backend, threads=lut.threads, batch=lut.batch, width=lut.width,
               resolution=lut.resolution, resolutions=list(lut.resolutions), seed=seed, rounds=rounds,
               correction={"a": lut.correction[0], "b": lut.correction[1]},
               corrections={str(r): dict(zip("ab", ab)) for r, ab in lut.corrections.items()})
    out["rows"] = [{"arch": a.to_legacy(), "resolution": a.resolution, "predicted_ms": float(p),
                    "measured_ms": float(m), "iqr_ms": float(q)} for a, p, m, q in zip(archs, predicted, measured, iqr)]
    return out
