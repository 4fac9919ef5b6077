"""Answers verified on the device (``pnag generate --verify``, :mod:`pnag.search.verify`): a device served
through a model adapted from a few measurements gets answers measured on it until each fits its budget."""

import json
import math

import numpy as np
import pytest
import torch

from pnag import sources as S
from pnag.cli import main
from pnag.errors import PnagError
from pnag.latency.adapted import load_adapted
from pnag.search import train
from pnag.sources.adapt import adapt_latency

from test_devices import accuracy_source, small


@pytest.fixture(scope="module")
def served(tmp_path_factory, mirror_dir):
    """A run trained on two NAS-Bench-201 devices, and a model of a third (pixel2) from 3 measurements."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PNAG_DATA_DIR", str(mirror_dir))
    mp.setattr(S, "get_accuracy_source", accuracy_source)
    d = tmp_path_factory.mktemp("verify")
    run = train(small(latency="nb201:pixel3,nb201:raspi4", steps=10), d / "run", progress=False)
    adapt_latency("nb201:pixel3,nb201:raspi4,nb201:samsung_s7,nb201:silver_4210r", "nb201:pixel2", 3, str(d / "pixel2.json"), progress=False)
    from pnag.data.nb201 import load_nb201

    yield run, d, load_nb201()
    mp.undo()


def test_measured_networks_are_priced_at_their_measurement(served):
    _, d, tab = served
    model = load_adapted(d / "pixel2.json")
    rows = model.data["measured"]
    archs = [r["arch"] for r in rows]
    np.testing.assert_allclose(model.latency_ms(archs), [r["ms"] for r in rows], rtol=1e-12)
    assert model.is_measured(archs).all()
    # the same through decision indices, and a network not measured keeps the model's price
    from pnag.space import NB201Space

    sp = NB201Space()
    other = next(a for a in sp.all_archs() if not model.is_measured([a])[0])
    idx = np.stack([sp.to_indices(sp.parse(a)) for a in archs] + [sp.to_indices(other)])
    got = model.latency_from_indices(idx)
    np.testing.assert_allclose(got[:-1], [r["ms"] for r in rows], rtol=1e-12)
    np.testing.assert_allclose(got[-1], max(model.features.of_archs([other])[0] @ model.weights_ms, model.floor_ms))


def test_verified_answers_fit_the_device_and_the_file_keeps_the_measurements(served, tmp_path):
    run, d, tab = served
    path = tmp_path / "pixel2.json"
    path.write_bytes((d / "pixel2.json").read_bytes())
    true = tab.latency("pixel2")
    budgets = [float(b) for b in np.quantile(true, np.linspace(0.1, 0.9, 9))]
    gens = run.generate(budgets, samples=2, latency=f"adapted:{path}", verify=True)
    fits = true[[tab.index_of(g.arch) for g in gens]] <= np.asarray(budgets) + 1e-9
    assert fits.all(), [(g.budget, g.arch) for g, ok in zip(gens, fits) if not ok]
    assert {g.latency_is for g in gens} == {"measured"}
    for g in gens:  # the latency an answer states is the device's, measured
        assert g.predicted_latency_ms == pytest.approx(true[tab.index_of(g.arch)], rel=1e-12)
    data = json.loads(path.read_text())
    assert gens.measurements > 0 and data["samples"] == 3 + gens.measurements == len(data["measured"])
    assert data["verified"] == gens.measurements
    again = run.generate(budgets, samples=2, latency=f"adapted:{path}", verify=True)  # the file knows them now
    assert again.measurements < gens.measurements


def test_verify_needs_an_adapted_model(served, capsys):
    run, d, _ = served
    with pytest.raises(PnagError, match="--verify: --latency nb201:fpga is no adapted model"):
        run.generate([5.0], latency="nb201:fpga", verify=True)
    assert main(["generate", "--run", str(d / "run"), "--latency", "nb201:fpga", "--budgets", "q0.5", "--verify"]) == 2
    err = capsys.readouterr().err
    assert "--verify" in err and "adapted:FILE" in err and "Traceback" not in err


def test_cli_verify_says_how_many_were_measured(served, tmp_path, capsys):
    _, d, tab = served
    path = tmp_path / "pixel2.json"
    path.write_bytes((d / "pixel2.json").read_bytes())
    assert main(["generate", "--run", str(d / "run"), "--latency", f"adapted:{path}", "--budgets", "q0.3,q0.7",
                 "--verify", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    true = tab.latency("pixel2")
    assert all(r["latency_is"] == "measured" and true[tab.index_of(r["arch"])] <= r["budget_ms"] + 1e-9 for r in out)
    assert len(json.loads(path.read_text())["measured"]) > 3


def test_when_the_rounds_do_not_settle_each_budget_gets_the_best_measured_network_within_it(served, tmp_path):
    run, d, tab = served
    path = tmp_path / "pixel2.json"
    path.write_bytes((d / "pixel2.json").read_bytes())
    true = tab.latency("pixel2")
    budgets = [float(b) for b in np.quantile(true, [0.3, 0.6, 0.9])]
    from pnag.search.verify import generate_verified

    gens = generate_verified(run, budgets, f"adapted:{path}", rounds=1, per_budget=1, progress=False)
    model = load_adapted(path)
    assert gens.measurements == len(model.measured_ms) - 3 <= len(budgets)
    # each answer: a measured network within its budget, the best of those by the run's objective
    measured = [r["arch"] for r in model.data["measured"]]
    view = run.for_device(model)
    sp = view.space
    for g in gens:
        assert g.arch in measured and true[tab.index_of(g.arch)] <= g.budget + 1e-9 and g.origin == "verified"
        fits = [a for a in measured if true[tab.index_of(a)] <= g.budget + 1e-9]
        idx = torch.as_tensor(np.stack([sp.to_indices(sp.parse(a)) for a in fits]))
        scores, _ = view.objective(idx, torch.tensor([g.budget], dtype=torch.float64))
        assert fits[int(scores[:, 0].argmax())] == g.arch


def test_any_latency_source_can_do_the_measuring(served, tmp_path):
    """``verify=SOURCE``: a Python object times the device (here: the table, counting what it is asked)."""
    run, d, tab = served
    path = tmp_path / "pixel2.json"
    path.write_bytes((d / "pixel2.json").read_bytes())
    true = tab.latency("pixel2")
    asked = []

    class Device:
        name = "my-phone"

        def latency_ms(self, archs):
            asked.extend(archs)
            return np.array([true[tab.index_of(str(a))] for a in archs])

    budgets = [float(b) for b in np.quantile(true, [0.2, 0.5, 0.8])]
    gens = run.generate(budgets, latency=f"adapted:{path}", verify=Device())
    assert len(asked) == gens.measurements > 0
    assert all(true[tab.index_of(g.arch)] <= g.budget + 1e-9 and g.latency_is == "measured" for g in gens)


def test_chance_within_follows_the_model_errors():
    from pnag.search.verify import chance_within

    errors = np.random.default_rng(0).normal(0.0, 0.1, 400)  # the model's log errors: unbiased, sd 0.1
    ratio = torch.tensor([-0.3, -0.1, 0.0, 0.1, 0.3], dtype=torch.float64)  # log(model price / budget)
    p = chance_within(ratio, errors).numpy()
    assert np.all(np.diff(p) < 0)  # priced further over the budget: less likely to fit
    assert p[2] == pytest.approx(0.5, abs=0.05) and p[0] > 0.99 and p[-1] < 0.01
    # a model that over-prices every network by 20 %: one priced 10 % over its budget most likely fits
    assert chance_within(torch.tensor([0.1], dtype=torch.float64), np.full(50, np.log(1.2)))[0] > 0.99


def test_expected_gain_counts_what_a_network_may_add_within_each_budget(monkeypatch):
    from pnag.search import verify
    from pnag.search.verify import expected_gain

    budgets = torch.tensor([10.0, 20.0], dtype=torch.float64)
    scores = torch.tensor([[60.0, 60.0],    # measured, fits both: the best measured of either budget
                           [65.0, 65.0],    # priced at 10 ms: may fit 10 ms (about half), surely fits 20 ms
                           [59.0, 59.0],    # below what both budgets have: adds nothing
                           [70.0, 70.0],    # priced at 40 ms: fits neither
                           [80.0, 80.0]], dtype=torch.float64)  # measured, over both budgets: known, adds nothing
    latency = torch.tensor([9.0, 10.0, 5.0, 40.0, 30.0], dtype=torch.float64)
    measured = torch.tensor([True, False, False, False, True])
    errors = np.random.default_rng(1).normal(0.0, 0.05, 200)
    gain = expected_gain(scores, latency, measured, budgets, errors).numpy()
    assert gain[0] == 0 and gain[2] == 0 and gain[4] == 0
    assert gain[1] == pytest.approx(5 * 0.5 + 5 * 1.0, abs=0.3)
    assert 0 <= gain[3] < 1e-3
    # budgets that nothing measured fits: a network that may fit gains against the pool's least objective (59)
    none_fit = expected_gain(scores, latency, torch.zeros(5, dtype=torch.bool), budgets, errors).numpy()
    assert none_fit[1] == pytest.approx(6 * 0.5 + 6 * 1.0, abs=0.3) and none_fit[2] == 0
    monkeypatch.setattr(verify, "CHUNK", 1)  # one network at a time: the same gains
    np.testing.assert_allclose(expected_gain(scores, latency, measured, budgets, errors).numpy(), gain, rtol=1e-12)


def test_the_search_spends_the_measurements_given_and_stops_where_nothing_is_expected(served, tmp_path, monkeypatch):
    run, d, tab = served
    from pnag.search import verify

    true = tab.latency("pixel2")
    budgets = [float(b) for b in np.quantile(true, [0.2, 0.4, 0.6, 0.8])]

    def verified(name, cap, gain, fit=True):
        monkeypatch.setattr(verify, "SEARCH_GAIN", gain)
        path = tmp_path / name
        path.write_bytes((d / "pixel2.json").read_bytes())
        gens = run.generate(budgets, latency=f"adapted:{path}", verify=True, max_measurements=cap)
        if fit:  # enough measurements to settle: every answer a measured network within its budget
            assert all(true[tab.index_of(g.arch)] <= g.budget + 1e-9 and g.latency_is == "measured" for g in gens)
        return gens.measurements

    settled = verified("none-expected.json", 200, math.inf)  # nothing reaches the gain asked: no search
    assert settled < 200  # the rounds settled before the measurements were spent
    assert verified("plain.json", None, 0.0) <= 4 * len(budgets)  # no max_measurements: 4 per budget, no search
    assert verified("spent.json", settled + 7, 0.0) == settled + 7  # every gain counts: all 7 more are spent
    assert verified("capped.json", 2, 0.0, fit=False) <= 2  # too few to settle: the cap holds all the same


def test_the_calibration_networks_near_a_budget_are_measured(served, tmp_path):
    """A budget's calibration shift comes from the measured-accuracy networks within it that the predictor rates
    highest, chosen by the model's latency: once the rounds settle, those the model prices within its own error of
    the budget (whether they fit is its guess) are measured ones, priced at the device's latency."""
    from pnag.sources.adapt import loo_ratios, relative_error

    run, d, tab = served
    path = tmp_path / "m.json"
    path.write_bytes((d / "pixel2.json").read_bytes())
    true = tab.latency("pixel2")
    budgets = np.quantile(true, np.linspace(0.1, 0.9, 9))
    gens = run.generate(list(map(float, budgets)), latency=f"adapted:{path}", verify=True, max_measurements=400)
    assert gens.measurements < 400  # settled
    model = load_adapted(path)
    u = relative_error(loo_ratios(model))
    view = run.for_device(f"adapted:{path}")
    m_lat, oob = view.measured_latency().numpy(), view.models.acc_pred.oob_pred
    rows, near = set(), set()
    for b in budgets:  # per budget the measured-accuracy rows within it that the predictor rates highest
        within = np.flatnonzero((m_lat <= b) & np.isfinite(oob))
        top = within[np.argsort(-oob[within])[:run.config.choice_calibration]]
        rows |= set(top.tolist())
        near |= set(top[m_lat[top] > b / (1 + u)].tolist())
    assert len(rows) >= len(budgets) // 2 and near and len(near) < len(rows)
    assert sorted(near) == view.calibration_rows(torch.as_tensor(budgets), margin=u).tolist()
    assert sorted(rows) == view.calibration_rows(torch.as_tensor(budgets)).tolist()
    archs = [view.space.format(view.space.from_indices(r.tolist())) for r in view.data["idx"][sorted(near)]]
    assert model.is_measured(archs).all()
    np.testing.assert_allclose(model.latency_ms(archs), true[[tab.index_of(a) for a in archs]], rtol=1e-12)


