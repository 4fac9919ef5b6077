"""Resume granularity (issue 21, item 8): a run stopped inside any stage (a predictor fit, the ranker,
the generator, a look-up round) resumes from that stage's checkpoint, not from its start, and ends with
the same files as a run that went through; a damaged checkpoint is a one-line error naming it."""

import io
import json

import pytest
import torch

import _synthetic_train as syn
from pnag.errors import DataError
from pnag.predict.mlp import MLPPredictor, PredictorConfig
from pnag.search import checkpoint as C
from pnag.search import train
from pnag.search import generator_stage as T  # where generator.pt is written

# latency learned (a second predictor fit) and two look-up rounds: every kind of checkpoint
CFG = dict(latency_samples=200, eval_budget=6, eval_rounds=2, steps=20)
FILES = ("data.pt", "predictors.pt", "ranker.pt", "generator.pt")


class _Stop(Exception):
    pass


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run."""
    mp = pytest.MonkeyPatch()
    syn.patch(mp.setattr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("resume") / "straight"
    train(syn.tiny_config(**CFG), d, progress=False)
    torch.set_num_threads(threads)
    mp.undo()
    return d


def _flat(x, key=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _flat(v, f"{key}/{k}")
    else:
        yield key, x


def assert_same_run(a, b):
    """Every file of run ``b`` equal to run ``a``'s, bit for bit (NaN equal to NaN), metrics apart from
    wall times, and no checkpoint left."""
    for name in FILES:
        fa = dict(_flat(torch.load(a / name, weights_only=True)))
        fb = dict(_flat(torch.load(b / name, weights_only=True)))
        assert fa.keys() == fb.keys(), name
        for k, va in fa.items():
            vb = fb[k]
            if isinstance(va, torch.Tensor):
                assert torch.equal(va.isnan() if va.is_floating_point() else va, vb.isnan() if vb.is_floating_point()
                                   else vb) and torch.equal(va.nan_to_num(), vb.nan_to_num()), (name, k)
            else:
                assert va == vb or (va != va and vb != vb), (name, k, va, vb)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    ma.pop("seconds")
    mb.pop("seconds")
    assert ma == mb
    assert not list(b.glob("*.ckpt.pt"))


def _stop_at(monkeypatch, name, step):
    """Checkpoints after every epoch / step; the save of ``name`` at ``step`` is followed by a stop."""
    monkeypatch.setattr(C, "CHECKPOINT_SECONDS", 0.0)
    real = C.StageCheckpoint.save
    saved = []

    def save(self, state):
        real(self, state)
        saved.append((self.name, state["step"]))
        if (self.name, state["step"]) == (name, step):
            raise _Stop

    monkeypatch.setattr(C.StageCheckpoint, "save", save)
    return real, saved


@pytest.mark.parametrize("name,step", [("predictors-accuracy.ckpt.pt", 4), ("predictors-latency.ckpt.pt", 6),
                                       ("ranker.ckpt.pt", 12), ("eval2-ranker.ckpt.pt", 20)])
def test_a_stop_inside_a_fit_resumes_from_its_checkpoint_exactly(monkeypatch, tmp_path, straight, one_thread,
                                                                   name, step):
    syn.patch(monkeypatch.setattr)
    real, saved = _stop_at(monkeypatch, name, step)
    d = tmp_path / "stopped"
    with pytest.raises(_Stop):
        train(syn.tiny_config(**CFG), d, progress=False)
    assert torch.load(d / name, weights_only=True)["step"] == step
    saved.clear()
    monkeypatch.setattr(C.StageCheckpoint, "save", lambda self, state: (saved.append((self.name, state["step"])),
                                                                        real(self, state)))
    train(syn.tiny_config(**CFG), d, progress=False)
    assert saved[0] == (name, step + 1)  # went on from the checkpoint: nothing before it was done again
    assert_same_run(straight, d)


def test_a_stop_after_a_rounds_generator_write_resumes_exactly(monkeypatch, tmp_path, straight, one_thread):
    """A look-up round's fine-tuning starts from generator.pt and overwrites it: a stop between that write
    and the state's must not fine-tune the fine-tuned generator again. No checkpoint but the round's last
    (checkpoint_every and CHECKPOINT_SECONDS beyond the round; neither changes what is trained)."""
    syn.patch(monkeypatch.setattr)
    monkeypatch.setattr(C, "CHECKPOINT_SECONDS", 1e9)
    cfg = syn.tiny_config(**CFG, checkpoint_every=50)
    real = T.torch_save_atomic
    writes = []

    def save(obj, path):
        real(obj, path)
        writes.append(path.name)
        if writes.count("generator.pt") == 2:  # the first look-up round's
            raise _Stop

    monkeypatch.setattr(T, "torch_save_atomic", save)
    d = tmp_path / "stopped"
    with pytest.raises(_Stop):
        train(cfg, d, progress=False)
    monkeypatch.setattr(T, "torch_save_atomic", real)
    train(cfg, d, progress=False)
    assert_same_run(straight, d)


def _damaged(good: bytes, change) -> bytes:
    st = torch.load(io.BytesIO(good), weights_only=True)
    change(st)
    buf = io.BytesIO()
    torch.save(st, buf)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["ranker.ckpt.pt", "generator.ckpt.pt"])
def test_a_damaged_checkpoint_is_a_one_line_error_naming_it(monkeypatch, tmp_path, one_thread, name):
    syn.patch(monkeypatch.setattr)
    real, _ = _stop_at(monkeypatch, name, 3)
    d = tmp_path / "stopped"
    cfg = syn.tiny_config(steps=6)
    with pytest.raises(_Stop):
        train(cfg, d, progress=False)
    monkeypatch.setattr(C.StageCheckpoint, "save", real)
    good = (d / name).read_bytes()
    for what, content in {"garbage": b"\x80garbage",
                          "a model of another shape": _damaged(good, lambda st: st.update(model={"w": torch.ones(2)}))
                          }.items():
        (d / name).write_bytes(content)
        with pytest.raises(DataError) as exc:
            train(cfg, d, progress=False)
        msg = str(exc.value)
        assert name in msg and "damaged" in msg and "\n" not in msg, (what, msg)
    (d / name).write_bytes(good)
    train(cfg, d, progress=False)  # the good one resumes
    assert not (d / name).exists()


def test_restore_training_refuses_a_state_that_does_not_fit():
    """What a damaged or foreign state holds is refused when it is put back, not inside a later step."""
    from pnag.predict.resume import restore_training, training_state

    def loop():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
        return model, opt, sched, torch.Generator().manual_seed(1)

    model, opt, sched, gen = loop()
    model(torch.ones(2, 3)).sum().backward()
    opt.step()
    sched.step()
    buf = io.BytesIO()
    torch.save(training_state(1, model, opt, gen, sched), buf)
    good = buf.getvalue()

    def damaged(why):
        return DataError(f"x.ckpt.pt is damaged ({why})")

    def restore(content):
        m, o, s, g = loop()
        return restore_training(torch.load(io.BytesIO(content), weights_only=True), 10, m, o, g, damaged, s)

    assert restore(good) == 1
    for change in (lambda st: st.pop("rng"), lambda st: st.update(rng=[1, 2]), lambda st: st.update(step=11),
                   lambda st: st.update(step=True), lambda st: st.update(model={"w": torch.ones(2)}),
                   lambda st: st["optim"]["state"][0].update(exp_avg=torch.zeros(1)),
                   lambda st: st["optim"].update(param_groups=[]), lambda st: st.pop("sched"),
                   lambda st: st["sched"].update(last_epoch="1")):
        with pytest.raises(DataError, match=r"^x\.ckpt\.pt is damaged \([A-Za-z]+Error: [^\n]+\)$"):
            restore(_damaged(good, change))


class _MemoryCheckpoint:
    """A checkpoint in memory (saved through torch.save, as on disk); stops after the save at ``stop``
    (part, step)."""

    def __init__(self, stop=None, state=None):
        self.stop, self.state, self.saved = stop, state, []

    def due(self):
        return True

    def save(self, state):
        buf = io.BytesIO()
        torch.save(state, buf)
        self.saved.append((state.get("part"), state["step"], buf.getvalue()))
        if (state.get("part"), state["step"]) == self.stop:
            raise _Stop

    def damaged(self, why):
        return DataError(f"memory checkpoint is damaged ({why})")


@pytest.mark.parametrize("stop", [(0, 3), (1, 2)])
def test_a_split_and_refit_predictor_resumes_in_either_part(one_thread, stop):
    """The published preset's fit has two parts (the split, then the refit on all the data)."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.rand(60, 8, generator=g).numpy(), torch.rand(60, generator=g).double().numpy() * 10 + 60
    cfg = PredictorConfig.preset_config("published", hidden=16, epochs=6, refit=True)

    def new():
        return MLPPredictor(config=cfg, d_in=8)

    ref = new()
    ref_metrics = ref.fit(X, y)
    ck = _MemoryCheckpoint(stop)
    with pytest.raises(_Stop):
        new().fit(X, y, checkpoint=ck)
    resumed = _MemoryCheckpoint(state=torch.load(io.BytesIO(ck.saved[-1][2]), weights_only=True))
    p = new()
    assert p.fit(X, y, checkpoint=resumed) == ref_metrics
    assert resumed.saved[0][:2] == (stop[0], stop[1] + 1)  # went on from the saved epoch
    a, b = ref.net.state_dict(), p.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_temporary_files_of_a_killed_write_are_removed(monkeypatch, tmp_path, one_thread):
    """A SIGKILL inside an atomic write leaves its temporary file: the next run removes it, and a folder
    holding nothing else (killed while writing config.json) is taken as the new run it was to be."""
    syn.patch(monkeypatch.setattr)
    cfg = syn.tiny_config(steps=4)
    d = tmp_path / "run"
    d.mkdir()
    (d / ".config.json.k1ll3d.tmp").write_text('{"format": "pnag-r')
    _stop_at(monkeypatch, "ranker.ckpt.pt", 3)
    with pytest.raises(_Stop):
        train(cfg, d, progress=False)
    monkeypatch.undo()
    syn.patch(monkeypatch.setattr)
    (d / ".ranker.ckpt.pt.k1ll3d.tmp").write_bytes(b"PK\x03\x04 half a zip")
    train(cfg, d, progress=False)
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "data.pt", "generator.pt", "metrics.json",
                                                   "predictors.pt", "ranker.pt", "state.json"]
