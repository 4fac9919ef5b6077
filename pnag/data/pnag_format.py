"""The published PNAG format (``architectures.json``: read and write) and the flat CSV export, the file
formats of ``pnag data export``. The PNAG format holds accuracy as a fraction and latency in
**seconds**; pnag's records hold ms (the reader and the writer convert).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Iterable

from .._io import atomic_open, read_json_file, write_csv_atomic
from ..errors import ArchError, DataError, allowed, check_number, shown
from ..space.mbv3 import MBV3Arch, parse_legacy
from .records import Accuracy, Dataset, Latency, Record, madds_params, make_dataset, shift_decimal

# -- the published PNAG format -------------------------------------------------------------------
PNAG_WIDTH_KEYS = {"w1.0": 1.0, "w1.2": 1.2}
PNAG_PLATFORMS = ("mobile", "cpu", "gpu")  # device names pnag uses for *_latency
PNAG_RESOLUTION = 224
PNAG_MEASURED_ON = "imagenet-val"


def read_pnag_json(path: str | os.PathLike, platform: str | None = None, width: float | None = None,
                   name: str | None = None) -> Dataset:
    """Read a published-format ``architectures.json`` into a dataset (one record per arch and width).

    ``platform`` (mobile|cpu|gpu) keeps only records measured there; ``width`` (1.0|1.2) only that
    width. Skipped entries are counted per reason in ``dataset.report.skipped``. Latency in the file
    is in seconds and becomes ms.
    """
    path = Path(path)
    if platform is not None and platform not in PNAG_PLATFORMS:
        raise DataError(f"platform: {platform!r} is not in the published format; allowed: {allowed(PNAG_PLATFORMS)}")
    wkeys = list(PNAG_WIDTH_KEYS)
    if width is not None:
        wkeys = [k for k, w in PNAG_WIDTH_KEYS.items() if abs(w - float(width)) < 1e-9]
        if not wkeys:
            raise DataError(f"width: {width!r} is not in the published format; allowed: 1.0 or 1.2")
    if not path.exists():
        raise DataError(f"{path}: no such file; expected a published-format architectures.json")
    data = read_json_file(path, str(path), "the published PNAG format (a list of {\"arch\": ..., \"w1.0\": {...}, "
                          "\"w1.2\": {...}}) or a .jsonl file written by 'pnag collect'")
    if not isinstance(data, list):
        raise DataError(f"{path}: top level is a {type(data).__name__}; expected a JSON list (published PNAG format)")
    skipped: Counter = Counter()
    records: list[Record] = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("arch"), str):
            skipped["entry is not an object with an 'arch' string"] += 1
            continue
        try:
            base = parse_legacy(item["arch"], resolution=PNAG_RESOLUTION)
        except ArchError as exc:
            raise DataError(f"{path}: entry {i}: {exc}") from None
        present = [k for k in wkeys if isinstance(item.get(k), dict)]
        if not present:
            skipped["lacks a width (no " + " or ".join(wkeys) + " object)"] += 1
            continue
        for k in present:
            m = item[k]
            if "top1_acc" not in m:
                skipped[f"{k} lacks top1_acc"] += 1
                continue
            lat = {}
            for p in PNAG_PLATFORMS:
                v = m.get(f"{p}_latency")
                if v is not None:
                    v = check_number(v, f"{path}: entry {i} {k} {p}_latency (s)", positive=True)
                    lat[p] = Latency(shift_decimal(v, 3), "measured", "pnag-json")
            if platform is not None and platform not in lat:
                skipped[f"{k} lacks {platform}_latency"] += 1
                continue
            try:
                acc = Accuracy(m["top1_acc"], "fraction", PNAG_MEASURED_ON)
            except (DataError, TypeError, ValueError, OverflowError) as exc:
                raise DataError(f"{path}: entry {i} {k} top1_acc: {shown(m['top1_acc'])} ({exc}); "
                                "allowed: a fraction in [0, 1]") from None
            arch = base.with_(width=PNAG_WIDTH_KEYS[k])
            records.append(Record(arch, acc, lat, *madds_params(arch), source=path.name))
    return make_dataset(name or path.stem, records, provenance=f"published PNAG format: {path}", skipped=skipped)


def pnag_json_entries(records: Iterable[Record]) -> tuple[list[dict], Counter]:
    """The published-format list for ``records`` and a count of what could not be written, per reason."""
    skipped: Counter = Counter()
    entries: dict[str, dict] = {}
    for r in records:
        if not isinstance(r.arch, MBV3Arch):
            skipped[f"{r.space} architecture (the format holds MobileNetV3 only)"] += 1
            continue
        if r.arch.resolution != PNAG_RESOLUTION:
            skipped[f"resolution {r.arch.resolution} (the format holds {PNAG_RESOLUTION} only)"] += 1
            continue
        if r.accuracy is None:
            skipped["no accuracy (top1_acc is required)"] += 1
            continue
        wkey = "w1.0" if r.arch.width == 1.0 else "w1.2"
        entry = entries.setdefault(r.arch.to_legacy(), {"arch": r.arch.to_legacy()})
        if wkey in entry:
            skipped[f"repeated {wkey} measurement (merge the dataset first)"] += 1
            continue
        m = {"top1_acc": r.accuracy.fraction}
        for p in PNAG_PLATFORMS:
            if p in r.latency:
                m[f"{p}_latency"] = shift_decimal(r.latency[p].ms, -3)
        others = [d for d in r.latency if d not in PNAG_PLATFORMS]
        if others:
            skipped["latency on a device other than mobile, cpu or gpu (not written)"] += 1
        entry[wkey] = m
    out = []
    for e in entries.values():  # key order: arch, w1.0, w1.2
        out.append({k: e[k] for k in ("arch", "w1.0", "w1.2") if k in e})
    return out, skipped


def write_pnag_json(records: Iterable[Record], path: str | os.PathLike) -> dict:
    """Write ``records`` in the published format (atomically). Returns ``{"written", "skipped"}``."""
    entries, skipped = pnag_json_entries(records)
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write("[\n")
        for i, e in enumerate(entries):
            fh.write(json.dumps(e) + (",\n" if i + 1 < len(entries) else "\n"))
        fh.write("]\n")
    return {"written": sum(len(e) - 1 for e in entries), "entries": len(entries), "skipped": dict(skipped)}


# -- flat CSV export ----------------------------------------------------------------------------
def write_csv(dataset: Dataset, path: str | os.PathLike) -> int:
    """One row per record: arch text, space, width, resolution, accuracy (+unit, measured_on), madds,
    params, then ``latency_ms:<device>`` per device. Returns the row count."""
    devices = dataset.devices
    header = ["arch", "space", "width", "resolution", "accuracy", "accuracy_unit", "measured_on",
              "madds", "params", *[f"latency_ms:{d}" for d in devices], "source"]
    rows = []
    for r in dataset.records:
        a = r.arch
        text = a.to_legacy() if isinstance(a, MBV3Arch) else a.to_string()
        acc = r.accuracy
        rows.append([text, r.space, getattr(a, "width", ""), getattr(a, "resolution", ""),
                     "" if acc is None else repr(acc.value), "" if acc is None else acc.unit,
                     "" if acc is None else acc.measured_on,
                     "" if r.madds is None else r.madds, "" if r.params is None else r.params,
                     *["" if d not in r.latency else repr(r.latency[d].ms) for d in devices], r.source])
    write_csv_atomic(path, header, rows)
    return len(dataset.records)


__all__ = ["PNAG_WIDTH_KEYS", "PNAG_PLATFORMS", "PNAG_RESOLUTION", "PNAG_MEASURED_ON", "read_pnag_json",
           "pnag_json_entries", "write_pnag_json", "write_csv"]
