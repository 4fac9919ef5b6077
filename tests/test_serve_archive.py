"""The archive a view of a device answers from (:func:`pnag.search.devices.served_archive`): the training
devices' elites scored on the device, grown by an evolution under its latency (MobileNetV3) or by every cell
(NAS-Bench-201)."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import _synthetic_train as syn
from pnag import sources as S
from pnag.search import TrainConfig, devices, train
from pnag.search.indices import canonical, index_keys
from pnag.space import NB201Space


def best_within(view, archive, budgets):
    """The view's objective of the archive's best row within each budget (ms)."""
    bt = torch.as_tensor(budgets, dtype=torch.float64)
    elite, has = archive.elites(bt, view.shifts(bt))
    scores, _ = view.objective(elite, bt)
    return torch.where(has, scores.diagonal(), torch.tensor(-math.inf, dtype=torch.float64)).numpy()


@pytest.fixture(scope="module")
def mbv3_run(tmp_path_factory, mirror_dir):
    """A MobileNetV3 run of one device (the Note10 table), to serve the i7-8700K table: a device it was not
    trained on."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PNAG_DATA_DIR", str(mirror_dir))
    cfg = TrainConfig(space="mbv3", accuracy="ofa-predictor", latency="lut:note10", budgets=(15.0, 40.0),
                      resolutions=(224,), train_samples=60, steps=4, budgets_per_step=4, samples_per_budget=4,
                      ranker_steps=10, ranker_pool=60, quantile_samples=256, device_reference=8, archive_offspring=64,
                      serve_steps=20)
    run = train(cfg, tmp_path_factory.mktemp("serve") / "run", progress=False)
    yield run
    mp.undo()


def test_a_new_device_is_answered_from_an_archive_evolved_under_its_latency(mbv3_run, monkeypatch):
    run, spec = mbv3_run, "lut:i7-8700k"
    calls = []
    evolve = devices.evolve
    monkeypatch.setattr(devices, "evolve", lambda *a, **k: calls.append((a[2], k["progress"])) or evolve(*a, **k))
    budgets = run.quantile_budgets([0.2, 0.4, 0.6, 0.8], latency=spec)
    view = run.for_device(spec)
    assert calls == []  # built only when an answer needs it: quantiles and views alone do not evolve
    gens = view.generate(budgets)
    assert calls == [(20, None)]  # 20 steps, a bar on a terminal
    assert [g.arch for g in run.for_device(spec).generate(budgets)] == [g.arch for g in gens]  # deterministic
    plain = run.for_device(spec)
    plain.config = replace(plain.config, serve_steps=0)
    grown, only = best_within(view, view.archive, budgets), best_within(plain, plain.archive, budgets)
    assert np.all(grown >= only - 1e-9) and np.any(grown > only + 1e-6)
    # a later view of the same device (its model refitted, say) starts from this archive and takes a tenth of the steps
    later = run.for_device(spec, archive_from=view.archive)
    assert np.all(best_within(later, later.archive, budgets) >= grown - 1e-9)
    assert calls == [(20, None), (20, None), (2, False)]  # (no bar again)


class Slower:
    """Another synthetic device: the synthetic latency to the power 1.5."""
    name = "slower"

    def latency_ms(self, archs):
        return syn.true_latency(archs) ** 1.5


def test_a_listable_space_offers_every_cell(monkeypatch, tmp_path):
    syn.patch(monkeypatch.setattr)
    run = train(syn.tiny_config(steps=10), tmp_path / "run", progress=False)
    budgets = run.quantile_budgets([0.2, 0.5, 0.8], latency=Slower())
    view = run.for_device(Slower())
    space = NB201Space()
    cells = canonical(space, torch.as_tensor(space.all_indices()))
    bt = torch.as_tensor(budgets, dtype=torch.float64)
    scores, lat = view.objective(cells, bt)
    brute = torch.where(lat[:, None] <= bt[None, :] + 1e-9, scores, torch.tensor(-math.inf, dtype=torch.float64))
    np.testing.assert_allclose(best_within(view, view.archive, budgets), brute.max(0).values.numpy(), rtol=0, atol=1e-9)


def test_views_share_a_memo_of_accuracy_estimates_that_gives_the_models_own(mbv3_run, monkeypatch):
    """A device's views keep each row's accuracy estimate (serving asks for the same rows again and again while
    only the latency changes): the estimates are the accuracy model's, each row is asked of it once, and the memo
    is emptied when it would outgrow MEMO_ROWS."""
    from pnag.search import models

    run = mbv3_run
    asked = []
    acc = run.models.acc_model
    counting = models.RunModels(run.space, run.config, lambda idx: asked.append(len(idx)) or acc(idx), None,
                                run.models.lat_exact, None)
    monkeypatch.setattr(run, "models", counting)
    views = [run.for_device("lut:i7-8700k"), run.for_device("lut:i7-8700k")]
    assert views[0].models.memo is views[1].models.memo is counting.serving_memo
    def rows(n, seed):
        return canonical(run.space, torch.as_tensor(np.stack([run.space.to_indices(x)
                                                             for x in run.space.sample(n, seed=seed)])))

    a = torch.unique(rows(40, 1), dim=0)
    b = torch.cat([a[:10], rows(30, 2), a[:5]])  # 15 rows seen, some new ones, a repeat
    new_in_b = len(set(index_keys(b)) - set(index_keys(a)))
    want_a, want_b = acc(a).double(), acc(b).double()
    got_a, _ = views[0].models.accuracy(a)
    got_b, spread = views[1].models.accuracy(b)
    torch.testing.assert_close(got_a, want_a, rtol=0, atol=0)
    torch.testing.assert_close(got_b, want_b, rtol=0, atol=0)
    assert (spread == 0).all() and asked == [len(a), new_in_b]
    monkeypatch.setattr(models, "MEMO_ROWS", len(a) + new_in_b)
    c = rows(5, 3)
    torch.testing.assert_close(views[0].models.accuracy(c)[0], acc(c).double(), rtol=0, atol=0)
    assert len(views[0].models.memo) <= len(c)  # emptied first, then holds the new rows
