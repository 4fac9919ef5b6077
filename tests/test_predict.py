"""MLP predictors (ensembles with uncertainty) and the published once-for-all accuracy predictor."""

import numpy as np
import pytest
import torch

from pnag.errors import DataError, PnagError
from pnag.predict import MLPPredictor, OFAAccuracyPredictor, PredictorConfig, kendall_tau
from pnag.predict.mlp import ERROR_CEILING_PCT, pairwise_rank_loss
from pnag.space import MBV3Space, NB201Space


def _data(n=400, seed=0):
    space = NB201Space()
    archs = space.sample(n, seed=seed)
    X = space.encode_many(archs)
    w = np.random.default_rng(1).normal(0, 2, 30)
    return space, archs, X, 70 + X @ w


def test_fits_and_reports_held_out_metrics():
    space, archs, X, y = _data()
    p = MLPPredictor(space, PredictorConfig.preset_config("fast", epochs=40, hidden=32, ensemble=3))
    m = p.fit(X, y)
    assert m["validation"] == "out-of-bag" and 0 < m["n_val"] <= 400
    assert m["rmse"] < 0.5 * y.std() and m["kendall_tau"] > 0.8
    Xt = space.encode_many(space.sample(200, seed=9))
    yt = 70 + Xt @ np.random.default_rng(1).normal(0, 2, 30)
    assert kendall_tau(p.predict(Xt), yt) > 0.8
    mean, std = p.predict_dist(Xt)
    assert mean.shape == std.shape == (200,) and np.all(std >= 0) and std.max() > 0
    idx = torch.as_tensor(np.stack([space.to_indices(a) for a in space.sample(5, seed=3)]))
    m_i, s_i = p.predict_indices_dist(idx)
    np.testing.assert_allclose(m_i.numpy(), p.predict(space.encode_indices(idx).numpy()), rtol=1e-5)


def test_split_validation_and_state_round_trip(tmp_path):
    space, archs, X, y = _data(200)
    cfg = PredictorConfig.preset_config("fast", epochs=20, hidden=16, ensemble=1, bootstrap=False)
    p = MLPPredictor(space, cfg)
    m = p.fit(X, y)
    assert m["validation"] == "split" and m["n_val"] == 40 and m["n_train"] == 200
    path = tmp_path / "p.pt"
    torch.save(p.state_dict(), path)
    q = MLPPredictor.from_state_dict(torch.load(path, weights_only=True), space)
    np.testing.assert_array_equal(p.predict(X[:7]), q.predict(X[:7]))
    # same seed, same data: the same model
    r = MLPPredictor(space, cfg)
    r.fit(X, y)
    np.testing.assert_array_equal(p.predict(X[:7]), r.predict(X[:7]))


def test_published_preset():
    c = PredictorConfig.preset_config("published")
    assert (c.layers, c.hidden, c.optimizer, c.lr, c.momentum, c.weight_decay, c.epochs, c.val_fraction) == \
        (3, 512, "sgd", 0.2, 0.9, 3e-5, 1000, 0.2)
    with pytest.raises(PnagError, match="published or fast"):
        PredictorConfig.preset_config("slow")
    with pytest.raises(PnagError, match="adam or sgd"):
        PredictorConfig(optimizer="rmsprop")


def test_bad_inputs():
    space, archs, X, y = _data(50)
    p = MLPPredictor(space, PredictorConfig(epochs=1))
    with pytest.raises(DataError, match=r"\(N, 30\)"):
        p.fit(X[:, :10], y)
    with pytest.raises(DataError, match="one per input"):
        p.fit(X, y[:-1])
    with pytest.raises(DataError, match="finite"):
        p.fit(X, np.where(np.arange(50) == 3, np.nan, y))
    with pytest.raises(DataError, match="not a saved MLPPredictor"):
        MLPPredictor.from_state_dict({"config": {}}, space)


