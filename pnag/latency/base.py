"""The latency-source interface: what every way pnag knows a latency offers, and the sources
themselves (per-layer tables, measurement, NAS-Bench-201, whole-network tables).

A :class:`LatencySource` prices architectures in milliseconds: ``latency_ms(archs) -> ndarray``.
Building one from a spec string (``lut:FILE``, ``nb201:DEVICE``, ``measure:BACKEND``, ``local``, ...)
is the job of the sources layer (:func:`pnag.sources.get_latency_source`), which may read data files.

Table sources are vectorised: :meth:`TableSource.latency_from_indices` prices a batch of decision
index vectors ``(B, 45)`` with one gather (numpy or torch, any device), for generator training.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from ..errors import ArchError, DataError, PnagError
from ..space.mbv3 import MBV3Arch, check_resolution, check_width, parse_arch
from ._table import KeysOf, SlotTable, indices_of

def hwc(size: int, channels: int) -> str:
    """``HxWxC`` as the latency-table keys write a square feature map."""
    return f"{size}x{size}x{channels}"


class LatencySource(ABC):
    """Something that prices architectures in milliseconds.

    Attributes:
        name: the spec it was built from (``lut:i7-8700k``, ...).
        unit: always ``"ms"``.
        space: the search space it prices (``"mbv3"`` or ``"nb201"``).
        device: the hardware the figures describe, in words.
        kind: how the figures were had, as a collection records it: ``measured``, ``lut`` or
            ``published-table``.
    """

    name: str = ""
    unit: str = "ms"
    space: str = "mbv3"
    device: str = ""
    kind: str = "measured"

    @abstractmethod
    def latency_ms(self, archs: Sequence[Any]) -> np.ndarray:
        """Latency (ms, float64 array of ``len(archs)``) of each architecture (values or text forms)."""

    def __call__(self, archs: Sequence[Any]) -> np.ndarray:
        return self.latency_ms(archs)

    def latency_of(self, arch: Any) -> float:
        """Latency (ms) of one architecture."""
        return float(self.latency_ms([arch])[0])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.device})>"


class TableSource(LatencySource):
    """A per-layer lookup table for the MobileNetV3 space: sum of the layers' entries, then
    ``a * sum + b`` (identity for published tables; fitted for measured ones, see
    :class:`pnag.latency.lut.LUT`).

    Args:
        name: source name used in messages.
        keys_of: layer spec -> the table keys that price it.
        entries_for: (width, resolution) -> mapping key -> ms (empty where the table has nothing).
        width, resolution: defaults for text-form architectures and for :meth:`latency_from_indices`.
        coverage: a sentence stating which widths/resolutions the table covers (for errors).
        correction: ``(a, b)`` of the linear correction, ms = a * sum + b.
        device: the hardware, in words.
        corrections: resolution (pixels) -> ``(a, b)``, where the correction differs by resolution
            (a table profiled at several); ``correction`` serves the others.
    """

    kind = "lut"

    def __init__(self, name: str, keys_of: KeysOf, entries_for: Callable[[float, int], Mapping[str, float]],
                 width: float, resolution: int, coverage: str, correction: tuple[float, float] = (1.0, 0.0),
                 device: str = "", corrections: Mapping[int, tuple[float, float]] | None = None):
        self.name, self.device = name, device
        self.width, self.resolution = check_width(width), check_resolution(resolution)
        self.coverage = coverage
        self.correction = (float(correction[0]), float(correction[1]))
        self.corrections = {int(r): (float(a), float(b)) for r, (a, b) in (corrections or {}).items()}
        self._keys_of, self._entries_for = keys_of, entries_for
        self._tables: dict[tuple[float, int], SlotTable] = {}

    # -- tables ----------------------------------------------------------------------------------
    def slot_table(self, width: float | None = None, resolution: int | None = None) -> SlotTable:
        """The vectorised table at ``width`` / ``resolution`` (defaults: the source's own)."""
        w = self.width if width is None else check_width(width)
        r = self.resolution if resolution is None else check_resolution(resolution)
        if (w, r) not in self._tables:
            self._tables[(w, r)] = SlotTable(w, r, self._keys_of, self._entries_for(w, r), self.name, self.coverage)
        return self._tables[(w, r)]

    def covers(self, width: float, resolution: int) -> bool:
        """True when every architecture at this width and resolution has all its entries."""
        return self.slot_table(width, resolution).complete

    def coerce(self, arch: Any) -> MBV3Arch:
        """An MBV3Arch from a value or text form (text forms get this source's width / resolution)."""
        if isinstance(arch, MBV3Arch):
            return arch
        if isinstance(arch, str):
            s = arch.strip()
            return parse_arch(s, width=self.width, resolution=None if s.startswith("{") else self.resolution)
        if isinstance(arch, Mapping):
            from ..space.mbv3 import parse_ofa_dict

            return parse_ofa_dict(arch, width=self.width)
        raise ArchError(f"arch: {arch!r} is not a MobileNetV3 architecture; allowed: MBV3Arch, legacy string or "
                        "once-for-all dict")

    # -- pricing ---------------------------------------------------------------------------------
    def correction_at(self, resolution: int) -> tuple[float, float]:
        """``(a, b)`` of the correction that prices networks at ``resolution`` (pixels)."""
        return self.corrections.get(int(resolution), self.correction)

    def _apply(self, total, resolution: int):
        a, b = self.correction_at(resolution)
        return total if (a, b) == (1.0, 0.0) else a * total + b

    def _priced(self, archs: Sequence[Any], corrected: bool) -> np.ndarray:
        archs = [self.coerce(a) for a in archs]
        out = np.zeros(len(archs), dtype=np.float64)
        groups: dict[tuple[float, int], list[int]] = {}
        for i, a in enumerate(archs):
            groups.setdefault((a.width, a.resolution), []).append(i)
        for (w, r), ix in groups.items():
            total = self.slot_table(w, r).sum_indices(indices_of(archs[i] for i in ix))
            out[ix] = self._apply(total, r) if corrected else total
        return out

    def table_sum_ms(self, archs: Sequence[Any]) -> np.ndarray:
        """The uncorrected sum of table entries (ms) of each architecture."""
        return self._priced(archs, corrected=False)

    def latency_ms(self, archs: Sequence[Any]) -> np.ndarray:
        """Latency (ms) of each architecture: its sum corrected at the architecture's resolution."""
        return self._priced(archs, corrected=True)

    def latency_from_indices(self, idx: torch.Tensor | np.ndarray, width: float | None = None,
                             resolution: int | None = None):
        """Latency (ms) of decision-index vectors ``idx (B, 45)`` at one width and resolution.

        A torch ``LongTensor`` gives a float32 tensor ``(B,)`` on the same device (no Python loop,
        no host sync unless the table has holes); a numpy array gives float64 ``(B,)``.
        """
        t = self.slot_table(width, resolution)
        if isinstance(idx, torch.Tensor):
            return self._apply(t.sum_indices_torch(idx.long()), t.resolution)
        return self._apply(t.sum_indices(np.asarray(idx)), t.resolution)

    def breakdown(self, arch: Any) -> list[tuple[str, str, float]]:
        """``(layer, table key, ms)`` of every entry ``arch`` uses (NaN where missing), uncorrected."""
        a = self.coerce(arch)
        return self.slot_table(a.width, a.resolution).keys_for(a)


class MeasuredSource(LatencySource):
    """Measures every architecture end to end now (slow: seconds per architecture)."""

    def __init__(self, backend: str, threads: int | None = None, batch: int = 1, **protocol: Any):
        from .backends import get_backend

        self._backend = get_backend(backend)
        self.name, self.device = f"measure:{backend}", self._backend.device_name()
        self.threads, self.batch, self.protocol = threads, batch, protocol

    def latency_ms(self, archs: Sequence[Any]) -> np.ndarray:
        from .measure import measure_latency

        out = [measure_latency(a, backend=self._backend.name, threads=self.threads, batch=self.batch,
                               **self.protocol).median_ms for a in archs]
        return np.asarray(out, dtype=np.float64)


class NB201Source(LatencySource):
    """HELP's measured latency of every NAS-Bench-201 cell on one device (ms)."""

    space = "nb201"
    kind = "published-table"

    def __init__(self, device: str):
        from ..data import nb201 as nb  # the datasets engineer's reader

        bench = nb.load_nb201()
        self._bench = bench
        self._lat = np.asarray(bench.latency(device), dtype=np.float64)
        self.name, self.device = f"nb201:{device}", device

    def latency_ms(self, archs: Sequence[Any]) -> np.ndarray:
        from ..space.nb201 import NB201Arch, parse_nb201

        idx = [self._bench.index_of(a if isinstance(a, NB201Arch) else parse_nb201(a)) for a in archs]
        return self._lat[np.asarray(idx, dtype=np.int64)]


class WholeNetworkTable(LatencySource):
    """Whole-network latencies of a fixed list of architectures; anything else is an error."""

    kind = "published-table"

    def __init__(self, name: str, archs: Sequence[MBV3Arch], latency_ms: Sequence[float], device: str = ""):
        self.name, self.device = name, device
        self._index: dict[MBV3Arch, float] = {}
        for a, v in zip(archs, latency_ms):
            self._index.setdefault(a, float(v))

    def __len__(self) -> int:
        return len(self._index)

    def archs(self) -> list[MBV3Arch]:
        """The table's networks, in the order first given."""
        return list(self._index)

    def resolutions(self, width: float) -> tuple[int, ...]:
        """The input resolutions (pixels) of the table's networks at ``width``."""
        return tuple(sorted({a.resolution for a in self._index if a.width == width}))

    def latency_ms(self, archs: Sequence[Any]) -> np.ndarray:
        out = np.empty(len(archs), dtype=np.float64)
        for i, a in enumerate(archs):
            arch = a if isinstance(a, MBV3Arch) else parse_arch(a)
            if arch not in self._index:
                raise DataError(f"{self.name}: arch {arch.to_legacy()} (width {arch.width}, resolution "
                                f"{arch.resolution}) is not in the table; it prices only its {len(self)} "
                                "measured architectures")
            out[i] = self._index[arch]
        return out


class FunctionSource(LatencySource):
    """A Python callable ``archs -> ms (len(archs),)`` as a latency source.

    ``name`` defaults to the callable's own ``name`` or ``__name__`` (or its type's name); ``kind`` to
    its own ``kind`` or ``measured``."""

    def __init__(self, fn: Callable[[Sequence[Any]], Any], name: str | None = None):
        if not callable(fn):
            raise PnagError(f"latency source: {fn!r} is neither a spec, a callable nor an object with .latency_ms")
        self._fn = fn
        self.name = str(name or getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__)
        self.kind = str(getattr(fn, "kind", "measured"))

    def latency_ms(self, archs: Sequence[Any]) -> np.ndarray:
        return np.asarray(self._fn(list(archs)), dtype=np.float64).reshape(-1)


def check_covers(source: LatencySource, width: float, resolutions: Iterable[int], what: str = "--latency") -> None:
    """Refuse a per-layer table (:class:`TableSource`) that lacks entries for MobileNetV3 networks at
    ``width`` and any of ``resolutions`` (pixels): a :class:`PnagError` naming ``what``, the source,
    the width and resolution asked, the first missing entry and what the table covers. Sources that
    measure, whole-network tables and NAS-Bench-201 tables pass unchecked (they refuse an
    architecture they cannot price when asked for it). A model that says what it covers
    (``refuse_uncovered``, e.g. an adapted model) is asked."""
    if hasattr(source, "refuse_uncovered"):
        source.refuse_uncovered(width, resolutions, what)
        return
    if not isinstance(source, TableSource):
        return
    w = check_width(width)
    for r in resolutions:
        table = source.slot_table(w, check_resolution(r))
        if not table.complete:
            raise PnagError(f"{what} {source.name}: the table does not describe width {w} at resolution "
                            f"{table.resolution} (no entry {table.missing_keys()[0]!r}); {source.coverage}")


def cache_dir() -> Path:
    """Where pnag caches what it computes (``$PNAG_CACHE_DIR`` or the per-user cache)."""
    from ..data.registry import cache_dir as data_cache_dir

    return data_cache_dir()
