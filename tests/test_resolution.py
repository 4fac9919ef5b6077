"""Input resolution as a searched decision of the MobileNetV3 space: text forms, encodings, sources'
coverage, and what a run and the CLI do with it."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pnag.errors import ArchError, PnagError
from pnag.space import MBV3Space
from pnag.space.mbv3 import DEFAULT_RESOLUTIONS, MBV3Arch, encode
from test_space_mbv3 import archs

RES = DEFAULT_RESOLUTIONS


@settings(max_examples=120, deadline=None)
@given(archs(resolutions=st.sampled_from(RES)))
def test_resolution_round_trips_through_every_text_form_and_encoding(a):
    for enc in ("pnag", "ofa"):
        space = MBV3Space(width=a.width, resolutions=RES, encoding=enc)
        assert len(space.decision_choices) == 46 and space.decision_names[-1] == "resolution"
        idx = space.to_indices(a)
        assert RES[idx[-1]] == a.resolution
        assert space.from_indices(idx) == a
        text = space.format(a)  # the once-for-all dict, which names the resolution
        assert json.loads(text)["r"] == [a.resolution]
        assert space.parse(text) == a
        assert space.parse(repr({"wid": None, **a.to_ofa_dict()})) == a
        row = space.encode_indices(torch.as_tensor(idx)[None])[0].numpy()
        assert np.array_equal(space.encode(a), row)
        if enc == "ofa":
            assert np.array_equal(row, encode(a, "ofa"))
        else:  # the structure's 120 values, then a one-hot over the searched resolutions
            assert row.shape == (125,) and np.array_equal(row[:120], encode(a, "pnag"))
            assert row[120:].argmax() == RES.index(a.resolution) and row[120:].sum() == 1


def test_resolution_decision_is_always_active_and_defaults():
    space = MBV3Space(width=1.2, resolutions=(224, 160, 192))
    assert space.resolutions == (160, 192, 224) and space.resolution == 224
    idx = torch.as_tensor(np.stack([space.to_indices(a) for a in space.sample(32, seed=0)]))
    assert bool(space.active_mask(idx)[:, -1].all())
    assert {a.resolution for a in space.sample(200, seed=1)} == {160, 192, 224}  # sampling covers them
    legacy = space.sample(1, seed=2)[0].to_legacy()
    assert space.parse(legacy).resolution == 224  # a legacy string says none: the default
    a = space.parse(legacy).with_(resolution=176)
    with pytest.raises(ArchError, match="resolution: 176 is not one of the space's"):
        space.parse(json.dumps(a.to_ofa_dict()))
    with pytest.raises(ArchError, match="resolution: 176 is not one of the space's"):
        space.to_indices(a)
    fixed = MBV3Space(width=1.2, resolution=192)  # one resolution: no decision, the legacy form as before
    assert len(fixed.decision_choices) == 45 and fixed.format(a.with_(resolution=192)) == a.to_legacy()


def test_ofa_predictor_and_table_price_each_row_at_its_resolution(use_mirror):
    from pnag.predict.ofa import OFAAccuracyPredictor
    from pnag.sources import VectorLatency, get_latency_source

    space = MBV3Space(width=1.2, resolutions=RES)
    archs_ = space.sample(40, seed=4)
    assert len({a.resolution for a in archs_}) == len(RES)
    idx = torch.as_tensor(np.stack([space.to_indices(a) for a in archs_]))
    pred = OFAAccuracyPredictor(space)
    np.testing.assert_allclose(pred.predict_indices(idx).numpy(), pred.predict_archs(archs_), rtol=1e-6)
    src = get_latency_source("lut:note10", space)
    by_row = VectorLatency(space, src)(idx).numpy()
    np.testing.assert_allclose(by_row, src.latency_ms(archs_), rtol=1e-6)
    # the resolution matters: the same structure at 160 is faster than at 224
    a = archs_[0]
    lo, hi = src.latency_ms([a.with_(resolution=160), a.with_(resolution=224)])
    assert lo < hi


def test_runs_search_resolution_where_both_sources_cover_several(use_mirror, tmp_path):
    from pnag.search import TrainConfig, train

    small = dict(steps=4, budgets_per_step=4, samples_per_budget=4, ranker_steps=5, ranker_pool=50,
                 train_samples=60, archive_offspring=16)
    run = train(TrainConfig(space="mbv3", accuracy="ofa-predictor", latency="lut:note10", budgets=(15.0, 60.0),
                            **small), tmp_path / "r", progress=False)
    assert run.config.resolutions == RES and run.space.searches_resolution
    assert "searched over 160, 176, 192, 208 or 224" in run.metrics["data"]["resolution_note"]
    gens = run.generate([15.0, 40.0, 60.0], samples=4)
    assert all(g.resolution in RES and json.loads(g.arch)["r"] == [g.resolution] for g in gens)
    # a source covering one resolution keeps it fixed, and the run says so
    fixed = train(TrainConfig(space="mbv3", accuracy="dataset:ofa-mbv3-w1.0-imagenet", latency="lut:i7-8700k",
                              budgets=(10.0, 24.0), **small), tmp_path / "f", progress=False)
    assert fixed.config.resolutions == (224,) and not fixed.space.searches_resolution
    assert fixed.metrics["data"]["resolution_note"].startswith("resolution fixed at 224")
    assert all(g.resolution == 224 for g in fixed.generate([12.0, 20.0]))


def test_a_resolution_a_source_does_not_cover_is_refused(use_mirror, tmp_path, capsys):
    from pnag.cli import main
    from pnag.search import TrainConfig, train

    with pytest.raises(PnagError, match=r"--resolutions: 128 is not covered.*lut:note10 covers 160, 176"):
        train(TrainConfig(space="mbv3", accuracy="ofa-predictor", latency="lut:note10", budgets=(15.0, 60.0),
                          resolutions=(128, 160)), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()  # refused before anything was written
    code = main(["train", "--accuracy", "ofa-predictor", "--latency", "lut:note10", "--budgets", "15:60",
                 "--resolutions", "128,160", "-q", "-o", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "128" in err and "Traceback" not in err
    with pytest.raises(PnagError, match="--resolutions"):
        TrainConfig(space="nb201", resolutions=(160,))
    with pytest.raises(ArchError, match="--resolutions"):
        TrainConfig(resolutions=(100,))


def test_every_arch_output_names_its_resolution():
    a = MBV3Arch((2,) * 5, (3, 3, 0, 0) * 5, (3, 3, 0, 0) * 5, 1.2, 176)
    assert json.loads(MBV3Space(resolutions=RES).format(a))["r"] == [176]
