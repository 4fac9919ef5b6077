"""The choice rule as pure functions, and what a trained run's answers promise: monotone in the
budget, labelled by origin, the generator's own answer apart, training that helps."""

import json

import numpy as np
import pytest
import torch

import _synthetic_train as syn
from pnag.search import train
from pnag.search.choice import best_feasible, monotone_sources
from pnag.space import NB201Space


def test_monotone_sources_by_hand():
    budgets = torch.tensor([10.0, 20.0, 15.0])
    # objective[j, i]: under budget j, the answer chosen for budget i
    obj = torch.tensor([[1.0, 9.0, 9.0],
                        [5.0, 2.0, 3.0],
                        [4.0, 9.0, 3.5]])
    src = monotone_sources(budgets, obj)
    # 10 ms keeps its own (nothing smaller); 15 ms takes 10 ms's answer (4 > 3.5); 20 ms takes 10 ms's (5 > 2, 3)
    assert src.tolist() == [0, 0, 0]
    assert monotone_sources(budgets, torch.eye(3)).tolist() == [0, 1, 2]  # own answers best: kept


@pytest.mark.parametrize("seed", range(5))
def test_monotone_sources_never_serve_a_larger_budget_worse(seed):
    g = torch.Generator().manual_seed(seed)
    budgets = torch.rand(12, generator=g) * 10
    obj = torch.randn(12, 12, generator=g, dtype=torch.float64)
    src = monotone_sources(budgets, obj)
    assert bool((budgets[src] <= budgets).all())  # an answer from a budget not larger
    for j in range(12):
        for k in range(12):
            if budgets[j] <= budgets[k]:
                assert obj[k, src[k]] >= obj[k, src[j]] - 1e-12


