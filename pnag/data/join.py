"""Joining accuracy records with one latency source into a training table for one platform."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import DataError, PnagError
from .records import Arch, Dataset

LatencyFn = Callable[[Sequence[Arch]], np.ndarray]


@dataclass(frozen=True)
class TrainingTable:
    """Architectures with accuracy (**fraction**, or a proxy score when ``accuracy_unit`` is "score") and
    latency (**ms**) on one platform.

    ``unpriced`` counts accuracy records the latency source could not price (dropped), per reason in
    ``unpriced_reasons``; ``no_accuracy`` counts records without an accuracy (dropped).
    """

    archs: tuple[Arch, ...]
    accuracy: np.ndarray
    latency_ms: np.ndarray
    platform: str
    source: str
    unpriced: int = 0
    no_accuracy: int = 0
    unpriced_reasons: Mapping[str, int] = field(default_factory=dict, hash=False)
    accuracy_unit: str = "fraction"

    def __len__(self) -> int:
        return len(self.archs)

    def report(self) -> dict:
        return {"records": len(self.archs), "platform": self.platform, "source": self.source,
                "unpriced": self.unpriced, "no_accuracy": self.no_accuracy,
                "unpriced_reasons": dict(self.unpriced_reasons), "accuracy_unit": self.accuracy_unit}


def _as_fn(latency: Any) -> LatencyFn:
    if hasattr(latency, "latency_ms") and callable(latency.latency_ms):
        return latency.latency_ms
    if callable(latency):
        return latency
    raise DataError(f"latency source: {latency!r} is neither a callable nor an object with .latency_ms(archs); "
                    "allowed: a device name present in the records, a callable, or a latency source object")


def price(archs: Sequence[Arch], latency: Any) -> tuple[np.ndarray, Counter]:
    """Latency (ms, NaN where unpriced) of each arch from ``latency`` (callable or ``.latency_ms``).

    If the source refuses the whole batch with a PnagError, each arch is priced alone so that one
    arch it cannot price does not sink the rest; the reasons are counted.
    """
    fn = _as_fn(latency)
    reasons: Counter = Counter()
    if not archs:
        return np.zeros(0), reasons
    try:
        out = np.asarray(fn(list(archs)), dtype=np.float64).reshape(-1)
        if out.shape[0] != len(archs):
            raise DataError(f"latency source returned {out.shape[0]} values for {len(archs)} archs")
    except DataError:
        raise
    except PnagError:
        out = np.empty(len(archs))
        for i, a in enumerate(archs):
            try:
                out[i] = float(np.asarray(fn([a]), dtype=np.float64).reshape(-1)[0])
            except PnagError as exc:
                out[i] = np.nan
                reasons[str(exc)[:160]] += 1
    bad = ~np.isfinite(out) | (out <= 0)
    n_nan = int(bad.sum()) - sum(reasons.values())
    if n_nan > 0:
        reasons["the source returned no finite latency > 0"] += n_nan
    out[bad] = np.nan
    return out, reasons


def training_table(dataset: Dataset, latency: Any, platform: str | None = None) -> TrainingTable:
    """Accuracy records of ``dataset`` x one latency source.

    ``latency``: a device name whose latency the records already hold (e.g. an NB201 device), a
    callable ``latency_ms(archs) -> ndarray`` (NaN where it cannot price), or an object with
    ``.latency_ms(archs)``. Records without accuracy or without a price are dropped and counted.
    """
    recs = [r for r in dataset.records if r.accuracy is not None]
    no_acc = len(dataset.records) - len(recs)
    archs = [r.arch for r in recs]
    if isinstance(latency, str):
        dev = latency
        if dev not in dataset.devices:
            raise DataError(f"latency device: {dev!r} has no latency in dataset {dataset.name}; "
                            f"allowed: {', '.join(dataset.devices) or 'none (pass a latency source)'}")
        ms = np.array([r.latency[dev].ms if dev in r.latency else np.nan for r in recs], dtype=np.float64)
        reasons = Counter({f"no latency on {dev}": int(np.isnan(ms).sum())}) if np.isnan(ms).any() else Counter()
        platform, source = platform or dev, f"{dataset.name}:{dev}"
    else:
        ms, reasons = price(archs, latency)
        source = getattr(latency, "name", None) or getattr(latency, "__name__", None) or type(latency).__name__
        platform = platform or str(source)
    keep = np.isfinite(ms)
    scores = {r.accuracy.unit == "score" for r in recs}
    if len(scores) > 1:
        raise DataError(f"dataset {dataset.name}: mixes proxy scores with accuracies; allowed: one kind")
    unit = "score" if scores == {True} else "fraction"
    acc = np.array([r.accuracy.value if unit == "score" else r.accuracy.fraction for r in recs], dtype=np.float64)
    return TrainingTable(tuple(a for a, k in zip(archs, keep) if k), acc[keep], ms[keep], platform, str(source),
                         int((~keep).sum()), no_acc, dict(reasons), unit)


__all__ = ["TrainingTable", "training_table", "price"]
