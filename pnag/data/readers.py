"""Readers of the public data: the ImageNet CSVs, the HELP GPU latency tables, the once-for-all
specialised networks, NAS-Bench-201, and every dataset by name (:func:`load_dataset`). The published
PNAG format and the flat CSV export are :mod:`pnag.data.pnag_format` (re-exported here).

Units: accuracy as stored (the PNAG format holds fractions, the ImageNet CSVs %); latency in ms
everywhere in pnag (the PNAG format stores **seconds**; readers and writers convert).
"""

from __future__ import annotations

import csv
import json
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ArchError, DataError, allowed
from ..space.mbv3 import MBV3Arch, parse_dict_literal, parse_ofa_dict
from .collection import load_collection
from .pnag_format import (PNAG_MEASURED_ON, PNAG_PLATFORMS, pnag_json_entries, read_pnag_json, write_csv,
                          write_pnag_json)
from .records import (Accuracy, Dataset, Latency, Record, checked_latencies, madds_params, make_dataset,
                      number_from_text)
from .registry import file_stamps, files_asked, get_dataset_info, get_file

# -- the public ImageNet CSVs (DyNAS-T) --------------------------------------------------------------
OFA_MBV3_W10 = "ofa-mbv3-w1.0-imagenet"


def read_ofa_mbv3_csv(path: str | os.PathLike, width: float = 1.0) -> tuple[list[Record], Counter]:
    """Rows of one DyNAS-T CSV as records (top-1 in %, measured on ImageNet val; latency 0 = none)."""
    path = Path(path)
    out: list[Record] = []
    skipped: Counter = Counter()
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = ("Sub-network", "Top-1 Acc (%)")
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected a DyNAS-T results CSV")
        for line, row in enumerate(reader, start=2):
            try:
                arch = parse_dict_literal(row["Sub-network"], width=width)
            except ArchError as exc:
                raise DataError(f"{path} line {line}: {exc}") from None
            acc_text = (row.get("Top-1 Acc (%)") or "").strip()
            if not acc_text:
                skipped["no top-1 accuracy"] += 1
                continue
            where = f"{path} line {line}"
            acc = Accuracy(number_from_text(acc_text, f"{where} Top-1 Acc (%)", low=0.0, high=100.0), "%",
                           PNAG_MEASURED_ON)
            lat_text = (row.get("Latency (ms)") or "").strip()
            lat_ms = number_from_text(lat_text, f"{where} Latency (ms)", low=0.0) if lat_text else 0.0  # 0: none
            lat = {"dynast": Latency(lat_ms, "measured", path.name)} if lat_ms > 0 else {}
            macs, n_params = (row.get("MACs") or "").strip(), (row.get("Model Parameters") or "").strip()
            if macs and n_params:
                madds, params = (int(number_from_text(t, f"{where} {c}", low=0.0))
                                 for t, c in ((macs, "MACs"), (n_params, "Model Parameters")))
            else:
                madds, params = madds_params(arch)
            out.append(Record(arch, acc, lat, madds, params, f"{OFA_MBV3_W10}/{path.name}"))
    return out, skipped


def _load_ofa_mbv3() -> Dataset:
    info = get_dataset_info(OFA_MBV3_W10)
    records: list[Record] = []
    skipped: Counter = Counter()
    for f in info.files:
        recs, sk = read_ofa_mbv3_csv(get_file(OFA_MBV3_W10, f.relpath))
        records += recs
        skipped += sk
    return make_dataset(OFA_MBV3_W10, records, f"{info.description}; {info.source}; license {info.license}",
                        skipped)


# -- HELP GPU latency of 5,000 OFA subnets ------------------------------------------------------------
HELP_OFA_WIDTH = 1.2  # believed (see the mirror README)


