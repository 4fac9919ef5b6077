"""The README's main job, ``pnag search``: with the public data, and on a machine without it."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import matplotlib.axes
import pytest

import numpy as np

from pnag.cli import main
from pnag.cli._report import ACCURACY_KINDS, LATENCY_KINDS
from pnag.sources import get_latency_source
from pnag.space import MBV3Space


def _generated(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def _printed_rows(out: str) -> list[dict]:
    """The rows of the answer table that ``pnag search`` printed, cut at the columns its dashes mark."""
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("budget_ms"))
    end = next(k for k in range(i, len(lines)) if lines[k].startswith("results:"))
    spans = [m.span() for m in re.finditer(r"-+", lines[i + 1])]
    spans[-1] = (spans[-1][0], None)  # the last column runs to the end of the line

    def cells(line: str) -> list[str]:
        return [line[a:b].strip() for a, b in spans]

    header = cells(lines[i])
    return [dict(zip(header, cells(line))) for line in lines[i + 2:end]]


def test_search_with_public_data_meets_every_budget(use_mirror, tmp_path, capsys):
    out = tmp_path / "search"
    assert main(["search", "--latency", "lut:i7-8700k", "-n", "4", "-o", str(out), "-q", "--json"]) == 0
    res = _generated(capsys)
    assert res["accuracy"] == "dataset:ofa-mbv3-w1.0-imagenet" and res["note"] is None
    gens = res["generated"]
    assert len(gens) == 4
    space = MBV3Space(width=1.0)
    archs = [space.parse(g["arch"]) for g in gens]
    # The printed latency is the table's for the printed architecture (re-priced apart from the run), and a
    # larger budget buys a slower, more accurate network.
    true_ms = get_latency_source("lut:i7-8700k", space).latency_ms(archs)
    np.testing.assert_allclose([g["latency_ms"] for g in gens], true_ms, rtol=1e-6)
    budgets = np.array([g["budget_ms"] for g in gens])
    assert np.all(np.diff(budgets) > 0)
    assert true_ms[-1] > true_ms[0] and gens[-1]["accuracy"] > gens[0]["accuracy"]
    assert Path(res["plot"]).stat().st_size > 10_000
    assert all(60.0 < g["accuracy"] < 85.0 for g in gens)  # ImageNet top-1 in %
    # every value says what it is: a measured or predicted top-1 %, a per-layer table's latency estimate
    assert all(g["accuracy_unit"] == "%" and g["accuracy_is"] in ("measured", "predicted") for g in gens)
    assert {g["latency_is"] for g in gens} == {"lut-estimate"} and res["latency_is"] == "lut-estimate"
    assert "i7-8700K" in res["device"]
    assert Path(res["results"]).is_file()


def test_search_without_the_dataset_falls_back_to_a_proxy_and_says_so(mirror_dir, tmp_path, monkeypatch, capsys):
    # A mirror holding only the latency table: the measured accuracies cannot be had (offline).
    mirror = tmp_path / "mirror" / "i7-8700k-lut"
    mirror.mkdir(parents=True)
    (mirror / "i7-8700K_lut.yaml").symlink_to(mirror_dir / "i7-8700k-lut" / "i7-8700K_lut.yaml")
    monkeypatch.setenv("PNAG_DATA_DIR", str(tmp_path / "mirror"))
    monkeypatch.setenv("PNAG_OFFLINE", "1")
    out = tmp_path / "search"
    assert main(["search", "--latency", "lut:i7-8700k", "--train-samples", "12", "-n", "2", "-o", str(out), "-q"]) == 0
    cap = capsys.readouterr()
    notes = [line for line in (cap.out + cap.err).splitlines() if "NOTE" in line]
    assert len(notes) == 1 and len(notes[0]) < 260, notes  # once, one short line
    assert "no measured ImageNet accuracies (offline: PNAG_OFFLINE=1)" in notes[0]
    assert "training-free proxy 'synflow'" in notes[0] and "not a measured accuracy" in notes[0]
    assert "To fix: set PNAG_DATA_DIR" in notes[0]
    assert "unset PNAG_OFFLINE and run 'pnag data fetch ofa-mbv3-w1.0-imagenet'" in notes[0]
    assert "synflow_score" in cap.out and "accuracy_%" not in cap.out  # the column is a score, not %
    rows = _printed_rows(cap.out)
    assert {r["accuracy_is"] for r in rows} <= {"proxy", "predicted-proxy"}
    assert (out / "search.png").is_file() and (out / "results.csv").is_file()


def test_search_bad_input_exit_2(use_mirror, tmp_path, capsys):
    assert main(["search", "--latency", "lut:nowhere", "-o", str(tmp_path / "s"), "-q"]) == 2
    assert "lut:nowhere" in capsys.readouterr().err
    assert main(["search", "--budgets", "20:10", "--latency", "lut:i7-8700k", "-o", str(tmp_path / "s"), "-q"]) == 2
    assert "--budgets" in capsys.readouterr().err
    assert main(["search", "--threads", "0", "-o", str(tmp_path / "s")]) == 2
    assert "--threads: 0 is not allowed" in capsys.readouterr().err


def _labelled(header: list[str]) -> None:
    """No unlabelled accuracy or latency column: each has its ``*_is`` column, right after it."""
    for i, name in enumerate(header):
        if name.startswith("accuracy_") and name != "accuracy_is" or name.endswith("_score"):
            assert header[i + 1] == "accuracy_is", header
        if name == "latency_ms":
            assert header[i + 1] == "latency_is", header


def _spy_plot_labels(monkeypatch) -> list[str]:
    """Collect the legend entries and y-axis labels of every plot drawn."""
    seen: list[str] = []
    legend, ylabel = matplotlib.axes.Axes.legend, matplotlib.axes.Axes.set_ylabel

    def spy_legend(self, *a, **k):
        seen.extend(self.get_legend_handles_labels()[1])
        return legend(self, *a, **k)

    def spy_ylabel(self, text, *a, **k):
        seen.append(f"ylabel: {text}")
        return ylabel(self, text, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "legend", spy_legend)
    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylabel", spy_ylabel)
    return seen


@pytest.mark.slow
def test_search_labels_results_csv_and_rerun_after_the_data_came(mirror_dir, tmp_path, monkeypatch, capsys):
    """A new user's path: a proxy run without the data, then the data, then the same command again."""
    monkeypatch.chdir(tmp_path)
    labels = _spy_plot_labels(monkeypatch)
    lut_only = tmp_path / "lut-only-mirror" / "i7-8700k-lut"  # no accuracies in it
    lut_only.mkdir(parents=True)
    (lut_only / "i7-8700K_lut.yaml").symlink_to(mirror_dir / "i7-8700k-lut" / "i7-8700K_lut.yaml")
    monkeypatch.setenv("PNAG_DATA_DIR", str(lut_only.parent))
    monkeypatch.setenv("PNAG_OFFLINE", "1")
    argv = ["search", "--latency", "lut:i7-8700k", "-n", "3", "-q"]
    assert main(argv + ["--train-samples", "12"]) == 0
    first = capsys.readouterr()
    assert (tmp_path / "pnag-search" / "results.csv").is_file()
    assert labels and not any("measured" in x for x in labels), labels  # proxy scores are not called measured
    assert any("proxy score" in x for x in labels) and any("not an accuracy" in x for x in labels), labels
    _labelled(list(_printed_rows(first.out)[0]))

    labels.clear()
    monkeypatch.setenv("PNAG_DATA_DIR", str(mirror_dir))
    monkeypatch.delenv("PNAG_OFFLINE")
    assert main(argv) == 0  # the default folder holds the proxy run: a fresh folder, said in one line
    cap = capsys.readouterr()
    moved = [x for x in cap.err.splitlines() if x.startswith("output:")]
    assert len(moved) == 1 and "'pnag-search-2'" in moved[0] and "accuracy='proxy:synflow'" in moved[0]
    assert "NOTE" not in cap.out + cap.err
    # the few lines saying what the run is: the device, how the budgets were chosen
    assert "latency: 'lut:i7-8700k' = " in cap.out and "i7-8700K" in cap.out
    assert "10 %..90 % of the latencies of the 2162 measured architectures" in cap.out
    # results.csv holds the printed table at full precision, every accuracy and latency column labelled
    with open(tmp_path / "pnag-search-2" / "results.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == 4 and rows[0][:2] == ["budget_ms", "accuracy_%"]
    _labelled(rows[0])
    printed = _printed_rows(cap.out)
    assert list(printed[0]) == rows[0]
    for shown, row in zip(printed, rows[1:], strict=True):
        full = dict(zip(rows[0], row))
        assert shown["accuracy_%"] == f"{float(full['accuracy_%']):.2f}"
        assert shown["latency_ms"] == f"{float(full['latency_ms']):.3f}"
        assert shown["madds_m"] == f"{float(full['madds_m']):.1f}"
        for k in ("budget_ms", "accuracy_is", "latency_is", "resolution", "origin", "arch"):
            assert shown[k] == full[k], k
    assert all(r["accuracy_is"] in ACCURACY_KINDS[:2] and r["latency_is"] in LATENCY_KINDS for r in printed)
    assert any("measured top-1 of 2162" in x for x in labels), labels
    answers = [x for x in labels if x.startswith("answers")]
    assert answers and all(" measured (" in x or " predicted (" in x for x in answers), answers
    assert (tmp_path / "pnag-search-2" / "search.png").stat().st_size > 10_000

    # -o given: the clash is an error of one line that says what to pass
    assert main(argv + ["-o", "pnag-search"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "holds a run of other settings" in err and "-o 'pnag-search-2'" in err, err


def test_fallback_reason_is_a_few_words():
    from pnag.search.main_job import why_missing as _why_missing

    long = ("data file ofa/x.json is missing; looked at: mirror: PNAG_DATA_DIR not set; cache /c/x.json: not there; "
            "download from https://example.org/x.json: failed (ConnectionError: HTTPSConnectionPool(host='example.org',"
            " port=443): Max retries exceeded with url: /x.json (Caused by NameResolutionError(...)))")
    assert _why_missing(long) == "download failed: ConnectionError"
    assert _why_missing("... download from u: skipped (PNAG_OFFLINE=1); to fix: ...") == "offline: PNAG_OFFLINE=1"
    assert _why_missing("data file a/b is truncated in the offline mirror /m/a/b (truncated: 3 bytes)") == \
        "the mirror's copy is truncated"
