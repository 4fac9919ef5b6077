"""NAS-Bench-201 table: all 15,625 cells, three accuracies, 27 latency devices, string round trip."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from pnag.data.nb201 import NB201_DATASETS, NB201_DEVICES, load_nb201
from pnag.errors import PnagError
from pnag.space.nb201 import NB201Space, parse_nb201


@pytest.fixture
def table(use_mirror):
    return load_nb201()


def test_all_cells_in_published_order(table, use_mirror):
    with open(use_mirror / "nb201" / "nats_bench.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(table) == len(rows) == 15625
    archs = table.archs
    for i, (a, row) in enumerate(zip(archs, rows)):
        s = a.to_string()
        assert s == row["ArchitectureString"]  # published order, exact string
        assert parse_nb201(s) == a  # round trip for every cell
    assert set(archs) == set(NB201Space().all_archs())
    assert table.index_of(rows[123]["ArchitectureString"]) == 123
    assert table.index_of(archs[15624]) == 15624
    acc = table.accuracy("cifar10")
    assert acc[7] == pytest.approx(float(rows[7]["CIFAR10TestAccuracy200Epochs"]))


def test_accuracies(table):
    for d in NB201_DATASETS:
        a = table.accuracy(d)
        assert a.shape == (15625,) and a.dtype == np.float64
        assert np.isfinite(a).all() and (a >= 0).all() and (a <= 100).all()
    # the benchmark's best cells are well known to exceed 94 / 73 / 46 %
    assert table.accuracy("cifar10").max() > 94 and table.accuracy("cifar100").max() > 73
    assert table.accuracy("imagenet16-120").max() > 46  # case-insensitive name


def test_latency_every_device(table):
    assert len(NB201_DEVICES) == 27
    for dev in NB201_DEVICES:
        lat = table.latency(dev)
        assert lat.shape == (15625,) and np.isfinite(lat).all() and (lat > 0).all(), dev
    with pytest.raises(ValueError):
        table.latency("pixel2")[0] = 1.0  # read-only


def test_unknown_names(table):
    with pytest.raises(PnagError, match="allowed: cifar10, cifar100 or ImageNet16-120"):
        table.accuracy("imagenet")
    with pytest.raises(PnagError, match="nb201 device: 'pixel9'.*allowed:.*raspi4"):
        table.latency("pixel9")


def test_the_table_follows_the_data_dir(use_mirror, tmp_path, monkeypatch):
    """Read once per file, not once per process: another PNAG_DATA_DIR is read again (issue 18)."""
    from pnag.errors import DataError

    monkeypatch.setenv("PNAG_OFFLINE", "1")
    first = load_nb201()
    lat = first.latency("pixel3")
    assert load_nb201() is first and first.latency("pixel3") is lat  # the same files: not read again
    other = tmp_path / "other" / "nb201"
    (other / "latency").mkdir(parents=True)
    (other / "nats_bench.csv").symlink_to(use_mirror / "nb201" / "nats_bench.csv")
    (other / "latency" / "pixel3.pt").symlink_to(use_mirror / "nb201" / "latency" / "pixel3.pt")
    monkeypatch.setenv("PNAG_DATA_DIR", str(other.parent))
    second = load_nb201()
    assert second is not first and len(second) == len(first)  # the same content, from elsewhere: read again
    assert second.latency("pixel3") is not lat and np.array_equal(second.latency("pixel3"), lat)
    with pytest.raises(DataError, match="nb201/latency/raspi4.pt is missing"):  # not in this mirror
        second.latency("raspi4")
    monkeypatch.setenv("PNAG_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="nb201/nats_bench.csv is missing"):
        load_nb201()
