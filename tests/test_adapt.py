"""Few-shot latency for a new device (``pnag latency adapt``, ``adapted:FILE``): the method recovers a known
relation, the file round-trips, the choice is the seed's, and bad input ends in pnag's error form."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pnag.cli import main
from pnag.errors import DataError, PnagError
from pnag.latency.adapt import SIGMAS, LatencyFeatures, adapted_weights, choose_networks, fit_device, loo_latency
from pnag.latency.adapted import load_adapted
from pnag.latency.base import FunctionSource
from pnag.latency.validate import error_metrics
from pnag.sources import VectorLatency, get_latency_source
from pnag.sources.adapt import generic_networks, training_prior
from pnag.space import NB201Space
from pnag.space.mbv3 import MBV3Space

TRAIN = ["nb201:gold_6240", "nb201:titanx_32", "nb201:samsung_a50", "nb201:pixel3"]


def _synthetic_family(features: LatencyFeatures, n_train: int, seed: int):
    """Devices whose per-feature costs (ms) are a * A + b * B for positive (a, b) of their own: the known relation.
    The training devices and a target of another (a, b), as latency sources."""
    rng = np.random.default_rng(seed)
    A = rng.uniform(0.5, 2.0, features.size)
    B = rng.uniform(0.0, 4.0, features.size) * (rng.random(features.size) < 0.5)  # costly on half the features
    A[0], B[0] = 2.0, 1.0  # a fixed cost: every network has one

    def device(a: float, b: float):
        w = a * A + b * B
        return FunctionSource(lambda archs: features.of_archs(archs) @ w, name=f"synthetic a={a:.2f} b={b:.2f}"), w

    train = [device(*rng.uniform((1.0, 0.0), (2.0, 2.0))) for _ in range(n_train)]
    return [s for s, _ in train], device(1.0, 2.0)  # the target: a corner of the training devices' range


@pytest.mark.parametrize("features", [LatencyFeatures("nb201"), LatencyFeatures("mbv3", 1.2, (160, 192, 224))],
                         ids=["nb201", "mbv3-3-resolutions"])
def test_a_synthetic_family_is_recovered_from_few_measurements(features):
    train, (target, w_true) = _synthetic_family(features, n_train=6, seed=1)
    generic = generic_networks(features)
    prior = training_prior(train, [s.name for s in train], features, generic, progress=False)
    chosen = choose_networks(prior, features, generic, 6, seed=0)
    w = adapted_weights(prior, features.of_archs(chosen), target.latency_ms(chosen))
    test = generic if features.space == "nb201" else features.search_space().sample(3000, seed=7)
    truth = target.latency_ms(test)
    pred = features.of_archs(test) @ w
    m = error_metrics(pred, truth)
    assert m["max_abs_error_pct"] < 1.0, m  # 6 measurements pin down a device of a 2-parameter family
    assert m["spearman_rho"] > 0.999
    # the prior alone (the training devices' mean shape, scaled) does not: the relation is learned from the K
    base = features.of_archs(test) @ prior.mean
    scaled = base * np.median(truth / base)
    assert error_metrics(scaled, truth)["max_abs_error_pct"] > 5.0


def test_the_fit_chooses_its_noise_from_the_measurements():
    """``fit_device``: a target outside the training family's span, measured exactly, gets the least noise and then
    prices the networks not measured better than with the prior's fixed noise; measured with 20 % noise, it
    keeps a wider one."""
    features = LatencyFeatures("nb201")
    train, (_, w_true) = _synthetic_family(features, n_train=6, seed=5)
    generic = generic_networks(features)
    prior = training_prior(train, [s.name for s in train], features, generic, progress=False)
    rng = np.random.default_rng(6)
    w_off = w_true * rng.uniform(0.5, 1.5, features.size)  # leaves the family: the prior cannot know it
    archs = NB201Space().sample(200, seed=7)
    X = features.of_archs(archs)
    exact = X @ w_off
    w, sigma = fit_device(prior, X[:60], exact[:60])
    assert sigma == min(SIGMAS)
    err = lambda w_: np.median(np.abs(X[60:] @ w_ / exact[60:] - 1))  # noqa: E731  (the 140 not measured)
    assert err(w) < 0.7 * err(adapted_weights(prior, X[:60], exact[:60]))  # the prior's own sigma (SIGMA)
    noisy = exact * np.exp(rng.normal(0, 0.2, len(exact)))
    assert fit_device(prior, X[:60], noisy[:60])[1] > sigma


def test_a_network_is_priced_at_a_measurement_only_if_it_is_the_network_measured(tmp_path, mirror_dir, monkeypatch):
    """The measured networks are looked up by a one-number projection first; two networks' projections may nearly
    meet (on MobileNetV3 two one-number keys were 4.5e-8 apart, and a network 34 % over its budget was priced at the
    other's measurement). With projections that all meet (weights of 1: the feature sum, 7 for every
    NAS-Bench-201 cell) only the cells measured are."""
    from pnag.latency import adapted
    from pnag.sources.adapt import adapt_latency

    monkeypatch.setenv("PNAG_DATA_DIR", str(mirror_dir))
    path = tmp_path / "m.json"
    adapt_latency(",".join(TRAIN), "nb201:gold_6226", 5, str(path), progress=False)
    monkeypatch.setattr(adapted, "_projection", lambda p: np.ones(p))
    model = load_adapted(path)
    measured = [row["arch"] for row in model.data["measured"]]
    others = [a for a in NB201Space().sample(50, seed=1) if NB201Space().format(a) not in measured][:20]
    assert model.is_measured(measured).all() and not model.is_measured(others).any()
    np.testing.assert_allclose(model.latency_ms(measured), model.measured_ms)
    priced = np.maximum(LatencyFeatures("nb201").of_archs(others) @ model.weights_ms, model.floor_ms)
    np.testing.assert_allclose(model.latency_ms(others), priced)


def test_the_measured_look_up_finds_what_keying_every_row_finds():
    """The projection prefilter keys only rows near a measured one: on MobileNetV3 its answer is the one of keying
    every row (:func:`~pnag.latency.adapted._keys`), for the networks measured, the same up to float noise, others,
    and features 5e-8 from a measured network's (another network)."""
    from pnag.latency.adapted import AdaptedSource, _keys

    features = LatencyFeatures("mbv3", 1.2, (160, 192, 224))
    space = features.search_space()
    texts = list(dict.fromkeys(space.format(a) for a in space.sample(300, seed=3)))
    data = {"features": features.to_dict(), "weights_ms": [0.01] * features.size, "floor_ms": 0.1, "device": "d",
            "measured": [{"arch": t, "ms": 1.0 + i} for i, t in enumerate(texts[:100])]}
    model = AdaptedSource(data)
    X = features.of_archs(texts)
    index = {k: i for i, k in enumerate(_keys(X[:100]))}
    jitter, shifted = X.copy(), X.copy()
    jitter[:, 0] += 3e-10  # the constant feature: the same networks, up to float noise
    shifted[:, 0] += 5e-8
    for q in (X, jitter, shifted):
        np.testing.assert_array_equal(model._measured_row(q), [index.get(k, -1) for k in _keys(q)])
    row = model._measured_row(jitter)
    assert (row[:100] == np.arange(100)).all() and (row[100:] == -1).all()
    assert (model._measured_row(shifted) == -1).all()


