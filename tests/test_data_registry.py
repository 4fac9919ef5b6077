"""Registry: verified mirror use, distinct errors for missing / truncated / altered files, a clean cache,
and real downloads through pooch from a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from pnag.cli import main
from pnag.data import registry
from pnag.errors import DataError

TRUNC = ("ofa-acc-predictor-w1.2", "acc_predictor.pth")
ALTER = ("ofa-mbv3-w1.0-imagenet", "mbnv3w10_evoga_acc.csv")
MISS = ("i7-8700k-lut", "i7-8700K_lut.yaml")


@pytest.fixture
def bad_mirror(mirror_dir, tmp_path, monkeypatch) -> Path:
    """A mirror with one truncated, one altered and one missing file (others of those datasets intact)."""
    m = tmp_path / "mirror"
    for ds in (TRUNC[0], ALTER[0]):
        shutil.copytree(mirror_dir / ds, m / ds)
    (m / MISS[0]).mkdir(parents=True)
    t = m / TRUNC[0] / TRUNC[1]
    t.write_bytes((mirror_dir / TRUNC[0] / TRUNC[1]).read_bytes()[:1000])
    a = m / ALTER[0] / ALTER[1]
    data = bytearray(a.read_bytes())
    data[200] = ord("9") if data[200] != ord("9") else ord("8")
    a.write_bytes(bytes(data))
    monkeypatch.setenv("PNAG_DATA_DIR", str(m))
    monkeypatch.setenv("PNAG_OFFLINE", "1")
    return m


def _err(ds: str, rel: str) -> str:
    with pytest.raises(DataError) as ei:
        registry.get_file(ds, rel)
    return str(ei.value)


def test_three_distinct_errors(bad_mirror):
    t, a, m = _err(*TRUNC), _err(*ALTER), _err(*MISS)
    assert "is truncated" in t and "1000 bytes" in t and str(bad_mirror / TRUNC[0] / TRUNC[1]) in t
    assert "is altered" in a and "sha256" in a and str(bad_mirror / ALTER[0] / ALTER[1]) in a
    assert "is missing" in m and str(bad_mirror / MISS[0] / MISS[1]) in m
    assert "pnag data fetch i7-8700k-lut" in m and "PNAG_DATA_DIR" in m
    assert "raw.githubusercontent.com/mikelzc1990/nsganetv2" in m  # names the original address
    assert len({t.split(" is ")[1][:9], a.split(" is ")[1][:9], m.split(" is ")[1][:9]}) == 3
    # the intact files of the same datasets are still served from the mirror
    p = registry.get_file(ALTER[0], "mbnv3w10_linasga_acc.csv")
    assert p.parent == bad_mirror / ALTER[0]


def test_cli_errors_exit_2(bad_mirror, capsys):
    for ds, word in ((TRUNC[0], "truncated"), (ALTER[0], "altered"), (MISS[0], "missing")):
        assert main(["data", "fetch", ds]) == 2
        err = capsys.readouterr().err
        assert err.startswith("pnag: error: ") and word in err and "Traceback" not in err


def test_corrupt_cache_file_is_deleted(bad_mirror, monkeypatch):
    cache = Path(registry.cache_dir())
    bad = cache / MISS[0] / MISS[1]
    bad.parent.mkdir(parents=True)
    bad.write_text("not the lut")
    msg = _err(*MISS)
    assert "deleted" in msg and "missing" in msg
    assert not bad.exists()


def test_good_cache_file_is_used(mirror_dir, monkeypatch):
    monkeypatch.delenv("PNAG_DATA_DIR", raising=False)
    monkeypatch.setenv("PNAG_OFFLINE", "1")
    dst = Path(registry.cache_dir()) / MISS[0] / MISS[1]
    dst.parent.mkdir(parents=True)
    shutil.copy(mirror_dir / MISS[0] / MISS[1], dst)
    assert registry.get_file(*MISS) == dst


def test_unknown_names():
    with pytest.raises(DataError, match="allowed: .*nb201"):
        registry.get_dataset_info("imagenet")
    with pytest.raises(DataError, match="not part of it"):
        registry.get_file("nb201", "latency/nokia.pt")


def test_registry_entries_complete():
    names = registry.list_datasets()
    assert set(names) == {"ofa-mbv3-w1.0-imagenet", "ofa-acc-predictor-w1.2", "ofa-note10-lut-w1.2",
                          "i7-8700k-lut", "ofa-specialized", "nb201", "help-ofa-gpu"}
    for n in names:
        info = registry.get_dataset_info(n)
        assert info.license and info.description and info.files
        for f in info.files:
            assert f.url.startswith("https://raw.githubusercontent.com/") and len(f.sha256) == 64 and f.size > 0


def test_registry_matches_mirror_checksums(mirror_dir):
    sums = {}
    for line in (mirror_dir / "SHA256SUMS").read_text().splitlines():
        h, p = line.split()
        sums[p] = h
    ours = {f"{n}/{f.relpath}": f.sha256 for n in registry.list_datasets() for f in registry.get_dataset_info(n).files}
    assert ours == sums


@pytest.fixture
def http_mirror(mirror_dir, tmp_path, monkeypatch):
    """Serve a copy of two datasets over local HTTP at the registry's URL layout; one file altered."""
    root = tmp_path / "www"
    infos = [registry.get_dataset_info(n) for n in (MISS[0], "ofa-note10-lut-w1.2")]
    for info in infos:
        for f in info.files:
            rel = f.url.split("raw.githubusercontent.com/", 1)[1]
            dst = root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(mirror_dir / info.name / f.relpath, dst)
    altered = root / infos[1].files[0].url.split("raw.githubusercontent.com/", 1)[1]
    altered.write_bytes(altered.read_bytes().replace(b"1", b"2", 1))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setattr(registry, "_RAW", f"http://127.0.0.1:{srv.server_address[1]}/{{repo}}/{{commit}}/{{path}}")
    monkeypatch.setattr(registry, "_REGISTRY", None)
    monkeypatch.delenv("PNAG_DATA_DIR", raising=False)
    monkeypatch.delenv("PNAG_OFFLINE", raising=False)
    yield infos
    srv.shutdown()
    monkeypatch.setattr(registry, "_REGISTRY", None)


def test_download_verifies_and_leaves_nothing_corrupt(http_mirror):
    lut, note10 = http_mirror
    p = registry.get_file(lut.name, lut.files[0].relpath)  # downloaded through pooch, verified
    assert p.is_file() and str(p).startswith(str(registry.cache_dir()))
    assert registry.file_sha256(p) == lut.files[0].sha256
    bad = note10.files[0]
    with pytest.raises(DataError, match="missing.*download from http.*failed"):
        registry.get_file(note10.name, bad.relpath)
    left = [q for q in (Path(registry.cache_dir()) / note10.name).rglob("*") if q.is_file()]
    assert left == []  # the altered download was never kept
    # the other files of that dataset download fine
    assert registry.get_file(note10.name, note10.files[1].relpath).is_file()