def test_the_search_never_asks_for_a_network_the_model_has_measured(served, tmp_path, monkeypatch):
    """The search's rows of the measured networks may miss one (a form the run's space writes otherwise): it still
    proposes only networks the model has not measured, so each of its steps measures something new (asking for a
    measured one again measured nothing and the search never ended)."""
    run, d, tab = served
    from pnag.search import verify

    budgets = [float(b) for b in np.quantile(tab.latency("pixel2"), [0.2, 0.4, 0.6, 0.8])]
    monkeypatch.setattr(verify, "SEARCH_GAIN", 0.0)
    offer, add = verify._offer, verify.add_measurements
    monkeypatch.setattr(verify, "_offer", lambda view, model: offer(view, model)[:0])  # rows of none of them

    def only_new(model, archs, *args, **kwargs):
        assert not model.is_measured(archs).any(), "asked to measure a network measured already"
        return add(model, archs, *args, **kwargs)

    monkeypatch.setattr(verify, "add_measurements", only_new)
    path = tmp_path / "m.json"
    path.write_bytes((d / "pixel2.json").read_bytes())
    gens = run.generate(budgets, latency=f"adapted:{path}", verify=True, max_measurements=60)
    assert gens.measurements == 60  # every gain counts: the search spent them all, each on a new network


