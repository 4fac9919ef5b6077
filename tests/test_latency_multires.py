"""One measured latency table over several input resolutions: profile, coverage, per-resolution
prices and corrections, resume, the version-1 format, validation, and a training run that searches
exactly the table's resolutions. Profiled with a fake backend (a deterministic time computed from
the module and its input, nothing run), so that a resumed table can be compared value for value."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch

from pnag.cli import main
from pnag.errors import DataError, PnagError
from pnag.latency import MeasureProtocol, load_lut, local_lut, lut_entries, profile_lut
from pnag.latency.backends import Backend
from pnag.latency.lut import FORMAT, VERSION, calibration_archs, fit_correction
from pnag.latency.base import check_covers
from pnag.sources import get_latency_source
from pnag.space.mbv3 import MBV3Space

TINY = MeasureProtocol(warmup=0, runs=1, min_time_s=0.0)
RES = (160, 224)
KW = dict(threads=1, width=1.2, protocol=TINY, network_protocol=TINY, calibration=3, progress=False,
          save_every_s=3600.0, rounds=2, resolutions=RES)
N_ENTRIES = 2 * 94 - 1  # the head after the global pooling is the same entry at every resolution


class _Fake(Backend):
    """Times nothing: a pass takes ``1e-7 * input elements * sqrt(parameters)`` ms, plus a per-call
    overhead, the same on every call. Raises KeyboardInterrupt (as Ctrl-C would) before pass ``stop_at``."""

    name = "torch"  # stands in for the torch backend (the file records the backend's name)

    def __init__(self, stop_at: int | None = None):
        self.calls, self.stop_at = 0, stop_at

    def version(self) -> str:
        return "fake"

    @contextlib.contextmanager
    def runner(self, module, example, threads):
        ms = 0.05 + 1e-7 * example.numel() * float(sum(p.numel() for p in module.parameters())) ** 0.5

        def run() -> float:
            if self.stop_at is not None and self.calls == self.stop_at:
                raise KeyboardInterrupt
            self.calls += 1
            return ms

        yield run


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A complete 2-resolution table (width 1.2 at 160 and 224), profiled without interruption."""
    out = tmp_path_factory.mktemp("multires") / "lut.json"
    report = profile_lut(_Fake(), out_path=out, **KW)
    return out, report


def _measured(doc: dict) -> dict:
    """What profiling measured and fitted (not the wall time it took)."""
    return {k: doc[k] for k in ("entries", "calibration", "corrections", "resolutions", "complete")}


def test_one_table_covers_the_profiled_resolutions_only(table):
    path, report = table
    doc = json.loads(path.read_text())
    assert doc["format"] == FORMAT and doc["version"] == VERSION == 2 and doc["resolutions"] == list(RES)
    assert len(doc["entries"]) == N_ENTRIES and report.measured == 2 * (N_ENTRIES + 2 * 3)
    assert set(doc["entries"]) == set(lut_entries(1.2, 160)) | set(lut_entries(1.2, 224))
    lut = load_lut(path)
    assert lut.resolutions == RES and lut.resolution == 224  # the largest is the default
    assert lut.covers(1.2, 160) and lut.covers(1.2, 224)
    assert not lut.covers(1.2, 192) and not lut.covers(1.0, 160)
    check_covers(lut, 1.2, RES)
    with pytest.raises(PnagError, match=r"^--latency lut:.*: the table does not describe width 1.2 at resolution 192 "
                                        r"\(no entry 'stem-input:192x192x3.*profiled at width 1.2 and resolutions "
                                        r"160 or 224 only"):
        check_covers(lut, 1.2, [160, 192])
    with pytest.raises(PnagError, match="at resolution 176"):
        get_latency_source(f"lut:{path}", MBV3Space(1.2, resolutions=(160, 176)))
    assert get_latency_source(f"lut:{path}", MBV3Space(1.2, 160)).resolution == 160  # the space's, where covered


