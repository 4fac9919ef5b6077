"""A latency source in words: the hardware and settings it describes, and how noisy a table pnag
profiled is (the lines ``pnag search`` prints before it trains, and the plot's title)."""

from __future__ import annotations

import numpy as np


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


__all__ = ["device_words", "table_noise_stats", "NOISY", "table_noise", "noisy"]
