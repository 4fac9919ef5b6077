"""pnag.sources: one grammar for every command and the Python API; Python objects where a spec goes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from pnag.cli import main
from pnag.collect import collect
from pnag.data.collection import CollectConfig, read_collection
from pnag.errors import PnagError
from pnag.latency.base import FunctionSource
from pnag.search import Run, train
from pnag.sources import ACCURACY_KINDS, AccuracySource, get_accuracy_source, get_latency_source, source_name
from pnag.space import NB201Space

sys.path.insert(0, str(Path(__file__).parent))
import _synthetic_train as syn  # noqa: E402


def test_a_python_accuracy_function_trains_a_run(tmp_path):
    """No spec and no patching: the function is asked about the sampled table and, under an eval
    budget, about the look-ups; the run records its name and takes the objects again when reopened."""
    asked: list[int] = []

    def my_accuracy(archs):
        asked.append(len(archs))
        return syn.true_accuracy(archs)

    latency = syn.Latency()
    run = train(syn.tiny_config(steps=4, eval_budget=3, eval_rounds=1), tmp_path / "r", progress=False,
                accuracy=my_accuracy, latency=latency)
    assert run.config.accuracy == "python:test_a_python_accuracy_function_trains_a_run.<locals>.my_accuracy"
    assert run.config.latency == "python:Latency"
    assert len(asked) == 2 and asked[1] == 3  # the table, then one look-up round of 3
    archs = [run.space.from_indices(r) for r in run.data["idx"].tolist()]
    assert np.allclose(run.data["accuracy"].numpy(), syn.true_accuracy(archs))
    assert np.allclose(run.data["latency"].numpy(), syn.true_latency(archs))
    assert run.metrics["eval"][0]["measured"] == 3
    budget = float(np.mean(run.config.budgets))
    want = run.generate([budget])[0]
    assert want.predicted_latency_ms == pytest.approx(float(syn.true_latency([run.space.parse(want.arch)])[0]))
    with pytest.raises(PnagError, match=r"latency source 'python:Latency': names a Python object.*latency=OBJ"):
        Run.load(tmp_path / "r")
    again = Run.load(tmp_path / "r", latency=latency)
    assert again.generate([budget])[0].arch == want.arch
    # resuming with the same objects is the same run; another function is another run
    assert train(syn.tiny_config(steps=4, eval_budget=3, eval_rounds=1), tmp_path / "r", progress=False,
                 accuracy=my_accuracy, latency=latency).config == run.config
    with pytest.raises(PnagError, match="holds a run with accuracy="):
        train(syn.tiny_config(steps=4, eval_budget=3, eval_rounds=1), tmp_path / "r", progress=False,
              accuracy=syn.true_accuracy, latency=latency)


def test_objects_where_specs_go():
    space = NB201Space()
    src = AccuracySource("mine", "fraction", score=lambda archs: np.full(len(archs), 0.5))
    got = get_accuracy_source(src, space)
    assert got.spec == "mine" and got.measure is None and got.accuracy(space.sample(2, seed=0)).tolist() == [0.5] * 2
    archs, values = got.table(5, 0)  # a source that only scores is sampled for a run's table
    assert len(archs) == 5 and values.tolist() == [0.5] * 5
    lat = syn.Latency()
    assert get_latency_source(lat, space) is lat  # an object with latency_ms is used as it is
    fn = get_latency_source(syn.true_latency, space)
    assert isinstance(fn, FunctionSource) and fn.name == "true_latency" and fn.kind == "measured"
    assert np.allclose(fn.latency_ms(archs), syn.true_latency(archs))
    assert [source_name(x) for x in (" lut:note10 ", src, fn, lat, syn.true_latency)] == \
        ["lut:note10", "mine", "true_latency", "python:Latency", "python:true_latency"]
    with pytest.raises(PnagError, match="neither a spec, an AccuracySource nor a callable"):
        get_accuracy_source(3, space)
    with pytest.raises(PnagError, match="neither a spec, a callable nor an object with .latency_ms"):
        get_latency_source(3, space)
    with pytest.raises(PnagError, match="names a Python object a run was trained with"):
        get_accuracy_source("python:my_accuracy", space)
    assert get_accuracy_source("none", space, optional=True) is None
    with pytest.raises(PnagError, match="--accuracy: 'none' names no source; allowed: dataset:NAME"):
        get_accuracy_source("none", space)


def _unknown(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_train_and_collect_name_sources_alike(tmp_path, capsys):
    """The same message, listing the same forms, from both commands."""
    from_train = _unknown(capsys, ["train", "--space", "nb201", "--accuracy", "oracle:x", "--latency", "nb201:raspi4",
                                   "--budgets", "1:2", "-o", str(tmp_path / "r")])
    from_collect = _unknown(capsys, ["collect", "--space", "nb201", "--samples", "2", "--accuracy", "oracle:x",
                                     "--out", str(tmp_path / "c.jsonl"), "--no-progress"])
    kinds = ", ".join(ACCURACY_KINDS[:-1])
    assert "'oracle:x' is not a known source" in from_train and kinds in from_train
    assert "'oracle:x' is not a known source; allowed: none or " in from_collect and kinds in from_collect


def test_collect_takes_the_specs_train_takes(use_mirror, tmp_path):
    """nb201-exact:, once train-only, now collects; a dataset (records only) is refused with a reason."""
    from pnag.data.nb201 import load_nb201

    out = tmp_path / "x.jsonl"
    collect(CollectConfig(space="nb201", samples=3, seed=0, accuracy="nb201-exact:cifar100"), out, progress=False)
    table = load_nb201()
    _, recs = read_collection(out)
    assert [r.accuracy.value for r in recs] == [float(table.accuracy("cifar100")[table.index_of(r.arch)])
                                                for r in recs]
    assert {r.accuracy.measured_on for r in recs} == {"cifar100-test (200 epochs)"}
    with pytest.raises(PnagError, match="gives the accuracy of its own records only"):
        collect(CollectConfig(samples=2, seed=0, accuracy="dataset:ofa-mbv3-w1.0-imagenet", width=1.0),
                tmp_path / "d.jsonl", progress=False)


def test_the_commands_help_lists_the_one_grammar():
    """The CLI writes the grammar out (so that `pnag --help` imports no torch): every form is in it."""
    from pnag.cli._common import ACCURACY_HELP, LATENCY_HELP
    from pnag.sources import LATENCY_FORMS

    for kind in ACCURACY_KINDS:
        assert kind.split(":")[0] + ":" in ACCURACY_HELP or kind in ACCURACY_HELP, kind
    for form in LATENCY_FORMS:
        assert form in LATENCY_HELP, form