def test_prices_and_corrections_are_per_resolution(table):
    path, _ = table
    lut = load_lut(path)
    doc = json.loads(path.read_text())
    cal = doc["calibration"]["archs"]
    assert [c["resolution"] for c in cal] == [160] * 3 + [224] * 3
    for r in RES:  # each resolution's correction is fitted on its own networks
        mine = [c for c in cal if c["resolution"] == r]
        fit = fit_correction([c["sum_ms"] for c in mine], [c["measured_ms"] for c in mine])
        assert lut.correction_at(r) == pytest.approx(fit) and doc["corrections"][str(r)]["n"] == 3
    assert lut.corrections[160] != lut.corrections[224]
    archs = MBV3Space(1.2, 160).sample(6, seed=3)
    for a in archs:
        lo, hi = lut.latency_ms([a, a.with_(resolution=224)])
        assert lo < hi  # the same structure costs more at the larger input
        for r, got in ((160, lo), (224, hi)):
            a_r, b_r = lut.correction_at(r)
            assert got == pytest.approx(a_r * lut.table_sum_ms([a.with_(resolution=r)])[0] + b_r)
    idx = torch.as_tensor(np.stack([MBV3Space(1.2, 160).to_indices(a) for a in archs]))
    for r in RES:
        np.testing.assert_allclose(lut.latency_from_indices(idx, resolution=r).numpy(),
                                   lut.latency_ms([a.with_(resolution=r) for a in archs]), rtol=1e-5)
    with pytest.raises(DataError, match=r"no entry 'stem-input:176x176x3.*resolutions 160 or 224 only"):
        lut.latency_from_indices(idx, resolution=176)


def test_interrupted_and_resumed_equals_uninterrupted(table, tmp_path):
    path, report = table
    out = tmp_path / "lut.json"
    first = _Fake(stop_at=N_ENTRIES + 10)  # all of round 1 (the entries and 6 networks), 4 timings of round 2
    with pytest.raises(KeyboardInterrupt):
        profile_lut(first, out_path=out, **KW)
    saved = json.loads(out.read_text())
    assert not saved["complete"] and len(saved["entries"]) == N_ENTRIES
    with pytest.raises(DataError, match="interrupted"):
        load_lut(out)
    with pytest.raises(PnagError, match=r"resolutions=\[160, 224\], this run asks resolutions=\[160, 192\]"):
        profile_lut(_Fake(), out_path=out, **dict(KW, resolutions=(160, 192)))
    second = _Fake()
    resumed = profile_lut(second, out_path=out, **KW)
    assert resumed.reused == first.calls and resumed.measured == second.calls == report.measured - first.calls
    assert _measured(json.loads(out.read_text())) == _measured(json.loads(path.read_text()))


def test_a_version_1_table_still_loads_and_prices_the_same(tmp_path):
    v2 = profile_lut(_Fake(), out_path=tmp_path / "v2.json", **dict(KW, resolutions=(160,))).lut
    doc = json.loads((tmp_path / "v2.json").read_text())
    # the same table as pnag wrote it before multi-resolution tables
    old = {k: v for k, v in doc.items() if k not in ("resolutions", "corrections", "correction_note")}
    old.update(version=1, resolution=160, correction=dict(doc["corrections"]["160"], note=doc["correction_note"]))
    old["calibration"] = dict(doc["calibration"], archs=[{k: v for k, v in c.items() if k != "resolution"}
                                                         for c in doc["calibration"]["archs"]])
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(old))
    v1 = load_lut(path)
    assert v1.resolutions == (160,) and v1.covers(1.2, 160) and not v1.covers(1.2, 224)
    archs = MBV3Space(1.2, 160).sample(5, seed=1)
    np.testing.assert_allclose(v1.latency_ms(archs), v2.latency_ms(archs))
    before = path.read_bytes()
    again = _Fake()
    assert profile_lut(again, out_path=path, **dict(KW, resolutions=(160,))).measured == 0 and again.calls == 0
    assert path.read_bytes() == before  # complete: left as it is, in its own version
    old["version"] = 3
    path.write_text(json.dumps(old))
    with pytest.raises(DataError, match=r"table version 3; allowed: 1 or 2"):
        load_lut(path)