def test_best_feasible_and_fallback():
    scores = torch.tensor([[3.0, 5.0, 4.0], [3.0, 5.0, 4.0]], dtype=torch.float64)
    lat = torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64)
    allowed = torch.ones(2, 3, dtype=torch.bool)
    assert best_feasible(scores, lat, torch.tensor([2.5, 0.5], dtype=torch.float64), allowed, 0).tolist() == [2, 0]
    allowed[0, 2] = False
    assert best_feasible(scores, lat, torch.tensor([2.5, 9.0], dtype=torch.float64), allowed, 0).tolist() == [0, 1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    syn.patch(mp.setattr)
    d = tmp_path_factory.mktemp("choice") / "run"
    r = train(syn.tiny_config(steps=60, archive_offspring=32), d, progress=False)
    yield r
    mp.undo()


def _objective(run, archs, budgets):
    space = NB201Space()
    idx = torch.as_tensor(np.stack([space.to_indices(space.parse(a)) for a in archs]))
    value, lat = run.objective(idx, torch.as_tensor(budgets, dtype=torch.float64))
    return value.numpy(), lat.numpy()


def test_answers_are_monotone_in_the_budget(run):
    budgets = np.linspace(run.min_latency_ms, run.budget_range[1], 25)[::-1].copy()  # any order
    for mode, k in (("pnag", 1), ("generator", 8)):
        gens = run.generate(budgets, samples=k, mode=mode)
        value, lat = _objective(run, [g.arch for g in gens], budgets)  # value[i, j]: answer i under budget j
        for j in range(len(budgets)):
            for k2 in range(len(budgets)):
                if budgets[j] <= budgets[k2] and lat[j] <= budgets[k2]:
                    assert value[k2, k2] >= value[j, k2] - 1e-9, (mode, budgets[j], budgets[k2])


def test_origins_label_what_produced_each_answer(run):
    budgets = np.linspace(run.min_latency_ms, run.budget_range[1], 9)
    space = NB201Space()
    gens = run.generate(budgets, samples=4)
    measured = {tuple(r) for r in run.data["idx"].tolist()}
    for g in gens:  # flagged measured exactly when the run measured it; origin "measured" only then
        in_table = tuple(space.to_indices(space.parse(g.arch)).tolist()) in measured
        assert g.measured == in_table and (g.origin != "measured" or in_table)
    own = run.generate(budgets, samples=4, mode="generator")
    assert {g.origin for g in own} <= {"generator", "fastest"}
    draws = run.candidates(budgets, 4)  # the generator's own answer is one of its draws for some budget <= it
    drawn = {tuple(r) for r in draws.reshape(-1, draws.shape[-1]).tolist()}
    assert all(tuple(space.to_indices(space.parse(g.arch))) in drawn for g in own if g.origin == "generator")
    # a measured architecture the objective rates best wins, labelled measured
    top = float(budgets[-1])
    plain = run.models.accuracy
    m_idx = run.data["idx"]
    fits = torch.nonzero(run.data["latency"] <= top).flatten()
    star = m_idx[fits[0]]
    run.data["accuracy"][fits[0]] += 1000.0
    try:
        (g,) = run.generate([top])
        assert g.origin == "measured" and g.measured and g.arch == space.format(space.from_indices(star.tolist()))
        # and the archive's elite, made best by the objective, wins labelled archive
        measured = {tuple(r) for r in m_idx.tolist()}
        grid = torch.as_tensor(budgets, dtype=torch.float64)
        elites, _ = run.archive.elites(grid, run.shifts(grid))
        pick = [i for i, e in enumerate(elites.tolist()) if tuple(e) not in measured]
        assert pick, "the archive's elite is an unmeasured architecture for some budget"
        top, a_row = float(budgets[pick[-1]]), elites[pick[-1]]
        run.data["accuracy"][fits[0]] -= 1000.0

        def favour(idx):
            m, s = plain(idx)
            return m + 500.0 * (idx == a_row).all(1), s

        run.models.accuracy = favour
        (g,) = run.generate([top])
        assert g.origin == "archive" and g.arch == space.format(space.from_indices(a_row.tolist()))
    finally:
        run.models.accuracy = plain
        if float(run.data["accuracy"][fits[0]]) > 500:
            run.data["accuracy"][fits[0]] -= 1000.0


def test_training_raises_the_mean_reward_and_beats_random(run):
    curve = run.metrics["reward_curve"]["generator"]
    assert np.mean(curve[-2:]) > np.mean(curve[:2])
    # the synthetic task's optimum is known for every budget: the generator's own answer is closer to it
    # than the best of as many uniformly random cells
    space = NB201Space()
    cells = space.all_archs()
    acc, lat = syn.true_accuracy(cells), syn.true_latency(cells)
    budgets = np.quantile(lat, [0.3, 0.5, 0.7, 0.9])
    best = np.array([acc[lat <= b].max() for b in budgets])
    own = run.generate(budgets, samples=8, mode="generator")
    got = syn.true_accuracy([space.parse(g.arch) for g in own])
    rng = np.random.default_rng(0)
    rand = []
    for b in budgets:
        pick = rng.choice(len(cells), 8 * 50)
        ok = pick[lat[pick] <= b].reshape(-1)
        rand.append(np.mean([acc[ok[i::50]].max() if len(ok[i::50]) else acc.min() for i in range(50)]))
    assert np.mean(best - got) < np.mean(best - np.array(rand))


def test_old_and_damaged_run_directories_are_one_line_errors(run, tmp_path, capsys):
    from pnag.cli import main
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run.dir, old)
    doc = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps(doc["config"]))  # a run written before the version field
    code = main(["generate", "--run", str(old), "--budget", str(run.budget_range[1])])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "older pnag" in err and "format 1" in err
    bad = tmp_path / "bad"
    shutil.copytree(run.dir, bad)
    (bad / "generator.pt").write_bytes(b"garbage")
    code = main(["generate", "--run", str(bad), "--budget", str(run.budget_range[1])])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "generator.pt is damaged" in err
    (bad / "generator.pt").unlink()
    shutil.copy(run.dir / "generator.pt", bad / "generator.pt")
    (bad / "config.json").write_text("[1, 2]")
    code = main(["generate", "--run", str(bad), "--budget", str(run.budget_range[1])])
    err = capsys.readouterr().err
    assert code == 2 and "config.json is damaged" in err
