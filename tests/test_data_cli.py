"""pnag data list / info / fetch / export."""

from __future__ import annotations

import ast
import csv
import json

from pnag.cli import main
from pnag.data import read_pnag_json
from pnag.collect import collect
from pnag.data.collection import CollectConfig
from pnag.space import MBV3Space


def test_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for n in ("ofa-mbv3-w1.0-imagenet", "nb201", "help-ofa-gpu", "i7-8700k-lut", "Apache-2.0"):
        assert n in out


def test_info_json_reports_distinct_merges_and_range(use_mirror, capsys):
    assert main(["data", "info", "ofa-mbv3-w1.0-imagenet", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    by: dict = {}
    for f in sorted((use_mirror / "ofa-mbv3-w1.0-imagenet").glob("*.csv")):
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                arch = MBV3Space(width=1.0).validate(ast.literal_eval(row["Sub-network"]))
                by.setdefault(arch, []).append(float(row["Top-1 Acc (%)"]))
    rows = sum(len(v) for v in by.values())
    means = [sum(v) / len(v) for v in by.values()]
    assert info["name"] == "ofa-mbv3-w1.0-imagenet"
    assert info["records"] == info["distinct_architectures"] == len(by)
    assert info["rows_read"] == rows and info["merged_repeats"] == rows - len(by) > 0
    acc = info["accuracy_range"]
    assert acc["unit"] == "%" and abs(acc["min"] - min(means)) < 1e-9 and abs(acc["max"] - max(means)) < 1e-9
    assert info["latency_range"] == {}  # the CSV's latency column is never measured
    assert info["license"] == "Apache-2.0"


def test_info_shows_each_files_address_and_checksum(use_mirror, capsys):
    from pnag.data.registry import get_dataset_info

    assert main(["data", "info", "i7-8700k-lut"]) == 0
    out = capsys.readouterr().out
    f = get_dataset_info("i7-8700k-lut").files[0]
    assert f"file {f.relpath}: {f.url} (sha256 {f.sha256})" in out
    assert main(["data", "info", "i7-8700k-lut", "--json"]) == 0
    files = json.loads(capsys.readouterr().out)["file_list"]
    assert files == [{"path": f.relpath, "url": f.url, "sha256": f.sha256, "bytes": f.size}]


def test_info_latency_ranges(use_mirror, capsys):
    assert main(["data", "info", "help-ofa-gpu", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["records"] == 5000 and info["accuracy_range"] is None
    assert set(info["latency_range"]) >= {"v100_1", "2080ti_64"}
    v = info["latency_range"]["v100_1"]
    assert 0 < v["min_ms"] < v["max_ms"] and v["sources"] == ["published-table"]
    assert main(["data", "info", "ofa-specialized"]) == 0
    assert "reference points: 50 (34 MobileNetV3)" in capsys.readouterr().out


def test_export_and_errors(use_mirror, tmp_path, capsys):
    out = tmp_path / "arch.json"
    assert main(["data", "export", "ofa-mbv3-w1.0-imagenet", "--format", "pnag-json", "-o", str(out)]) == 0
    back = read_pnag_json(out)
    assert len(back) == back.report.distinct and back.report.skipped == {}
    assert main(["data", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["records"] == len(back) and info["accuracy_range"]["unit"] == "fraction"
    coll = tmp_path / "nb.jsonl"
    collect(CollectConfig(space="nb201", samples=3, seed=0, accuracy="nb201:cifar100"), coll, progress=False)
    assert main(["data", "export", str(coll), "--format", "pnag-json", "-o", str(tmp_path / "n.json")]) == 2
    assert "nothing can be written" in capsys.readouterr().err and not (tmp_path / "n.json").exists()
    assert main(["data", "export", str(coll), "--format", "csv", "-o", str(tmp_path / "n.csv")]) == 0
    with open(tmp_path / "n.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and rows[0]["space"] == "nb201" and rows[0]["accuracy_unit"] == "%"
    assert main(["data", "info", "nb201", "--accuracy-on", "svhn"]) == 2
    assert "allowed: cifar10, cifar100 or ImageNet16-120" in capsys.readouterr().err
    assert main(["data", "info", "nosuch"]) == 2
