"""Measured lookup tables: entry enumeration, module shapes, profiling, resume after interruption,
prediction = sum + correction, validation, and the ``pnag latency`` command."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pnag.cli import main
from pnag.errors import DataError, PnagError
from pnag.latency import (LUT, MeasureProtocol, error_metrics, load_lut, local_lut, lut_entries, profile_lut,
                          validate_lut)
from pnag.latency.backends import TorchBackend
from pnag.latency.lut import FORMAT, calibration_archs, entry_module, fit_correction, lut_keys
from pnag.sources import get_latency_source
from pnag.latency.measure import time_runs
from pnag.latency.validate import REFERENCE_PROTOCOL, reference_arch, speed_factors, split_half, time_networks_in_rounds
from pnag.nn.mobilenetv3 import layer_specs
from pnag.space.mbv3 import MBV3Arch, MBV3Space

TINY = MeasureProtocol(warmup=0, runs=1, min_time_s=0.0)
ROOT = Path(__file__).resolve().parents[1]


def _brute_force_keys(width: float, resolution: int, n: int = 400) -> set[str]:
    space = MBV3Space(width, resolution)
    archs = space.sample(n, seed=11) + calibration_archs(width, resolution, 2, 0)
    keys = set()
    for a in archs:
        for spec in layer_specs(a):
            keys.update(lut_keys(spec))
    return keys


@pytest.mark.parametrize("width, resolution", [(1.2, 224), (1.0, 160)])
def test_entry_enumeration_matches_brute_force(width, resolution):
    entries = lut_entries(width, resolution)
    # stem + first block + 5 units x (first layer, later layers) x 3 kernels x 3 expands + final expand + head
    assert len(entries) == 1 + 1 + 5 * 2 * 9 + 1 + 1 == 94
    assert set(entries) == _brute_force_keys(width, resolution)


def test_entry_modules_have_the_real_shapes():
    arch = MBV3Space(1.2, 160).sample(1, seed=5)[0]
    specs = layer_specs(arch)
    entries = lut_entries(1.2, 160)
    for spec, nxt in zip(specs, specs[1:]):
        if spec["kind"] in ("classifier",):
            continue
        (key,) = lut_keys(spec)
        module, shape = entry_module(entries[key])
        assert shape[0] == spec["in_channels"] and shape[1] == spec["input_size"]
        with torch.inference_mode():
            y = module.eval()(torch.zeros(1, *shape))
        if spec["kind"] == "feature_mix":
            assert y.shape == (1, 1000)
        elif spec["kind"] == "final_expand":
            assert y.shape == (1, nxt["in_channels"], 1, 1)
        else:
            assert y.shape == (1, nxt["in_channels"], nxt["input_size"], nxt["input_size"])


def _fake_lut(correction=(0.9, -1.5), width=1.0, resolution=128) -> tuple[LUT, dict]:
    rng = np.random.default_rng(0)
    values = {k: float(rng.uniform(0.05, 2.0)) for k in lut_entries(width, resolution)}
    # the version-1 layout (one resolution), as pnag wrote tables before multi-resolution ones: still read
    data = {"format": FORMAT, "version": 1, "space": "mbv3", "width": width, "resolution": resolution,
            "batch": 1, "backend": "torch", "threads": 1, "protocol": TINY.to_dict(), "env": {},
            "entries": {k: {"median_ms": v, "iqr_ms": 0.0, "runs": 1} for k, v in values.items()},
            "calibration": {"n": 2, "seed": 0, "archs": []},
            "correction": {"a": correction[0], "b": correction[1]}, "complete": True}
    return LUT(data), values


def test_prediction_is_sum_plus_correction():
    lut, values = _fake_lut()
    archs = MBV3Space(1.0, 128).sample(50, seed=2)
    brute = np.array([sum(values[k] for s in layer_specs(a) for k in lut_keys(s)) for a in archs])
    np.testing.assert_allclose(lut.table_sum_ms(archs), brute, rtol=1e-12)
    np.testing.assert_allclose(lut.predict_many(archs), 0.9 * brute - 1.5, rtol=1e-12)
    assert lut.predict_ms(archs[0]) == pytest.approx(0.9 * brute[0] - 1.5)
    idx = torch.as_tensor(np.stack([MBV3Space().to_indices(a) for a in archs]))
    np.testing.assert_allclose(lut.latency_from_indices(idx).numpy(), 0.9 * brute - 1.5, rtol=1e-5)
    with pytest.raises(DataError, match=r"no entry 'stem-input:224x224x3.*profiled at width 1.0 and resolution 128"):
        lut.predict_ms(archs[0].with_(resolution=224))


def test_fit_correction_recovers_a_line():
    x = np.array([10.0, 14.0, 20.0, 31.0])
    assert fit_correction(x, 0.8 * x + 2.0) == pytest.approx((0.8, 2.0))
    assert fit_correction([10.0, 10.0], [12.0, 12.0]) == pytest.approx((1.2, 0.0))  # no spread: a ratio
    x = np.arange(10.0, 30.0, 2.0)
    y = 0.8 * x + 2.0
    y[3] *= 3  # one measurement disturbed by load
    assert fit_correction(x, y) == pytest.approx((0.8, 2.0))


def test_error_metrics():
    m = np.array([10.0, 20.0, 30.0, 40.0])
    r = error_metrics(m * 1.1, m)
    assert r["median_abs_error_pct"] == pytest.approx(10.0) and r["max_abs_error_pct"] == pytest.approx(10.0)
    assert r["kendall_tau"] == pytest.approx(1.0) and r["n"] == 4
    assert error_metrics(m[::-1], m)["kendall_tau"] == pytest.approx(-1.0)


def test_split_half_by_hand():
    # rounds 1 and 3 (odd) vs 2 and 4 (even); medians of two rounds are their means
    m = np.array([[10.0, 20.0, 30.0],
                  [12.0, 18.0, 33.0],
                  [10.0, 22.0, 30.0],
                  [12.0, 22.0, 27.0]])
    r = split_half(m)
    odd, even = np.array([10.0, 21.0, 30.0]), np.array([12.0, 20.0, 30.0])
    assert r["split_half_tau"] == pytest.approx(1.0)  # same order: 10 < 21 < 30 and 12 < 20 < 30
    assert r["split_half_diff_pct"] == pytest.approx(np.median(np.abs(odd - even) / ((odd + even) / 2)) * 100)
    swapped = m.copy()
    swapped[1] = [22.0, 11.0, 33.0]  # even rounds now rank the first two the other way round
    swapped[3] = [22.0, 11.0, 27.0]
    assert split_half(swapped)["split_half_tau"] == pytest.approx(1 / 3)  # 2 of 3 pairs agree
    assert split_half(m[:1]) == {"split_half_tau": None, "split_half_diff_pct": None}


def test_speed_factors_by_hand():
    # the reference read 10 ms before network 0, 20 between 0 and 1, 10 after 1; next round 10, 10, 10
    probes = np.array([[10.0, 20.0, 10.0],
                       [10.0, 10.0, 10.0]])
    f = speed_factors(probes)  # median reading 10: mean of the readings around each timing / 10
    np.testing.assert_allclose(f, [[1.5, 1.5], [1.0, 1.0]])
    # a network timed in a slow spell reads slow by the same factor as the reference around it
    assert 30.0 / f[0, 0] == pytest.approx(20.0)


def test_reference_reading_covers_at_least_50_ms():
    # a fast reference (4 ms a pass) is timed past its cold first passes: 5 warm-up passes, then 13 timed (52 ms)
    calls = []
    times = time_runs(lambda: calls.append(1) or 4.0, REFERENCE_PROTOCOL)
    assert len(calls) == 5 + 13 and len(times) == 13 and times.sum() >= 50.0
    # a slow one (20 ms a pass) still takes its 3 passes
    assert len(time_runs(lambda: 20.0, REFERENCE_PROTOCOL)) == 3


class _Interrupting(TorchBackend):
    """Counts timed passes (with TINY: one per entry and round); raises KeyboardInterrupt (as Ctrl-C
    would) before pass ``stop_at``. Counts the runners it opened too."""

    def __init__(self, stop_at: int | None = None):
        self.calls, self.stop_at, self.opened = 0, stop_at, 0

    @contextlib.contextmanager
    def runner(self, module, example, threads):
        self.opened += 1
        with super().runner(module, example, threads) as run:
            def counted() -> float:
                if self.stop_at is not None and self.calls == self.stop_at:
                    raise KeyboardInterrupt
                self.calls += 1
                return run()

            yield counted


def test_profile_interrupted_then_resumed_measures_only_the_rest(tmp_path, monkeypatch):
    out = tmp_path / "lut.json"
    kw = dict(threads=1, width=1.0, resolution=128, out_path=out, protocol=TINY, calibration=3, progress=False,
              save_every_s=3600.0, network_protocol=TINY, rounds=5)
    first = _Interrupting(stop_at=40)  # in round 1 of 5
    with pytest.raises(KeyboardInterrupt):
        profile_lut(first, **kw)
    saved = json.loads(out.read_text())
    assert len(saved["entries"]) == 40 and not saved["complete"]  # saved on interrupt
    assert all(len(v["rounds_ms"]) == 1 for v in saved["entries"].values())
    with pytest.raises(DataError, match="interrupted"):
        load_lut(out)
    total = 5 * (94 + 3)  # 5 interleaved rounds over 94 entries and 3 calibration networks
    second = _Interrupting(stop_at=(94 + 3 - 40) + 50)  # finishes round 1, then stops 50 timings into round 2
    with pytest.raises(KeyboardInterrupt):
        profile_lut(second, **kw)
    mid = json.loads(out.read_text())
    assert len(mid["entries"]) == 94 and not mid["complete"]
    assert sorted(len(v["rounds_ms"]) for v in mid["entries"].values()) == [1] * 44 + [2] * 50
    assert all(len(c["rounds_ms"]) == 1 for c in mid["calibration"]["archs"])
    for k, v in saved["entries"].items():
        assert mid["entries"][k]["rounds_ms"][0] == v["rounds_ms"][0]  # not re-measured
    third = _Interrupting()
    report = profile_lut(third, **kw)
    done_so_far = 40 + second.calls
    assert third.calls == total - done_so_far and report.measured == third.calls and report.reused == done_so_far
    assert third.opened == 94 + 3  # one runner per entry and network, kept open across the rounds
    done = json.loads(out.read_text())
    assert done["complete"] and len(done["entries"]) == 94 and len(done["calibration"]["archs"]) == 3
    assert done["rounds"] == 5
    for k, v in mid["entries"].items():
        r = done["entries"][k]["rounds_ms"]
        assert len(r) == 5 and r[:len(v["rounds_ms"])] == v["rounds_ms"]  # what was saved is kept
        assert done["entries"][k]["median_ms"] == pytest.approx(float(np.median(r)))
    for c in done["calibration"]["archs"]:
        assert len(c["rounds_ms"]) == 5 and c["measured_ms"] == pytest.approx(float(np.median(c["rounds_ms"])))
    lut = load_lut(out)
    assert set(lut.entries) == set(lut_entries(1.0, 128))
    via_spec = get_latency_source(f"lut:{out}")
    some = MBV3Space(1.0, 128).sample(5, seed=9)
    np.testing.assert_allclose(via_spec.latency_ms(some), lut.predict_many(some))
    assert lut.env["threads"] == 1 and lut.protocol["runs"] == 1 and "cpu_model" in lut.env
    a, b = lut.correction
    sums = [c["sum_ms"] for c in done["calibration"]["archs"]]
    meas = [c["measured_ms"] for c in done["calibration"]["archs"]]
    assert (a, b) == pytest.approx(fit_correction(sums, meas))
    fourth = _Interrupting()
    before = out.read_bytes()
    assert profile_lut(fourth, **kw).measured == 0 and fourth.calls == 0  # complete: nothing to do
    assert out.read_bytes() == before and fourth.opened == 0  # and the file is left as it is
    # validation uses the table's own settings
    res = validate_lut(lut, samples=3, seed=4, protocol=TINY, progress=False)
    assert res["n"] == 3 and res["threads"] == 1 and res["resolution"] == 128 and len(res["rows"]) == 3
    assert res["median_abs_error_pct"] >= 0 and -1.0 <= res["kendall_tau"] <= 1.0
    for r in res["rows"]:
        assert r["predicted_ms"] == pytest.approx(lut.predict_ms(r["arch"])) and r["measured_ms"] > 0
    assert res["rounds"] == 10  # twice the table's own interleaved rounds by default
    # by default timings are divided by the reference network's slowdown; the plain figures are kept
    assert res["reference"]["arch"] == reference_arch(1.0, 128).to_legacy() and res["reference"]["median_ms"] > 0
    assert res["reference"]["spread_pct"] >= 0 and -1.0 <= res["unreferenced"]["kendall_tau"] <= 1.0
    assert res["unreferenced"]["median_abs_error_pct"] >= 0 and "split_half_tau" in res["unreferenced"]
    assert -1.0 <= res["split_half_tau"] <= 1.0 and res["split_half_diff_pct"] >= 0
    # drift: the smallest and the largest calibration network re-measured, reported against their profiled values
    assert [d["arch"] for d in res["drift"]] == [c["arch"] for c in done["calibration"]["archs"][:2]]
    for d in res["drift"]:
        assert d["now_ms"] > 0 and d["change_pct"] == pytest.approx((d["now_ms"] / d["profiled_ms"] - 1) * 100)
    assert res["drift_pct"] == pytest.approx(float(np.median([d["change_pct"] for d in res["drift"]])))
    scaled = [r["predicted_ms"] * (1 + res["drift_pct"] / 100) for r in res["rows"]]
    assert res["drift_adjusted"] == pytest.approx(error_metrics(scaled, [r["measured_ms"] for r in res["rows"]]))
    # more rounds measure longer: each round times each network for the table's per-round share
    counting = _Interrupting()
    lut_counting = LUT(dict(lut.data, backend="torch"), out)
    monkeypatch.setattr("pnag.latency.validate.get_backend", lambda name: counting)
    share = MeasureProtocol(warmup=0, runs=10, min_time_s=0.0)  # 10 passes over the table's 5 rounds: 2 per round
    for rounds in (2, 3):
        counting.calls = 0
        time_networks_in_rounds(lut_counting, MBV3Space(1.0, 128).sample(2, seed=1), share, rounds, progress=False)
        assert counting.calls == rounds * 2 * 2
    # with a reference: it is read before each round and after every network (here 1 warm-up + 3 passes each time)
    monkeypatch.setattr("pnag.latency.validate.REFERENCE_PROTOCOL", MeasureProtocol(warmup=1, runs=3, min_time_s=0.0))
    counting.calls = 0
    med, probes = time_networks_in_rounds(lut_counting, MBV3Space(1.0, 128).sample(2, seed=1), share, 3,
                                          progress=False, reference=reference_arch(1.0, 128))
    assert med.shape == (3, 2) and probes.shape == (3, 3) and (probes > 0).all()
    assert counting.calls == 3 * 2 * 2 + 3 * 3 * 4
    monkeypatch.undo()
    plain = validate_lut(lut, samples=2, seed=4, protocol=TINY, progress=False, rounds=2, reference=False)
    assert plain["rounds"] == 2 and plain["reference"] is None and plain["unreferenced"] is None
    with pytest.raises(PnagError, match="rounds: 0"):
        validate_lut(lut, samples=3, seed=4, protocol=TINY, progress=False, rounds=0)
    # another setting on the same file is refused, naming the field
    with pytest.raises(PnagError, match="threads=1.*threads=2"):
        profile_lut("torch", **dict(kw, threads=2))


def test_profile_killed_in_a_subprocess_resumes(tmp_path):
    out = tmp_path / "lut.json"
    cmd = [sys.executable, "-m", "pnag", "latency", "profile", "--backend", "torch", "--threads", "1", "--width", "1.0",
           "--resolution", "128", "-o", str(out), "--warmup", "0", "--runs", "1", "--min-time", "0.01",
           "--calibration", "2", "--network-min-time", "0", "--save-every", "0", "--rounds", "3", "--no-progress",
           "--json"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    saved = {}
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            saved = json.loads(out.read_text())["entries"]
        except (OSError, ValueError, KeyError):
            saved = {}
        if len(saved) >= 8:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    on_disk = json.loads(out.read_text())  # atomic writes: always a whole file
    assert not on_disk["complete"] and len(on_disk["entries"]) >= 8
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    n_saved = sum(len(v["rounds_ms"]) for v in on_disk["entries"].values()) + \
        sum(len(c["rounds_ms"]) for c in on_disk["calibration"]["archs"])
    assert summary["reused"] == n_saved and summary["measured"] == 3 * (94 + 2) - n_saved
    final = json.loads(out.read_text())
    assert final["complete"] and all(final["entries"][k]["rounds_ms"][:len(v["rounds_ms"])] == v["rounds_ms"]
                                     for k, v in on_disk["entries"].items())
    # the finished table validates from the command line: errors, the measurement against itself, the drift
    v = subprocess.run([sys.executable, "-m", "pnag", "latency", "validate", "--lut", str(out), "--samples", "3",
                        "--rounds", "2", "--no-progress"], env=env, capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stderr
    assert "Kendall tau" in v.stdout and "2 interleaved rounds" in v.stdout
    assert "odd vs even rounds" in v.stdout and "machine drift since profiling" in v.stdout
    assert "with the predictions scaled by it: median |err|" in v.stdout
    assert "reference network: the machine's speed moved by" in v.stdout


def test_validation_plot_leaves_the_backend_alone(tmp_path, user_backend):
    import matplotlib

    from pnag.cli.latency import _plot_validation

    res = {"rows": [{"measured_ms": m, "predicted_ms": m * 1.05} for m in (10.0, 12.0, 15.0)],
           "backend": "torch", "threads": 1, "median_abs_error_pct": 5.0, "kendall_tau": 1.0}
    _plot_validation(res, str(tmp_path / "v.png"))
    assert (tmp_path / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == user_backend


def test_local_lut_is_profiled_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PNAG_CACHE_DIR", str(tmp_path))
    lut = local_lut(width=1.0, resolution=128, threads=1, progress=False, protocol=TINY)
    files = list((tmp_path / "latency").glob("local-torch-t1-w1.0-r128-*.json"))
    assert len(files) == 1 and lut.complete
    stamp = files[0].stat().st_mtime_ns
    again = local_lut(width=1.0, resolution=128, threads=1, progress=False, protocol=TINY)
    assert files[0].stat().st_mtime_ns == stamp and again.entries == lut.entries


def test_load_lut_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_lut(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_lut(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(DataError, match="not a pnag latency table"):
        load_lut(bad)
    with pytest.raises(PnagError, match="calibration: 1 is not allowed"):
        calibration_archs(1.2, 224, 1, 0)


# -- CLI -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, pattern", [
    (["latency", "measure", "pnag_cpu_30", "--backend", "tpu"], "backend: 'tpu' is not known"),
    (["latency", "measure", "pnag_cpu_30", "--threads", "0"], "threads: 0 is not allowed"),
    (["latency", "measure", "pnag_cpu_30", "--batch", "-2"], "batch: -2 is not allowed"),
    (["latency", "measure", "not_a_model"], "neither a zoo model name nor an architecture"),
    (["latency", "profile", "--backend", "tpu", "-o", "x.json"], "backend: 'tpu'"),
    (["latency", "profile", "--threads", "0", "-o", "x.json"], "threads: 0"),
    (["latency", "profile", "--width", "0.5", "-o", "x.json"], "width: 0.5"),
    (["latency", "validate", "--lut", "/nonexistent/lut.json"], "no such file"),
    (["latency", "show-table", "bogus", "pnag_cpu_30"], "allowed: lut:note10, lut:i7-8700k or lut:FILE"),
])
def test_cli_errors_exit_2_without_traceback(argv, pattern, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert pattern in err and "Traceback" not in err and not (tmp_path / "x.json").exists()


def test_cli_argparse_errors_exit_2(capsys):
    assert main(["latency", "measure", "pnag_cpu_30", "--runs", "0"]) == 2
    assert "--runs" in capsys.readouterr().err


def test_cli_measure_json(capsys):
    arch = MBV3Arch((2,) * 5, (3, 3, 0, 0) * 5, (3, 3, 0, 0) * 5, width=1.0, resolution=128)
    assert main(["latency", "measure", arch.to_legacy(), "--width", "1.0", "--resolution", "128", "--threads", "1",
                 "--warmup", "0", "--runs", "2", "--min-time", "0", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["runs"] == 2 and d["env"]["threads"] == 1 and d["env"]["resolution"] == 128 and d["median_ms"] > 0


def test_cli_show_table(use_mirror, capsys):
    assert main(["latency", "show-table", "i7-8700k", "pnag_cpu_30", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["latency_ms"] == pytest.approx(sum(r["ms"] for r in d["layers"]))
    assert len(d["layers"]) == 2 + (2 + 2 + 3 + 3 + 3) + 3  # stem, first block, 13 MBConv, final, mix, classifier
    assert main(["latency", "show-table", "note10", "pnag_cpu_30", "--resolution", "170"]) == 2
    assert "Conv-input:170x170x3" in capsys.readouterr().err


# -- fault injection: corrupt tables and tables for another network (issue 21) --------------------------
def _lut_file(tmp_path, width=1.0, resolution=128, change=None) -> Path:
    """A complete table file at ``width``/``resolution``; ``change(data)`` corrupts it first."""
    data = _fake_lut(width=width, resolution=resolution)[0].data
    if change is not None:
        change(data)
    path = tmp_path / "lut.json"
    path.write_text(json.dumps(data))  # json writes NaN / Infinity as Python reads them back
    return path


def _first_entry(data: dict) -> dict:
    return next(iter(data["entries"].values()))


@pytest.mark.parametrize("change, pattern", [
    (lambda d: _first_entry(d).update(median_ms=float("nan")), r"entry 'stem-input.*median_ms: nan is not allowed"),
    (lambda d: _first_entry(d).update(median_ms=-1000.0), r"median_ms: -1000.0 is not allowed; allowed: a finite"),
    (lambda d: _first_entry(d).update(median_ms=True), r"median_ms: True is not allowed"),
    (lambda d: _first_entry(d).update(median_ms="0.5"), r"median_ms: '0.5' is not allowed"),
    (lambda d: _first_entry(d).update(rounds_ms=[0.5, float("inf")]), r"rounds_ms\[1\]: inf is not allowed"),
    (lambda d: d.update(entries=[]), r"'entries' is a list"),
    (lambda d: d.update(entries={}), r"marked complete but 94 of its entries are missing"),
    (lambda d: d["entries"].pop(next(iter(d["entries"]))), r"1 of its entries are missing \(e.g. 'stem-input"),
    (lambda d: d["correction"].update(a=float("nan")), r"correction a: nan is not allowed"),
    (lambda d: d["correction"].update(b=None), r"correction b \(ms\): None is not allowed"),
    (lambda d: d.update(width=True), r"field 'width'"),
    (lambda d: d.update(threads=None), r"field 'threads'"),
])
def test_load_lut_refuses_corrupt_values(tmp_path, change, pattern):
    path = _lut_file(tmp_path, change=change)
    with pytest.raises(DataError, match=pattern) as err:
        load_lut(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert load_lut(_lut_file(tmp_path)).predict_ms(MBV3Space(1.0, 128).sample(1, seed=0)[0]) > 0  # the intact one


def test_cli_train_refuses_corrupt_lut(tmp_path, capsys):
    path = _lut_file(tmp_path, change=lambda d: _first_entry(d).update(median_ms=float("nan")))
    argv = ["train", "--accuracy", "proxy:madds", "--latency", f"lut:{path}", "--width", "1.0", "--resolution", "128",
            "--budgets", "10:24", "--steps", "2", "--train-samples", "20", "-q", "-o", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "median_ms: nan is not allowed" in err and err.count("\n") == 1 and "Traceback" not in err


def test_published_yaml_refuses_corrupt_values(tmp_path):
    from pnag.latency.published import read_yaml_table

    bad = ((".nan", "nan"), ("-3.0", "-3.0"), ("true", "True"), ("'2'", "'2'"), ("0", "0"))
    for i, (mean, shown) in enumerate(bad):
        path = tmp_path / f"t{i}.yaml"  # one file each: the reader caches by path, mtime and size
        path.write_text(f"Conv-input:1: {{mean: 1.5}}\nConv-input:2: {{mean: {mean}}}\n")
        with pytest.raises(DataError, match=f"entry 'Conv-input:2' mean \\(ms\\): {shown} is not allowed"):
            read_yaml_table(path)
    path = tmp_path / "good.yaml"
    path.write_text("Conv-input:1: {mean: 1.5}\nConv-input:2: {mean: 2}\n")
    assert read_yaml_table(path) == {"Conv-input:1": 1.5, "Conv-input:2": 2.0}


def test_table_for_another_width_or_resolution_is_refused(tmp_path):
    from pnag.latency.base import check_covers

    path = _lut_file(tmp_path, width=1.2, resolution=160)
    spec = f"lut:{path}"
    for space in (MBV3Space(1.0, 224), MBV3Space(1.0, 160), MBV3Space(1.2, 224)):
        with pytest.raises(PnagError, match=rf"--latency lut:{path}: the table does not describe width "
                                            rf"{space.width} at resolution {space.resolution} \(no entry 'stem-input"
                                            r".*profiled at width 1.2 and resolution 160 only"):
            get_latency_source(spec, MBV3Space(space.width, space.resolution))
    src = get_latency_source(spec, MBV3Space(1.2, 160))
    assert src.latency_of(MBV3Space(1.2, 160).sample(1, seed=0)[0]) > 0
    check_covers(src, 1.2, [160])  # covered: no error
    with pytest.raises(PnagError, match=r"^--resolution lut:.* at resolution 176 \(no entry"):
        check_covers(src, 1.2, [160, 176], what="--resolution")
    check_covers(get_latency_source("measure:torch"), 1.0, [128, 224])  # a measuring source: nothing to check


def test_published_tables_checked_for_the_space(use_mirror):
    from pnag.latency.base import check_covers

    with pytest.raises(PnagError, match=r"lut:note10: the table does not describe width 1.0 at resolution 224 "
                                        r"\(no entry 'Conv-input.*covers width 1.2 at resolutions 160"):
        get_latency_source("lut:note10", MBV3Space(1.0, 224))
    assert get_latency_source("lut:note10", MBV3Space(1.2, 192)).name == "lut:note10"
    i7 = get_latency_source("lut:i7-8700k", MBV3Space(1.0, 224))
    check_covers(i7, 1.2, range(128, 225, 4))  # every resolution the space uses, both widths


def test_cli_train_refuses_a_table_for_another_network(tmp_path, capsys):
    path = _lut_file(tmp_path, width=1.2, resolution=160)
    argv = ["train", "--accuracy", "proxy:madds", "--latency", f"lut:{path}", "--width", "1.0", "--resolution", "224",
            "--budgets", "10:24", "--steps", "2", "--train-samples", "20", "-q", "-o", str(tmp_path / "run")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "does not describe width 1.0 at resolution 224" in err and "profiled at width 1.2 and resolution 160" in err


def test_profile_refuses_a_second_writer(tmp_path, capsys):
    from pnag._io import exclusive_writer

    out = tmp_path / "lut.json"
    argv = ["latency", "profile", "--threads", "1", "--width", "1.0", "--resolution", "128", "--rounds", "1",
            "--warmup", "0", "--runs", "1", "--min-time", "0", "--network-min-time", "0", "--calibration", "2",
            "--no-progress", "-o", str(out)]
    with exclusive_writer(out, "-o"):  # as another pnag process would
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"-o {out}: already being written by pnag pid {os.getpid()} on " in err and err.count("\n") == 1
        assert not out.exists()
    assert main(argv) == 0 and load_lut(out).complete  # free again
