"""Every ``pnag`` command example of the README runs as written (in a fresh folder, with the data mirror),
except those that need what a test cannot have: ImageNet, supernet weights, or minutes of profiling."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pnag.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"

# Why an example is not run here (matched against the command line).
SKIPPED = {
    "/data/imagenet": "needs ImageNet",
    "latency profile": "profiles for minutes (pnag.latency.lut is tested with a tiny protocol)",
    "latency validate": "measures 50 networks for minutes",
    "lut:my_lut.json": "needs the table that pnag latency profile writes",
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
    assert sum(c.startswith("pnag train") for c in COMMANDS) == 4


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
