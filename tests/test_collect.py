"""pnag collect: append-only JSONL, SIGINT mid-run then resume gives exactly N distinct records;
torn last lines are dropped; stratification covers the latency range; pluggable sources."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pnag.collect import collect
from pnag.data.collection import CollectConfig, read_collection
from pnag.sources import AccuracySource, get_accuracy_source, register_accuracy_source
from pnag.errors import DataError, PnagError
from pnag.nn.cost import arch_cost

ROOT = Path(__file__).resolve().parents[1]


def _lines(p: Path) -> list[dict]:
    return [json.loads(x) for x in p.read_text().splitlines()]


def _cmd(out: Path, n: int) -> list[str]:
    return [sys.executable, "-m", "pnag", "collect", "--space", "mbv3", "--samples", str(n), "--seed", "7",
            "--out", str(out), "--accuracy", "proxy:synflow", "--proxy-resolution", "32", "--no-progress"]


def test_sigint_then_resume_exactly_n(tmp_path):
    out = tmp_path / "c.jsonl"
    n = 10
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    # a test run started in the background by a non-interactive shell inherits SIGINT ignored, and so
    # would the child: give it the default disposition, as a terminal's Ctrl-C finds it
    proc = subprocess.Popen(_cmd(out, n), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline:
        if out.exists() and out.read_text().count("\n") >= 3:  # header + >= 2 records
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err and b"Traceback" not in err
    first = _lines(out)[1:]
    assert 2 <= len(first) < n  # really stopped mid-run
    # simulate a kill during a write: a torn last line
    with open(out, "a") as fh:
        fh.write('{"space": "mbv3", "arch": "2,2')
    res = subprocess.run(_cmd(out, n), cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr.decode()
    assert b"torn last line" in res.stdout and f"{len(first)} already there".encode() in res.stdout
    header, recs = read_collection(out)
    assert header["samples"] == n and len(recs) == n
    assert len({r.arch for r in recs}) == n  # no duplicates
    assert [r.arch for r in recs[:len(first)]] == [r.arch for r in read_recs(first)]
    # resuming repeated no work and skipped nothing: the records are the seed's first n distinct samples
    from pnag.collect import _uniform_stream
    from pnag.space import MBV3Space

    want = []
    for a in _uniform_stream(MBV3Space(), 7):
        if a not in want:
            want.append(a)
        if len(want) == n:
            break
    assert [r.arch for r in recs] == want
    assert all(r.accuracy.unit == "score" and np.isfinite(r.accuracy.value) for r in recs)


def read_recs(dicts):
    from pnag.data.records import record_from_dict

    return [record_from_dict(d) for d in dicts]


def _madds_latency(archs):
    """A toy latency source: MAdds / 20 M (ms), priced only for archs of depth 2 in unit 0."""
    return np.array([arch_cost(a).madds / 2e7 for a in archs])


def test_stratified_covers_range(tmp_path):
    cfg = CollectConfig(samples=20, seed=3, width=1.0, latency=("toy",), stratify_by="toy", pool=400, strata=5)
    res = collect(cfg, tmp_path / "s.jsonl", latency_sources={"toy": _madds_latency}, progress=False)
    assert res.records == 20
    _, recs = read_collection(tmp_path / "s.jsonl")
    ms = np.array([r.latency["_madds_latency"].ms for r in recs])
    pool_ms = _madds_latency(__import__("pnag.space", fromlist=["x"]).MBV3Space(width=1.0).sample(400, seed=3))
    edges = np.linspace(pool_ms.min(), pool_ms.max(), 6)
    counts = np.histogram(ms, edges)[0]
    assert (counts >= 1).all(), counts  # every fifth of the latency range is represented
    uni = collect(CollectConfig(samples=20, seed=3, width=1.0, latency=("toy",)), tmp_path / "u.jsonl",
                  latency_sources={"toy": _madds_latency}, progress=False)
    assert uni.records == 20
    assert all(r.madds == arch_cost(r.arch).madds and r.accuracy is None for r in recs)


def test_settings_must_match_and_errors(tmp_path):
    out = tmp_path / "a.jsonl"
    collect(CollectConfig(samples=3, seed=1, accuracy="proxy:params"), out, progress=False)
    with pytest.raises(PnagError, match="different settings.*seed"):
        collect(CollectConfig(samples=3, seed=2, accuracy="proxy:params"), out, progress=False)
    res = collect(CollectConfig(samples=5, seed=1, accuracy="proxy:params"), out, progress=False)  # grow
    assert (res.resumed_from, res.added, res.records) == (3, 2, 5)
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:2] + ["{broken"] + lines[2:]) + "\n")
    with pytest.raises(DataError, match="line 3"):
        read_collection(out)
    with pytest.raises(PnagError, match="allowed: none or"):
        get_accuracy_source("oracle:x", None, optional=True)
    with pytest.raises(PnagError, match="allowed: mbv3 or nb201"):
        CollectConfig(space="darts")


def test_pluggable_accuracy_source(tmp_path):
    register_accuracy_source("fake", lambda rest, space, opts: AccuracySource(
        "fake", "fraction", score=lambda archs: np.array([0.5 + 0.01 * sum(a.depths) for a in archs]),
        measured_on=f"fake {rest}"))
    out = tmp_path / "f.jsonl"
    collect(CollectConfig(samples=4, seed=0, accuracy="fake:x"), out, progress=False)
    _, recs = read_collection(out)
    assert all(r.accuracy.unit == "fraction" and r.accuracy.value == 0.5 + 0.01 * sum(r.arch.depths) for r in recs)


def test_nb201_collection(use_mirror, tmp_path):
    out = tmp_path / "n.jsonl"
    collect(CollectConfig(space="nb201", samples=12, seed=0, accuracy="nb201:cifar10", latency=("nb201:raspi4",),
                          stratify_by="nb201:raspi4"), out, progress=False)
    from pnag.data.nb201 import load_nb201

    t = load_nb201()
    _, recs = read_collection(out)
    assert len({r.arch for r in recs}) == 12
    for r in recs:
        i = t.index_of(r.arch)
        assert r.accuracy.value == t.accuracy("cifar10")[i] and r.latency["nb201:raspi4"].ms == t.latency("raspi4")[i]


# -- limits and concurrent writers (issue 21) ---------------------------------------------------------------
def test_more_samples_than_the_space_holds_is_refused_up_front(tmp_path):
    assert CollectConfig(space="nb201", samples=15625).samples == 15625
    with pytest.raises(PnagError, match=r"--samples: 15626 is more than the 15625 architectures of the nb201 space"):
        CollectConfig(space="nb201", samples=15626)
    out = tmp_path / "nb.jsonl"
    cmd = [sys.executable, "-m", "pnag", "collect", "--space", "nb201", "--samples", "15626", "--out", str(out),
           "--no-progress"]
    res = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=120)  # before the fix: 15,625 records written, then an endless loop
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "allowed: 1..15625" in res.stderr
    assert not out.exists()


def test_a_second_writer_is_refused_in_process(tmp_path):
    from pnag._io import exclusive_writer, lock_path

    out = tmp_path / "c.jsonl"
    with exclusive_writer(out, "--out") as lock:
        assert lock == lock_path(out) and f"pid {os.getpid()} " in lock.read_text()
        with pytest.raises(PnagError, match=rf"^--out {out}: already being written by pnag pid {os.getpid()} on .*"
                                            rf"\(lock {lock}\); allowed: wait for it to finish, or another --out$"):
            collect(CollectConfig(samples=2, seed=0), out, progress=False)
        assert not out.exists()
    assert collect(CollectConfig(samples=2, seed=0), out, progress=False).records == 2  # free again
    run = tmp_path / "run"  # a run directory (pnag train -o) is locked the same way, before it exists
    with exclusive_writer(run, "-o"):
        with pytest.raises(PnagError, match=rf"^-o {run}: already being written by pnag pid {os.getpid()} "):
            with exclusive_writer(run, "-o"):
                pass  # pragma: no cover - refused
    with exclusive_writer(run, "-o"):
        assert not run.exists()


def test_two_collect_processes_on_one_out(tmp_path):
    # 40: the first is still at work (some 0.2 s a record) when the second has started (some 1.5 s); with 8 the
    # two raced, and under load the first could finish before the second asked for the file
    out, n = tmp_path / "c.jsonl", 40
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(_cmd(out, n), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out.exists() and out.read_text().count("\n") >= 2):
            time.sleep(0.02)  # the first is writing: header + a record
        assert first.poll() is None, "the first collect finished too soon for the test"
        second = subprocess.run(_cmd(out, n), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
        assert f"--out {out}: already being written by pnag pid {first.pid} on " in second.stderr
        assert first.poll() is None  # refused while the first was still at work
        _, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err
    header, recs = read_collection(out)
    assert header["samples"] == n and len(recs) == n == len({r.arch for r in recs})
