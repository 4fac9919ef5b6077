"""Measured architectures as immutable records, merged into datasets with provenance.

A :class:`Record` holds one architecture (with its width and resolution), at most one accuracy
(value with its unit, ``"fraction"`` or ``"%"``, and what it was measured on), latency per device
(ms, with where the number came from) and the analytic cost. A :class:`Dataset` is a tuple of
records in which every architecture appears once: :func:`merge_records` averages repeated
measurements of the same canonical architecture and reports how many rows it merged.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Iterable, Mapping, Union

import numpy as np

from ..errors import DataError, PnagError, allowed, check_number, shown
from ..space.mbv3 import MBV3Arch
from ..space.nb201 import NB201Arch

Arch = Union[MBV3Arch, NB201Arch]
ACC_UNITS = ("fraction", "%", "score")  # score: a training-free proxy; only its ranking means anything
LATENCY_SOURCES = ("measured", "lut", "published-table", "predicted")


def shift_decimal(x: float, places: int) -> float:
    """``x * 10**places`` computed on the shortest decimal form of ``x`` (so 0.75448 -> 75.448 exactly)."""
    return float(Decimal(repr(float(x))).scaleb(places))


def number_from_text(text: str, what: str, **rules: Any) -> float:
    """A number written as text (a CSV cell), checked like :func:`pnag.errors.check_number` (``rules``:
    ``positive``, ``low``, ``high``); text that is not a number is a DataError naming ``what``."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DataError(f"{what}: {text!r} is not a number; allowed: a finite number") from None
    return check_number(value, what, **rules)


def checked_latencies(values: Any, where: str) -> np.ndarray:
    """``values`` as a float64 array of latencies (ms) if every one is finite and > 0; else a
    DataError naming ``where``, the first bad position and its value."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~(np.isfinite(arr) & (arr > 0)))
    if bad.size:
        raise DataError(f"{where}: latency {int(bad[0])} is {arr[bad[0]]!r} ms ({bad.size} bad values); "
                        "allowed: finite numbers > 0")
    return arr


@dataclass(frozen=True)
class Accuracy:
    """An accuracy: ``value`` in ``unit`` ("fraction" in [0, 1], "%", or "score" for a training-free
    proxy whose values only rank), measured on ``measured_on``; ``n`` measurements were averaged."""

    value: float
    unit: str = "%"
    measured_on: str = "imagenet-val"
    n: int = 1

    def __post_init__(self) -> None:
        if self.unit not in ACC_UNITS:
            raise DataError(f"accuracy unit: {self.unit!r} is not known; allowed: {allowed(ACC_UNITS)}")
        if self.unit == "score":
            v = check_number(self.value, "accuracy score")
        else:
            hi = 1.0 if self.unit == "fraction" else 100.0
            v = check_number(self.value, f"accuracy ({self.unit})", low=0.0, high=hi)
        object.__setattr__(self, "value", v)
        object.__setattr__(self, "n", _check_count(self.n, "accuracy"))

    def _no_score(self) -> None:
        if self.unit == "score":
            raise DataError(f"accuracy ({self.measured_on}) is a proxy score, not an accuracy; it has no % or "
                            "fraction; allowed: use the score's ranking only")

    @property
    def percent(self) -> float:
        """The value in % (0..100)."""
        self._no_score()
        return self.value if self.unit == "%" else shift_decimal(self.value, 2)

    @property
    def fraction(self) -> float:
        """The value as a fraction (0..1)."""
        self._no_score()
        return self.value if self.unit == "fraction" else shift_decimal(self.value, -2)


@dataclass(frozen=True)
class Latency:
    """A latency in ms; ``source`` is measured | lut | published-table | predicted; ``detail`` says more
    (file, table, backend); ``n`` measurements were averaged."""

    ms: float
    source: str = "measured"
    detail: str = ""
    n: int = 1

    def __post_init__(self) -> None:
        if self.source not in LATENCY_SOURCES:
            raise DataError(f"latency source: {self.source!r} is not known; allowed: {allowed(LATENCY_SOURCES)}")
        object.__setattr__(self, "ms", check_number(self.ms, "latency (ms)", positive=True))
        object.__setattr__(self, "n", _check_count(self.n, "latency"))


def _check_count(n: Any, what: str) -> int:
    """``n`` (how many measurements a value averages) as an int >= 1, else a DataError."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise DataError(f"{what} n (measurements averaged): {n!r} is not allowed; allowed: an integer >= 1")
    return int(n)