def _safe_numpy_globals() -> list:
    """The only globals ``ofa_archs.pt`` needs beyond plain containers: numpy scalar reconstruction."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    dtypes = [type(np.dtype(t)) for t in ("int64", "int32", "float64", "float32")]
    return [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype, *dtypes]


def load_ofa_archs_pt(path: str | os.PathLike) -> list[MBV3Arch]:
    """Read HELP's ``ofa_archs.pt`` with torch's restricted (weights-only) unpickler, admitting only
    numpy scalar/dtype reconstruction in addition to plain containers; never plain pickle."""
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals(_safe_numpy_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as exc:
        raise DataError(f"{path}: refused by the restricted unpickler ({str(exc).splitlines()[0][:200]}); "
                        "expected HELP's ofa_archs.pt (a dict with an 'arch' list)") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("arch"), list):
        raise DataError(f"{path}: expected a dict with an 'arch' list")
    archs = []
    for i, a in enumerate(obj["arch"]):
        try:
            a = dict(a)
            r = a.get("r")
            a["r"] = int(r[0] if isinstance(r, (list, tuple)) else r)
            archs.append(parse_ofa_dict(a, width=HELP_OFA_WIDTH))
        except (ArchError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: arch {i}: {exc}") from None
    return archs


def help_ofa_devices() -> list[str]:
    """Device settings of ``help-ofa-gpu`` (``<gpu>_<batch>``)."""
    return [Path(f.relpath).stem for f in get_dataset_info("help-ofa-gpu").files if f.relpath.startswith("latency/")]


_HELP_OFA: tuple[tuple, tuple[MBV3Arch, ...], dict[str, np.ndarray]] | None = None  # (files' stamps, archs, ms)
_HELP_OFA_LOCK = threading.Lock()


def load_help_ofa_gpu() -> tuple[list[MBV3Arch], dict[str, np.ndarray]]:
    """The 5,000 HELP subnets (width 1.2, resolutions 128..224) and their whole-network latency (ms)
    per device setting, e.g. ``{"v100_1": ndarray (5000,), ...}`` (read-only arrays). Read once, and again
    when its files are read from elsewhere or have changed: a source per device setting reads nothing more."""
    global _HELP_OFA
    files = [("help-ofa-gpu", "ofa_archs.pt")] + [("help-ofa-gpu", f"latency/{d}.pt") for d in help_ofa_devices()]
    with _HELP_OFA_LOCK:
        stamp = file_stamps(files)
        if _HELP_OFA is None or _HELP_OFA[0] != stamp:
            archs, lat = _read_help_ofa_gpu()
            for v in lat.values():
                v.setflags(write=False)
            _HELP_OFA = (stamp, tuple(archs), lat)
        _, archs, lat = _HELP_OFA
    return list(archs), dict(lat)


def _read_help_ofa_gpu() -> tuple[list[MBV3Arch], dict[str, np.ndarray]]:
    import torch

    archs = load_ofa_archs_pt(get_file("help-ofa-gpu", "ofa_archs.pt"))
    lat = {}
    for dev in help_ofa_devices():
        p = get_file("help-ofa-gpu", f"latency/{dev}.pt")
        arr = checked_latencies(torch.load(p, map_location="cpu", weights_only=True), str(p))
        if arr.shape[0] != len(archs):
            raise DataError(f"{p}: {arr.shape[0]} latencies; expected {len(archs)} (one per arch of ofa_archs.pt)")
        lat[dev] = arr
    return archs, lat


def _load_help() -> Dataset:
    info = get_dataset_info("help-ofa-gpu")
    archs, lat = load_help_ofa_gpu()
    recs = [Record(a, None, {d: Latency(v[i], "published-table", f"help-ofa-gpu/latency/{d}.pt")
                             for d, v in lat.items()}, *madds_params(a), source="help-ofa-gpu")
            for i, a in enumerate(archs)]
    return make_dataset("help-ofa-gpu", recs, f"{info.description}; {info.source}; license {info.license}")


# -- once-for-all specialised networks (reference points) ---------------------------------------------
_SPECIALIZED = re.compile(r"^(?:(?P<dev>.+?)_(?P<kind>lat|gpu\d+)-(?P<lat>[\d.]+)ms|flops-(?P<flops>[\d.]+)M)"
                          r"_top1-(?P<top1>[\d.]+)_finetune-(?P<ft>\d+)$")


@dataclass(frozen=True)
class ReferencePoint:
    """A published once-for-all specialised network: ``device`` (None for the MAdds-constrained
    ones), its published latency (ms) or MAdds budget (millions), top-1 (%) after ``finetune_epochs``,
    and its architecture when it is a MobileNetV3 (``arch.resolution`` is 224: net.config does
    not record the input resolution the latency was measured at)."""

    name: str
    device: str | None
    latency_ms: float | None
    madds_budget_m: float | None
    top1_percent: float
    finetune_epochs: int
    family: str
    arch: MBV3Arch | None


def arch_from_net_config(cfg: dict, resolution: int = 224) -> MBV3Arch:
    """The OFA MobileNetV3 architecture of a once-for-all ``net.config`` (MobileNetV3 family only)."""
    from ..nn.mobilenetv3 import stage_widths

    if cfg.get("name") != "MobileNetV3":
        raise DataError(f"net.config: network {cfg.get('name')!r} is not a MobileNetV3")
    blocks = cfg["blocks"][1:]  # blocks[0] is the fixed first block
    units: list[list[tuple[int, int]]] = []
    outs: list[int] = []
    for b in blocks:
        conv = b["mobile_inverted_conv"]
        if b.get("shortcut") is None:  # the first layer of each unit changes shape: no residual
            units.append([])
            outs.append(conv["out_channels"])
        units[-1].append((conv["kernel_size"], conv["expand_ratio"]))
    for w in (1.0, 1.2):
        if tuple(outs) == stage_widths(w)["units"]:
            return MBV3Arch.from_units(units, width=w, resolution=resolution)
    raise DataError(f"net.config: unit widths {outs} match no supernet width; allowed: 1.0 or 1.2")


def load_ofa_specialized() -> list[ReferencePoint]:
    """The 50 published specialised networks as reference points, sorted by name."""
    info = get_dataset_info("ofa-specialized")
    out = []
    for f in info.files:
        folder = f.relpath.split("/")[0]
        m = _SPECIALIZED.match(folder)
        if not m:
            raise DataError(f"ofa-specialized/{folder}: name not understood; expected "
                            "<device>_lat-<ms>ms_top1-<%>_finetune-<epochs> or flops-<M>M_top1-...")
        with open(get_file("ofa-specialized", f.relpath), encoding="utf-8") as fh:
            cfg = json.load(fh)
        family = cfg.get("name", "?")
        arch = arch_from_net_config(cfg) if family == "MobileNetV3" else None
        dev = m.group("dev")
        if dev is not None and m.group("kind") != "lat":
            dev = f"{dev}_{m.group('kind')}"
        out.append(ReferencePoint(
            folder, dev, float(m.group("lat")) if m.group("lat") else None,
            float(m.group("flops")) if m.group("flops") else None, float(m.group("top1")), int(m.group("ft")),
            family, arch))
    return sorted(out, key=lambda p: p.name)


# -- NAS-Bench-201 -------------------------------------------------------------------------------------
def _load_nb201(accuracy_on: str = "cifar10", devices: Sequence[str] | None = None) -> Dataset:
    from .nb201 import NB201_DEVICES, check_nb201_dataset, load_nb201

    table = load_nb201()
    on = check_nb201_dataset(accuracy_on)
    devs = list(NB201_DEVICES if devices is None else devices)
    acc = table.accuracy(on)
    lats = {d: table.latency(d) for d in devs}
    recs = []
    for i, a in enumerate(table.archs):
        lat = {d: Latency(v[i], "published-table", f"nb201/latency/{d}.pt") for d, v in lats.items() if v[i] > 0}
        recs.append(Record(a, Accuracy(acc[i], "%", f"{on}-test (200 epochs)"), lat, source="nb201"))
    info = get_dataset_info("nb201")
    return make_dataset("nb201", recs, f"{info.description}; {info.source}; license {info.license}")


# -- by name ------------------------------------------------------------------------------------------
_NO_RECORDS = {
    "ofa-acc-predictor-w1.2": "an accuracy predictor's weights",
    "ofa-note10-lut-w1.2": "a per-layer latency lookup table (see pnag.latency)",
    "i7-8700k-lut": "a per-layer latency lookup table (see pnag.latency)",
    "ofa-specialized": "reference points, not training records: use pnag.data.load_ofa_specialized()",
}
RECORD_DATASETS = (OFA_MBV3_W10, "nb201", "help-ofa-gpu")


# (name, options) -> (the files read, where they were read from, the dataset)
_LOADED: dict[tuple, tuple[tuple[tuple[str, str], ...], tuple, Dataset]] = {}


def load_dataset(name: str, **kwargs) -> Dataset:
    """A registered dataset with records (``ofa-mbv3-w1.0-imagenet``, ``nb201``, ``help-ofa-gpu``), a
    published-format ``.json`` file or a ``pnag collect`` ``.jsonl`` file. ``nb201`` takes ``accuracy_on`` and ``devices``.

    A registered dataset is read again only when its files are read from elsewhere or have changed
    (``PNAG_DATA_DIR``, ``PNAG_CACHE_DIR``, a file's mtime or size): until then the dataset read
    before is returned.
    """
    if name in RECORD_DATASETS:
        key = (name, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items())))
        hit = _LOADED.get(key)
        if hit is not None and file_stamps(hit[0]) == hit[1]:
            return hit[2]
        loader = {OFA_MBV3_W10: _load_ofa_mbv3, "nb201": _load_nb201, "help-ofa-gpu": _load_help}[name]
        with files_asked() as asked:
            ds = loader(**kwargs)
        files = tuple(dict.fromkeys(asked))
        _LOADED[key] = (files, file_stamps(files), ds)
        return ds
    if name in _NO_RECORDS:
        raise DataError(f"dataset {name!r} holds {_NO_RECORDS[name]}; datasets with records: {allowed(RECORD_DATASETS)}")
    if name.endswith(".jsonl"):
        return load_collection(name)
    if name.endswith(".json") or os.path.sep in name:
        return read_pnag_json(name, **kwargs)
    get_dataset_info(name)  # raises with the list of registered names
    raise DataError(f"dataset {name!r} has no records; allowed: {allowed(RECORD_DATASETS)}")  # pragma: no cover


__all__ = ["read_pnag_json", "write_pnag_json", "pnag_json_entries", "write_csv", "read_ofa_mbv3_csv",
           "load_ofa_archs_pt", "load_help_ofa_gpu", "help_ofa_devices", "ReferencePoint", "arch_from_net_config",
           "load_ofa_specialized", "load_dataset", "RECORD_DATASETS", "PNAG_PLATFORMS"]
