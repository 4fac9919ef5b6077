"""One generator for several devices (issue 17): device-conditioned training and serving any device.

Synthetic NAS-Bench-201 devices whose latency is a fixed cost per operation: on ``devA`` a 3x3
convolution is expensive and a 1x1 cheap, on ``devB`` the opposite; the synthetic accuracy rewards
3x3 over 1x1. So for the same budget position the best cell differs: 1x1 convolutions on ``devA``,
3x3 on ``devB``.
"""

import json

import numpy as np
import pytest
import torch

import _synthetic_train as syn
from pnag import sources as S
from pnag.cli import main
from pnag.errors import BudgetError, PnagError
from pnag.predict.ranker import ParetoRanker
from pnag.search import Run, TrainConfig, train
from pnag.space import NB201Space

SPACE = NB201Space()
ALL = SPACE.all_archs()
ALL_IDX = torch.tensor(np.array([SPACE.to_indices(a) for a in ALL]))
OP_VALUE = np.tile([0.0, 1.0, 2.0, 3.0, 0.5], 6)  # none, skip, 1x1, 3x3, pool on each of the 6 edges


class Device:
    """A synthetic device: ``costs`` (ms) per operation, the same on every edge, plus 0.5 ms."""

    def __init__(self, name, costs):
        self.name, self.w = name, np.tile(np.asarray(costs, dtype=float), 6)

    def latency_ms(self, archs):
        return SPACE.encode_many(list(archs)) @ self.w + 0.5

    def latency_from_indices(self, idx):  # the same, vectorised (prices the 15,625 cells in milliseconds)
        return SPACE.encode_indices(torch.as_tensor(idx)).double().numpy() @ self.w + 0.5


A = Device("devA", [0.05, 0.1, 0.5, 3.0, 0.6])
B = Device("devB", [0.05, 0.1, 3.0, 0.5, 0.6])
C = Device("devC", [0.05, 0.1, 1.5, 1.0, 0.6])
DEVICES = {d.name: d for d in (A, B, C)}


def accuracy(archs):
    return 60.0 + SPACE.encode_indices(torch.tensor(np.array([SPACE.to_indices(a) for a in archs]))).double().numpy() @ OP_VALUE


def accuracy_source(spec, space):
    def table(n, seed):
        archs = list(dict.fromkeys(space.sample(100 if n is None else n, seed=seed)))
        return archs, accuracy(archs)

    return S.AccuracySource(spec, "%", table, measure=accuracy, note="synthetic")


def latency_source(spec, space, *args, **kw):
    """The synthetic devices by name (so that the CLI can name them), every other spec as pnag reads it."""
    return DEVICES[spec] if isinstance(spec, str) and spec in DEVICES else syn.REAL_LATENCY_SOURCE(spec, space, *args, **kw)


def small(**kw):
    # predictor_epochs 30: with 10, the log-gap target (NAS-Bench-201's default; it stretches the top of this
    # linear synthetic accuracy) was underfitted and devA's answer held no more 1x1 convolutions than devB's
    base = dict(space="nb201", accuracy="synthetic", latency=("devA", "devB"), budgets=(0.1, 0.9),
                budget_unit="quantile", train_samples=100, steps=40, budgets_per_step=4, samples_per_budget=4,
                predictor_epochs=30, predictor_hidden=16, ensemble=2, ranker_steps=30, ranker_pool=100,
                checkpoint_every=10, device_reference=8)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def ab_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(S, "get_accuracy_source", accuracy_source)
    mp.setattr(S, "get_latency_source", latency_source)
    d = tmp_path_factory.mktemp("devices") / "run"
    train(small(), d, progress=False)
    yield d
    mp.undo()


def count(arch: str, op: str) -> int:
    return arch.count(op)


def test_opposite_devices_get_different_feasible_answers(ab_run):
    run = Run.load(ab_run)
    assert json.loads((ab_run / "config.json").read_text())["version"] == 3
    answers = {}
    for dev in (A, B):
        (b,) = run.quantile_budgets([0.5], latency=dev.name)
        (g,) = run.generate([b], samples=8, latency=dev.name, mode="generator")  # the generator's own answer
        assert g.device == dev.name and g.origin == "generator"
        true = dev.latency_ms([SPACE.parse(g.arch)])[0]
        assert true <= b + 1e-9 and g.predicted_latency_ms == pytest.approx(true)  # feasible on its own device
        answers[dev.name] = g.arch
    # the same position, opposite structure: the 3x3 convolutions go where they are cheap
    assert count(answers["devB"], "3x3") > count(answers["devA"], "3x3")
    assert count(answers["devA"], "1x1") > count(answers["devB"], "1x1")
    # the generator itself reads the device: its greedy proposals for the same position differ
    greedy = [run.for_device(d.name).candidates(run.quantile_budgets([0.5], latency=d.name), 1)[0, 0] for d in (A, B)]
    assert not torch.equal(greedy[0], greedy[1])


