"""Records, merging, the published PNAG format (round trip, skips), the public readers, the join."""

from __future__ import annotations

import ast
import csv
import json

import numpy as np
import pytest

from pnag.data import (Accuracy, Latency, Record, load_dataset, load_help_ofa_gpu, load_ofa_specialized,
                       make_dataset, read_pnag_json, training_table, write_csv, write_pnag_json)
from pnag.data.readers import RECORD_DATASETS, load_ofa_archs_pt
from pnag.errors import DataError
from pnag.nn.cost import arch_cost
from pnag.space.mbv3 import MBV3Space, parse_legacy

LEGACY = "2,2,3,3,3:5,5,0,0,5,5,0,0,7,5,7,0,3,5,5,0,7,5,5,0:3,3,0,0,4,3,0,0,4,3,3,0,6,4,4,0,6,6,6,0"


def test_merge_averages_and_reports():
    a, b = MBV3Space(width=1.0).sample(2, seed=1)
    recs = [Record(a, Accuracy(70.0), {"cpu": Latency(10.0)}), Record(b, Accuracy(60.0)),
            Record(a, Accuracy(72.0), {"cpu": Latency(14.0), "gpu": Latency(2.0)}), Record(a, Accuracy(74.0))]
    ds = make_dataset("t", recs)
    assert len(ds) == 2 and ds.report.merged == 2 and ds.report.rows == 4
    m = ds.records[0]
    assert m.arch == a and m.accuracy.value == pytest.approx(72.0) and m.accuracy.n == 3
    assert m.latency["cpu"].ms == pytest.approx(12.0) and m.latency["cpu"].n == 2 and m.latency["gpu"].ms == 2.0
    # width and resolution are part of the identity
    assert len(make_dataset("t", [Record(a), Record(a.with_(width=1.2)), Record(a.with_(resolution=192))])) == 3


def test_value_checks():
    with pytest.raises(DataError, match="unit"):
        Accuracy(0.5, "percent")
    with pytest.raises(DataError, match="outside"):
        Accuracy(75.0, "fraction")
    with pytest.raises(DataError, match="latency"):
        Latency(-1.0)
    assert Accuracy(75.448).fraction == 0.75448 and Accuracy(0.75448, "fraction").percent == 75.448


def test_pnag_json_reader_skips_and_units(tmp_path):
    data = [
        {"arch": LEGACY, "w1.0": {"top1_acc": 0.75, "mobile_latency": 0.0123, "cpu_latency": 0.02},
         "w1.2": {"top1_acc": 0.77, "mobile_latency": 0.015, "gpu_latency": 0.004}},
        {"arch": LEGACY.replace("2,2,3", "3,2,3", 1).replace("5,5,0,0", "5,5,5,0", 1).replace("3,3,0,0", "3,3,3,0", 1)},
        {"arch": LEGACY.replace("7,5,7,0", "7,5,7,3"), "w1.2": {"mobile_latency": 0.01}},
    ]
    p = tmp_path / "architectures.json"
    p.write_text(json.dumps(data))
    ds = read_pnag_json(p)
    assert len(ds) == 2 and ds.report.skipped == {"lacks a width (no w1.0 or w1.2 object)": 1, "w1.2 lacks top1_acc": 1}
    r10 = ds.records[0]
    assert r10.arch == parse_legacy(LEGACY, width=1.0) and r10.accuracy.value == 0.75 and r10.accuracy.unit == "fraction"
    assert r10.latency["mobile"].ms == 12.3 and r10.latency["cpu"].ms == 20.0  # seconds -> ms
    assert r10.madds == arch_cost(r10.arch).madds
    mob = read_pnag_json(p, platform="gpu")
    assert len(mob) == 1 and mob.report.skipped["w1.0 lacks gpu_latency"] == 1
    # file -> records -> file is byte-identical once in our layout; records survive exactly
    out = tmp_path / "again.json"
    write_pnag_json(ds.records, out)
    again = read_pnag_json(out)
    assert [r.with_(source="") for r in again.records] == [r.with_(source="") for r in ds.records]
    out2 = tmp_path / "again2.json"
    write_pnag_json(again.records, out2)
    assert out2.read_bytes() == out.read_bytes()
    with pytest.raises(DataError, match="platform"):
        read_pnag_json(p, platform="tpu")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_pnag_json(tmp_path / "bad.json")


def _csv_rows(mirror):
    rows = []
    for f in sorted((mirror / "ofa-mbv3-w1.0-imagenet").glob("*.csv")):
        with open(f, newline="") as fh:
            rows += list(csv.DictReader(fh))
    return rows


def test_ofa_mbv3_imagenet(use_mirror):
    ds = load_dataset("ofa-mbv3-w1.0-imagenet")
    rows = _csv_rows(use_mirror)
    by = {}
    for r in rows:
        d = ast.literal_eval(r["Sub-network"])
        by.setdefault(MBV3Space(width=1.0).validate(d), []).append(float(r["Top-1 Acc (%)"]))
    assert len(rows) == 2373 and ds.report.rows == 2373
    assert len(ds) == len(by) and ds.report.merged == 2373 - len(by)
    assert 2100 < len(by) < 2200
    for rec in ds.records[:300]:
        assert rec.accuracy.value == pytest.approx(np.mean(by[rec.arch]), abs=1e-9)
        assert rec.arch.width == 1.0 and rec.arch.resolution == 224 and rec.latency == {}
        assert rec.madds == arch_cost(rec.arch).madds  # the CSV's MACs equal our analytic count