def test_the_closed_form_leave_one_out_matches_refitting_without_each_network():
    """``loo_latency`` (one solve) against refitting ``adapted_weights`` without each measured network: equal up to
    the target's relative speed, which the closed form holds at its value over all networks."""
    features = LatencyFeatures("nb201")
    train, (target, _) = _synthetic_family(features, n_train=6, seed=2)
    generic = generic_networks(features)
    prior = training_prior(train, [s.name for s in train], features, generic, progress=False)
    archs = NB201Space().sample(40, seed=3)
    X = features.of_archs(archs)
    y = target.latency_ms(archs) * np.exp(np.random.default_rng(4).normal(0, 0.1, len(archs)))  # 10 % noise
    refit = np.array([X[i] @ adapted_weights(prior, np.delete(X, i, 0), np.delete(y, i)) for i in range(len(y))])
    loo = loo_latency(prior, X, y)
    np.testing.assert_allclose(loo, refit, rtol=0.01)
    fitted = X @ adapted_weights(prior, X, y)  # in-sample, each network's own measurement included: not the same
    assert np.abs(np.log(loo / fitted)).max() > 0.01


def test_the_choice_depends_on_the_training_devices_not_on_the_target(use_mirror):
    features = LatencyFeatures("nb201")
    generic = generic_networks(features)
    srcs = [get_latency_source(s) for s in TRAIN]
    prior = training_prior(srcs, TRAIN, features, generic, progress=False)
    a = choose_networks(prior, features, generic, 8, seed=3)
    assert choose_networks(prior, features, generic, 8, seed=3) == a
    assert choose_networks(prior, features, generic, 8, seed=4) != a
    assert len(set(a)) == 8
    other = training_prior(srcs[:2], TRAIN[:2], features, generic, progress=False)
    assert choose_networks(other, features, generic, 8, seed=3) != a


