"""What the commands print about a run's answers: every accuracy and latency labelled with what it is.

An accuracy is ``measured`` (a published or looked-up measurement), ``predicted`` (a model's estimate:
the run's accuracy predictor, or the published once-for-all predictor used as the source), ``proxy`` (a
training-free proxy's score, computed) or ``predicted-proxy`` (the predictor's estimate of that score).
A latency is ``measured`` (each network timed whole: ``measure:``, NAS-Bench-201, whole-network tables),
``lut-estimate`` (the sum of a per-layer lookup table's entries, corrected) or ``predicted`` (the run's
latency predictor, ``--latency-samples``). Tables, CSV files, JSON and plots use the names below.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ACCURACY_KINDS = ("measured", "predicted", "proxy", "predicted-proxy")
LATENCY_KINDS = ("measured", "lut-estimate", "predicted")


def is_proxy(run) -> bool:
    """True when the run's "accuracy" is a training-free proxy's score, not a top-1 %."""
    return str(run.config.accuracy).startswith("proxy:")


def accuracy_kind(run, measured: bool) -> str:
    """What an accuracy value of ``run`` is (one of :data:`ACCURACY_KINDS`); ``measured``: the value
    comes from the run's table rather than its predictor (``Generation.measured``)."""
    spec = str(run.config.accuracy)
    if spec.startswith("proxy:"):
        return "proxy" if measured else "predicted-proxy"
    if spec == "ofa-predictor":  # the source is itself a predictor: even its table is predicted
        return "predicted"
    if spec.startswith("nb201-exact:"):  # the whole measured table is the model
        return "measured"
    return "measured" if measured else "predicted"


def latency_kind(run) -> str:
    """What the run's latencies are (one of :data:`LATENCY_KINDS`)."""
    from ..latency.base import TableSource

    if run.config.latency_samples:
        return "predicted"
    return "lut-estimate" if isinstance(run.lat_source.source, TableSource) else "measured"


def accuracy_column(run) -> str:
    """The header of the accuracy column: ``accuracy_%`` or, for a proxy, ``<proxy>_score``."""
    return f"{str(run.config.accuracy).split(':', 1)[1]}_score" if is_proxy(run) else "accuracy_%"


def answer_header(run) -> list[str]:
    return ["budget_ms", accuracy_column(run), "accuracy_is", "latency_ms", "latency_is", "madds_m", "resolution",
            "origin", "arch"]


def answer_rows(run, gens: Sequence) -> list[list[str]]:
    """One row of text per answer (``Generation``), in :func:`answer_header`'s order."""
    lat = latency_kind(run)
    return [[f"{g.budget:g}", f"{g.predicted_accuracy:.2f}", accuracy_kind(run, g.measured),
             f"{g.predicted_latency_ms:.3f}", lat, "" if g.madds_m is None else f"{g.madds_m:.1f}",
             "" if g.resolution is None else str(g.resolution), g.origin, g.arch] for g in gens]


def answer_json(run, g) -> dict[str, Any]:
    """One answer as JSON: the values with their units and what each is."""
    return {"budget_ms": g.budget, "accuracy": g.predicted_accuracy,
            "accuracy_unit": "score" if is_proxy(run) else "%", "accuracy_is": accuracy_kind(run, g.measured),
            "latency_ms": g.predicted_latency_ms, "latency_is": latency_kind(run), "madds_m": g.madds_m,
            "resolution": g.resolution, "origin": g.origin, "arch": g.arch, "device": g.device}


def write_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    """Write ``rows`` under ``header`` as CSV (stdlib ``csv``), atomically."""
    from .._io import atomic_open

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())
    return Path(path)


# -- the latency source, in words ------------------------------------------------------------------
def device_words(source) -> str:
    """The hardware and settings a latency source describes: for a table pnag profiled, the CPU model,
    backend, threads, batch and resolution; else the source's device."""
    env = getattr(source, "env", None)
    if env:
        threads = env.get("threads")
        return (f"{env.get('cpu_model') or env.get('device') or 'unknown CPU'}, {env.get('backend_version', '')}, "
                f"{threads} thread{'s' if threads != 1 else ''} of {env.get('cores', '?')} cores, "
                f"batch {env.get('batch', 1)}, {env.get('resolution', '?')} px")
    return str(getattr(source, "device", "") or "device not stated")


def table_noise_stats(source) -> dict[str, float]:
    """How much a table pnag profiled disagrees with itself, in %: ``entry`` and ``entry_p90``, the median
    and 90th percentile spread of its layer entries across the profiling rounds (IQR / median);
    ``network``, the same for its whole calibration networks; ``fit``, the median error of its
    correction on those networks. Empty for other sources."""
    data = getattr(source, "data", None)
    if not isinstance(data, dict) or "entries" not in data:
        return {}

    def spread(recs, key):
        return [100 * r["iqr_ms"] / r[key] for r in recs if r.get("iqr_ms") is not None and r.get(key)]

    out: dict[str, float] = {}
    e = spread(list(data["entries"].values()), "median_ms")
    if e:
        out["entry"], out["entry_p90"] = float(np.median(e)), float(np.quantile(e, 0.9))
    cal = (data.get("calibration") or {}).get("archs", [])
    n = spread(cal, "measured_ms")
    if n:
        out["network"] = float(np.median(n))
    corr = data.get("correction") or {}
    fit = [100 * abs(corr["a"] * c["sum_ms"] + corr["b"] - c["measured_ms"]) / c["measured_ms"]
           for c in cal if "sum_ms" in c and "measured_ms" in c and "a" in corr]
    if fit:
        out["fit"] = float(np.median(fit))
    return out


# Above these (%), a table is too noisy to trust: the machine was busy while it was profiled. An idle
# 2-core machine gives entry spreads of about 4 % and a fit error of about 1 % (5 rounds, 1 thread).
NOISY = {"entry": 15.0, "network": 10.0, "fit": 10.0}


def table_noise(source) -> str:
    """:func:`table_noise_stats` in words ("" for sources that are not a table pnag profiled)."""
    st = table_noise_stats(source)
    if not st:
        return ""
    data = source.data
    parts = [f"{len(data['entries'])} layer entries x {data.get('rounds', 1)} rounds"]
    if "entry" in st:
        parts.append(f"entries vary {st['entry']:.1f} % between rounds (median; p90 {st['entry_p90']:.1f} %)")
    if "network" in st:
        parts.append(f"whole networks {st['network']:.1f} %")
    if "fit" in st:
        parts.append(f"table vs whole network {st['fit']:.1f} % error (median)")
    return "; ".join(parts)


def noisy(source) -> bool:
    """True when a table pnag profiled is noisier than :data:`NOISY` allows."""
    st = table_noise_stats(source)
    return any(st.get(k, 0.0) > v for k, v in NOISY.items())


def latency_words(run) -> str:
    """``'<spec>' (<device>)``, e.g. ``'local' (Intel Xeon, torch 2.13.0, 1 thread of 2 cores, ...)``."""
    return f"'{run.config.latency}' ({device_words(run.lat_source.source)})"


__all__ = ["ACCURACY_KINDS", "LATENCY_KINDS", "accuracy_kind", "latency_kind", "accuracy_column", "answer_header",
           "answer_rows", "answer_json", "write_csv", "device_words", "table_noise", "table_noise_stats", "noisy",
           "latency_words", "is_proxy", "NOISY"]
