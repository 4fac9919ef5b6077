"""``pnag train / generate / plot`` on a synthetic task, and every bad-input path (status 2, no traceback)."""

import csv
import json
import re

import pytest

import _synthetic_train as syn
from pnag.cli import main
from pnag.space import NB201Space


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    syn.patch(mp.setattr)
    d = tmp_path_factory.mktemp("cli") / "run"
    lo, hi = syn.tiny_config().budgets
    assert _train_small(mp, d, lo, hi) == 0
    yield d, (lo, hi)
    mp.undo()


def _train_small(mp, d, lo, hi, *more) -> int:
    """``pnag train`` on the synthetic task, its config shrunk for a fast test."""
    argv = ["train", "--space", "nb201", "--accuracy", "synthetic", "--latency", "synthetic",
            "--budgets", f"{lo}:{hi}", "--train-samples", "100", "--steps", "20", "--predictor-target", "identity",
            "-q", "-o", str(d), *more]
    from pnag import search as T

    small = dict(budgets_per_step=4, samples_per_budget=4, predictor_epochs=10, predictor_hidden=16, ensemble=2,
                 ranker_steps=30, ranker_pool=100)
    real = T.TrainConfig

    def config(**kw):
        return real(**{**kw, **small})

    mp.setattr("pnag.search.TrainConfig", config)
    try:
        return main(argv)
    finally:
        mp.setattr("pnag.search.TrainConfig", real)


def test_train_says_what_the_eval_budget_measured(tmp_path, monkeypatch, capsys):
    syn.patch(monkeypatch.setattr)
    lo, hi = syn.tiny_config().budgets
    assert _train_small(monkeypatch, tmp_path / "run", lo, hi, "--eval-budget", "4") == 0
    out = capsys.readouterr().out
    rounds = [line for line in out.splitlines() if line.startswith("eval round ")]
    assert [r.split(":")[0] for r in rounds] == [f"eval round {i}" for i in (1, 2, 3, 4)], out
    assert all(re.search(r": \d+ architectures measured", r) for r in rounds), rounds
    assert re.search(r"RMSE [0-9.]+ points of top-1 %", out), out


def test_train_names_its_schedule(tmp_path, monkeypatch, capsys):
    syn.patch(monkeypatch.setattr)
    lo, hi = syn.tiny_config().budgets
    assert _train_small(monkeypatch, tmp_path / "full", lo, hi) == 0
    assert "schedule: full (as published; reward pareto)" in capsys.readouterr().out
    assert _train_small(monkeypatch, tmp_path / "fast", lo, hi, "--schedule", "fast") == 0
    out = capsys.readouterr().out
    assert "schedule: fast, for an exact objective" in out and "ranker pair accuracy" not in out, out


def _err(capsys, argv, match):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert match in err, err
    return err