def test_latency_resolutions_of_the_table(table):
    from pnag.sources import latency_resolutions

    lut = load_lut(table[0])
    assert latency_resolutions(lut, 1.2, [160, 176, 192]) == (160,)
    assert latency_resolutions(lut, 1.2, [160, 176, 192, 208, 224]) == RES
    assert latency_resolutions(lut, 1.0, [160, 224]) == ()


def test_train_searches_exactly_the_table_resolutions(table, use_mirror, tmp_path):
    from pnag.search import TrainConfig, train

    lut = load_lut(table[0])
    ends = [lut.latency_of(a) for r in RES for a in calibration_archs(1.2, r, 2, 0)]  # smallest, largest
    budgets = (min(ends) * 1.2, max(ends) * 0.8)
    run = train(TrainConfig(space="mbv3", accuracy="ofa-predictor", latency=f"lut:{table[0]}", width=1.2,
                            budgets=budgets, steps=2, ranker_steps=2, ranker_pool=20, train_samples=20,
                            budgets_per_step=2, samples_per_budget=2, archive_offspring=4), tmp_path / "run",
                progress=False)
    assert run.config.resolutions == RES and run.space.searches_resolution
    assert "searched over 160 or 224" in run.metrics["data"]["resolution_note"]
    gens = run.generate([budgets[0], budgets[1]], samples=2)
    assert {g.resolution for g in gens} <= set(RES)


def test_validate_across_the_resolutions(table):
    from pnag.latency import validate_lut

    lut = load_lut(table[0])
    res = validate_lut(lut, samples=4, seed=0, protocol=TINY, progress=False, rounds=1, reference=False)
    assert res["resolutions"] == list(RES) and set(res["by_resolution"]) <= {"160", "224"}
    rows = res["rows"]
    assert {r["resolution"] for r in rows} <= set(RES) and len(rows) == 4
    for r in rows:
        assert r["predicted_ms"] == pytest.approx(lut.latency_of(
            MBV3Space(1.2, r["resolution"]).parse(r["arch"]))) and r["measured_ms"] > 0
    assert sum(m["n"] for m in res["by_resolution"].values()) == 4
    assert res["corrections"] == {str(r): dict(zip("ab", lut.correction_at(r))) for r in RES}