def test_the_search_pool_grows_around_each_budgets_best_measured_network():
    """On a space too large to list, each search step adds to the pool the neighbours of each budget's best
    measured network within it (a network priced over a budget that truly fits it is likelier near one that
    fits), each once."""
    from pnag import MBV3Space
    from pnag.search.indices import canonical, index_keys, neighbours
    from pnag.search.verify import _Search

    space = MBV3Space()
    offer = canonical(space, torch.as_tensor(np.stack([space.to_indices(a) for a in space.sample(6, seed=3)])))
    score = torch.tensor([5.0, 1.0, 3.0, 9.0, 7.0, 8.0], dtype=torch.float64)

    class View:  # the measured networks' objective and latency (1..6 ms), rows matched by key
        def __init__(self):
            self.space = space
            self.keys = {k: i for i, k in enumerate(index_keys(offer))}

        def objective(self, idx, budgets):
            rows = torch.tensor([self.keys[k] for k in index_keys(idx)])
            return score[rows][:, None].expand(-1, len(budgets)), rows.double() + 1.0

    search = _Search(np.array([2.5, 4.5]), 1, 0)
    search.pool, search.also_measured = offer[:1].clone(), torch.zeros(1, dtype=torch.bool)
    search.keys = set(index_keys(search.pool))
    search._grow(View(), offer, torch.tensor([2.5, 4.5], dtype=torch.float64))
    # 2.5 ms: rows 0 (1 ms) and 1 (2 ms) fit, row 0 scores higher; 4.5 ms: rows 0-3 fit, row 3 (9) is the best;
    # rows 4 and 5 score higher still but fit neither budget
    pool = set(index_keys(search.pool))
    assert pool == set(index_keys(neighbours(space, offer[[0, 3]]))) | set(index_keys(offer[:1]))
    assert len(search.pool) == len(pool) == len(search.also_measured)  # each once
    before = len(search.pool)
    search._grow(View(), offer, torch.tensor([2.5, 4.5], dtype=torch.float64))
    assert len(search.pool) == before  # the same best networks: nothing new


def test_cli_max_measurements_needs_verify(served, tmp_path, capsys):
    run, d, _ = served
    path = tmp_path / "pixel2.json"
    path.write_bytes((d / "pixel2.json").read_bytes())
    for bad in (-1, 2.5, True):
        with pytest.raises(PnagError, match=f"--max-measurements: {bad!r}; allowed: an integer >= 0"):
            run.generate([5.0], latency=f"adapted:{path}", verify=True, max_measurements=bad)
    args = ["generate", "--run", str(d / "run"), "--latency", "nb201:fpga", "--budgets", "q0.5"]
    assert main(args + ["--max-measurements", "5"]) == 2
    err = capsys.readouterr().err
    assert "--max-measurements: 5 without --verify" in err and "Traceback" not in err
    assert main(args + ["--verify", "--max-measurements", "-1"]) == 2
    assert "--max-measurements: -1 is not allowed; allowed: an integer in 0..10000" in capsys.readouterr().err