def test_serves_a_device_it_was_not_trained_on(ab_run):
    run = Run.load(ab_run)
    budgets = run.quantile_budgets([0.2, 0.5, 0.8], latency=C)  # an object in place of a spec, too
    lat_all = C.latency_from_indices(ALL_IDX)
    np.testing.assert_allclose(budgets, np.quantile(lat_all, [0.2, 0.5, 0.8]), rtol=1e-9)
    gens = run.generate(budgets, samples=8, latency=C)
    true = C.latency_ms([SPACE.parse(g.arch) for g in gens])
    assert np.all(true <= budgets + 1e-9) and {g.device for g in gens} == {"devC"}
    assert not run.for_device(C).trained_on and run.for_device("devA").trained_on
    # the best cell within each budget on devC has mostly 3x3 and 1x1 convolutions; the answer is close to it
    acc_all = 60.0 + SPACE.encode_indices(ALL_IDX).double().numpy() @ OP_VALUE
    best = [acc_all[lat_all <= b].max() for b in budgets]
    assert np.mean(best - accuracy([SPACE.parse(g.arch) for g in gens])) < 1.5
    with pytest.raises(BudgetError, match="on devC is outside the range of its fastest to slowest architecture"):
        run.generate([float(lat_all.max()) * 2], latency=C)
    # its quantiles are its source's (an estimate, perhaps): budgets outside the trained q0.1..q0.9 are served
    # on a new device (the generator reads the nearest trained position), not on a device trained on
    wide = np.quantile(lat_all, [0.02, 0.99])
    gens = run.generate(wide, samples=4, latency=C)
    assert np.all(C.latency_ms([SPACE.parse(g.arch) for g in gens]) <= wide + 1e-9)
    with pytest.raises(BudgetError, match="on devA is outside the trained range"):
        run.generate(run.quantile_budgets([0.02], latency=A), latency=A)


def test_quantile_budgets_per_device(ab_run):
    run = Run.load(ab_run)
    m = json.loads((ab_run / "metrics.json").read_text())
    for dev, d in zip((A, B), m["devices"]):
        q = np.quantile(dev.latency_from_indices(ALL_IDX), [0.1, 0.9])  # exact: every cell
        assert d["latency_source"] == dev.name and d["quantiles_over"] == "every architecture"
        np.testing.assert_allclose(d["budget_range_ms"], q, rtol=1e-9)
        np.testing.assert_allclose(run.for_device(dev.name).budget_range, q, rtol=1e-9)
    with pytest.raises(PnagError, match="none given for a run trained on 2 devices"):
        run.generate([3.0])
    with pytest.raises(BudgetError, match="q1.5"):
        run.quantile_budgets([1.5], latency="devA")


