"""The generator stage: policy gradient against the reward, with the budget archive (:mod:`pnag.search.archive`)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .._io import torch_save_atomic
from ..predict.resume import restore_training, restoring, training_state
from .archive import BudgetArchive, offer, offspring
from .checkpoint import StageCheckpoint
from .choice import calibration_shift
from .policy import policy_gradient_step
from .rewards import mnas_reward, tunas_reward
from .run import Run


def progress_bar(total: int, initial: int, enabled: bool | None, desc: str):
    """``enabled`` True: a bar on a terminal, a line every 15 s elsewhere, a summary line at the end;
    None: the bar on a terminal only; False: nothing (:class:`pnag._progress.Progress`)."""
    from .._progress import Progress

    return Progress(total, desc, enabled, initial=initial, unit="step")


def reward_fn(run: Run) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The generator's reward ``(idx (N, T), budgets (N,) ms) -> (N,)``: the Pareto-aware ranker's score
    (``pareto``, as published), the run's objective with the same rule (``objective``: within the
    budget the objective, outside it below every feasible architecture and the lower the slower), or
    a soft-constraint reward (``mnas``, ``tunas``)."""
    cfg, space, models = run.config, run.space, run.models
    floor = float(run.data["accuracy"].min()) - 1.0

    def reward(idx: torch.Tensor, budgets: torch.Tensor) -> torch.Tensor:
        if cfg.reward == "pareto":
            return run.ranker(space.encode_indices(idx), budgets).double()
        b = budgets.double()
        if cfg.reward == "objective":
            _, base, predicted, lat = run.estimates(idx)
            return objective_reward(base + predicted.double() * run.shifts(b), lat, b, floor)
        acc = models.pessimistic(idx) / 100.0  # the rewards take a fraction
        lat = models.latency(idx)
        return mnas_reward(acc, lat, b) if cfg.reward == "mnas" else tunas_reward(acc, lat, b)

    return reward


def objective_reward(value: torch.Tensor, lat: torch.Tensor, b: torch.Tensor, floor: float) -> torch.Tensor:
    """Reward ``objective``: ``value`` within the budget ``b`` (ms), below ``floor`` and the lower the slower outside."""
    return torch.where(lat <= b + 1e-9, value, floor - 100.0 * (lat / b - 1.0))


def new_archive(run: Run, old: BudgetArchive | None = None, budget_range: tuple[float, float] | None = None,
                ) -> BudgetArchive:
    """An empty archive over the run's budget grid (or ``budget_range``, ms), or ``old``'s rows re-scored
    by the current objective."""
    lo, hi = budget_range or run.config.budgets
    arch = BudgetArchive(torch.linspace(lo, hi, run.config.archive_grid, dtype=torch.float64), run.generator.T,
                         run.config.archive_per_bin)
    if old is not None and bool(old.filled.any()):
        offer(run, arch, old.idx[old.filled])
    return arch