def test_ofa_predictor(use_mirror):
    space = MBV3Space(width=1.2)
    p = OFAAccuracyPredictor(space)
    archs = space.sample(64, seed=0)
    acc = p.predict_archs(archs)
    assert acc.shape == (64,) and np.all((acc > 60) & (acc < 85))  # top-1 %, width-1.2 subnets
    idx = torch.as_tensor(np.stack([space.to_indices(a) for a in archs]))
    np.testing.assert_allclose(p.predict_indices(idx).numpy(), acc, rtol=1e-5)
    big = space.validate({"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5})
    small = space.validate({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5})
    assert p.predict_archs([big])[0] > p.predict_archs([small])[0]
    with pytest.raises(PnagError, match="width 1.0"):
        OFAAccuracyPredictor(MBV3Space(width=1.0))


def test_log_error_target():
    """``target="log-error"``: members regress -log(100.5 - y); predictions and metrics stay in %."""
    space, archs, X, lin = _data(300)
    y = 100.5 - np.exp(2.0 - (lin - 70) / 5)  # saturating towards the top, within 0..100
    assert 0 < y.min() and y.max() < 100
    cfg = PredictorConfig.preset_config("fast", epochs=40, hidden=32, ensemble=3, target="log-error")
    p = MLPPredictor(space, cfg)
    m = p.fit(X, y)
    mean, std = p.predict_dist(X)
    # predictions in %: close to the targets, never at or above the ceiling of the transform
    assert np.all(mean < 100.5) and m["kendall_tau"] > 0.8 and m["rmse"] < 0.5 * y.std()
    assert np.corrcoef(mean, y)[0, 1] > 0.9 and np.all(std >= 0)
    # the members really regress the transformed value: their raw outputs are on the log scale
    with torch.no_grad():
        raw = p.net(torch.from_numpy(X.astype(np.float32))) * p.y_std + p.y_mean
    assert np.corrcoef(raw.mean(0).numpy(), -np.log(100.5 - y))[0, 1] > 0.9
    np.testing.assert_allclose(p._from_target(torch.as_tensor(p._to_target(y))).numpy(), y, rtol=1e-9)
    # saved and loaded: the same predictions (the target travels in the config)
    q = MLPPredictor.from_state_dict(p.state_dict(), space)
    assert q.config.target == "log-error"
    np.testing.assert_array_equal(p.predict(X[:9]), q.predict(X[:9]))
    # identity differs: the transform is not a no-op
    r = MLPPredictor(space, PredictorConfig.preset_config("fast", epochs=40, hidden=32, ensemble=3))
    r.fit(X, y)
    assert not np.allclose(r.predict(X[:9]), p.predict(X[:9]))


def test_log_error_target_bad_inputs():
    space, archs, X, y = _data(50)
    with pytest.raises(PnagError, match="identity, log-error or log-gap"):
        PredictorConfig(target="log")
    p = MLPPredictor(space, PredictorConfig(epochs=1, target="log-error"))
    with pytest.raises(DataError, match=r"101.0 with target 'log-error'; allowed: accuracy in % \(0..100\)"):
        p.fit(X, np.where(np.arange(50) == 7, 101.0, np.clip(y, 0, 100)))


def test_log_gap_target():
    """``target="log-gap"``: members regress -log(best training value + gap_pct - y), so the top of a
    low-accuracy dataset is stretched as log-error stretches a high one; the ceiling is saved."""
    space, archs, X, lin = _data(300)
    y = 47.0 - np.exp(1.0 - (lin - 70) / 5)  # saturating towards ~47 % (as ImageNet16-120)
    cfg = PredictorConfig.preset_config("fast", epochs=40, hidden=32, ensemble=3, target="log-gap", gap_pct=2.0)
    p = MLPPredictor(space, cfg)
    m = p.fit(X, y)
    assert p.ceiling == pytest.approx(y.max() + 2.0)
    mean, _ = p.predict_dist(X)
    assert np.all(mean < p.ceiling) and m["kendall_tau"] > 0.8
    with torch.no_grad():
        raw = p.net(torch.from_numpy(X.astype(np.float32))) * p.y_std + p.y_mean
    assert np.corrcoef(raw.mean(0).numpy(), -np.log(y.max() + 2.0 - y))[0, 1] > 0.95
    np.testing.assert_allclose(p._from_target(torch.as_tensor(p._to_target(y))).numpy(), y, rtol=1e-9)
    q = MLPPredictor.from_state_dict(p.state_dict(), space)
    assert q.ceiling == p.ceiling
    np.testing.assert_array_equal(p.predict(X[:9]), q.predict(X[:9]))
    r = MLPPredictor(space)
    r.load_state_dict(p.state_dict())
    np.testing.assert_array_equal(p.predict(X[:9]), r.predict(X[:9]))
    # a state saved before log-gap (no ceiling) is log-error's
    old = {k: v for k, v in p.state_dict().items() if k != "ceiling"}
    assert MLPPredictor.from_state_dict(old, space).ceiling == ERROR_CEILING_PCT == 100.5
    # log-error on the same data: another scale (its ceiling stays at 100.5)
    e = MLPPredictor(space, PredictorConfig.preset_config("fast", epochs=40, hidden=32, ensemble=3,
                                                          target="log-error"))
    e.fit(X, y)
    assert e.ceiling == 100.5 and not np.allclose(e.predict(X[:9]), p.predict(X[:9]))
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(PnagError, match="gap_pct"):
            PredictorConfig(target="log-gap", gap_pct=bad)
    with pytest.raises(DataError, match=r"101.0 with target 'log-gap'"):
        MLPPredictor(space, PredictorConfig(epochs=1, target="log-gap")).fit(X, np.where(np.arange(300) == 3, 101.0, y))


def test_pairwise_rank_loss():
    """The logistic ranking term: mean softplus(-(p_i - p_j)) over pairs with target_i > target_j,
    each weighted by the two examples' member weights."""
    pred = torch.tensor([[0.0, 1.0, 3.0], [2.0, 0.0, 0.0]])
    target = torch.tensor([0.0, 1.0, 2.0])
    weight = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 2.0]])
    sp = torch.nn.functional.softplus
    # member 0: pairs (1,0), (2,0), (2,1) with weight 1; member 1: only (2,0) with weight 2
    want0 = (sp(torch.tensor(-1.0)) + sp(torch.tensor(-3.0)) + sp(torch.tensor(-2.0))) / 3
    want1 = sp(torch.tensor(2.0))
    got = pairwise_rank_loss(pred, target, weight)
    torch.testing.assert_close(got, torch.stack([want0, want1]))
    assert pairwise_rank_loss(pred, torch.zeros(3), weight).tolist() == [0.0, 0.0]  # no ordered pair


def test_rank_weight_option():
    space, archs, X, y = _data(300)
    base = dict(epochs=30, hidden=32, ensemble=3)
    p0 = MLPPredictor(space, PredictorConfig.preset_config("fast", **base))
    p1 = MLPPredictor(space, PredictorConfig.preset_config("fast", rank_weight=1.0, **base))
    p0.fit(X, y)
    m1 = p1.fit(X, y)
    assert m1["kendall_tau"] > 0.7 and not np.allclose(p0.predict(X[:9]), p1.predict(X[:9]))
    p2 = MLPPredictor(space, PredictorConfig.preset_config("fast", rank_weight=1.0, **base))
    p2.fit(X, y)
    np.testing.assert_array_equal(p1.predict(X), p2.predict(X))  # deterministic
    for bad in (-0.5, float("inf"), "1"):
        with pytest.raises(PnagError, match="rank_weight"):
            PredictorConfig(rank_weight=bad)
