"""Train once, generate for any budget: predictors, Pareto-aware ranker and generator in one run directory.

Stages (each saved atomically in ``run_dir``; an interrupted run resumes from the last saved one,
and the generator from its last checkpoint):

1. ``data``: the measured table (architectures as decision indices, accuracy %, latency ms);
2. ``predictors``: an accuracy ensemble (:class:`pnag.predict.MLPPredictor`; none when the accuracy
   source is itself a model) and, with ``latency_samples``, a latency ensemble;
3. ``ranker``: the Pareto-aware ranker (``reward="pareto"``), trained on pairs from the measured
   table plus random architectures scored pessimistically (ensemble mean - k * std);
4. ``generator``: policy gradient (Adam, entropy bonus) on batches of ``budgets_per_step`` budgets
   drawn across the range times ``samples_per_budget`` architectures each; the baseline of each
   sample is the mean reward of the other samples drawn for the same budget (leave-one-out);
5. ``eval`` (``eval_budget > 0``): rounds that look up the true accuracy of the most promising
   unmeasured proposals (highest upper confidence bound within budget) among the generator's own
   and the one-decision neighbours of the best measured architectures, add them to the table,
   refit predictors and ranker and fine-tune the generator.

:meth:`Run.generate` picks, per budget, among the generator's candidates, the one-decision
neighbours of its greedy proposal and of the best measured architectures within the budget, the
measured architectures and the fastest known architecture: the feasible one (latency <= budget)
with the highest accuracy estimate: the measured value where measured, else the predicted mean
lowered by the predictor's out-of-bag over-rating within the budget (``choice_calibration``,
:meth:`Run.calibration_shift`) and by ``choice_pessimism`` x its spread (0 by default).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .._io import torch_save_atomic, write_json_atomic
from ..errors import BudgetError, DataError, PnagError, allowed, check_fraction
from ..predict.mlp import TARGETS, MLPPredictor, PredictorConfig
from ..predict.ranker import BUDGET_MODES, ParetoRanker
from .generator import Generator
from .rewards import REWARDS, mnas_reward, tunas_reward
from .sources import VectorLatency, get_accuracy_source, get_latency_source

SPACES = ("mbv3", "nb201")
STAGES = ("data", "predictors", "ranker", "generator", "eval")
W10_DATASET = "dataset:ofa-mbv3-w1.0-imagenet"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Latencies and budgets in ms; accuracy in %."""

    space: str = "mbv3"
    accuracy: str = W10_DATASET
    latency: str = "lut:i7-8700k"
    budgets: tuple[float, float] = (10.0, 24.0)
    width: float | None = None  # mbv3: default 1.0 with the w1.0 dataset, else 1.2
    resolution: int = 224
    train_samples: int | None = None  # None: every record (dataset) or 1000 (nb201 / sampled sources)
    latency_samples: int | None = None  # learn latency from this many architectures instead of the source
    reward: str = "pareto"
    eval_budget: int = 0
    seed: int = 0
    steps: int = 200
    budgets_per_step: int = 16
    samples_per_budget: int = 8
    lr: float = 3e-3
    entropy: float = 1e-3
    hidden: int = 64
    predictor_preset: str = "fast"
    predictor_hidden: int | None = None  # None: 64 for mbv3, 128 for nb201 (measured; see BENCHMARKS.md)
    predictor_epochs: int | None = None  # None: 60 for mbv3, 150 for nb201
    # what the accuracy members regress (PredictorConfig.target); None: "log-error" for an accuracy in %,
    # "identity" for a score (proxies). The latency predictor always regresses ms.
    predictor_target: str | None = None
    ensemble: int = 5
    pessimism: float = 3.0  # k of the lower confidence bound mean - k * std that labels the ranker's pool
    # k of the final choice among candidates, mean - k * std; 0 since the calibration below corrects
    # the predictor's over-rating (measured on NB201 tuning seeds 10-49; BENCHMARKS.md)
    choice_pessimism: float = 0.0
    choice_parents: int = 4  # generate() also weighs neighbours of this many best measured archs per budget
    # > 0: generate() lowers the scores of unmeasured candidates, per budget, by the accuracy predictor's
    # out-of-bag over-prediction on this many measured archs within the budget (those it rates highest;
    # Run.calibration_shift); 0: off
    choice_calibration: int = 5
    optimism: float = 1.0  # k of the upper confidence bound used to choose look-ups (eval budget)
    ranker_mode: str = "continuous"
    ranker_budgets: tuple[float, ...] = ()  # one-hot mode: the budgets (default 5 across the range)
    ranker_steps: int = 400
    ranker_pool: int = 4000
    # fraction of each ranker step's pairs drawn within their budget and near its top (ParetoRanker.fit)
    ranker_top_pairs: float = 0.0
    eval_rounds: int = 4
    eval_candidates: int = 256
    eval_temperature: float = 2.0  # flatter sampling for diverse look-up proposals
    eval_parents: int = 4  # look-ups also consider neighbours of this many best measured archs per budget
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise PnagError(f"--space: {self.space!r} is not known; allowed: {allowed(SPACES)}")
        try:
            lo, hi = (float(b) for b in self.budgets)
        except (TypeError, ValueError):
            raise BudgetError(f"--budgets: {self.budgets!r}; allowed: LO:HI in ms with 0 < LO < HI") from None
        if not (0 < lo < hi and math.isfinite(hi)):
            raise BudgetError(f"--budgets: {lo:g}:{hi:g}; allowed: LO:HI in ms with 0 < LO < HI")
        object.__setattr__(self, "budgets", (lo, hi))
        object.__setattr__(self, "ranker_budgets", tuple(float(b) for b in self.ranker_budgets))
        if self.reward not in REWARDS:
            raise PnagError(f"--reward: {self.reward!r} is not known; allowed: {allowed(REWARDS)}")
        if self.ranker_mode not in BUDGET_MODES:
            raise PnagError(f"ranker mode: {self.ranker_mode!r} is not known; allowed: {allowed(BUDGET_MODES)}")
        for name in ("train_samples", "latency_samples"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 2):
                raise PnagError(f"--{name.replace('_', '-')}: {v!r}; allowed: an integer >= 2")
        for name in ("steps", "budgets_per_step", "hidden", "ensemble", "eval_rounds", "eval_candidates",
                     "checkpoint_every", "ranker_steps", "predictor_hidden", "predictor_epochs"):
            v = getattr(self, name)
            if v is None and name.startswith("predictor_"):
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise PnagError(f"{name}: {v!r}; allowed: an integer >= 1")
        if isinstance(self.samples_per_budget, bool) or not isinstance(self.samples_per_budget, int) \
                or self.samples_per_budget < 2:
            raise PnagError(f"samples_per_budget: {self.samples_per_budget!r}; allowed: an integer >= 2")
        if isinstance(self.eval_budget, bool) or not isinstance(self.eval_budget, int) or self.eval_budget < 0:
            raise PnagError(f"--eval-budget: {self.eval_budget!r}; allowed: an integer >= 0")
        for name in ("eval_parents", "choice_parents", "choice_calibration"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise PnagError(f"{name}: {v!r}; allowed: an integer >= 0")
        check_fraction(self.ranker_top_pairs, "ranker_top_pairs")
        for name in ("pessimism", "choice_pessimism", "optimism"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise PnagError(f"{name}: {v!r}; allowed: a number >= 0")
        if self.predictor_target is not None and self.predictor_target not in TARGETS:
            raise PnagError(f"predictor_target: {self.predictor_target!r} is not known; allowed: {allowed(TARGETS)}")
        if self.space == "nb201" and self.width is not None:
            raise PnagError(f"--width: {self.width}; allowed only with --space mbv3")

    @property
    def resolved_width(self) -> float | None:
        if self.space != "mbv3":
            return None
        if self.width is not None:
            return float(self.width)
        return 1.0 if self.accuracy == W10_DATASET else 1.2

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["budgets"], d["ranker_budgets"] = list(self.budgets), list(self.ranker_budgets)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise DataError(f"run config: unknown field(s) {', '.join(unknown)}")
        d = dict(d)
        d["budgets"] = tuple(d.get("budgets", (10.0, 24.0)))
        d["ranker_budgets"] = tuple(d.get("ranker_budgets", ()))
        return cls(**d)


@dataclass(frozen=True)
class Generation:
    """One generated architecture for one budget. Accuracy in %, latency in ms, MAdds in millions."""

    budget: float
    arch: str
    predicted_accuracy: float
    predicted_latency_ms: float
    madds_m: float | None
    origin: str  # "generated" or "measured" (a measured architecture won for this budget)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- helpers -----------------------------------------------------------------------------------------
def make_space(config: TrainConfig):
    from ..space import get_space

    if config.space == "mbv3":
        return get_space("mbv3", width=config.resolved_width, resolution=config.resolution)
    return get_space("nb201")


def random_indices(space, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` uniformly random decision-index vectors ``(n, T)``."""
    sizes = torch.tensor([len(c) for c in space.decision_choices], dtype=torch.float64)
    return (torch.rand(n, len(sizes), generator=generator, dtype=torch.float64) * sizes).long()


def canonical(space, idx: torch.Tensor) -> torch.Tensor:
    """Index vectors with inactive decisions zeroed (equal architectures give equal rows)."""
    return idx * space.active_mask(idx).long()


def neighbours(space, idx: torch.Tensor) -> torch.Tensor:
    """Every architecture one decision away from each row of ``idx (M, T)``: ``(M * S, T)`` with
    ``S = sum(len(choices) - 1)`` over the decisions, canonical (a change to an inactive decision
    gives the row back, which callers drop as already known)."""
    sizes = [len(c) for c in space.decision_choices]
    rows = []
    for t, n in enumerate(sizes):
        for shift in range(1, n):
            m = idx.clone()
            m[:, t] = (m[:, t] + shift) % n
            rows.append(m)
    out = torch.stack(rows, 1).reshape(-1, idx.shape[1]) if rows else idx[:0]
    return canonical(space, out)


def _keys(idx: torch.Tensor) -> list[bytes]:
    return [r.tobytes() for r in idx.numpy().astype(np.int8)]


class _Models:
    """Accuracy / latency models of a run, vectorised on decision indices."""

    def __init__(self, space, config: TrainConfig, acc_model=None, acc_pred: MLPPredictor | None = None,
                 lat_exact: VectorLatency | None = None, lat_pred: MLPPredictor | None = None):
        self.space, self.config = space, config
        self.acc_model, self.acc_pred = acc_model, acc_pred
        self.lat_exact, self.lat_pred = lat_exact, lat_pred

    def accuracy(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and spread (%) ``(B,)``."""
        if self.acc_model is not None:
            m = self.acc_model(idx).double()
            return m, torch.zeros_like(m)
        m, s = self.acc_pred.predict_indices_dist(idx)
        return m.double(), s.double()

    def pessimistic(self, idx: torch.Tensor) -> torch.Tensor:
        m, s = self.accuracy(idx)
        return m - self.config.pessimism * s

    def latency(self, idx: torch.Tensor) -> torch.Tensor:
        """Latency (ms) ``(B,)``: the exact source, or the latency predictor's mean."""
        if self.lat_pred is not None:
            return self.lat_pred.predict_indices_dist(idx)[0].double()
        return self.lat_exact(idx).double()


def _progress(total: int, initial: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not (enabled and sys.stderr.isatty()),
                file=sys.stderr, leave=False)


# -- the run -----------------------------------------------------------------------------------------
class Run:
    """A trained (or partly trained) run directory."""

    def __init__(self, run_dir: Path, config: TrainConfig):
        self.dir = Path(run_dir)
        self.config = config
        self.space = make_space(config)
        self._acc_source = None
        self._lat_source = None
        self.models: _Models | None = None
        self.ranker: ParetoRanker | None = None
        self.generator: Generator | None = None
        self.data: dict[str, torch.Tensor] = {}
        self.metrics: dict[str, Any] = {}

    # sources are resolved lazily (they may read data files)
    @property
    def acc_source(self):
        if self._acc_source is None:
            self._acc_source = get_accuracy_source(self.config.accuracy, self.space)
        return self._acc_source

    @property
    def lat_source(self):
        if self._lat_source is None:
            self._lat_source = VectorLatency(self.space, get_latency_source(self.config.latency, self.space))
        return self._lat_source

    # -- persistence ----------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        p = self.dir / "state.json"
        return json.loads(p.read_text()) if p.exists() else {"done": []}

    def _mark(self, stage: str, **extra: Any) -> None:
        st = self._state()
        if stage not in st["done"]:
            st["done"].append(stage)
        st.update(extra)
        write_json_atomic(self.dir / "state.json", st)

    def _save_data(self) -> None:
        torch_save_atomic({k: v.clone() for k, v in self.data.items()}, self.dir / "data.pt")

    def _save_models(self) -> None:
        m = self.models
        torch_save_atomic({"acc": m.acc_pred.state_dict() if m.acc_pred else None,
                           "lat": m.lat_pred.state_dict() if m.lat_pred else None}, self.dir / "predictors.pt")

    def _load(self, name: str) -> Any:
        p = self.dir / name
        try:
            return torch.load(p, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise DataError(f"run {self.dir}: {name} is missing; the run is incomplete (re-run pnag train to resume)") from None
        except Exception as exc:
            raise DataError(f"run {self.dir}: {name} cannot be read ({exc})") from None

    @classmethod
    def load(cls, run_dir: str | Path, require_done: bool = True) -> "Run":
        """Open a run directory written by :func:`train`."""
        run_dir = Path(run_dir)
        cfg_path = run_dir / "config.json"
        if not cfg_path.is_file():
            raise DataError(f"--run: {str(run_dir)!r} is not a training run (no config.json); allowed: a directory "
                            "written by pnag train -o")
        try:
            config = TrainConfig.from_json(json.loads(cfg_path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise DataError(f"{cfg_path}: not a valid run configuration ({exc})") from None
        run = cls(run_dir, config)
        done = run._state()["done"]
        if require_done and "done" not in done:
            raise DataError(f"--run: {str(run_dir)!r} is an unfinished run (stages done: {', '.join(done) or 'none'}); "
                            "re-run the same pnag train command to resume it")
        run._restore(done)
        return run

    def _restore(self, done: Sequence[str]) -> None:
        if "data" in done:
            self.data = self._load("data.pt")
        if "predictors" in done:
            st = self._load("predictors.pt")
            acc_pred = MLPPredictor.from_state_dict(st["acc"], self.space) if st["acc"] else None
            lat_pred = MLPPredictor.from_state_dict(st["lat"], self.space) if st["lat"] else None
            acc_model = self.acc_source.model if acc_pred is None else None
            lat_exact = None if lat_pred is not None else self.lat_source
            self.models = _Models(self.space, self.config, acc_model, acc_pred, lat_exact, lat_pred)
        if "ranker" in done and self.config.reward == "pareto":
            self.ranker = ParetoRanker.from_state_dict(self._load("ranker.pt"))
        if "generator" in done:
            self.generator = self._new_generator()
            self.generator.load_state_dict(self._load("generator.pt")["model"])
            self.generator.eval()
        mp = self.dir / "metrics.json"
        if mp.exists():
            self.metrics = json.loads(mp.read_text())

    def _new_generator(self) -> Generator:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed + 3)
            return Generator(self.space, self.config.budgets, hidden=self.config.hidden)

    # -- public views ---------------------------------------------------------------------------
    @property
    def budget_range(self) -> tuple[float, float]:
        return self.config.budgets

    @property
    def min_latency_ms(self) -> float:
        return float(self.metrics["min_latency_ms"])

    @property
    def training_table(self) -> dict[str, Any]:
        """The measured data: ``{"archs": [str], "accuracy": ndarray %, "latency_ms": ndarray}``."""
        idx = self.data["idx"]
        archs = [self.space.format(self.space.from_indices(r)) for r in idx.tolist()]
        return {"archs": archs, "accuracy": self.data["accuracy"].numpy().copy(),
                "latency_ms": self.data["latency"].numpy().copy()}

    def check_budgets(self, budgets: Sequence[float]) -> np.ndarray:
        """Budgets (ms) as an array; raises BudgetError for any outside what this run serves."""
        b = np.asarray(budgets, dtype=np.float64).reshape(-1)
        lo, hi = self.budget_range
        fastest = self.min_latency_ms
        floor = max(lo, fastest)
        for x in b:
            if not math.isfinite(x) or x < lo - 1e-9 or x > hi + 1e-9:
                raise BudgetError(f"budget: {x:g} ms is outside the trained range; allowed: {floor:g}..{hi:g} ms")
            if x < fastest:
                raise BudgetError(f"budget: {x:g} ms is below the fastest architecture ({fastest:.4g} ms); "
                                  f"allowed: {fastest:.4g}..{hi:g} ms")
        return b

    # -- generation -----------------------------------------------------------------------------
    @torch.no_grad()
    def candidates(self, budgets: Sequence[float], samples: int = 1, seed: int = 0,
                   temperature: float = 1.0) -> torch.Tensor:
        """Generator proposals ``(len(budgets), 1 + samples', T)``: the greedy one, then ``samples - 1`` draws."""
        b = torch.as_tensor(np.asarray(budgets, dtype=np.float32))
        greedy, _, _ = self.generator.sample(b, greedy=True)
        out = [greedy[:, None, :]]
        if samples > 1:
            g = torch.Generator().manual_seed(seed)
            drawn, _, _ = self.generator.sample(b.repeat_interleave(samples - 1), generator=g, temperature=temperature)
            out.append(drawn.view(len(b), samples - 1, -1))
        return canonical(self.space, torch.cat(out, 1).reshape(-1, self.generator.T)).view(len(b), -1, self.generator.T)

    @torch.no_grad()
    def with_neighbours(self, budgets: Sequence[float], cand: torch.Tensor, parents: int) -> torch.Tensor:
        """``cand (B, K, T)`` plus, per budget, every one-decision neighbour of its first candidate
        (the generator's greedy proposal) and of the ``parents`` most accurate measured
        architectures within the budget: ``(B, K + K', T)`` (short rows padded with repeats)."""
        if parents <= 0:
            return cand
        m_idx, m_acc = self.data["idx"], self.data["accuracy"].double()
        m_lat = self.data["latency"].double() if self.models.lat_pred is None else self.models.latency(m_idx)
        rows = []
        for i, b in enumerate(np.asarray(budgets, dtype=np.float64).tolist()):
            ok = torch.nonzero(m_lat <= b + 1e-9).flatten()
            top = ok[torch.argsort(m_acc[ok], descending=True)[:parents]]
            rows.append(neighbours(self.space, torch.cat([cand[i, :1], m_idx[top]])))
        n = max(len(r) for r in rows)
        pad = [torch.cat([r, r[:1].expand(n - len(r), -1)]) if len(r) < n else r for r in rows]
        return torch.cat([cand, torch.stack(pad)], 1)

    @torch.no_grad()
    def choose(self, budgets: Sequence[float], cand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per budget the best feasible of ``cand (B, K, T)``, the measured table and the fastest architecture.

        Returns ``idx (B, T)``, accuracy (%: measured where measured, else the predicted mean),
        latency (ms) and ``measured`` (bool).
        """
        B, K, T = cand.shape
        b = torch.as_tensor(np.asarray(budgets, dtype=np.float64))
        flat = cand.reshape(-1, T)
        mean, std = self.models.accuracy(flat)
        score = mean - self.config.choice_pessimism * std
        lat = self.models.latency(flat)
        # measured architectures: their measured accuracy, and they join every budget's candidates
        m_idx, m_acc = self.data["idx"], self.data["accuracy"].double()
        m_lat = self.data["latency"].double() if self.models.lat_pred is None else self.models.latency(m_idx)
        lookup = {k: i for i, k in enumerate(_keys(m_idx))}
        hit = torch.tensor([lookup.get(k, -1) for k in _keys(flat)])
        known = hit >= 0
        score = torch.where(known, m_acc[hit.clamp_min(0)], score)
        mean = torch.where(known, m_acc[hit.clamp_min(0)], mean)
        fast = self.data["fastest_idx"].view(1, T)
        f_mean, f_std = self.models.accuracy(fast)
        f_lat = self.models.latency(fast)
        all_idx = torch.cat([flat, m_idx, fast])
        all_score = torch.cat([score, m_acc, f_mean - self.config.choice_pessimism * f_std])
        all_mean = torch.cat([mean, m_acc, f_mean])
        all_lat = torch.cat([lat, m_lat, f_lat])
        predicted = torch.cat([~known, torch.zeros(len(m_idx), dtype=torch.bool), torch.ones(1, dtype=torch.bool)])
        owner = torch.cat([torch.arange(B).repeat_interleave(K), torch.full((len(m_idx) + 1,), -1)])
        allowed_ = (owner[None, :] == torch.arange(B)[:, None]) | (owner[None, :] < 0)
        feasible = allowed_ & (all_lat[None, :] <= b[:, None] + 1e-9)
        scores = all_score[None, :] + self.calibration_shift(b, m_lat)[:, None] * predicted[None, :]
        s = torch.where(feasible, scores, torch.tensor(-math.inf, dtype=torch.float64))
        # no feasible candidate at all (only possible below the fastest architecture): take the fastest
        best = torch.where(feasible.any(1), s.argmax(1), torch.full((B,), len(all_idx) - 1))
        n_gen = len(flat)
        measured = (best >= n_gen) & (best < n_gen + len(m_idx))
        measured |= (best < n_gen) & known[best.clamp_max(n_gen - 1)]
        return all_idx[best], all_mean[best], all_lat[best], measured

    def calibration_shift(self, budgets: torch.Tensor, m_lat: torch.Tensor) -> torch.Tensor:
        """Per budget, how far (accuracy points, <= 0) the accuracy predictor over-rates the best it
        sees within the budget: the mean of measured - out-of-bag predicted accuracy over the
        ``choice_calibration`` measured architectures within the budget with the highest out-of-bag
        prediction, or 0 where that mean is positive, calibration is off, or there are no out-of-bag
        predictions for the table (an accuracy model, a predictor saved without them or fitted on
        other data).

        Why: a predictor maximised over unmeasured architectures picks the ones it over-rates most; its
        out-of-bag errors at the top of its own ranking show how much, region by region. On NB201
        cifar10/raspi4 the ensemble over-rated its best unmeasured cell by 1.0-1.6 points below the 25 %
        latency quantile and by 0.0-0.3 above it, while its spread differed far less (0.32-0.50 against
        0.11-0.24 points), so no multiple of the spread told the two apart (BENCHMARKS.md).
        """
        n = self.config.choice_calibration
        pred = self.models.acc_pred if self.models is not None else None
        oob = None if pred is None else pred.oob_pred
        out = torch.zeros(len(budgets), dtype=torch.float64)
        if n == 0 or oob is None or len(oob) != len(m_lat):
            return out
        oob = torch.as_tensor(oob, dtype=torch.float64)
        resid = self.data["accuracy"].double() - oob
        ok = torch.isfinite(oob)[None, :] & (m_lat[None, :] <= budgets[:, None] + 1e-9)  # (B, M)
        ranked = torch.where(ok, oob[None, :].expand_as(ok), torch.tensor(-math.inf, dtype=torch.float64))
        top = torch.topk(ranked, min(n, len(oob)), dim=1).indices  # (B, n)
        valid = ok.gather(1, top)
        total = torch.where(valid, resid[top], torch.zeros((), dtype=torch.float64)).sum(1)
        mean = total / valid.sum(1).clamp_min(1)
        return torch.where(valid.any(1), mean.clamp_max(0.0), out)

    def generate(self, budgets: Sequence[float] | float, samples: int = 1, seed: int = 0) -> list[Generation]:
        """For each budget (ms) the chosen architecture; ``samples`` generator draws per budget (K)."""
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise PnagError(f"--samples: {samples!r}; allowed: an integer >= 1")
        b = self.check_budgets(np.atleast_1d(np.asarray(budgets, dtype=np.float64)))
        if self.generator is None or self.models is None:
            raise DataError(f"run {self.dir}: no trained generator")
        cand = self.with_neighbours(b, self.candidates(b, samples, seed), self.config.choice_parents)
        idx, acc, lat, measured = self.choose(b, cand)
        out = []
        for i, x in enumerate(b.tolist()):
            arch = self.space.from_indices(idx[i].tolist())
            out.append(Generation(budget=float(x), arch=self.space.format(arch), predicted_accuracy=float(acc[i]),
                                  predicted_latency_ms=float(lat[i]), madds_m=_madds_m(arch),
                                  origin="measured" if bool(measured[i]) else "generated"))
        return out


def _madds_m(arch) -> float | None:
    if getattr(arch, "space", None) != "mbv3":
        return None
    from ..nn.cost import arch_cost

    return round(arch_cost(arch).madds_m, 3)


# -- training ----------------------------------------------------------------------------------------
def train(config: TrainConfig, run_dir: str | Path, progress: bool = True, threads: int | None = None) -> Run:
    """Train (or resume) a run in ``run_dir``; returns the finished :class:`Run`.

    ``threads``: torch intra-op threads while training (restored afterwards; None keeps torch's
    setting, all cores). On an idle 2-core machine 2 threads are faster (MobileNetV3 default run:
    23 s against 33 s with 1); on a machine whose cores are busy with other work, 1 thread avoids
    threads spinning against it (measured beside one busy process: 28 s with 1 thread, over 5
    minutes with 2).
    """
    if threads is None:
        return _train(config, run_dir, progress)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise PnagError(f"threads: {threads!r} is not allowed; allowed: an integer >= 1 or None")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(config, run_dir, progress)
    finally:
        torch.set_num_threads(previous)


def _train(config: TrainConfig, run_dir: str | Path, progress: bool) -> Run:
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise PnagError(f"-o: {str(run_dir)!r} exists and is not a directory; allowed: a new or run directory")
    cfg_path = run_dir / "config.json"
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except json.JSONDecodeError:
            raise DataError(f"{cfg_path}: not valid JSON; remove the directory or choose another -o") from None
        new = config.to_json()
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if diff:
            k = diff[0]
            raise PnagError(f"-o {str(run_dir)!r}: holds a run with {k}={old.get(k)!r}, not {new.get(k)!r}; "
                            "allowed: the same settings (to resume) or another directory")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise PnagError(f"-o: {str(run_dir)!r} is a non-empty directory that is not a run; allowed: a new or "
                        "empty directory, or an earlier run to resume")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cfg_path, config.to_json())
    run = Run(run_dir, config)
    done = run._state()["done"]
    run._restore([s for s in done if s != "generator"])
    metrics = dict(run.metrics)
    t0 = time.perf_counter()
    timings = metrics.setdefault("seconds", {})

    if "data" not in done:
        t = time.perf_counter()
        _stage_data(run, metrics)
        timings["data"] = time.perf_counter() - t
        write_json_atomic(run_dir / "metrics.json", metrics)
        run._mark("data")
    if "predictors" not in done:
        t = time.perf_counter()
        _stage_predictors(run, metrics, seed=config.seed)
        timings["predictors"] = time.perf_counter() - t
        write_json_atomic(run_dir / "metrics.json", metrics)
        run._mark("predictors")
    if config.reward == "pareto" and "ranker" not in done:
        t = time.perf_counter()
        _stage_ranker(run, metrics, seed=config.seed)
        timings["ranker"] = time.perf_counter() - t
        write_json_atomic(run_dir / "metrics.json", metrics)
        run._mark("ranker")
    if "generator" not in done:
        t = time.perf_counter()
        _stage_generator(run, metrics, config.steps, tag="generator", progress=progress)
        timings["generator"] = time.perf_counter() - t + timings.get("generator", 0.0)
        write_json_atomic(run_dir / "metrics.json", metrics)
        run._mark("generator")
    else:
        run._restore(["generator"])
    if config.eval_budget > 0 and "eval" not in done:
        t = time.perf_counter()
        _stage_eval(run, metrics, progress)
        timings["eval"] = time.perf_counter() - t + timings.get("eval", 0.0)
        run._mark("eval")
    metrics["min_latency_ms"] = run.metrics.get("min_latency_ms", metrics.get("min_latency_ms"))
    timings["total_this_session"] = time.perf_counter() - t0
    run.metrics = metrics
    write_json_atomic(run_dir / "metrics.json", metrics)
    run._mark("done")
    run.generator.eval()
    return run


def _stage_data(run: Run, metrics: dict) -> None:
    cfg, space = run.config, run.space
    exact = run.lat_source  # resolve both specs before any long work
    src = run.acc_source
    archs, acc = src.table(cfg.train_samples, cfg.seed)
    idx = canonical(space, torch.as_tensor(np.stack([space.to_indices(a) for a in archs])))
    keys = _keys(idx)
    keep = sorted({k: i for i, k in enumerate(keys)}.values())  # one row per architecture
    idx, acc = idx[keep], np.asarray(acc)[keep]
    lat = exact(idx)
    # the fastest architecture known: exhaustive minimum, else among the table and the all-first-choice one
    lows = torch.zeros(1, idx.shape[1], dtype=torch.long)
    if exact.exhaustive:
        codes_min = int(torch.argmin(exact._lookup))
        sizes = [len(c) for c in space.decision_choices]
        fastest = torch.tensor(np.unravel_index(codes_min, sizes), dtype=torch.long).view(1, -1)
    else:
        pool = torch.cat([idx, lows])
        fastest = pool[int(torch.argmin(exact(pool)))].view(1, -1)
    run.data = {"idx": idx, "accuracy": torch.as_tensor(acc, dtype=torch.float64), "latency": lat.double(),
                "fastest_idx": canonical(space, fastest)[0]}
    run.metrics["min_latency_ms"] = metrics["min_latency_ms"] = float(exact(fastest)[0])
    metrics["data"] = {"n": int(len(idx)), "accuracy_source": cfg.accuracy, "accuracy_unit": src.unit,
                       "note": src.note, "latency_source": cfg.latency,
                       "accuracy_range": [float(acc.min()), float(acc.max())],
                       "latency_range_ms": [float(lat.min()), float(lat.max())]}
    lo, hi = cfg.budgets
    if hi < metrics["min_latency_ms"]:
        raise BudgetError(f"--budgets: {lo:g}:{hi:g} ms lies below the fastest architecture "
                          f"({metrics['min_latency_ms']:.4g} ms); allowed: a range reaching above it")
    run._save_data()


def _fit_predictors(run: Run, seed: int) -> dict[str, Any]:
    cfg, space = run.config, run.space
    pc = PredictorConfig.preset_config(cfg.predictor_preset, seed=seed) if cfg.predictor_preset == "published" else \
        PredictorConfig.preset_config(cfg.predictor_preset, ensemble=cfg.ensemble, seed=seed,
                                      hidden=cfg.predictor_hidden or (128 if cfg.space == "nb201" else 64),
                                      epochs=cfg.predictor_epochs or (150 if cfg.space == "nb201" else 60))
    out: dict[str, Any] = {}
    acc_model, acc_pred = run.acc_source.model, None
    if acc_model is None:
        target = cfg.predictor_target or ("log-error" if run.acc_source.unit == "%" else "identity")
        acc_pred = MLPPredictor(space, replace(pc, target=target))
        x = space.encode_indices(run.data["idx"]).numpy()
        out["accuracy"] = acc_pred.fit(x, run.data["accuracy"].numpy())
    lat_pred, lat_exact = None, run.lat_source
    if cfg.latency_samples:
        if run.models is not None and run.models.lat_pred is not None:
            lat_pred = run.models.lat_pred  # fitted once; eval rounds add accuracy, not latency
        else:
            g = torch.Generator().manual_seed(seed + 11)
            li = canonical(space, random_indices(space, cfg.latency_samples, g))
            lat_pred = MLPPredictor(space, replace(pc, seed=seed + 12))
            out["latency"] = lat_pred.fit(space.encode_indices(li).numpy(), lat_exact(li).numpy())
        lat_exact = None
    run.models = _Models(space, cfg, acc_model, acc_pred, lat_exact, lat_pred)
    return out


def _stage_predictors(run: Run, metrics: dict, seed: int) -> None:
    metrics.setdefault("predictors", {}).update(_fit_predictors(run, seed))
    run._save_models()
    if run.models.lat_pred is not None:  # feasibility is judged by the latency model: its fastest architecture
        d = run.data
        pool = torch.cat([d["idx"], d["fastest_idx"].view(1, -1), torch.zeros_like(d["fastest_idx"]).view(1, -1)])
        lat = run.models.latency(pool)
        d["fastest_idx"] = pool[int(torch.argmin(lat))].clone()
        # its latency as generate() computes it (alone: float32 results can depend on the batch)
        fastest_ms = float(run.models.latency(d["fastest_idx"].view(1, -1))[0])
        run.metrics["min_latency_ms"] = metrics["min_latency_ms"] = fastest_ms
        run._save_data()


def _fit_ranker(run: Run, seed: int) -> dict[str, float]:
    cfg, space = run.config, run.space
    lo, hi = cfg.budgets
    rb = cfg.ranker_budgets or tuple(np.linspace(lo, hi, 5).tolist())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 5)
        ranker = ParetoRanker(space.encoding_size, cfg.budgets, cfg.ranker_mode, rb if cfg.ranker_mode == "onehot" else None)
    g = torch.Generator().manual_seed(seed + 6)
    pool = canonical(space, random_indices(space, cfg.ranker_pool, g))
    m_idx = run.data["idx"]
    idx = torch.cat([m_idx, pool])
    acc = torch.cat([run.data["accuracy"].double(), run.models.pessimistic(pool)])
    lat = run.models.latency(idx)
    x = space.encode_indices(idx).numpy()
    res = ranker.fit(x, acc.numpy(), lat.numpy(), steps=cfg.ranker_steps, seed=seed + 7,
                     top_pairs=cfg.ranker_top_pairs)
    run.ranker = ranker
    torch_save_atomic(ranker.to_state(), run.dir / "ranker.pt")
    return res


def _stage_ranker(run: Run, metrics: dict, seed: int) -> None:
    metrics["ranker"] = _fit_ranker(run, seed)


def _reward_fn(run: Run):
    cfg, space, models = run.config, run.space, run.models

    def reward(idx: torch.Tensor, budgets: torch.Tensor) -> torch.Tensor:
        if cfg.reward == "pareto":
            return run.ranker(space.encode_indices(idx), budgets).double()
        acc = models.pessimistic(idx) / 100.0  # the rewards take a fraction
        lat = models.latency(idx)
        b = budgets.double()
        return mnas_reward(acc, lat, b) if cfg.reward == "mnas" else tunas_reward(acc, lat, b)

    return reward


def _stage_generator(run: Run, metrics: dict, steps: int, tag: str, progress: bool, seed_offset: int = 0) -> None:
    """Policy gradient for ``steps`` steps, checkpointing every ``checkpoint_every`` (resumable)."""
    cfg = run.config
    gen = run.generator if run.generator is not None and tag != "generator" else run._new_generator()
    opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr)
    rng = torch.Generator().manual_seed(cfg.seed + 9 + seed_offset)
    ckpt = run.dir / f"{tag}.ckpt.pt"
    start, curve = 0, []
    if ckpt.exists():
        st = run._load(ckpt.name)
        gen.load_state_dict(st["model"])
        opt.load_state_dict(st["optim"])
        rng.set_state(st["rng"])
        start, curve = int(st["step"]), list(st["curve"])
    reward = _reward_fn(run)
    lo, hi = cfg.budgets
    nb, m = cfg.budgets_per_step, cfg.samples_per_budget
    gen.train()
    bar = _progress(steps, start, progress, f"pnag train ({tag})")
    for step in range(start, steps):
        b = lo + (hi - lo) * torch.rand(nb, generator=rng)
        bud = b.repeat_interleave(m)
        idx, logp, ent = gen.sample(bud, generator=rng)
        with torch.no_grad():
            r = reward(idx, bud).view(nb, m)
            base = (r.sum(1, keepdim=True) - r) / (m - 1)  # leave-one-out mean of the same budget
            adv = (r - base).flatten()
            adv = (adv / (adv.std() + 1e-8)).float()
        loss = -(adv * logp).mean() - cfg.entropy * ent.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(float(r.mean()))
        bar.update(1)
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps:
            torch_save_atomic({"model": gen.state_dict(), "optim": opt.state_dict(), "rng": rng.get_state(),
                               "step": step + 1, "curve": curve}, ckpt)
    bar.close()
    gen.eval()
    run.generator = gen
    torch_save_atomic({"model": gen.state_dict()}, run.dir / "generator.pt")
    metrics.setdefault("reward_curve", {})[tag] = [float(np.mean(curve[i:i + 10])) for i in range(0, len(curve), 10)]
    if ckpt.exists():
        ckpt.unlink()


def _eval_proposals(run: Run, budgets: np.ndarray, seed: int) -> torch.Tensor:
    """Look-up proposals ``(len(budgets), K', T)`` per budget: the generator's greedy proposal and
    ``eval_candidates - 1`` draws (at ``eval_temperature``), plus every one-decision neighbour of
    the greedy proposal and of the ``eval_parents`` most accurate measured architectures within
    the budget. The neighbours let the loop climb from what it has measured: the generator is
    trained on pessimistic scores, so on its own it proposes architectures like the measured ones
    rather than better ones."""
    cfg = run.config
    cand = run.candidates(budgets, cfg.eval_candidates, seed=seed, temperature=cfg.eval_temperature)
    return run.with_neighbours(budgets, cand, cfg.eval_parents)


def _stage_eval(run: Run, metrics: dict, progress: bool) -> None:
    """Closed loop: look up the true accuracy of up to ``eval_budget`` proposals (:func:`_eval_proposals`)."""
    cfg, space = run.config, run.space
    measure = run.acc_source.measure
    if measure is None:
        raise PnagError(f"--eval-budget: {cfg.eval_budget}; the accuracy source {cfg.accuracy!r} cannot measure new "
                        "architectures; allowed: 0 with this source (nb201:* sources can)")
    st = run._state()
    rounds = min(cfg.eval_rounds, cfg.eval_budget)
    per = [cfg.eval_budget // rounds + (1 if r < cfg.eval_budget % rounds else 0) for r in range(rounds)]
    lo, hi = cfg.budgets
    hist = metrics.setdefault("eval", [])
    for r in range(int(st.get("eval_round", 0)), rounds):
        seed = cfg.seed + 100 * (r + 1)
        budgets = np.linspace(max(lo, run.min_latency_ms), hi, per[r])
        if int(st.get("eval_measured", 0)) < r + 1:  # not yet measured in this round (resume-safe)
            cand = _eval_proposals(run, budgets, seed).reshape(-1, run.generator.T)
            mean, std = run.models.accuracy(cand)
            ucb = (mean + cfg.optimism * std).view(len(budgets), -1)
            lat = run.models.latency(cand).view(len(budgets), -1)
            known = set(_keys(run.data["idx"]))
            ck = _keys(cand)
            chosen: list[int] = []
            picked: set[bytes] = set()
            K = ucb.shape[1]
            orders = []
            for i, b in enumerate(budgets):  # per budget: unmeasured feasible proposals, most promising first
                s = torch.where(lat[i] <= b, ucb[i], torch.tensor(-math.inf, dtype=torch.float64))
                orders.append([j for j in torch.argsort(s, descending=True).tolist() if math.isfinite(float(s[j]))])
            pos = [0] * len(budgets)
            progress_made = True
            while len(chosen) < per[r] and progress_made:  # round robin over budgets until the quota is spent
                progress_made = False
                for i in range(len(budgets)):
                    while pos[i] < len(orders[i]) and len(chosen) < per[r]:
                        j = i * K + orders[i][pos[i]]
                        pos[i] += 1
                        if ck[j] not in known and ck[j] not in picked:
                            picked.add(ck[j])
                            chosen.append(j)
                            progress_made = True
                            break
            if chosen:
                new_idx = cand[chosen]
                archs = [space.from_indices(x) for x in new_idx.tolist()]
                new_acc = torch.as_tensor(np.asarray(measure(archs), dtype=np.float64))
                run.data["idx"] = torch.cat([run.data["idx"], new_idx])
                run.data["accuracy"] = torch.cat([run.data["accuracy"], new_acc])
                run.data["latency"] = torch.cat([run.data["latency"], run.lat_source(new_idx).double()
                                                 if run.models.lat_pred is None else run.models.latency(new_idx)])
                pred_mean = mean[chosen]
                hist.append({"round": r + 1, "measured": len(chosen), "mean_true": float(new_acc.mean()),
                             "mean_predicted": float(pred_mean.mean())})
            run._save_data()
            write_json_atomic(run.dir / "metrics.json", metrics)
            run._mark("eval-measured", eval_measured=r + 1)
        fit = _fit_predictors(run, seed=cfg.seed + r + 1)
        run._save_models()
        if cfg.reward == "pareto":
            _fit_ranker(run, seed=cfg.seed + r + 1)
        _stage_generator(run, metrics, max(1, cfg.steps // 4), tag=f"eval{r + 1}", progress=progress,
                         seed_offset=1000 * (r + 1))
        metrics.setdefault("predictors_after_eval", {})[str(r + 1)] = fit
        write_json_atomic(run.dir / "metrics.json", metrics)
        run._mark("eval-round", eval_round=r + 1)


__all__ = ["TrainConfig", "Generation", "Run", "train", "make_space", "random_indices", "canonical", "neighbours",
           "SPACES"]