def test_generate_json_and_table(trained, capsys):
    d, (lo, hi) = trained
    capsys.readouterr()
    fastest = float(syn.all_latencies().min())
    b = [round(fastest + 0.1, 3), round((fastest + hi) / 2, 3), round(hi, 3)]
    assert main(["generate", "--run", str(d), "--budgets", ",".join(map(str, b)), "--samples", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["budget_ms"] for o in out] == b
    for o in out:
        assert set(o) >= {"budget_ms", "arch", "accuracy", "accuracy_unit", "accuracy_is", "latency_ms", "latency_is",
                          "madds_m"}
        assert o["accuracy_unit"] == "%" and o["accuracy_is"] in ("measured", "predicted")
        assert o["latency_is"] == "measured"  # the synthetic source prices whole cells, not a per-layer table
        assert syn.true_latency([NB201Space().parse(o["arch"])])[0] <= o["budget_ms"] + 1e-9
    assert main(["generate", "--run", str(d), "--budget", str(b[1])]) == 0
    assert "budget_ms" in capsys.readouterr().out
    step = (hi - b[0]) / 4
    assert main(["generate", "--run", str(d), "--budgets", f"{b[0]}:{hi}:{step}", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5


def test_train_options_reach_the_run(trained):
    from pnag.search import Run

    d, _ = trained
    run = Run.load(d)
    assert run.config.predictor_target == "identity" and run.models.acc_pred.config.target == "identity"
    assert run.config.steps == 20 and run.config.train_samples == 100


def test_plot(trained, tmp_path, capsys, user_backend):
    import matplotlib

    d, _ = trained
    png = tmp_path / "p.png"
    assert main(["plot", str(d), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == user_backend  # a PNG drawn without switching the user's backend
    _err(capsys, ["plot", str(d), "-o", str(tmp_path / "p.pdf")], ".png")
    png2 = tmp_path / "p2.png"  # the run as a flag too, as pnag generate takes it
    assert main(["plot", "--run", str(d), "-o", str(png2)]) == 0 and png2.read_bytes()[:4] == b"\x89PNG"
    _err(capsys, ["plot", "-o", str(png2)], "allowed: pnag plot RUN or pnag plot --run RUN")
    _err(capsys, ["plot", str(d), "--run", str(d), "-o", str(png2)], "the run given twice")


def test_generate_table_labels_every_value(trained, capsys):
    d, (lo, hi) = trained
    capsys.readouterr()
    assert main(["generate", "--run", str(d), "--budget", str(hi)]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[:5] == ["budget_ms", "accuracy_%", "accuracy_is", "latency_ms", "latency_is"]


def test_generate_csv_holds_the_rows_it_prints(trained, tmp_path, capsys):
    d, (lo, hi) = trained
    capsys.readouterr()
    fastest = float(syn.all_latencies().min())
    b = [round(fastest + 0.1, 3), round((fastest + hi) / 2, 3), round(hi, 3)]
    argv = ["generate", "--run", str(d), "--budgets", ",".join(map(str, b)), "--samples", "4"]
    out = tmp_path / "new" / "a.csv"  # a folder that does not exist yet
    assert main(argv + ["--json", "--csv", str(out)]) == 0
    answers = json.loads(capsys.readouterr().out)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.csv"]  # written atomically: no temporary file left
    assert list(rows[0]) == ["budget_ms", "accuracy_%", "accuracy_is", "latency_ms", "latency_is", "madds_m",
                             "resolution", "origin", "arch"]
    assert len(rows) == len(answers) == 3
    for row, a in zip(rows, answers):  # the JSON's values, at full precision, with what each value is
        assert (float(row["budget_ms"]), float(row["accuracy_%"]), float(row["latency_ms"])) == \
            (a["budget_ms"], a["accuracy"], a["latency_ms"])
        assert (row["accuracy_is"], row["latency_is"], row["origin"], row["arch"]) == \
            (a["accuracy_is"], a["latency_is"], a["origin"], a["arch"])
        assert row["madds_m"] == row["resolution"] == "" and a["madds_m"] is None  # NAS-Bench-201: none
    assert main(argv + ["--csv", str(tmp_path / "b.csv")]) == 0  # the table's rows are the file's, rounded
    printed = capsys.readouterr().out.splitlines()[2:]
    assert len(printed) == 3
    for line, row in zip(printed, rows):
        assert line.split() == [row["budget_ms"], f"{float(row['accuracy_%']):.2f}", row["accuracy_is"],
                                f"{float(row['latency_ms']):.3f}", row["latency_is"], row["origin"], row["arch"]]
    assert (tmp_path / "b.csv").read_text(encoding="utf-8") == out.read_text(encoding="utf-8")
    # the output is checked before the run is read: a folder, an unwritable place
    _err(capsys, ["generate", "--run", str(tmp_path / "nope"), "--budget", "5", "--csv", str(tmp_path)],
         "--csv: ")
    _err(capsys, ["generate", "--run", str(tmp_path / "nope"), "--budget", "5", "--csv", "/proc/pnag.csv"],
         "--csv: cannot write")


def test_generate_bad_inputs(trained, tmp_path, capsys):
    d, (lo, hi) = trained
    _err(capsys, ["generate", "--run", str(d), "--budget", str(hi * 2)], "outside the trained range")
    _err(capsys, ["generate", "--run", str(d), "--budget", str(lo)], "below the fastest architecture")
    _err(capsys, ["generate", "--run", str(d), "--budgets", "a,b"], "--budgets")
    _err(capsys, ["generate", "--run", str(d), "--budgets", "5:1:1"], "LO:HI:STEP")
    _err(capsys, ["generate", "--run", str(d), "--budgets", "1:5"], "--budgets")
    _err(capsys, ["generate", "--run", str(d), "--budget", "-3"], "--budget")
    _err(capsys, ["generate", "--run", str(d), "--budget", "x"], "--budget")
    _err(capsys, ["generate", "--run", str(d), "--budget", "5", "--samples", "0"], "--samples")
    _err(capsys, ["generate", "--run", str(tmp_path / "nope"), "--budget", "5"], "not a training run")
    _err(capsys, ["generate", "--run", str(d)], "required")
    _err(capsys, ["plot", str(tmp_path / "nope"), "-o", str(tmp_path / "x.png")], "not a training run")


def test_unfinished_run_is_refused(trained, tmp_path, capsys):
    d, _ = trained
    import shutil

    u = tmp_path / "unfinished"
    shutil.copytree(d, u)
    (u / "state.json").write_text(json.dumps({"done": ["data"]}))
    _err(capsys, ["generate", "--run", str(u), "--budget", "5"], "unfinished run")


@pytest.mark.parametrize("argv, match", [
    (["--space", "darts"], "--space"),
    (["--budgets", "10"], "--budgets"),
    (["--budgets", "24:10"], "--budgets"),
    (["--budgets", "a:b"], "--budgets"),
    (["--reward", "best"], "--reward"),
    (["--eval-budget", "-1"], "--eval-budget"),
    (["--train-samples", "0"], "--train-samples"),
    (["--accuracy", "foo"], "--accuracy"),
    (["--accuracy", ""], "--accuracy"),
    (["--accuracy", "nb201:cifar11", "--space", "nb201"], "cifar10"),
    (["--accuracy", "nb201:cifar10", "--space", "mbv3"], "--space nb201"),
    (["--width", "1.1"], "--width"),
    (["--width", "1.0", "--space", "nb201"], "--width"),
    (["--latency", "warp:drive"], "latency"),
    (["--predictor-target", "log"], "--predictor-target"),
    (["--predictor-preset", "slow"], "--predictor-preset"),
])
def test_train_bad_inputs(argv, match, tmp_path, capsys, monkeypatch):
    from pnag import sources

    monkeypatch.setattr(sources, "get_accuracy_source", syn.REAL_ACCURACY_SOURCE)  # the real sources
    monkeypatch.setattr(sources, "get_latency_source", syn.REAL_LATENCY_SOURCE)
    base = {"--budgets": "10:24", "--space": "mbv3", "-o": str(tmp_path / "r")}
    args = ["train"]
    for k, v in base.items():
        if k not in argv:
            args += [k, v]
    _err(capsys, args + argv, match)


def test_train_resume_with_other_settings_is_refused(trained, tmp_path, capsys):
    d, (lo, hi) = trained
    _err(capsys, ["train", "--space", "nb201", "--accuracy", "synthetic", "--latency", "synthetic",
                  "--budgets", f"{lo}:{hi}", "--steps", "21", "--predictor-target", "identity", "-o", str(d)],
         "holds a run with")