def test_export_published_format_round_trip(use_mirror, tmp_path):
    ds = load_dataset("ofa-mbv3-w1.0-imagenet")
    rep = write_pnag_json(ds.records, tmp_path / "a.json")
    assert rep["written"] == len(ds) and rep["skipped"] == {}
    back = read_pnag_json(tmp_path / "a.json")
    assert len(back) == len(ds) and back.report.skipped == {}
    for a, b in zip(ds.records, back.records):
        assert b.arch == a.arch and b.accuracy.percent == a.accuracy.value
        assert (b.madds, b.params) == (a.madds, a.params)
    n = write_csv(ds, tmp_path / "a.csv")
    with open(tmp_path / "a.csv", newline="") as fh:
        got = list(csv.DictReader(fh))
    assert n == len(got) == len(ds) and float(got[0]["accuracy"]) == ds.records[0].accuracy.value


def test_help_ofa_gpu(use_mirror, tmp_path):
    archs, lat = load_help_ofa_gpu()
    assert len(archs) == 5000 and len(lat) == 12 and all(v.shape == (5000,) and (v > 0).all() for v in lat.values())
    assert {a.resolution for a in archs} <= set(range(128, 225, 4)) and len({a.resolution for a in archs}) == 25
    # the restricted unpickler refuses anything beyond numpy scalars
    import pickle
    import torch

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"arch": [Evil()]}, tmp_path / "evil.pt", pickle_module=pickle)
    with pytest.raises(DataError, match="restricted unpickler"):
        load_ofa_archs_pt(tmp_path / "evil.pt")


def test_ofa_specialized(use_mirror):
    pts = load_ofa_specialized()
    assert len(pts) == 50 and sum(p.arch is not None for p in pts) == 34
    p = next(p for p in pts if p.name == "note10_lat-22ms_top1-76.6_finetune-25")
    assert (p.device, p.latency_ms, p.top1_percent, p.finetune_epochs) == ("note10", 22.0, 76.6, 25)
    f = next(p for p in pts if p.name.startswith("flops-595M"))
    assert f.madds_budget_m == 595.0 and f.device is None
    # the MAdds-constrained nets stay within their published budget at some resolution <= 224
    assert arch_cost(f.arch, resolution=128).madds_m <= 595.0


@pytest.mark.parametrize("name", RECORD_DATASETS)
def test_every_record_dataset_loads(use_mirror, name):
    kw = {"devices": ["pixel3", "raspi4"]} if name == "nb201" else {}
    ds = load_dataset(name, **kw)
    assert len(ds) > 1000 and ds.summary()["records"] == len(ds)


def test_a_loaded_dataset_follows_its_files(use_mirror, tmp_path, monkeypatch):
    """A registered dataset is read once per set of files, not once per process (issue 18): another
    PNAG_DATA_DIR, or a changed file, is read again, and a mirror without the files refuses it."""
    import os
    import shutil

    from pnag.data import get_dataset_info

    monkeypatch.setenv("PNAG_OFFLINE", "1")
    name = "ofa-mbv3-w1.0-imagenet"
    first = load_dataset(name)
    assert load_dataset(name) is first  # the same files: not read again
    other = tmp_path / "other" / name
    other.mkdir(parents=True)
    files = [f.relpath for f in get_dataset_info(name).files]
    shutil.copy(use_mirror / name / files[0], other / files[0])
    for rel in files[1:]:
        (other / rel).symlink_to(use_mirror / name / rel)
    monkeypatch.setenv("PNAG_DATA_DIR", str(other.parent))
    second = load_dataset(name)
    assert second is not first and len(second) == len(first)
    assert load_dataset(name) is second
    st = (other / files[0]).stat()
    os.utime(other / files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: read again
    assert load_dataset(name) is not second
    monkeypatch.setenv("PNAG_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="is missing"):
        load_dataset(name)


def test_table_datasets_load(use_mirror):
    import torch
    import yaml

    from pnag.data import get_file

    sd = torch.load(get_file("ofa-acc-predictor-w1.2", "acc_predictor.pth"), map_location="cpu", weights_only=True)
    assert sd["0.weight"].shape == (400, 128)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for ds, rel in (("ofa-note10-lut-w1.2", "224_lookup_table.yaml"), ("i7-8700k-lut", "i7-8700K_lut.yaml")):
        with open(get_file(ds, rel)) as fh:
            assert len(yaml.load(fh, Loader=loader)) > 10
    with pytest.raises(DataError, match="lookup table"):
        load_dataset("i7-8700k-lut")


def test_training_table_join(use_mirror):
    ds = load_dataset("ofa-mbv3-w1.0-imagenet")

    def lat(archs):  # prices only depth-2 first units, like a table with gaps
        return np.array([arch_cost(a).madds_m / 20 if a.depths[0] == 2 else np.nan for a in archs])

    tt = training_table(ds, lat, platform="toy")
    n2 = sum(r.arch.depths[0] == 2 for r in ds.records)
    assert len(tt) == n2 and tt.unpriced == len(ds) - n2 and tt.platform == "toy"
    assert (tt.accuracy < 1).all() and np.isfinite(tt.latency_ms).all()
    nb = load_dataset("nb201", devices=["pixel3"])
    t2 = training_table(nb, "pixel3")
    assert len(t2) == 15625 and t2.unpriced == 0
    with pytest.raises(DataError, match="allowed: pixel3"):
        training_table(nb, "v100")


# -- fault injection: corrupt numbers in dataset and record files (issue 21) -----------------------------------
@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (-0.02, "-0.02"), (True, "True"), ("0.02", "'0.02'"),
                                          (float("inf"), "inf")])
