"""Schedules (full as published, fast for an exact objective), the
archive's parent choice, the merged imitation pass and hill climbing at generate time."""

import json

import pytest
import torch

import _synthetic_train as syn
from pnag.errors import PnagError
from pnag.search import TrainConfig, train
from pnag.search.archive import BudgetArchive
from pnag.search.config import SCHEDULES
from pnag.search.generator import Generator
from pnag.search.indices import neighbours
from pnag.search.policy import policy_gradient_step
from pnag.search.refine import polished
from pnag.search.training import resolved
from pnag.space import NB201Space


@pytest.fixture
def patched(monkeypatch):
    syn.patch(monkeypatch.setattr)


def test_auto_schedule_is_fast_for_an_exact_objective_on_mbv3_and_full_otherwise(use_mirror, monkeypatch):
    mbv3 = dict(space="mbv3", latency="lut:note10", budgets=(15.0, 60.0))
    exact, _ = resolved(TrainConfig(accuracy="ofa-predictor", **mbv3))
    assert exact.schedule == "fast" and exact.reward == "objective"
    for k, v in SCHEDULES["fast"].items():
        assert getattr(exact, k) == v, k
    predicted, _ = resolved(TrainConfig(accuracy="ofa-predictor", latency_samples=100, **mbv3))
    assert predicted.schedule == "full"  # latency learned: not exact
    for k, v in SCHEDULES["full"].items():
        assert getattr(predicted, k) == v, k
    # a field given stays; a schedule given is kept whatever the objective
    given, _ = resolved(TrainConfig(accuracy="ofa-predictor", steps=7, reward="pareto", **mbv3))
    assert (given.schedule, given.steps, given.reward, given.hidden) == ("fast", 7, "pareto", 32)
    forced, _ = resolved(TrainConfig(accuracy="ofa-predictor", schedule="full", **mbv3))
    assert (forced.schedule, forced.hidden, forced.reward) == ("full", 64, "pareto")
    syn.patch(monkeypatch.setattr)  # NAS-Bench-201 keeps the full schedule, exact or not
    assert resolved(syn.tiny_config(accuracy="synthetic-exact"))[0].schedule == "full"
    assert resolved(syn.tiny_config(accuracy="synthetic-exact", schedule="fast"))[0].reward == "objective"
    with pytest.raises(PnagError, match="--schedule: 'quick'"):
        TrainConfig(schedule="quick")
    with pytest.raises(PnagError, match="lr: 0"):
        TrainConfig(lr=0)


def test_fast_run_trains_no_ranker_and_config_json_says_its_schedule(patched, tmp_path):
    run = train(syn.tiny_config(accuracy="synthetic-exact", schedule="fast", steps=6), tmp_path / "exact",
                progress=False)
    assert run.config.reward == "objective" and run.config.steps == 6 and run.generator.hidden == 32
    assert "ranker" not in run.metrics and not (tmp_path / "exact" / "ranker.pt").exists()
    doc = json.loads((tmp_path / "exact" / "config.json").read_text())
    doc = doc.get("config", doc)
    assert doc["schedule"] == "fast" and doc["polish_rounds"] == SCHEDULES["fast"]["polish_rounds"]
    assert len(run.generate([float(run.config.budgets[1])])) == 1
    # a run of the full schedule writes the config.json an earlier pnag wrote: no schedule fields
    full = train(syn.tiny_config(steps=4), tmp_path / "full", progress=False)
    doc = json.loads((tmp_path / "full" / "config.json").read_text())
    doc = doc.get("config", doc)
    assert not {"schedule", "archive_parents", "polish_rounds"} & set(doc)
    back = TrainConfig.from_json(full.config.to_json())  # and reads one back as the full schedule
    assert (back.schedule, back.archive_parents, back.polish_rounds) == ("full", 0, 0)
    assert back == full.config


def test_archive_parents_come_from_the_best_of_each_bin():
    grid = torch.linspace(1.0, 10.0, 10, dtype=torch.float64)
    arch = BudgetArchive(grid, 6, per_bin=4)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(5, (400, 6), generator=g)
    arch.offer(idx, torch.rand(400, generator=g, dtype=torch.float64), torch.rand(400, generator=g,
                                                                                  dtype=torch.float64) * 10,
               torch.ones(400, dtype=torch.bool))
    rank = {tuple(r): i % 4 for i, r in enumerate(arch.idx.tolist()) if bool(arch.filled[i])}
    top, _ = arch.parents(500, torch.Generator().manual_seed(1), top=2)
    assert {rank[tuple(r)] for r in top.tolist()} == {0, 1}
    every, _ = arch.parents(500, torch.Generator().manual_seed(1))
    assert {rank[tuple(r)] for r in every.tolist()} == {0, 1, 2, 3}


def test_imitation_rows_join_the_policy_gradient_pass():
    """One step with ``imitate`` takes the gradient of the policy-gradient loss plus ``weight x -mean log p``
    of the imitated rows, as two separate passes would."""
    space = NB201Space()
    torch.manual_seed(0)
    gen = Generator(space, (1.0, 2.0), hidden=8)
    grads = {}

    class Capture:
        def zero_grad(self, set_to_none=True):
            gen.zero_grad(set_to_none=True)

        def step(self):
            grads.update({n: p.grad.clone() for n, p in gen.named_parameters() if p.grad is not None})

    budgets = torch.tensor([1.2, 1.8])
    elite = torch.randint(5, (2, 6))

    def reward(idx, b):
        return idx.sum(1).double()

    drawn, r = policy_gradient_step(gen, Capture(), budgets, 4, reward, 0.01, torch.Generator().manual_seed(3),
                                    (budgets, elite, 2.0))
    merged = dict(grads)
    from pnag.search.policy import budget_advantages
    gen.zero_grad()
    logp, ent = gen.evaluate(budgets.repeat_interleave(4), drawn)
    adv = budget_advantages(r.double()).flatten().float()
    loss = -(adv * logp).mean() - 0.01 * ent.mean() - 2.0 * gen.log_prob(budgets, elite).mean()
    loss.backward()
    for n, p in gen.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(merged[n], p.grad, rtol=1e-4, atol=1e-6)


def test_polish_climbs_to_a_local_optimum_of_the_objective(patched, tmp_path):
    run = train(syn.tiny_config(accuracy="synthetic-exact", schedule="fast", steps=3, archive_offspring=0),
                tmp_path / "run", progress=False)
    lo, hi = run.metrics["min_latency_ms"], run.config.budgets[1]
    b = [lo + (hi - lo) * f for f in (0.2, 0.5, 0.9)]
    wide = run.candidates(b, 2)
    start = run.choose(b, wide, torch.zeros(wide.shape[:2], dtype=torch.long), include_table=False)
    end = polished(run, b, start, 50)
    bt = torch.tensor(b, dtype=torch.float64)
    s0 = run.objective(start["idx"], bt)[0].diagonal()
    s1, lat1 = run.objective(end["idx"], bt)
    assert bool((s1.diagonal() >= s0).all()) and bool((s1.diagonal() > s0).any())
    assert bool((lat1 <= bt + 1e-9).all())
    for i in range(len(b)):  # no one-decision neighbour within the budget rates higher
        near = neighbours(run.space, end["idx"][i:i + 1])
        sn, ln = run.objective(near, bt[i:i + 1])
        assert not bool(((sn[:, 0] > s1[i, i] + 1e-9) & (ln <= bt[i] + 1e-9)).any())
