"""MLP predictors (ensembles with uncertainty) and the published once-for-all accuracy predictor."""

import numpy as np
import pytest
import torch

from pnag.errors import DataError, PnagError
from pnag.predict import MLPPredictor, OFAAccuracyPredictor, PredictorConfig, kendall_tau
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
    with pytest.raises(PnagError, match="identity or log-error"):
        PredictorConfig(target="log")
    p = MLPPredictor(space, PredictorConfig(epochs=1, target="log-error"))
    with pytest.raises(DataError, match=r"101.0 with target 'log-error'; allowed: accuracy in % \(0..100\)"):
        p.fit(X, np.where(np.arange(50) == 7, 101.0, np.clip(y, 0, 100)))