def _adapt(tmp_path, name: str, *extra: str, capsys=None) -> dict:
    out = tmp_path / name
    assert main(["latency", "adapt", "--from", ",".join(TRAIN), "--target", "nb201:pixel2", "--samples", "6",
                 "-o", str(out), "--json", "--no-progress", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_adapt_writes_a_source_that_serves_what_was_evaluated(use_mirror, tmp_path, capsys):
    r = _adapt(tmp_path, "m.json", capsys=capsys)
    assert r["samples"] == 6 and len(r["measured"]) == 6 and r["evaluated_on"].endswith("(15625 networks)")
    assert r["spearman"] > 0.8 and r["kendall_tau"] > 0.6  # pixel2 from four other devices and six cells
    src = get_latency_source(f"adapted:{tmp_path / 'm.json'}", space=NB201Space())
    assert src.kind == "predicted" and src.space == "nb201"
    cells = NB201Space().all_archs()
    served = src.latency_ms(cells)
    truth = get_latency_source("nb201:pixel2").latency_ms(cells)
    m = error_metrics(served, truth)
    assert m["spearman_rho"] == pytest.approx(r["spearman"], abs=1e-12)
    assert m["median_abs_error_pct"] == pytest.approx(r["median_abs_error_pct"], abs=1e-9)
    # the vectorised path a generator trains with serves the same values
    idx = torch.as_tensor(np.stack([NB201Space().to_indices(a) for a in cells]))
    assert torch.allclose(VectorLatency(NB201Space(), src)(idx), torch.as_tensor(served), rtol=1e-12)
    # the measured cells are the target's own values, recorded
    meas = load_adapted(tmp_path / "m.json").data["measured"]
    assert [row["ms"] for row in meas] == get_latency_source("nb201:pixel2").latency_ms([x["arch"] for x in meas]).tolist()


def test_adapt_is_determined_by_the_seed(use_mirror, tmp_path, capsys):
    a = _adapt(tmp_path, "a.json", "--seed", "5", capsys=capsys)
    b = _adapt(tmp_path, "b.json", "--seed", "5", capsys=capsys)
    c = _adapt(tmp_path, "c.json", "--seed", "6", capsys=capsys)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert a["measured"] == b["measured"] and a["spearman"] == b["spearman"]
    assert {x["arch"] for x in c["measured"]} != {x["arch"] for x in a["measured"]}


def test_a_multi_resolution_model_prices_by_index_as_by_architecture(tmp_path):
    train, (target, _) = _synthetic_family(LatencyFeatures("mbv3", 1.2, (160, 224)), n_train=3, seed=2)
    features = LatencyFeatures("mbv3", 1.2, (160, 224))
    generic = generic_networks(features)
    prior = training_prior(train, [s.name for s in train], features, generic, progress=False)
    chosen = choose_networks(prior, features, generic, 5, seed=0)
    from pnag.latency.adapted import AdaptedSource, save_adapted

    data = {"format": "pnag-adapted-latency", "version": 1, "features": features.to_dict(), "target": "t",
            "device": "t", "from": ["a", "b", "c"], "samples": 5, "seed": 0, "selection": "max-variance",
            "hyper": {"delta": 0.01}, "measured": [{"arch": features.search_space().format(a), "ms": 1.0} for a in chosen],
            "weights_ms": adapted_weights(prior, features.of_archs(chosen), target.latency_ms(chosen)).tolist(),
            "floor_ms": 0.01, "evaluation": None}
    save_adapted(tmp_path / "m.json", data)
    src = get_latency_source(f"adapted:{tmp_path / 'm.json'}", space=MBV3Space(1.2, 224, resolutions=(160, 224)))
    assert isinstance(src, AdaptedSource)
    space = MBV3Space(1.2, 224, resolutions=(160, 224))
    archs = space.sample(50, seed=1)
    idx = torch.as_tensor(np.stack([space.to_indices(a) for a in archs]))
    assert np.allclose(VectorLatency(space, src)(idx).numpy(), src.latency_ms(archs), rtol=1e-12)
    with pytest.raises(PnagError, match=r"does not price width 1.2 at resolution 192.*resolutions 160 or 224"):
        get_latency_source(f"adapted:{tmp_path / 'm.json'}", space=MBV3Space(1.2, 192))
    with pytest.raises(PnagError, match="a model of the mbv3 space; allowed: one of the nb201 space"):
        get_latency_source(f"adapted:{tmp_path / 'm.json'}", space=NB201Space())


def _error_line(argv, capsys) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], err
    return lines[0]


def _good_file(tmp_path) -> dict:
    good = {"format": "pnag-adapted-latency", "version": 1, "features": {"space": "nb201", "width": None,
            "resolutions": None}, "target": "nb201:pixel2", "device": "pixel2", "from": ["nb201:pixel3"],
            "samples": 2, "seed": 0, "selection": "max-variance", "hyper": {"delta": 0.01},
            "measured": [{"arch": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "ms": 4.0},
                         {"arch": "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "ms": 9.0}],
            "weights_ms": [1.0] * 31, "floor_ms": 0.04, "evaluation": None}
    return good


BAD_FILES = [  # (change to a valid file, fragment of the one line)
    ("not json {", "not valid JSON"),
    ({"format": "other"}, "field 'format' is 'other'"),
    ({"version": 2}, "field 'version' is 2; allowed: 1"),
    ({"weights_ms": [1.0] * 30}, "field 'weights_ms' is 'a list of 30'; allowed: a list of 31 numbers"),
    ({"weights_ms": [1.0] * 30 + ["x"]}, "field 'weights_ms[30]' is 'x'; allowed: a finite number"),
    ({"measured": [{"arch": "|conv~0|", "ms": 4.0}, {"arch": "|none~0|", "ms": 1.0}]}, "field 'measured[0].arch'"),
    ({"samples": 3}, "field 'measured' is"),
    ({"floor_ms": -1}, "field 'floor_ms' is -1; allowed: a finite number > 0"),
    ({"features": {"space": "darts", "width": None, "resolutions": None}}, "field 'features'"),
    ([1, 2], "a JSON list; allowed: a JSON object"),
]


@pytest.mark.parametrize("change,fragment", BAD_FILES, ids=[f[1][:24] for f in BAD_FILES])
def test_a_malformed_adapted_file_is_one_line_exit_2(tmp_path, capsys, change, fragment):
    path = tmp_path / "bad.json"
    if isinstance(change, str):
        path.write_text(change)
    elif isinstance(change, list):
        path.write_text(json.dumps(change))
    else:
        path.write_text(json.dumps(dict(_good_file(tmp_path), **change)))
    line = _error_line(["train", "--space", "nb201", "--accuracy", "nb201:cifar10", "--latency", f"adapted:{path}",
                        "--budgets", "5:40", "-o", str(tmp_path / "run")], capsys)
    assert f"adapted:{path}" in line and fragment in line, line
    assert not (tmp_path / "run").exists()


def test_a_valid_adapted_file_loads(tmp_path):
    """The BAD_FILES start from this file: it must itself be accepted, or they would test nothing."""
    (tmp_path / "good.json").write_text(json.dumps(_good_file(tmp_path)))
    src = load_adapted(tmp_path / "good.json")
    # a network not measured: the model's price (1 ms per feature that is on: the constant and 6 edges)
    assert src.latency_ms(["|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"])[0] == pytest.approx(7.0)
    # a measured one: its measurement
    assert src.latency_ms(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])[0] == pytest.approx(4.0)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                    max_leaves=10)
FIELDS = sorted(_good_file(None))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(FIELDS), JSON | st.sampled_from([10**40, -1, 2.5, float("nan"), "mbv3",
                                                                                   [1.0] * 31, [1.0] * 181]),
                               min_size=1, max_size=3))