class OneDevice:
    """What the generator stage draws and feeds for a run of one device in ms (as published): budgets
    (ms) drawn across the range, one archive."""

    def __init__(self, run: Run, fresh: bool):
        self.run, self.cfg = run, run.config
        self.archive = new_archive(run, None if fresh else run.archive)
        self.policy, self.reward = run.generator, reward_fn(run)

    def draw(self, n: int, step: int, rng: torch.Generator) -> torch.Tensor:
        lo, hi = self.cfg.budgets
        # both ends of the range in every step: the tightest budget has the fewest feasible draws to learn from
        b = lo + (hi - lo) * torch.rand(n, generator=rng)
        if len(b) >= 2:
            b[:2] = torch.tensor([lo, hi], dtype=b.dtype)
        return b

    def generator_input(self, rows: torch.Tensor) -> torch.Tensor:
        return rows

    def elites(self, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.archive.elites(b, self.run.shifts(b.double()))

    def feed(self, drawn: torch.Tensor, rows: torch.Tensor, rng: torch.Generator) -> int:
        pa, pb = self.archive.parents(self.cfg.archive_offspring, rng, self.cfg.archive_parents)
        return offer(self.run, self.archive, torch.cat([drawn, offspring(self.run.space, pa, pb, 0.1, rng)]))

    def state(self) -> dict:
        return {"archive": self.archive.state_dict()}

    def load(self, st: dict) -> None:
        self.archive = BudgetArchive.from_state_dict(st["archive"])

    def finish(self) -> None:
        self.run.archive = self.archive


class Devices:
    """What the generator stage draws and feeds for a device-conditioned run (:mod:`pnag.search.devices`):
    rows ``(device, budget ms, position, signature...)``, devices taken in turn, positions drawn across the
    range (both ends in every step); one archive per device, each offered every step's new rows."""

    def __init__(self, run: Run, fresh: bool):
        self.run, self.cfg = run, run.config
        self.D = len(run.profiles)
        self.sig = torch.stack([p.signature for p in run.profiles]).double()
        self.vlat = [run.device_latency(d) for d in range(self.D)]
        self.archives = [new_archive(run, budget_range=tuple(p.budget_ms(self.cfg.budgets)))
                         for p in run.profiles]
        self.floor = float(run.data["accuracy"].min()) - 1.0

        def draw(rows: torch.Tensor, generator: torch.Generator | None = None, **kw):
            return run.generator.draw(self.generator_input(rows), generator=generator, **kw)

        def evaluate(rows: torch.Tensor, idx: torch.Tensor):
            return run.generator.evaluate(self.generator_input(rows), idx)

        self.policy = type("DevicePolicy", (), {"draw": staticmethod(draw), "evaluate": staticmethod(evaluate)})()

    def draw(self, n: int, step: int, rng: torch.Generator) -> torch.Tensor:
        lo, hi = self.cfg.budgets
        pos = lo + (hi - lo) * torch.rand(n, generator=rng, dtype=torch.float64)
        if n >= 2:
            pos[:2] = torch.tensor([lo, hi], dtype=pos.dtype)
        dev = (step * n + torch.arange(n)) % self.D
        ms = torch.empty(n, dtype=torch.float64)
        for d in dev.unique().tolist():
            sel = dev == d
            ms[sel] = torch.from_numpy(self.run.profiles[d].budget_ms(pos[sel].numpy()))
        return torch.cat([dev[:, None].double(), ms[:, None], pos[:, None], self.sig[dev]], 1)

    @staticmethod
    def generator_input(rows: torch.Tensor) -> torch.Tensor:
        return rows[:, 2:].float()

    def groups(self, rows: torch.Tensor):
        """``(device, rows of it)`` for each device among ``rows``."""
        dev = rows[:, 0].long()
        return [(d, dev == d) for d in dev.unique().tolist()]

    def shifts(self, d: int, b: torch.Tensor) -> torch.Tensor:
        run = self.run
        pred = run.models.acc_pred
        return calibration_shift(b, run.table_latency[:, d], run.data["accuracy"],
                                 None if pred is None else pred.oob_pred, self.cfg.choice_calibration)

    def elites(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        elite = torch.zeros(len(rows), self.run.generator.T, dtype=torch.long)
        has = torch.zeros(len(rows), dtype=torch.bool)
        for d, sel in self.groups(rows):
            b = rows[sel, 1]
            elite[sel], has[sel] = self.archives[d].elites(b, self.shifts(d, b))
        return elite, has

    def reward(self, idx: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        run, cfg = self.run, self.cfg
        if cfg.reward == "pareto":
            return run.ranker(run.space.encode_indices(idx), rows[:, 2], rows[:, 3:].float()).double()
        b, lat = rows[:, 1], torch.empty(len(rows), dtype=torch.float64)
        for d, sel in self.groups(rows):
            lat[sel] = self.vlat[d](idx[sel]).double()
        if cfg.reward == "objective":
            _, base, predicted, _ = run.estimates(idx)
            shift = torch.zeros(len(rows), dtype=torch.float64)
            for d, sel in self.groups(rows):
                shift[sel] = self.shifts(d, b[sel])
            return objective_reward(base + predicted.double() * shift, lat, b, self.floor)
        acc = run.models.pessimistic(idx) / 100.0
        return mnas_reward(acc, lat, b) if cfg.reward == "mnas" else tunas_reward(acc, lat, b)

    def feed(self, drawn: torch.Tensor, rows: torch.Tensor, rng: torch.Generator) -> int:
        groups = self.groups(rows)
        each = max(1, self.cfg.archive_offspring // len(groups))
        parts = [drawn] + [offspring(self.run.space, *self.archives[d].parents(each, rng, self.cfg.archive_parents), 0.1,
                                     rng) for d, _ in groups]
        new = torch.unique(torch.cat(parts), dim=0)
        _, base, predicted, _ = self.run.estimates(new)
        for d, archive in enumerate(self.archives):
            archive.offer(new, base, self.vlat[d](new).double(), predicted)
        return len(new)

    def state(self) -> dict:
        return {"archives": [a.state_dict() for a in self.archives]}

    def load(self, st: dict) -> None:
        self.archives = [BudgetArchive.from_state_dict(a) for a in st["archives"]]

    def finish(self) -> None:
        self.run.archive, self.run.archives = None, self.archives


def train_generator(run: Run, metrics: dict, steps: int, tag: str, progress: bool, seed_offset: int = 0) -> None:
    """Policy gradient for ``steps`` steps, checkpointing (``TAG``) every ``checkpoint_every`` steps and
    whenever the checkpoint is due, and once more at the end: a look-up round's fine-tuning starts from
    the generator.pt it overwrites, so a stop after that write resumes from the checkpoint, not from it.

    With ``imitation > 0`` each step also offers the generator's draws and ``archive_offspring``
    offspring of the archive's elites to the budget archive (:mod:`pnag.search.archive`; one per device
    in a device-conditioned run) and adds ``imitation x -log p(elite | budget)`` to the loss."""
    cfg = run.config
    fresh = run.generator is None or tag == "generator"
    gen = run.new_generator() if fresh else run.generator
    run.generator = gen
    opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr)
    rng = torch.Generator().manual_seed(cfg.seed + 9 + seed_offset)
    start, curve, queries = 0, [], 0
    task = Devices(run, fresh) if cfg.device_conditioned else OneDevice(run, fresh)
    ck = StageCheckpoint(run, tag, ("model", "optim", "rng", "step", "curve", "queries", *task.state()))
    if ck.state is not None:
        st = ck.state
        start = restore_training(st, steps, gen, opt, rng, ck.damaged)
        with restoring(ck.damaged):
            task.load(st)
            curve, queries = [float(c) for c in st["curve"]], int(st["queries"])
            if len(curve) != start:
                raise ValueError(f"{len(curve)} rewards for {start} steps")
    gen.train()
    bar = progress_bar(steps, start, progress, f"pnag train ({tag})")
    for step in range(start, steps):
        rows = task.draw(cfg.budgets_per_step, step, rng)
        imitate = None
        if cfg.imitation > 0:
            elite, has = task.elites(rows)
            imitate = (rows[has], elite[has], cfg.imitation)
        drawn, r = policy_gradient_step(task.policy, opt, rows, cfg.samples_per_budget, task.reward, cfg.entropy, rng,
                                        imitate)
        queries += drawn.shape[0]
        if cfg.imitation > 0:
            with torch.no_grad():
                queries += task.feed(drawn, rows, rng)
        curve.append(float(r.mean()))
        bar.update(1)
        if step + 1 == steps or (step + 1) % cfg.checkpoint_every == 0 or ck.due():
            ck.save(training_state(step + 1, gen, opt, rng, curve=curve, queries=queries, **task.state()))
    bar.close()
    gen.eval()
    task.finish()
    torch_save_atomic({"model": gen.state_dict(), **task.state()}, run.dir / "generator.pt")
    metrics.setdefault("reward_curve", {})[tag] = [float(np.mean(curve[i:i + 10])) for i in range(0, len(curve), 10)]
    metrics.setdefault("queries", {})[tag] = queries


__all__ = ["progress_bar", "reward_fn", "objective_reward", "new_archive", "OneDevice", "Devices",
           "train_generator"]