def test_pnag_json_refuses_corrupt_latency(tmp_path, value, shown):
    p = tmp_path / "architectures.json"
    p.write_text(json.dumps([{"arch": LEGACY, "w1.0": {"top1_acc": 0.75, "cpu_latency": 0.02}},
                             {"arch": LEGACY, "w1.2": {"top1_acc": 0.77, "cpu_latency": value}}]))
    with pytest.raises(DataError, match=rf"^{p}: entry 1 w1.2 cpu_latency \(s\): {shown} is not allowed; "
                                        r"allowed: a finite number > 0$"):
        read_pnag_json(p)


@pytest.mark.parametrize("value", [float("nan"), 1.5, -0.1, True, "0.75"])
def test_pnag_json_refuses_corrupt_accuracy(tmp_path, value):
    p = tmp_path / "architectures.json"
    p.write_text(json.dumps([{"arch": LEGACY, "w1.0": {"top1_acc": value}}]))
    with pytest.raises(DataError, match=rf"^{p}: entry 0 w1.0 top1_acc: .*allowed: a fraction in \[0, 1\]$"):
        read_pnag_json(p)


@pytest.mark.parametrize("acc, lat, pattern", [
    ("nan", "0", r"line 3 Top-1 Acc \(%\): nan is not allowed"),
    ("101", "0", r"line 3 Top-1 Acc \(%\): 101.0 is outside the allowed range; allowed: a finite number "
                 r"in \[0, 100\]$"),
    ("seventy", "0", r"line 3 Top-1 Acc \(%\): 'seventy' is not a number"),
    ("75.0", "-3", r"line 3 Latency \(ms\): -3.0 is outside the allowed range; allowed: a finite number >= 0$"),
    ("75.0", "nan", r"line 3 Latency \(ms\): nan is not allowed"),
])
def test_dynast_csv_refuses_corrupt_values(tmp_path, acc, lat, pattern):
    from pnag.data.readers import read_ofa_mbv3_csv

    sub = str({"wid": None, "ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": [224]})
    p = tmp_path / "t.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows([["Sub-network", "Latency (ms)", "Top-1 Acc (%)"], [sub, "0", "74.5"], [sub, lat, acc]])
    with pytest.raises(DataError, match=f"^{p} {pattern}"):
        read_ofa_mbv3_csv(p)
    with open(p, "w", newline="") as fh:
        csv.writer(fh).writerows([["Sub-network", "Latency (ms)", "Top-1 Acc (%)"], [sub, "0", "74.5"],
                                  [sub, "5", "75"]])
    recs, _ = read_ofa_mbv3_csv(p)
    assert [r.latency_ms("dynast") for r in recs] == [None, 5.0] and recs[1].accuracy.value == 75.0


@pytest.mark.parametrize("change, pattern", [
    (lambda d: d["accuracy"].update(value=float("nan")), r"accuracy score: nan is not allowed"),
    (lambda d: d["latency"]["cpu"].update(ms=-1000.0), r"latency \(ms\): -1000.0 is not allowed"),
    (lambda d: d["latency"]["cpu"].update(ms=True), r"latency \(ms\): True is not allowed"),
    (lambda d: d["latency"]["cpu"].update(n=0), r"latency n \(measurements averaged\): 0 is not allowed"),
    (lambda d: d.update(accuracy={"value": "75", "unit": "%", "measured_on": "x"}), r"accuracy \(%\): '75' is not"),
])
def test_collection_file_refuses_corrupt_values(tmp_path, change, pattern):
    from pnag.data.collection import CollectConfig, load_collection
    from pnag.data.records import record_to_dict

    rec = record_to_dict(Record(parse_legacy(LEGACY), Accuracy(3.5, "score", "proxy"), {"cpu": Latency(12.0)}))
    change(rec)
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps(CollectConfig(samples=2).header()) + "\n" + json.dumps(rec) + "\n")
    with pytest.raises(DataError, match=f"^{p} line 2: {pattern}"):
        load_dataset(str(p))
    with pytest.raises(DataError, match=f"^{p} line 2: {pattern}"):
        load_collection(p)