def test_any_damage_to_an_adapted_file_is_a_data_error_or_harmless(changes, tmp_path_factory):
    path = tmp_path_factory.mktemp("adapted") / "m.json"
    path.write_text(json.dumps(dict(_good_file(None), **changes)))
    try:
        src = load_adapted(path)
    except DataError as exc:
        assert str(path) in str(exc) and "allowed" in str(exc)
        return
    values = src.latency_ms(src.features.search_space().sample(3, seed=0))
    assert values.shape == (3,) and np.all(np.isfinite(values)) and np.all(values >= src.floor_ms)


CLI_ERRORS = [  # (argv after 'latency adapt', fragment of the one line)
    (["--from", "nb201:pixel3", "--target", "nb201:pixel9", "--samples", "5"], "nb201 device: 'pixel9' is not known"),
    (["--from", "nb201:pixel9", "--target", "nb201:pixel2", "--samples", "5"], "nb201 device: 'pixel9' is not known"),
    (["--from", "table:help-ofa-gpu:v100_1", "--target", "table:help-ofa-gpu:a100_1", "--samples", "5"],
     "'a100_1' is not a device setting of the table"),
    (["--from", "nb201:pixel3,nb201:pixel2", "--target", "nb201:pixel2", "--samples", "5"],
     "--from: includes the target 'nb201:pixel2'"),
    (["--from", "lut:i7", "--target", "lut:i7-8700k", "--samples", "5"], "--from: lut:i7 is the target"),
    (["--from", "nb201:pixel3", "--target", "nb201:pixel2", "--samples", "15626"],
     "--samples: 15626; allowed: 2..15625"),
    (["--from", "table:help-ofa-gpu:v100_1", "--target", "table:help-ofa-gpu:v100_32", "--samples", "5001"],
     "--samples: 5001; allowed: 2..5000"),
    (["--from", "nb201:pixel3", "--target", "nb201:pixel2", "--samples", "1"], "--samples: 1 is not allowed"),
    (["--from", "nb201:pixel3", "--target", "table:help-ofa-gpu:v100_1", "--samples", "5"], "sources of one space"),
    (["--from", "nb201:pixel3", "--target", "local", "--samples", "5"], "not measured on this machine"),
    (["--from", "measure:torch", "--target", "lut:note10", "--samples", "5"], "measure:torch measures each network"),
]


@pytest.mark.parametrize("argv,fragment", CLI_ERRORS, ids=[c[1][:30] for c in CLI_ERRORS])
def test_bad_adapt_input_is_one_line_exit_2(use_mirror, tmp_path, capsys, argv, fragment):
    out = tmp_path / "m.json"
    line = _error_line(["latency", "adapt", *argv, "-o", str(out)], capsys)
    assert fragment in line, line
    assert not out.exists()
