"""``pnag data``: list, describe, fetch and export the public architecture datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DataError
from ._common import check_output_path, print_json, table

EXPORT_FORMATS = ("pnag-json", "csv")


def register(sub) -> None:
    p = sub.add_parser("data", help="public architecture datasets: list, info, fetch, export")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    q = dsub.add_parser("list", help="the registered public datasets")
    q.set_defaults(func=_list)

    q = dsub.add_parser("info", help="records, distinct architectures, merged repeats, accuracy and latency ranges")
    q.add_argument("name", help="a registered dataset name, or a published-format .json file")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.add_argument("--accuracy-on", default="cifar10", help="nb201 only: cifar10, cifar100 or ImageNet16-120")
    q.set_defaults(func=_info)

    q = dsub.add_parser("fetch", help="download (or verify in PNAG_DATA_DIR) every file of a dataset")
    q.add_argument("name", help="a registered dataset name, or 'all'")
    q.set_defaults(func=_fetch)

    q = dsub.add_parser("export", help="write a dataset's records to a file")
    q.add_argument("name", help="a registered dataset with records, or a published-format .json file")
    q.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="pnag-json (published format) or csv")
    q.add_argument("-o", "--output", required=True, type=Path, help="file to write (atomically)")
    q.add_argument("--accuracy-on", default="cifar10", help="nb201 only: cifar10, cifar100 or ImageNet16-120")
    q.set_defaults(func=_export)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _list(args: argparse.Namespace) -> int:
    from ..data.registry import get_dataset_info, list_datasets

    rows = []
    for name in list_datasets():
        info = get_dataset_info(name)
        rows.append([name, len(info.files), f"{info.total_bytes / 1e6:.2f}", info.license[:28],
                     info.description[:70] + ("..." if len(info.description) > 70 else "")])
    print(table(rows, ["name", "files", "MB", "license", "description"]))
    return 0


def _load(name: str, accuracy_on: str):
    from ..data.readers import load_dataset

    kwargs = {"accuracy_on": accuracy_on} if name == "nb201" else {}
    return load_dataset(name, **kwargs)


def dataset_summary(name: str, accuracy_on: str = "cifar10") -> dict:
    """The ``pnag data info --json`` object of a registered dataset or a published-format file."""
    from ..data.readers import RECORD_DATASETS, load_ofa_specialized
    from ..data.registry import get_dataset_info, list_datasets

    reg = {}
    if name in list_datasets():
        info = get_dataset_info(name)
        reg = {"description": info.description, "license": info.license, "source": info.source,
               "files": len(info.files), "bytes": info.total_bytes,
               "file_list": [{"path": f.relpath, "url": f.url, "sha256": f.sha256, "bytes": f.size}
                             for f in info.files]}
    if name == "ofa-specialized":
        pts = load_ofa_specialized()
        lat = [p.latency_ms for p in pts if p.latency_ms is not None]
        top1 = [p.top1_percent for p in pts]
        return {"name": name, "kind": "reference points", "records": 0, "reference_points": len(pts),
                "mobilenetv3": sum(p.arch is not None for p in pts),
                "distinct_architectures": len({p.arch for p in pts if p.arch is not None}),
                "merged_repeats": 0,
                "devices": sorted({p.device for p in pts if p.device}),
                "accuracy_range": {"min": min(top1), "max": max(top1), "unit": "%",
                                   "measured_on": "imagenet-val after fine-tuning"},
                "latency_range": {"published": {"min_ms": min(lat), "max_ms": max(lat), "count": len(lat)}},
                **reg}
    if reg and name not in RECORD_DATASETS:
        from ..data.registry import fetch

        fetch(name)  # verified to be present; these hold tables or weights, not records
        return {"name": name, "kind": "table", "records": 0, "distinct_architectures": 0, "merged_repeats": 0,
                "accuracy_range": None, "latency_range": {}, **reg}
    ds = _load(name, accuracy_on)
    return {**ds.summary(), "kind": "records", **reg}


def _info(args: argparse.Namespace) -> int:
    s = dataset_summary(args.name, args.accuracy_on)
    if args.json:
        print_json(s)
        return 0
    print(f"{s['name']}: {s.get('description', s.get('provenance', ''))}")
    if "license" in s:
        print(f"  license: {s['license']}; source: {s['source']}; {s['files']} files, {s['bytes'] / 1e6:.2f} MB")
        for f in s.get("file_list", []):  # where each file comes from and the checksum it is verified against
            print(f"  file {f['path']}: {f['url']} (sha256 {f['sha256']})")
    if s["kind"] == "records":
        print(f"  records: {s['records']} ({s['distinct_architectures']} distinct architectures; "
              f"{s['rows_read']} rows read, {s['merged_repeats']} repeats merged by averaging)")
        for reason, n in s["skipped"].items():
            print(f"  skipped {n}: {reason}")
    elif s["kind"] == "reference points":
        print(f"  reference points: {s['reference_points']} ({s['mobilenetv3']} MobileNetV3)")
    acc = s.get("accuracy_range")
    if acc:
        print(f"  accuracy: {acc['min']:.4g} .. {acc['max']:.4g} {acc['unit']} ({acc['measured_on']})")
    lat = s.get("latency_range") or {}
    if lat:
        rows = [[d, v.get("count", ""), f"{v['min_ms']:.4g}", f"{v['max_ms']:.4g}", ",".join(v.get("sources", []))]
                for d, v in lat.items()]
        print(table(rows, ["device", "records", "min ms", "max ms", "source"]))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from ..data.registry import fetch, list_datasets

    names = list_datasets() if args.name == "all" else [args.name]
    for n in names:
        paths = fetch(n)
        print(f"{n}: {len(paths)} files verified (sha256); e.g. {paths[0]}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..data.readers import pnag_json_entries, write_csv, write_pnag_json

    check_output_path(args.output, "-o/--output")
    ds = _load(args.name, args.accuracy_on)
    if args.format == "pnag-json":
        entries, skipped = pnag_json_entries(ds.records)
        if not entries:
            raise DataError(f"dataset {args.name}: nothing can be written in the published format "
                            f"({'; '.join(skipped) or 'no records'}); allowed: --format csv")
        rep = write_pnag_json(ds.records, args.output)
        print(f"wrote {rep['written']} measurements ({rep['entries']} architectures) to {args.output}")
        for reason, n in rep["skipped"].items():
            print(f"  not written {n}: {reason}")
    else:
        n = write_csv(ds, args.output)
        print(f"wrote {n} records to {args.output}")
    return 0
