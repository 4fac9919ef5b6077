"""Shared fixtures. Tests never touch the network: public data comes from PNAG_DATA_DIR (the
offline mirror; CI sets it to ../shared/datasets) and tests that need it skip without it, saying
what is missing. Where the data must be there (``PNAG_REQUIRE_DATA=1``, which ``.ci/run`` sets, or
``CI`` set by a CI runner, unless ``PNAG_REQUIRE_DATA=0``) such a test fails instead of skipping."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
_YES, _NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def data_required() -> bool:
    """Whether a test that lacks the mirrored data fails rather than skips: ``PNAG_REQUIRE_DATA`` when set,
    else whether ``CI`` is set (CI runners set ``CI=true``)."""
    flag = os.environ.get("PNAG_REQUIRE_DATA")
    if flag is not None and flag.strip():
        return flag.strip().lower() in _YES
    return os.environ.get("CI", "").strip().lower() not in _NO


def missing_data(what: str) -> NoReturn:
    """Skip the test for data it lacks (``what``: which data and where it was looked for), or fail it where
    the data are required (:func:`data_required`)."""
    if data_required():
        pytest.fail(f"{what}; the data are required here (PNAG_REQUIRE_DATA=1 or CI set), so this test fails "
                    "instead of skipping", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    """The offline mirror of the public datasets: ``PNAG_DATA_DIR``, or else ``../shared/datasets`` beside
    the checkout (skips the test, or fails it where data are required, if there is none)."""
    d = os.environ.get("PNAG_DATA_DIR")
    if d:
        if not Path(d).is_dir():
            missing_data(f"needs the public data mirror: PNAG_DATA_DIR={d} is not a folder")
        return Path(d).resolve()
    here = SHARED / "datasets"
    if not here.is_dir():
        missing_data(f"needs the public data mirror: PNAG_DATA_DIR is not set and there is no {here.resolve()}")
    return here.resolve()


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """``../shared/reference`` beside the checkout (published state-dict layouts), as :func:`mirror_dir`."""
    here = SHARED / "reference"
    if not here.is_dir():
        missing_data(f"needs the published reference files: there is no {here.resolve()}")
    return here.resolve()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty download cache unless it sets one itself."""
    monkeypatch.setenv("PNAG_CACHE_DIR", str(tmp_path_factory.mktemp("pnag-cache")))


@pytest.fixture
def use_mirror(mirror_dir, monkeypatch) -> Path:
    """Point PNAG_DATA_DIR at the offline mirror for this test (skips without one)."""
    monkeypatch.setenv("PNAG_DATA_DIR", str(mirror_dir))
    return mirror_dir


@pytest.fixture
def user_backend():
    """A matplotlib backend a user chose (``svg``) for the test, and the one before restored after it:
    pnag's plots must leave it as it is."""
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield "svg"
    matplotlib.use(before)
