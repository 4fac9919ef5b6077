"""NAS-Bench-201: the 15,625 cells with accuracy on three datasets and latency on 27 devices.

Accuracies (%, 200-epoch test accuracy) come from ``nb201/nats_bench.csv``; latencies (ms) from
``nb201/latency/<device>.pt`` (HELP), both in the benchmark's published index order, which this
table keeps (``archs[i]`` is benchmark index ``i``).
"""

from __future__ import annotations

import csv
import threading
from typing import Sequence

import numpy as np

from ..errors import DataError, PnagError, allowed
from ..space.nb201 import NB201Arch, parse_nb201
from .records import checked_latencies, number_from_text
from .registry import file_stamps, get_file

N_CELLS = 15625
NB201_DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
_ACC_COLUMNS = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "ImageNet16-120": "ImageNetTestAccuracy200Epochs",
}
NB201_DEVICES = (
    "1080ti_1", "1080ti_32", "1080ti_256", "2080ti_1", "2080ti_32", "2080ti_256",
    "titan_rtx_1", "titan_rtx_32", "titan_rtx_256", "titanx_1", "titanx_32", "titanx_256",
    "titanxp_1", "titanxp_32", "titanxp_256", "gold_6226", "gold_6240", "silver_4114", "silver_4210r",
    "essential_ph_1", "pixel2", "pixel3", "samsung_a50", "samsung_s7", "raspi4", "eyeriss", "fpga",
)


def check_nb201_dataset(name: str) -> str:
    """Validate an NB201 accuracy dataset name (case-insensitive); returns the canonical spelling."""
    for d in NB201_DATASETS:
        if isinstance(name, str) and name.lower() == d.lower():
            return d
    raise PnagError(f"nb201 dataset: {name!r} is not known; allowed: {allowed(NB201_DATASETS)}")


def check_nb201_device(name: str) -> str:
    """Validate an NB201 latency device setting name (``<device>[_<batch>]``)."""
    if name not in NB201_DEVICES:
        raise PnagError(f"nb201 device: {name!r} is not known; allowed: {allowed(NB201_DEVICES)}")
    return name


class NB201Table:
    """All NAS-Bench-201 cells in published order with accuracy (%) and per-device latency (ms).

    Arrays handed out are read-only views; latency files are read on first use per device.
    """

    def __init__(self, archs: Sequence[NB201Arch], accuracies: dict[str, np.ndarray]):
        self._archs = tuple(archs)
        self._index = {a: i for i, a in enumerate(self._archs)}
        if len(self._index) != len(self._archs):
            raise DataError(f"nb201/nats_bench.csv: {len(self._archs) - len(self._index)} duplicate cells; "
                            "expected every cell once")
        self._acc = {k: _readonly(v) for k, v in accuracies.items()}
        self._lat: dict[str, tuple[tuple, np.ndarray]] = {}  # device -> (its file's stamp, latencies)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._archs)

    def __repr__(self) -> str:
        return f"NB201Table({len(self)} cells)"

    @property
    def archs(self) -> list[NB201Arch]:
        """The cells in the benchmark's published order."""
        return list(self._archs)

    def index_of(self, arch: NB201Arch | str) -> int:
        """Published benchmark index of ``arch`` (a cell or its standard string)."""
        if isinstance(arch, str):
            arch = parse_nb201(arch)
        try:
            return self._index[arch]
        except (KeyError, TypeError):
            raise PnagError(f"nb201 arch: {arch!r} is not a NAS-Bench-201 cell") from None

    def accuracy(self, dataset: str) -> np.ndarray:
        """Test accuracy (%) after 200 epochs, float64 ``(15625,)``, on ``cifar10|cifar100|ImageNet16-120``."""
        return self._acc[check_nb201_dataset(dataset)]

    def latency(self, device: str) -> np.ndarray:
        """Measured latency (ms), float64 ``(15625,)``, on one of :data:`NB201_DEVICES` (read again when its
        file is read from elsewhere or has changed)."""
        device = check_nb201_device(device)
        stamp = file_stamps([("nb201", f"latency/{device}.pt")])
        with self._lock:
            if device not in self._lat or self._lat[device][0] != stamp:
                self._lat[device] = (stamp, _readonly(_load_latency(device, len(self))))
            return self._lat[device][1]


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def _load_latency(device: str, n: int) -> np.ndarray:
    import torch

    path = get_file("nb201", f"latency/{device}.pt")
    values = torch.load(path, map_location="cpu", weights_only=True)
    arr = checked_latencies(values, str(path))
    if arr.shape[0] != n:
        raise DataError(f"{path}: {arr.shape[0]} latencies; expected {n} (one per cell)")
    return arr


def _read_table() -> NB201Table:
    path = get_file("nb201", "nats_bench.csv")
    archs: list[NB201Arch] = []
    acc: dict[str, list[float]] = {d: [] for d in NB201_DATASETS}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = ["ArchitectureString", *_ACC_COLUMNS.values()]
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            archs.append(parse_nb201(row["ArchitectureString"]))
            for d, col in _ACC_COLUMNS.items():
                acc[d].append(number_from_text(row[col], f"{path} line {line} {col} (%)", low=0.0, high=100.0))
    if len(archs) != N_CELLS:
        raise DataError(f"{path}: {len(archs)} cells; expected {N_CELLS}")
    return NB201Table(archs, {d: np.array(v) for d, v in acc.items()})


_TABLE: tuple[tuple, NB201Table] | None = None  # (nats_bench.csv's stamp, the table)
_TABLE_LOCK = threading.Lock()


def load_nb201() -> NB201Table:
    """The NAS-Bench-201 table: read once, and again when ``nats_bench.csv`` is read from elsewhere
    (``PNAG_DATA_DIR``, ``PNAG_CACHE_DIR``) or has changed."""
    global _TABLE
    with _TABLE_LOCK:
        stamp = file_stamps([("nb201", "nats_bench.csv")])
        if _TABLE is None or _TABLE[0] != stamp:
            _TABLE = (stamp, _read_table())
        return _TABLE[1]


__all__ = ["NB201Table", "load_nb201", "NB201_DATASETS", "NB201_DEVICES", "N_CELLS",
           "check_nb201_dataset", "check_nb201_device"]