@dataclass(frozen=True)
class Record:
    """One measured architecture.

    ``madds`` / ``params`` are plain counts (None where unknown, e.g. NAS-Bench-201);
    ``latency`` maps a device name to its :class:`Latency`.
    """

    arch: Arch
    accuracy: Accuracy | None = None
    latency: Mapping[str, Latency] = field(default_factory=dict, hash=False)
    madds: int | None = None
    params: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.arch, (MBV3Arch, NB201Arch)):
            raise DataError(f"record arch: {self.arch!r} is not an architecture; allowed: MBV3Arch or NB201Arch")
        object.__setattr__(self, "latency", dict(sorted(dict(self.latency).items())))

    @property
    def space(self) -> str:
        return self.arch.space

    @property
    def key(self) -> Arch:
        """What makes two records the same architecture (the canonical arch incl. width/resolution)."""
        return self.arch

    @property
    def madds_m(self) -> float | None:
        return None if self.madds is None else self.madds / 1e6

    @property
    def params_m(self) -> float | None:
        return None if self.params is None else self.params / 1e6

    def latency_ms(self, device: str) -> float | None:
        lat = self.latency.get(device)
        return None if lat is None else lat.ms

    def with_(self, **changes: Any) -> "Record":
        return replace(self, **changes)


@dataclass(frozen=True)
class MergeReport:
    """How a dataset was assembled: rows read, distinct architectures, rows merged into others,
    and rows skipped per reason."""

    rows: int
    distinct: int
    merged: int
    skipped: Mapping[str, int] = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict:
        return {"rows": self.rows, "distinct": self.distinct, "merged": self.merged,
                "skipped": dict(self.skipped), "skipped_total": sum(self.skipped.values())}


@dataclass(frozen=True)
class Dataset:
    """Records (one per distinct architecture) with a name, provenance and the merge report."""

    name: str
    records: tuple[Record, ...]
    provenance: str = ""
    report: MergeReport | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    @property
    def archs(self) -> list[Arch]:
        return [r.arch for r in self.records]

    @property
    def devices(self) -> list[str]:
        """Devices with at least one latency, sorted."""
        return sorted({d for r in self.records for d in r.latency})

    def accuracy_range(self) -> dict | None:
        """``{"min", "max", "unit", "measured_on"}`` over records with an accuracy (in % if units mix)."""
        accs = [r.accuracy for r in self.records if r.accuracy is not None]
        if not accs:
            return None
        units = {a.unit for a in accs}
        unit = units.pop() if len(units) == 1 else "%"  # (a dataset never mixes scores with accuracies)
        vals = [a.value if unit == a.unit else a.percent for a in accs]
        return {"min": min(vals), "max": max(vals), "unit": unit, "count": len(vals),
                "measured_on": sorted({a.measured_on for a in accs})}

    def latency_range(self) -> dict:
        """Per device ``{"min_ms", "max_ms", "count", "sources"}``."""
        out: dict[str, dict] = {}
        for dev in self.devices:
            lats = [r.latency[dev] for r in self.records if dev in r.latency]
            out[dev] = {"min_ms": min(x.ms for x in lats), "max_ms": max(x.ms for x in lats), "count": len(lats),
                        "sources": sorted({x.source for x in lats})}
        return out

    def summary(self) -> dict:
        """What ``pnag data info --json`` prints."""
        rep = self.report or MergeReport(len(self.records), len(self.records), 0)
        spaces = sorted({r.space for r in self.records})
        return {
            "name": self.name,
            "records": len(self.records),
            "distinct_architectures": len({r.key for r in self.records}),
            "rows_read": rep.rows,
            "merged_repeats": rep.merged,
            "skipped": rep.as_dict()["skipped"],
            "spaces": spaces,
            "accuracy_range": self.accuracy_range(),
            "latency_range": self.latency_range(),
            "provenance": self.provenance,
        }


# -- merging -----------------------------------------------------------------------------------
def _mean(values: list[tuple[float, int]]) -> tuple[float, int]:
    """Weighted mean, rounded to 12 significant digits: far below any measurement's precision, and
    short enough that unit changes (% <-> fraction, ms <-> s) round-trip exactly."""
    n = sum(k for _, k in values)
    return float(f"{sum(v * k for v, k in values) / n:.12g}"), n


