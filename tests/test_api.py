"""The top-level Python API: ``pnag.train`` and ``pnag.search`` return a Run; ``run.generate`` returns
Generations (a list) with ``to_frame()`` and ``to_csv(path)``."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pnag
from pnag.errors import PnagError
from pnag.search import Generation, Generations, Run

sys.path.insert(0, str(Path(__file__).parent))
import _synthetic_train as syn  # noqa: E402

COLUMNS = ["budget_ms", "accuracy_%", "accuracy_is", "latency_ms", "latency_is", "madds_m", "resolution", "origin",
           "arch"]


@pytest.fixture(scope="module")
def fn_run(tmp_path_factory):
    """A run trained by ``pnag.train`` from a Python accuracy function and latency object (no spec)."""
    asked: list[int] = []

    def my_accuracy(archs):
        asked.append(len(archs))
        return syn.true_accuracy(archs)

    run = pnag.train(syn.tiny_config(), tmp_path_factory.mktemp("api") / "run", accuracy=my_accuracy,
                     latency=syn.Latency(), progress=False, steps=8, train_samples=60)
    return run, asked


def test_train_with_a_python_accuracy_function(fn_run):
    run, asked = fn_run
    assert isinstance(run, Run) and run.config.accuracy.startswith("python:") and "my_accuracy" in run.config.accuracy
    assert run.config.steps == 8 and run.config.train_samples == 60  # keywords over the config given
    assert asked == [60]  # the function scored the sampled table, once
    archs = [run.space.from_indices(r) for r in run.data["idx"].tolist()]
    assert np.allclose(run.data["accuracy"].numpy(), syn.true_accuracy(archs))
    budget = float(np.mean(run.budget_range))
    (g,) = run.generate([budget])
    assert g.predicted_latency_ms <= budget and g.accuracy_is in ("measured", "predicted")
    assert syn.true_latency([run.space.parse(g.arch)])[0] <= budget + 1e-9


def _budgets(run) -> list[float]:
    lo, hi = run.budget_range
    start = max(lo, run.min_latency_ms)
    return [round(start + 0.01, 4), round((start + hi) / 2, 4), round(hi, 4)]


def test_generations_frame_and_csv(fn_run, tmp_path):
    run, _ = fn_run
    gens = run.generate(_budgets(run), samples=4)
    assert isinstance(gens, Generations) and isinstance(gens, list) and all(isinstance(g, Generation) for g in gens)
    frame = gens.to_frame()
    assert list(frame.columns) == COLUMNS and len(frame) == 3
    for col in ("budget_ms", "accuracy_%", "latency_ms", "madds_m"):
        assert frame[col].dtype == np.float64, col
    assert str(frame["resolution"].dtype) == "Int64" and frame["resolution"].isna().all()  # NAS-Bench-201: none
    assert frame["madds_m"].isna().all()
    for col in ("accuracy_is", "latency_is", "origin", "arch"):
        assert pd.api.types.is_string_dtype(frame[col]), col
    assert frame["budget_ms"].tolist() == _budgets(run)
    assert frame["accuracy_%"].tolist() == [g.predicted_accuracy for g in gens]
    assert frame["latency_is"].tolist() == ["measured"] * 3  # the synthetic source prices whole cells
    assert (frame["latency_ms"] <= frame["budget_ms"]).all()
    path = gens.to_csv(tmp_path / "sub" / "a.csv")
    assert path == tmp_path / "sub" / "a.csv" and sorted(p.name for p in path.parent.iterdir()) == ["a.csv"]
    back = pd.read_csv(path, dtype={"resolution": "Int64"})
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back["accuracy_%"].tolist() == frame["accuracy_%"].tolist()  # exactly: full precision


def test_frame_of_mobilenet_answers_round_trips_through_csv(tmp_path):
    """Values a run of the MobileNetV3 space gives (MAdds, resolution, a proxy score) and floats that
    print long: to_csv then pandas.read_csv gives the frame again, exactly."""
    gens = Generations([Generation(12.0, "2,2,2,2,2:...", 0.1 + 0.2, 11.999999999999998, 217.123, "archive", False, 176,
                                   "predicted-proxy", "lut-estimate"),
                        Generation(18.5, "{\"ks\": [3, 5]}", 1e-17, 17.25, None, "measured", True, 224, "proxy",
                                   "lut-estimate")],
                       accuracy_column="synflow_score", accuracy_unit="score")
    frame = gens.to_frame()
    assert list(frame.columns) == [c.replace("accuracy_%", "synflow_score") for c in COLUMNS]
    assert frame["resolution"].tolist() == [176, 224] and np.isnan(frame["madds_m"][1])
    back = pd.read_csv(gens.to_csv(tmp_path / "m.csv"), dtype={"resolution": "Int64"})
    pd.testing.assert_frame_equal(back, frame, check_dtype=False, check_exact=True)
    with open(tmp_path / "m.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[1][1] == repr(0.1 + 0.2) and rows[2][5] == ""
    assert gens.to_json()[0]["accuracy_unit"] == "score" and gens.to_json()[1]["accuracy_is"] == "proxy"


def test_to_frame_without_pandas_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(PnagError, match=r"needs pandas.*pip install 'pnag\[frame\]'"):
        Generations([]).to_frame()


def test_train_refuses_what_is_no_argument(tmp_path):
    with pytest.raises(PnagError, match=r"'stpes' is not an argument; allowed: .*steps"):
        pnag.train(syn.tiny_config(), tmp_path / "r", stpes=3)
    with pytest.raises(PnagError, match=r"config str 'run'; allowed: a TrainConfig"):
        pnag.train("run")
    assert not (tmp_path / "r").exists()


def test_train_default_output_is_a_new_temporary_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    syn.patch(monkeypatch.setattr)  # the "synthetic" specs of the tiny config
    run = pnag.train(syn.tiny_config(steps=3, train_samples=40), progress=False)
    assert run.dir.parent == tmp_path and run.dir.name.startswith("pnag-run-")
    assert (run.dir / "generator.pt").is_file() and Run.load(run.dir).config == run.config


def test_search_from_python(use_mirror, tmp_path, monkeypatch):
    """The main job from Python: the same defaults as ``pnag search`` (the measured dataset, budgets from
    its latencies), the files beside the run, and the run returned."""
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    run = pnag.search(latency="lut:i7-8700k", n=3, samples=4, progress=False, say=lines.append)
    assert isinstance(run, Run) and run.dir == Path("pnag-search") / "run"
    assert run.config.accuracy == "dataset:ofa-mbv3-w1.0-imagenet" and run.config.width == 1.0
    assert lines[0] == "accuracy: 'dataset:ofa-mbv3-w1.0-imagenet' (measured ImageNet top-1)"
    assert any(x.startswith("budgets: ") and "10 %..90 %" in x for x in lines), lines
    out = run.search_outputs
    assert out.note is None and len(out.answers) == 3
    assert out.results_csv == Path("pnag-search") / "results.csv" and out.plot.stat().st_size > 10_000
    budgets = [g.budget for g in out.answers]
    assert budgets[-1] == run.budget_range[1] and all(g.predicted_latency_ms <= g.budget for g in out.answers)
    pd.testing.assert_frame_equal(pd.read_csv(out.results_csv, dtype={"resolution": "Int64"}),
                                  out.answers.to_frame(), check_dtype=False)
    # the package is callable wherever it was imported from; a spec is what it takes
    from pnag import search as package

    assert package is pnag.search and package.Run is Run
    with pytest.raises(PnagError, match="accuracy: function object; allowed: a source spec"):
        package(accuracy=lambda archs: archs, n=2)


def test_import_pnag_stays_light():
    code = ("import sys, pnag; heavy = [m for m in ('pnag.search', 'pnag.api', 'pandas', 'matplotlib') if m in "
            "sys.modules]; print(heavy, callable(pnag.train), callable(pnag.search))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "True", "True"]


@pytest.mark.parametrize("first", ["pnag.search.Run.__name__", "pnag.Run.__name__", "pnag.search.__name__"])
def test_the_first_name_a_user_reaches_for_resolves(first):
    """Each in a fresh process, as the first thing touched after ``import pnag`` (nothing imported the
    subpackage before: a lazy attribute that recursed into itself went unseen when pnag.train came first)."""
    out = subprocess.run([sys.executable, "-c", f"import pnag; print({first})"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-300:]
    assert out.stdout.strip() in ("Run", "pnag.search")
