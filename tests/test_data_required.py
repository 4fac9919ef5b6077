"""Tests that need the mirrored data skip without it, saying what is missing, except where the data are
required (``PNAG_REQUIRE_DATA=1``, set by ``.ci/run``, or ``CI`` set by a CI runner): there they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

_TEST = '''
def test_needs_the_mirror(mirror_dir):
    assert mirror_dir.is_dir()
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A folder with this suite's conftest and one test that needs the data mirror."""
    d = tmp_path_factory.mktemp("suite")
    shutil.copy(Path(__file__).with_name("conftest.py"), d / "conftest.py")
    (d / "test_one.py").write_text(_TEST)
    return d


def _pytest(project: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "PNAG_REQUIRE_DATA", "PNAG_DATA_DIR")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(project)],
                          cwd=project, env={**base, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("env, outcome, status", [
    ({}, "1 skipped", 0),
    ({"CI": "true"}, "1 error", 1),  # the fixture fails: an error at set-up, and the run fails
    ({"PNAG_REQUIRE_DATA": "1"}, "1 error", 1),
    ({"CI": "true", "PNAG_REQUIRE_DATA": "0"}, "1 skipped", 0),  # a CI without the data says so explicitly
])
def test_missing_data_skips_or_fails(project, tmp_path, env, outcome, status):
    res = _pytest(project, PNAG_DATA_DIR=str(tmp_path / "no-mirror"), **env)
    out = res.stdout + res.stderr
    assert outcome in out and res.returncode == status, out[-3000:]
    assert f"PNAG_DATA_DIR={tmp_path / 'no-mirror'} is not a folder" in out  # the reason names what is missing


def test_present_data_runs_under_ci(project, mirror_dir):
    res = _pytest(project, PNAG_DATA_DIR=str(mirror_dir), CI="true")
    assert "1 passed" in res.stdout, res.stdout[-3000:]


def test_ci_requires_the_data():
    """``.ci/run`` makes a missing mirror a failure."""
    text = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "export PNAG_REQUIRE_DATA=1" in text
