"""A damaged, foreign or old run directory is a one-line error naming the file, never a traceback
(issue 19, item 2): every file of a run replaced by random bytes or random JSON."""

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _synthetic_train as syn
from pnag.cli import main
from pnag.search import train

FILES = ("config.json", "state.json", "metrics.json", "data.pt", "predictors.pt", "ranker.pt", "generator.pt")
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=12)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    syn.patch(mp.setattr)
    d = tmp_path_factory.mktemp("runfiles") / "run"
    r = train(syn.tiny_config(steps=4), d, progress=False)
    yield d, r.budget_range[1]
    mp.undo()


def _generate(d, budget, capsys):
    code = main(["generate", "--run", str(d), "--budget", f"{budget:g}"])
    return code, capsys.readouterr()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(FILES), raw=st.binary(max_size=64), doc=JSON, as_json=st.booleans())
def test_any_file_replaced_is_a_one_line_error(run_dir, tmp_path_factory, capsys, name, raw, doc, as_json):
    d, budget = run_dir
    bad = tmp_path_factory.mktemp("bad") / "run"
    shutil.copytree(d, bad)
    content = json.dumps(doc).encode() if as_json else raw
    (bad / name).write_bytes(content)
    code, out = _generate(bad, budget, capsys)
    if code == 0:  # some replacements are harmless (e.g. metrics.json with the same needed fields)
        return
    assert code == 2, out.err
    assert "Traceback" not in out.err and out.err.count("\n") == 1, out.err


def test_damaged_files_are_named(run_dir, tmp_path, capsys):
    d, budget = run_dir
    for name in FILES:
        bad = tmp_path / name
        shutil.copytree(d, bad)
        (bad / name).write_bytes(b"\x80garbage")
        code, out = _generate(bad, budget, capsys)
        assert code == 2 and name in out.err and out.err.count("\n") == 1, (name, out.err)


def test_a_damaged_checkpoint_is_named_by_the_resumed_train(tmp_path, monkeypatch, capsys):
    """A run stopped inside its ranker fit leaves ranker.ckpt.pt; damaged, the re-run pnag train names it in
    one line, exit 2 (issue 21, item 8)."""
    import io

    import torch

    from pnag.search import checkpoint as C

    syn.patch(monkeypatch.setattr)
    lo, hi = syn.tiny_config().budgets
    argv = ["train", "--space", "nb201", "--accuracy", "synthetic", "--latency", "synthetic", "--budgets",
            f"{lo}:{hi}", "--steps", "4", "-q", "-o", str(tmp_path / "run")]
    monkeypatch.setattr(C, "CHECKPOINT_SECONDS", 0.0)
    real = C.StageCheckpoint.save

    def save_then_stop(self, state):
        real(self, state)
        if self.name == "ranker.ckpt.pt" and state["step"] == 3:
            raise KeyboardInterrupt  # as Ctrl-C would, right after the save

    monkeypatch.setattr(C.StageCheckpoint, "save", save_then_stop)
    assert main(argv) == 130
    monkeypatch.setattr(C.StageCheckpoint, "save", real)
    ckpt = tmp_path / "run" / "ranker.ckpt.pt"
    good = ckpt.read_bytes()

    def saved(obj):
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    state = torch.load(io.BytesIO(good), weights_only=True)
    for content in (b"\x80garbage", json.dumps({"step": 3}).encode(), saved([1, 2]), saved({"step": 3}),
                    saved({**state, "optim": {"state": {}, "param_groups": []}}), saved({**state, "step": -1})):
        ckpt.write_bytes(content)
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "ranker.ckpt.pt is damaged" in err and err.count("\n") == 1 and "Traceback" not in err, err
    ckpt.write_bytes(good)
    assert main(argv) == 0 and not ckpt.exists()