def test_cli_profile_resolutions(tmp_path, capsys):
    out = tmp_path / "t.json"
    argv = ["latency", "profile", "--threads", "1", "--width", "1.0", "--resolutions", "160,128", "--rounds", "1",
            "--warmup", "0", "--runs", "1", "--min-time", "0", "--network-min-time", "0", "--calibration", "2",
            "--no-progress", "-o", str(out)]
    assert main(argv + ["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["resolutions"] == [128, 160] and set(d["corrections"]) == {"128", "160"} and d["entries"] == N_ENTRIES
    assert d["measured"] == N_ENTRIES + 2 * 2 and load_lut(out).covers(1.0, 128)
    assert main(argv) == 0  # complete: reused, and said per resolution
    text = capsys.readouterr().out
    assert "resolutions 128 or 160" in text and "correction at 128: predicted_ms = " in text
    assert "correction at 160: predicted_ms = " in text
    assert main(["latency", "validate", "--lut", str(out), "--samples", "2", "--rounds", "1", "--no-reference",
                 "--no-progress"]) == 0
    shown = capsys.readouterr().out
    assert "width 1.0, resolutions 128 or 160 (archs drawn across them), 1 interleaved rounds" in shown
    assert main(argv + ["--resolution", "160"]) == 2
    err = capsys.readouterr().err
    assert "--resolution 160 and --resolutions 160,128: give one" in err and err.count("\n") == 1
    assert main(argv[:-2] + ["--resolutions", "160,100", "-o", str(tmp_path / "u.json")]) == 2
    assert "--resolutions: 100 is outside the space" in capsys.readouterr().err
    assert not (tmp_path / "u.json").exists()


def test_local_lut_takes_a_resolutions_list(monkeypatch):
    import pnag.latency.profile as lut_module

    made = []
    real = lut_module.profile_lut
    monkeypatch.setattr(lut_module, "profile_lut", lambda *a, **k: made.append(k["resolutions"]) or real(
        _Fake(), *a[1:], **dict(k, calibration=2, rounds=1)))
    one = local_lut(width=1.2, threads=1, progress=False, protocol=TINY)
    assert made == [(224,)] and one.resolutions == (224,)  # the default: one resolution, as before
    assert "-r224-" in one.path.name
    two = local_lut(width=1.2, resolution=160, threads=1, progress=False, protocol=TINY, resolutions=(224, 160))
    assert made[-1] == (160, 224) and two.resolutions == (160, 224) and two.resolution == 160
    assert "-r160-224-" in two.path.name and two.covers(1.2, 160) and two.covers(1.2, 224)
    assert local_lut(width=1.2, threads=1, progress=False, resolutions=(160, 224)).path == two.path
    assert len(made) == 2  # cached: not profiled again


def test_local_spec_asks_for_the_resolutions_a_space_searches(monkeypatch):
    asked = []

    def fake_local_lut(**kw):
        asked.append(kw["resolutions"])
        raise KeyboardInterrupt  # stop before anything is profiled

    monkeypatch.setattr("pnag.latency.profile.local_lut", fake_local_lut)
    for space in (MBV3Space(1.2, 224), MBV3Space(1.2, resolutions=(160, 224))):
        with pytest.raises(KeyboardInterrupt):
            get_latency_source("local", space)
    assert asked == [None, (160, 224)]  # a fixed resolution: the one-resolution table, as before


@pytest.mark.parametrize("change, pattern", [
    (lambda d: d["corrections"].pop("160"), r"'corrections' is .*allowed: an object resolution -> \{a, b\} for each "
                                            r"of the table's resolutions 160 or 224"),
    (lambda d: d["corrections"]["224"].update(a=-1.0), r"correction at resolution 224 a: -1.0 is not allowed"),
    (lambda d: d["calibration"]["archs"][0].update(resolution=176), r"calibration arch 0 resolution 176; allowed: "
                                                                    r"160 or 224"),
    (lambda d: d.update(resolutions=[160, 500]), r"field 'resolutions': .*500 is outside the space"),
    (lambda d: d.update(resolutions="160"), r"field 'resolutions': '160' is a str"),
    (lambda d: d.pop("resolutions"), r"missing field 'resolutions'"),
])
def test_load_lut_refuses_a_corrupt_version_2_table(table, tmp_path, change, pattern):
    doc = json.loads(table[0].read_text())
    change(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=pattern) as err:
        load_lut(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_table_without_the_default_resolution_trains_at_the_ones_it_covers(use_mirror, tmp_path):
    from pnag.search import TrainConfig, train

    out = tmp_path / "lut.json"
    profile_lut(_Fake(), out_path=out, **{**KW, "resolutions": (160, 192)})
    lut = load_lut(out)
    ends = [lut.latency_of(a) for r in (160, 192) for a in calibration_archs(1.2, r, 2, 0)]
    small = dict(steps=2, ranker_steps=2, ranker_pool=20, train_samples=20, budgets_per_step=2, samples_per_budget=2,
                 archive_offspring=4, width=1.2, budgets=(min(ends) * 1.2, max(ends) * 0.8))
    run = train(TrainConfig(space="mbv3", accuracy="ofa-predictor", latency=f"lut:{out}", **small), tmp_path / "a",
                progress=False)
    assert run.config.resolutions == (160, 192)  # 224 is not in the table: searched over the two it has
    one = tmp_path / "one.json"
    profile_lut(_Fake(), out_path=one, **{**KW, "resolutions": (176,)})
    run = train(TrainConfig(space="mbv3", accuracy="ofa-predictor", latency=f"lut:{one}", **small), tmp_path / "b",
                progress=False)
    assert run.config.resolutions == (176,)
    assert run.metrics["data"]["resolution_note"].startswith("resolution fixed at 176")