def _merge_group(group: list[Record]) -> Record:
    if len(group) == 1:
        return group[0]
    first = group[0]
    accs = [r.accuracy for r in group if r.accuracy is not None]
    acc = None
    if accs:
        unit = accs[0].unit
        same = all(a.unit == unit for a in accs)
        if not same and any(a.unit == "score" for a in accs):
            raise DataError(f"merging {first.arch}: proxy scores cannot be averaged with accuracies")
        vals = [((a.value if same else a.percent), a.n) for a in accs]
        v, n = _mean(vals)
        on = sorted({a.measured_on for a in accs})
        acc = Accuracy(v, unit if same else "%", "+".join(on), n)
    lat: dict[str, Latency] = {}
    for dev in sorted({d for r in group for d in r.latency}):
        ls = [r.latency[dev] for r in group if dev in r.latency]
        ms, n = _mean([(x.ms, x.n) for x in ls])
        lat[dev] = Latency(ms, ls[0].source if len({x.source for x in ls}) == 1 else "measured",
                           "; ".join(dict.fromkeys(x.detail for x in ls if x.detail)), n)
    madds = next((r.madds for r in group if r.madds is not None), None)
    params = next((r.params for r in group if r.params is not None), None)
    sources = "+".join(dict.fromkeys(r.source for r in group if r.source))
    return Record(first.arch, acc, lat, madds, params, sources)


def merge_records(records: Iterable[Record]) -> tuple[tuple[Record, ...], int]:
    """One record per distinct architecture, in order of first appearance; repeated measurements
    are averaged (weighted by how many each already averages). Returns (records, rows merged)."""
    groups: dict[Arch, list[Record]] = {}
    rows = 0
    for r in records:
        groups.setdefault(r.key, []).append(r)
        rows += 1
    merged = tuple(_merge_group(g) for g in groups.values())
    return merged, rows - len(merged)


def madds_params(arch: Arch) -> tuple[int, int]:
    """The analytic cost of a record's architecture: (MAdds, parameters), classifier included."""
    from ..nn.cost import arch_cost

    c = arch_cost(arch)
    return c.madds, c.params


def make_dataset(name: str, records: Iterable[Record], provenance: str = "",
                 skipped: Mapping[str, int] | None = None) -> Dataset:
    """Merge ``records`` into a :class:`Dataset` with its report."""
    records = list(records)
    merged, n_merged = merge_records(records)
    report = MergeReport(len(records), len(merged), n_merged, dict(skipped or {}))
    return Dataset(name, merged, provenance, report)


# -- one record as a JSON object (collection files) -------------------------------------------------
def record_to_dict(r: Record) -> dict:
    """A JSON-able dict of ``r`` (latency in ms; the arch as its standard text plus width/resolution)."""
    a = r.arch
    d: dict = {"space": r.space}
    if isinstance(a, MBV3Arch):
        d.update(arch=a.to_legacy(), width=a.width, resolution=a.resolution)
    else:
        d.update(arch=a.to_string())
    acc = r.accuracy
    d["accuracy"] = None if acc is None else {"value": acc.value, "unit": acc.unit, "measured_on": acc.measured_on,
                                              "n": acc.n}
    d["latency"] = {k: {"ms": v.ms, "source": v.source, "detail": v.detail, "n": v.n} for k, v in r.latency.items()}
    d.update(madds=r.madds, params=r.params, source=r.source)
    return d


def record_from_dict(d: Mapping[str, Any]) -> Record:
    """Inverse of :func:`record_to_dict`; malformed input raises DataError / ArchError."""
    from ..space.mbv3 import parse_legacy
    from ..space.nb201 import parse_nb201

    try:
        space = d["space"]
        if space == "mbv3":
            arch = parse_legacy(d["arch"], width=d["width"], resolution=d["resolution"])
        elif space == "nb201":
            arch = parse_nb201(d["arch"])
        else:
            raise DataError(f"record space: {space!r} is not known; allowed: mbv3 or nb201")
        acc = d.get("accuracy")
        accuracy = None if acc is None else Accuracy(acc["value"], acc["unit"], acc["measured_on"], acc.get("n", 1))
        lat = {k: Latency(v["ms"], v["source"], v.get("detail", ""), v.get("n", 1)) for k, v in d["latency"].items()}
        return Record(arch, accuracy, lat, d.get("madds"), d.get("params"), d.get("source", ""))
    except PnagError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError, OverflowError) as exc:
        raise DataError(f"record {shown(d, 120)}: malformed ({type(exc).__name__}: {shown(str(exc))})") from None


__all__ = ["record_to_dict", "record_from_dict", "number_from_text", "checked_latencies", "Accuracy", "Latency",
           "Record", "Dataset", "MergeReport", "merge_records", "make_dataset", "shift_decimal", "ACC_UNITS",
           "LATENCY_SOURCES", "Arch"]
