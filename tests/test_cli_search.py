"""The README's main job, ``pnag search``: with the public data, and on a machine without it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pnag.cli import main
from pnag.data import readers
from pnag.sources import get_latency_source
from pnag.space import MBV3Space


def _generated(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_search_with_public_data_meets_every_budget(use_mirror, tmp_path, capsys):
    out = tmp_path / "search"
    assert main(["search", "--latency", "lut:i7-8700k", "-n", "4", "-o", str(out), "-q", "--json"]) == 0
    res = _generated(capsys)
    assert res["accuracy"] == "dataset:ofa-mbv3-w1.0-imagenet" and res["note"] is None
    gens = res["generated"]
    assert len(gens) == 4
    space = MBV3Space(width=1.0)
    archs = [space.parse(g["arch"]) for g in gens]
    # Latency re-priced independently of the run: every generated architecture meets its budget.
    true_ms = get_latency_source("lut:i7-8700k", space).latency_ms(archs)
    budgets = np.array([g["budget"] for g in gens])
    assert np.all(true_ms <= budgets + 1e-9), (true_ms, budgets)
    assert np.all(np.diff(budgets) > 0)
    assert Path(res["plot"]).stat().st_size > 10_000
    assert all(60.0 < g["predicted_accuracy"] < 85.0 for g in gens)  # ImageNet top-1 in %


def test_search_without_the_dataset_falls_back_to_a_proxy_and_says_so(mirror_dir, tmp_path, monkeypatch, capsys):
    # A mirror holding only the latency table: the measured accuracies cannot be had (offline).
    mirror = tmp_path / "mirror" / "i7-8700k-lut"
    mirror.mkdir(parents=True)
    (mirror / "i7-8700K_lut.yaml").symlink_to(mirror_dir / "i7-8700k-lut" / "i7-8700K_lut.yaml")
    monkeypatch.setenv("PNAG_DATA_DIR", str(tmp_path / "mirror"))
    monkeypatch.setenv("PNAG_OFFLINE", "1")
    monkeypatch.setattr(readers, "_LOADED", {})  # forget datasets an earlier test read in this process
    out = tmp_path / "search"
    assert main(["search", "--latency", "lut:i7-8700k", "--train-samples", "12", "-n", "2", "-o", str(out), "-q"]) == 0
    cap = capsys.readouterr()
    assert "NOTE: the measured ImageNet dataset is not available" in cap.out
    assert "training-free proxy 'synflow'" in cap.out and "not a measured accuracy" in cap.out
    assert "accuracy_score" in cap.out  # the table says the column is a score, not %
    assert (out / "search.png").is_file()


def test_search_bad_input_exit_2(use_mirror, tmp_path, capsys):
    assert main(["search", "--latency", "lut:nowhere", "-o", str(tmp_path / "s"), "-q"]) == 2
    assert "lut:nowhere" in capsys.readouterr().err
    assert main(["search", "--budgets", "20:10", "--latency", "lut:i7-8700k", "-o", str(tmp_path / "s"), "-q"]) == 2
    assert "--budgets" in capsys.readouterr().err
    assert main(["search", "--threads", "0", "-o", str(tmp_path / "s")]) == 2
    assert "--threads: 0 is not allowed" in capsys.readouterr().err
