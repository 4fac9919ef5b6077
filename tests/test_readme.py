"""Every ``pnag`` command example of the README runs as written (in a fresh folder, with the data mirror),
except those that need what a test cannot have: ImageNet, supernet weights, or minutes of profiling; and
every Python example of the README runs as written, and gives what it says."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from pnag.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"

# Why an example is not run here (matched against the command line).
SKIPPED = {
    "/data/imagenet": "needs ImageNet",
    "latency profile": "profiles for minutes (pnag.latency.lut is tested with a tiny protocol)",
    "latency validate": "measures 50 networks for minutes",
    "lut:my_lut.json": "needs the table that pnag latency profile writes",
    "--target measure:": "times networks on this machine (tests/test_adapt.py adapts from tables)",
}
# The quickstart's `pnag search` profiles this machine first (minutes): tests/test_cli_search.py runs it on a
# published table instead.
SKIPPED_EXACT = {"pnag search": "profiles this machine first (minutes); tests/test_cli_search.py runs search"}
# Examples that train (tens of seconds each): marked slow, still run.
SLOW = ("pnag train", "pnag generate", "pnag plot")


def readme_commands() -> list[str]:
    """The ``pnag ...`` lines of the README's bash blocks (also after ``&&``), comments removed."""
    text = README.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("pnag ") or part == "pnag":
                    out.append(part)
    return out


COMMANDS = readme_commands()


def test_the_readme_has_the_examples_this_test_expects():
    assert len(COMMANDS) >= 20, COMMANDS
    assert any(c.startswith("pnag search") for c in COMMANDS)
    assert sum(c.startswith("pnag train") for c in COMMANDS) == 5


def _skip_reason(cmd: str) -> str | None:
    if cmd in SKIPPED_EXACT:
        return SKIPPED_EXACT[cmd]
    return next((why for key, why in SKIPPED.items() if key in cmd), None)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, mirror_dir):
    """One folder for all examples, in README order: later ones use what earlier ones wrote (``run``)."""
    return tmp_path_factory.mktemp("readme")


def _run(cmd: str, workdir: Path, mirror_dir: Path, monkeypatch, capsys) -> None:
    reason = _skip_reason(cmd)
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("PNAG_DATA_DIR", str(mirror_dir))
    monkeypatch.setenv("PNAG_OFFLINE", "1")
    code = main(shlex.split(cmd)[1:])
    cap = capsys.readouterr()
    assert code == 0, f"{cmd}\n{cap.err[-2000:]}"
    assert "Traceback" not in cap.err
    assert cap.out.strip() or any(workdir.iterdir()), cmd  # it printed or wrote something


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if not c.startswith(SLOW)])
def test_readme_example(cmd, workdir, mirror_dir, monkeypatch, capsys):
    _run(cmd, workdir, mirror_dir, monkeypatch, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.startswith(SLOW)])
def test_readme_training_example(cmd, workdir, mirror_dir, monkeypatch, capsys):
    _run(cmd, workdir, mirror_dir, monkeypatch, capsys)


# -- the Python examples ------------------------------------------------------------------------------
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_the_python_examples_this_test_expects():
    assert len(PYTHON_BLOCKS) == 3, PYTHON_BLOCKS
    assert "pnag.train(" in PYTHON_BLOCKS[0] and ".to_frame()" in PYTHON_BLOCKS[0]
    assert "def my_accuracy" in PYTHON_BLOCKS[1] and "accuracy=my_accuracy" in PYTHON_BLOCKS[1]


def _api_run(ns: dict, out: str) -> None:
    """The main job's data through pnag.train: two answers within their budgets, printed and in answers.csv."""
    import pandas as pd

    frame = ns["answers"].to_frame()
    assert frame["budget_ms"].tolist() == [12.0, 18.0]
    assert (frame["latency_ms"] <= frame["budget_ms"]).all() and frame["latency_is"].eq("lut-estimate").all()
    assert frame["accuracy_is"].isin(["measured", "predicted"]).all() and frame["accuracy_%"].between(60, 85).all()
    assert str(ns["frame"][["budget_ms", "accuracy_%", "accuracy_is", "latency_ms", "latency_is", "origin"]]) in out
    pd.testing.assert_frame_equal(pd.read_csv("answers.csv", dtype={"resolution": "Int64"}), frame, check_dtype=False)


def _own_accuracy(ns: dict, out: str) -> None:
    """A Python accuracy function trained the run: the run's table holds its values."""
    run = ns["run"]
    assert run.config.accuracy == "python:my_accuracy" and out.splitlines()[0] == "python:my_accuracy"
    archs = [run.space.from_indices(r) for r in run.data["idx"].tolist()]
    assert np.allclose(run.data["accuracy"].numpy(), ns["my_accuracy"](archs))
    frame = run.generate([12, 18]).to_frame()
    assert len(frame) == 2 and (frame["latency_ms"] <= frame["budget_ms"]).all()
    assert str(frame[["budget_ms", "accuracy_%", "latency_ms", "resolution"]]) in out


def _pieces(ns: dict, out: str) -> None:
    lines = out.splitlines()
    assert float(lines[0]) == pytest.approx(ns["arch_cost"](ns["arch"]).madds_m)
    answers = [line.split() for line in lines[1:]]
    assert [float(a[0]) for a in answers] == [17.5, 40.0]
    assert all(float(a[3]) <= float(a[0]) for a in answers)  # latency (ms) within the budget


@pytest.mark.slow
@pytest.mark.parametrize("index, check", [(0, _api_run), (1, _own_accuracy), (2, _pieces)])
def test_readme_python_example(index, check, tmp_path, mirror_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PNAG_DATA_DIR", str(mirror_dir))
    monkeypatch.setenv("PNAG_OFFLINE", "1")
    ns: dict = {"__name__": "readme_example"}
    exec(compile(PYTHON_BLOCKS[index], f"README.md python example {index + 1}", "exec"), ns)
    check(ns, capsys.readouterr().out)