def test_cli_devices_and_bad_specs(ab_run, capsys):
    assert main(["generate", "--run", str(ab_run), "--latency", "devC", "--budgets", "q0.2,q0.6", "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("device: devC (not trained on")
    assert main(["generate", "--run", str(ab_run), "--latency", "devB", "--budget", "q0.5", "--json"]) == 0
    (g,) = json.loads(capsys.readouterr().out)
    assert g["device"] == "devB" and B.latency_ms([SPACE.parse(g["arch"])])[0] <= g["budget_ms"] + 1e-9
    assert main(["plot", str(ab_run), "--latency", "devC", "-o", str(ab_run.parent / "c.png")]) == 0
    assert (ab_run.parent / "c.png").stat().st_size > 0 and capsys.readouterr().out.strip().endswith("c.png")
    bad = [
        (["generate", "--run", str(ab_run), "--budgets", "q0.5"], "none given for a run trained on 2 devices"),
        (["generate", "--run", str(ab_run), "--latency", "nb201:nowhere", "--budgets", "q0.5"], "'nowhere' is not known"),
        (["generate", "--run", str(ab_run), "--latency", "devA", "--budgets", "q0.2:q1.2:0.5"], "not a quantile"),
        (["generate", "--run", str(ab_run), "--latency", "devA", "--budgets", "q0.5,3"], "not a list of quantiles"),
        (["generate", "--run", str(ab_run), "--latency", "devA", "--budgets", "500"], "on devA is outside"),
        (["train", "--space", "nb201", "--accuracy", "synthetic", "--latency", "devA,devB", "--budgets", "2:5",
          "-o", str(ab_run.parent / "x")], "ms with 2 latency sources"),
        (["train", "--space", "nb201", "--accuracy", "synthetic", "--latency", "devA,devA", "--budgets", "q0.1:q0.9",
          "-o", str(ab_run.parent / "x")], "given twice"),
        (["train", "--space", "nb201", "--accuracy", "synthetic", "--latency", "devA,devB", "--budgets", "q0.1:q1.9",
          "-o", str(ab_run.parent / "x")], "0 <= LO < HI <= 1"),
        (["train", "--space", "nb201", "--accuracy", "synthetic", "--latency", "devA,devB", "--budgets", "q0.1:q0.9",
          "--eval-budget", "5", "-o", str(ab_run.parent / "x")], "--eval-budget: 5 with 2 latency sources"),
    ]
    for argv, match in bad:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and match in err, (argv, err)
    assert not (ab_run.parent / "x").exists()


def test_a_run_of_one_device_serves_another(monkeypatch, tmp_path):
    syn.patch(monkeypatch.setattr)
    monkeypatch.setattr(S, "get_latency_source", latency_source)
    run = train(syn.tiny_config(latency="devA", steps=10), tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["version"] == 2  # the format of before
    assert run.generate([run.budget_range[1]])[0].device == "devA"
    budgets = run.quantile_budgets([0.3, 0.7], latency=B)
    gens = run.generate(budgets, samples=4, latency=B)
    assert np.all(B.latency_ms([SPACE.parse(g.arch) for g in gens]) <= budgets + 1e-9)
    assert {g.device for g in gens} == {"devB"}


def test_held_out_nb201_device(use_mirror, monkeypatch, tmp_path):
    monkeypatch.setattr(S, "get_accuracy_source", accuracy_source)
    run = train(small(latency="nb201:pixel3,nb201:raspi4", steps=10), tmp_path / "run", progress=False)
    from pnag.data.nb201 import load_nb201

    tab = load_nb201()
    lat = tab.latency("fpga")
    budgets = run.quantile_budgets([0.1, 0.5, 0.9], latency="nb201:fpga")
    np.testing.assert_allclose(budgets, np.quantile(lat, [0.1, 0.5, 0.9]), rtol=1e-9)
    gens = run.generate(budgets, samples=4, latency="nb201:fpga")
    true = lat[[tab.index_of(g.arch) for g in gens]]
    assert np.all(true <= budgets + 1e-9) and {g.device for g in gens} == {"nb201:fpga"}


def test_conditioned_ranker_learns_each_device_order():
    # two devices whose latency orders are opposite: the ranker must read the condition to get pairs right
    g = torch.Generator().manual_seed(0)
    x = torch.rand(400, 4, generator=g)
    acc = torch.rand(400, generator=g).double()
    lat = torch.stack([x[:, 0], 1.0 - x[:, 0]], 1).double()
    cond = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    r = ParetoRanker(4, (0.1, 0.9), cond_dim=2)
    fit = r.fit(x.numpy(), acc.numpy(), lat.numpy(), steps=300, seed=0, cond=cond.numpy())
    assert fit["pair_accuracy"] > 0.8
    blind = r.evaluate(x.numpy(), acc.numpy(), lat.numpy(), seed=1, cond=cond.flip(0).numpy())  # conditions swapped
    assert blind["pair_accuracy"] < fit["pair_accuracy"] - 0.2
    with pytest.raises(PnagError, match="conditions"):
        r.fit(x.numpy(), acc.numpy(), lat[:, 0].numpy())


def test_a_whole_network_table_cannot_be_a_device(use_mirror, monkeypatch):
    from pnag.search.devices import device_latency
    from pnag.space import get_space

    real_sources(monkeypatch)
    space = get_space("mbv3", width=1.2, resolution=224)
    with pytest.raises(PnagError, match="prices only its 5000 measured networks"):
        device_latency("table:help-ofa-gpu:v100_1", space)
    with pytest.raises(PnagError, match="times each network"):
        device_latency("measure:torch", space)
    assert device_latency("lut:note10", space)(torch.zeros(2, 45, dtype=torch.long)).shape == (2,)


class _Stop(Exception):
    pass


def test_resume_of_a_run_of_several_devices_is_exact(monkeypatch, tmp_path):
    from pnag.search import checkpoint

    monkeypatch.setattr(S, "get_accuracy_source", accuracy_source)
    monkeypatch.setattr(S, "get_latency_source", latency_source)
    cfg = small(steps=12, checkpoint_every=6)
    straight = train(cfg, tmp_path / "straight", progress=False)
    real = checkpoint.StageCheckpoint.save

    def save_then_stop(self, state):
        real(self, state)
        if self.name == "generator.ckpt.pt":
            raise _Stop  # killed right after the generator's first checkpoint

    monkeypatch.setattr(checkpoint.StageCheckpoint, "save", save_then_stop)
    with pytest.raises(_Stop):
        train(cfg, tmp_path / "stopped", progress=False)
    monkeypatch.setattr(checkpoint.StageCheckpoint, "save", real)
    assert (tmp_path / "stopped" / "generator.ckpt.pt").exists()
    resumed = Run.load(train(cfg, tmp_path / "stopped", progress=False).dir)
    a, b = resumed.generator.state_dict(), straight.generator.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(resumed.archives) == 2 and all(torch.equal(x.idx, y.idx) for x, y in zip(resumed.archives,
                                                                                       straight.archives))


def test_python_api_several_devices(monkeypatch, tmp_path):
    import pnag

    monkeypatch.setattr(S, "get_accuracy_source", accuracy_source)
    monkeypatch.setattr(S, "get_latency_source", latency_source)
    opts = {k: v for k, v in small(steps=6).__dict__.items() if k not in ("accuracy", "latency", "budgets",
                                                                             "budget_unit")}
    run = pnag.train(accuracy="synthetic", latency="devA,devB", budgets="q0.1:q0.9", output=tmp_path / "r",
                     progress=False, **opts)
    assert run.config.budget_unit == "quantile" and run.config.devices == ("devA", "devB")
    gens = run.generate(run.quantile_budgets([0.5], latency=C), latency=C)
    assert gens[0].device == "devC" and gens.to_json()[0]["device"] == "devC"
    with pytest.raises(BudgetError, match="budgets: '0.1:q0.9' is not a range"):
        TrainConfig(budgets="0.1:q0.9")


def real_sources(monkeypatch):
    """The sources pnag reads (the module's fixture installs the synthetic ones while it lives)."""
    monkeypatch.setattr(S, "get_accuracy_source", syn.REAL_ACCURACY_SOURCE)
    monkeypatch.setattr(S, "get_latency_source", syn.REAL_LATENCY_SOURCE)


def test_mobilenetv3_two_tables(use_mirror, tmp_path, monkeypatch):
    from pnag.latency import published

    real_sources(monkeypatch)
    from pnag.space import get_space

    cfg = TrainConfig(space="mbv3", accuracy="ofa-predictor", latency="lut:note10,lut:i7-8700k", budgets="q0.1:q0.9",
                      resolutions=(224,), train_samples=60, steps=4, budgets_per_step=4, samples_per_budget=4,
                      ranker_steps=10, ranker_pool=60, quantile_samples=256, device_reference=8, archive_offspring=16)
    run = train(cfg, tmp_path / "run", progress=False)
    space = get_space("mbv3", width=1.2, resolution=224)
    for spec, table in (("lut:note10", published.load_note10(224)), ("lut:i7-8700k", published.load_i7_8700k(1.2, 224))):
        budgets = run.quantile_budgets([0.3, 0.7], latency=spec)
        assert budgets[0] < budgets[1]
        gens = run.generate(budgets, samples=4, latency=spec)
        true = table.latency_ms([space.parse(g.arch) for g in gens])
        assert np.all(true <= budgets + 1e-6) and {g.device for g in gens} == {spec}
    m = run.metrics["devices"]
    assert [d["quantiles_over"] for d in m] == ["256 sampled"] * 2


def test_help_gpu_settings_as_devices_through_adapted_models(use_mirror, tmp_path, capsys, monkeypatch):
    real_sources(monkeypatch)
    gpus = ("v100_1", "titan_rtx_1", "2080ti_1")
    for target in gpus:
        others = ",".join(f"table:help-ofa-gpu:{g}" for g in ("titan_xp_1", "2080ti_32", "v100_32"))
        assert main(["latency", "adapt", "--from", others, "--target", f"table:help-ofa-gpu:{target}", "--samples",
                     "20", "--resolutions", "224", "--no-progress", "-o", str(tmp_path / f"{target}.json")]) == 0
    capsys.readouterr()
    specs = [f"adapted:{tmp_path / g}.json" for g in gpus]
    cfg = TrainConfig(space="mbv3", accuracy="ofa-predictor", latency=",".join(specs[:2]), budgets="q0.1:q0.9",
                      resolutions=(224,), train_samples=60, steps=4, budgets_per_step=4, samples_per_budget=4,
                      ranker_steps=10, ranker_pool=60, quantile_samples=256, device_reference=8, archive_offspring=16)
    run = train(cfg, tmp_path / "run", progress=False)
    budgets = run.quantile_budgets([0.5], latency=specs[2])
    (g,) = run.generate(budgets, samples=4, latency=specs[2])
    assert g.device == specs[2] and g.predicted_latency_ms <= budgets[0] + 1e-9 and g.latency_is == "predicted"
