"""How good a measured table is: predicted vs measured end-to-end latency of random architectures."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import PnagError
from ..nn.mobilenetv3 import MobileNetV3
from ..space.mbv3 import MBV3Space
from .backends import get_backend
from .lut import LUT, NETWORK_PROTOCOL, _no_progress
from .measure import MeasureProtocol, measure_module


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


def validate_lut(lut: LUT, samples: int = 50, seed: int = 1, protocol: MeasureProtocol | None = None,
                 progress: bool | None = None, rounds: int = 5) -> dict:
    """Measure ``samples`` random architectures (drawn with ``seed``) end to end with the table's own
    backend, threads, batch, width and resolution (and, unless ``protocol`` is given, the protocol
    its calibration networks were timed with), and compare with the table's predictions.

    The networks are measured in ``rounds`` interleaved rounds (every network once per round, each
    time for ``1/rounds`` of the protocol's minimum time) and each network's latency is the median of
    its round medians. A slow spell of the machine (another tenant, a frequency drop) then touches
    one round of many networks instead of every measurement of a few: on this project's shared VM,
    back-to-back measurement put a separate cluster of networks 20-60 % above the table while the
    rest sat on it.

    Returns a dict with ``n``, ``median_abs_error_pct``, ``max_abs_error_pct``, ``mean_abs_error_pct``
    (% of measured), ``kendall_tau``, ``spearman_rho``, the same errors without the correction
    (``uncorrected``), the table's settings, and ``rows`` (arch, predicted_ms, measured_ms, iqr_ms).
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise PnagError(f"samples: {samples!r} is not allowed; allowed: an integer >= 2")
    be = get_backend(lut.backend)
    if protocol is None:
        stored = lut.data.get("network_protocol")
        protocol = MeasureProtocol(**stored) if stored else NETWORK_PROTOCOL
    archs = MBV3Space(lut.width, lut.resolution).sample(samples, seed=seed)
    predicted = lut.predict_many(archs)
    raw = lut.table_sum_ms(archs)
    from tqdm import tqdm

    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 1:
        raise PnagError(f"rounds: {rounds!r} is not allowed; allowed: an integer >= 1")
    per_round = dataclasses.replace(protocol, runs=max(1, protocol.runs // rounds),
                                    min_time_s=protocol.min_time_s / rounds)
    nets = [MobileNetV3(a) for a in archs]
    shape = (lut.batch, 3, lut.resolution, lut.resolution)
    medians = np.zeros((rounds, len(nets)))
    bar = tqdm(total=rounds * len(nets), desc=f"validate {lut.backend}", unit="net", disable=_no_progress(progress),
               leave=False)
    for r in range(rounds):
        for i, net in enumerate(nets):
            medians[r, i] = measure_module(net, shape, be, lut.threads, per_round, lut.resolution).median_ms
            bar.update(1)
    bar.close()
    measured = np.median(medians, axis=0).tolist()
    iqr = (np.percentile(medians, 75, axis=0) - np.percentile(medians, 25, axis=0)).tolist()
    out = error_metrics(predicted, measured)
    out["uncorrected"] = error_metrics(raw, measured)
    out.update(backend=lut.backend, threads=lut.threads, batch=lut.batch, width=lut.width,
               resolution=lut.resolution, seed=seed, rounds=rounds, correction={"a": lut.correction[0], "b": lut.correction[1]})
    out["rows"] = [{"arch": a.to_legacy(), "predicted_ms": float(p), "measured_ms": float(m), "iqr_ms": float(q)}
                   for a, p, m, q in zip(archs, predicted, measured, iqr)]
    return out
