"""Shared fixtures. Tests never touch the network: public data comes from PNAG_DATA_DIR (the
offline mirror; CI sets it to ../shared/datasets) and tests that need it skip without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    """The offline mirror of the public datasets (skips the test if there is none)."""
    d = os.environ.get("PNAG_DATA_DIR")
    if not d or not Path(d).is_dir():
        here = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
        if here.is_dir():
            return here.resolve()
        pytest.skip("no PNAG_DATA_DIR mirror of the public datasets")
    return Path(d).resolve()


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
