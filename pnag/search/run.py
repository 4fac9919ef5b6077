"""A run directory: its files, their format version, and serving budgets from it.

Files (each written atomically): ``config.json`` (format name and version, then the
:class:`~pnag.search.config.TrainConfig`), ``state.json`` (stages done), ``metrics.json``,
``data.pt`` (the measured table), ``predictors.pt``, ``ranker.pt``, ``generator.pt``, and a
``*.ckpt.pt`` while a stage is under way. Every file is checked when read: a damaged or foreign file
is reported by name, with what to do.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .. import _io
from .._io import torch_save_atomic, write_json_atomic
from ..errors import BudgetError, DataError, PnagError
from ..predict.mlp import MLPPredictor
from ..predict.ranker import ParetoRanker
from .. import sources
from .archive import BudgetArchive
from .choice import ORIGIN_CODE, ORIGINS, best_feasible, calibration_shift, monotone_sources
from .config import TrainConfig, make_space
from .generator import Generator
from .indices import canonical, index_keys, neighbours

RUN_FORMAT = "pnag-run"
RUN_VERSION = 2  # 2: skip-token generator, one-scale ranker labels, format field (1: no field)
ANSWER_MODES = ("pnag", "generator")


@dataclass(frozen=True)
class Generation:
    """One architecture for one budget. Accuracy in %, latency in ms, MAdds in millions.

    ``origin``: what proposed it (``generator``: one of the generator's draws; ``neighbour``: one
    decision away from the generator's greedy draw or a measured architecture; ``archive``: the best
    that the generator stage evaluated within the budget (:mod:`pnag.search.archive`); ``refined``: a
    short evolution from the candidates (:meth:`Run.refine`); ``measured``: the measured table; ``fastest``: the fastest
    architecture known, when nothing else fits). ``measured``: its accuracy is a measured value;
    otherwise ``predicted_accuracy`` is the accuracy model's estimate.
    """

    budget: float
    arch: str
    predicted_accuracy: float
    predicted_latency_ms: float
    madds_m: float | None
    origin: str
    measured: bool = False
    resolution: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RunModels:
    """Accuracy / latency models of a run, vectorised on decision indices."""

    def __init__(self, space, config: TrainConfig, acc_model=None, acc_pred: MLPPredictor | None = None,
                 lat_exact=None, lat_pred: MLPPredictor | None = None):
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


def _damaged(run_dir: Path, name: str, why: str) -> DataError:
    return DataError(f"run {str(run_dir)!r}: {name} is damaged ({why}); re-run the pnag train command with -o "
                     f"{str(run_dir)!r} removed (or another -o) to rebuild it")


def read_json_file(run_dir: Path, name: str, kind: type, default: Any = None) -> Any:
    """A JSON file of the run, checked to hold a ``kind`` value (``default`` when absent)."""
    p = run_dir / name
    if not p.exists():
        return default
    value = _io.read_json_file(p, f"run {str(run_dir)!r}: {name} is damaged",
                               f"the file pnag train wrote; re-run the pnag train command with -o {str(run_dir)!r} "
                               "removed (or another -o) to rebuild it")
    if not isinstance(value, kind):
        raise _damaged(run_dir, name, f"a JSON {type(value).__name__}, not a {kind.__name__}")
    return value


def config_document(config: TrainConfig) -> dict[str, Any]:
    """What ``config.json`` holds."""
    return {"format": RUN_FORMAT, "version": RUN_VERSION, "config": config.to_json()}


def read_config(run_dir: Path) -> TrainConfig:
    """The run's configuration; a clear error for an old, foreign or damaged ``config.json``."""
    doc = read_json_file(run_dir, "config.json", dict)
    if doc is None:
        raise DataError(f"--run: {str(run_dir)!r} is not a training run (no config.json); allowed: a directory "
                        "written by pnag train -o")
    if doc.get("format") != RUN_FORMAT:
        if "space" in doc and "budgets" in doc:
            raise DataError(f"run {str(run_dir)!r}: written by an older pnag (run format 1, no version field); this "
                            f"pnag reads run format {RUN_VERSION}: re-run the same pnag train command with another -o")
        raise _damaged(run_dir, "config.json", f"format {doc.get('format')!r}, not {RUN_FORMAT!r}")
    if doc.get("version") != RUN_VERSION:
        raise DataError(f"run {str(run_dir)!r}: run format version {doc.get('version')!r}; this pnag reads version "
                        f"{RUN_VERSION}: re-run the same pnag train command with another -o")
    try:
        return TrainConfig.from_json(doc.get("config"))
    except (PnagError, TypeError, ValueError) as exc:
        raise _damaged(run_dir, "config.json", str(exc)) from None


_DATA_KEYS = {"idx": torch.int64, "accuracy": torch.float64, "latency": torch.float64, "fastest_idx": torch.int64}


class Run:
    """A trained (or partly trained) run directory."""

    def __init__(self, run_dir: Path, config: TrainConfig, accuracy: Any = None, latency: Any = None):
        self.dir = Path(run_dir)
        self.config = config
        self.space = make_space(config)
        # the sources: their specs, or the Python objects the run was given in their place (pnag.sources)
        self.accuracy = config.accuracy if accuracy is None else accuracy
        self.latency = config.latency if latency is None else latency
        self._acc_source = None
        self._lat_source = None
        self.models: RunModels | None = None
        self.ranker: ParetoRanker | None = None
        self.generator: Generator | None = None
        self.archive: BudgetArchive | None = None
        self.resolution_note = ""  # which input resolutions the run searches and why (set by train())
        self._rows_of: torch.Tensor | None = None  # the measured table _rows was built for
        self._rows: dict[bytes, int] = {}
        self.data: dict[str, torch.Tensor] = {}
        self.metrics: dict[str, Any] = {}

    # sources are resolved lazily (they may read data files)
    @property
    def acc_source(self):
        if self._acc_source is None:
            self._acc_source = sources.get_accuracy_source(self.accuracy, self.space)
        return self._acc_source

    @property
    def lat_source(self):
        if self._lat_source is None:
            self._lat_source = sources.VectorLatency(self.space,
                                                     sources.get_latency_source(self.latency, self.space))
        return self._lat_source

    # -- persistence ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        st = read_json_file(self.dir, "state.json", dict, {"done": []})
        if not isinstance(st.get("done"), list) or not all(isinstance(s, str) for s in st["done"]):
            raise _damaged(self.dir, "state.json", "no list of stages done")
        return st

    def mark(self, stage: str, **extra: Any) -> None:
        st = self.state()
        if stage not in st["done"]:
            st["done"].append(stage)
        st.update(extra)
        write_json_atomic(self.dir / "state.json", st)

    def save_data(self) -> None:
        torch_save_atomic({k: v.clone() for k, v in self.data.items()}, self.dir / "data.pt")

    def save_models(self) -> None:
        m = self.models
        torch_save_atomic({"acc": m.acc_pred.state_dict() if m.acc_pred else None,
                           "lat": m.lat_pred.state_dict() if m.lat_pred else None}, self.dir / "predictors.pt")

    def save_metrics(self, metrics: dict[str, Any]) -> None:
        write_json_atomic(self.dir / "metrics.json", metrics)

    def load_file(self, name: str, keys: Sequence[str] = ()) -> Any:
        """A ``.pt`` file of the run (``weights_only``), checked to be a dict with ``keys``."""
        p = self.dir / name
        if not p.exists():
            raise DataError(f"run {str(self.dir)!r}: {name} is missing; the run is incomplete (re-run the same pnag "
                            "train command to resume)")
        try:
            with warnings.catch_warnings():  # a damaged file makes torch warn before it raises: one message only
                warnings.simplefilter("ignore")
                obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds for a damaged file
            first = (str(exc).splitlines() or [""])[0][:120]
            raise _damaged(self.dir, name, f"{type(exc).__name__}: {first}" if first else type(exc).__name__) from None
        if not isinstance(obj, dict):
            raise _damaged(self.dir, name, f"holds a {type(obj).__name__}, not a dict")
        missing = [k for k in keys if k not in obj]
        if missing:
            raise _damaged(self.dir, name, f"no {', '.join(missing)}")
        return obj

    @classmethod
    def load(cls, run_dir: str | Path, require_done: bool = True, accuracy: Any = None, latency: Any = None) -> "Run":
        """Open a run directory written by :func:`pnag.search.train` (``accuracy`` / ``latency``: the
        Python objects it was trained with in place of specs, where it was)."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise DataError(f"--run: {str(run_dir)!r} is not a training run (not a directory); allowed: a directory "
                            "written by pnag train -o")
        run = cls(run_dir, read_config(run_dir), accuracy, latency)
        done = run.state()["done"]
        if require_done and "done" not in done:
            raise DataError(f"--run: {str(run_dir)!r} is an unfinished run (stages done: {', '.join(done) or 'none'}); "
                            "re-run the same pnag train command to resume it")
        run.restore(done)
        return run

    def restore(self, done: Sequence[str]) -> None:
        """Load the saved state of the stages in ``done``."""
        if "data" in done:
            data = self.load_file("data.pt", tuple(_DATA_KEYS))
            T = len(self.space.decision_choices)
            for k, dtype in _DATA_KEYS.items():
                v = data[k]
                if not isinstance(v, torch.Tensor) or v.dtype != dtype:
                    raise _damaged(self.dir, "data.pt", f"{k} is not a {dtype} tensor")
            n = len(data["idx"])
            if data["idx"].shape != (n, T) or data["accuracy"].shape != (n,) or data["latency"].shape != (n,) \
                    or data["fastest_idx"].shape != (T,):
                raise _damaged(self.dir, "data.pt", f"tensor shapes do not describe {T}-decision architectures")
            self.data = {k: data[k] for k in _DATA_KEYS}
            if isinstance(data.get("eval_measured"), torch.Tensor) and data["eval_measured"].numel() == 1:
                self.data["eval_measured"] = data["eval_measured"]  # look-up rounds done (pnag.search.active)
        if "predictors" in done:
            st = self.load_file("predictors.pt", ("acc", "lat"))
            try:
                acc_pred = MLPPredictor.from_state_dict(st["acc"], self.space) if st["acc"] else None
                lat_pred = MLPPredictor.from_state_dict(st["lat"], self.space) if st["lat"] else None
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise _damaged(self.dir, "predictors.pt", type(exc).__name__) from None
            acc_model = self.acc_source.model if acc_pred is None else None
            if acc_pred is None and acc_model is None:
                raise _damaged(self.dir, "predictors.pt", "no accuracy predictor for a source that needs one")
            lat_exact = None if lat_pred is not None else self.lat_source
            self.models = RunModels(self.space, self.config, acc_model, acc_pred, lat_exact, lat_pred)
        if "ranker" in done and self.config.reward == "pareto":
            self.ranker = ParetoRanker.from_state_dict(self.load_file("ranker.pt", ("config", "weights")))
        if "generator" in done:
            self.generator = self.new_generator()
            st = self.load_file("generator.pt", ("model",))
            try:
                self.generator.load_state_dict(st["model"])
                self.archive = BudgetArchive.from_state_dict(st["archive"]) if "archive" in st else None
            except (RuntimeError, TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
                raise _damaged(self.dir, "generator.pt", f"{type(exc).__name__}: weights of another shape") from None
            self.generator.eval()
        self.metrics = read_json_file(self.dir, "metrics.json", dict, {})
        if "done" in done and not isinstance(self.metrics.get("min_latency_ms"), (int, float)):
            raise _damaged(self.dir, "metrics.json", "no min_latency_ms")

    def new_generator(self) -> Generator:
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
            if not np.isfinite(x) or x < lo - 1e-9 or x > hi + 1e-9:
                raise BudgetError(f"budget: {x:g} ms is outside the trained range; allowed: {floor:g}..{hi:g} ms")
            if x < fastest:
                raise BudgetError(f"budget: {x:g} ms is below the fastest architecture ({fastest:.4g} ms); "
                                  f"allowed: {fastest:.4g}..{hi:g} ms")
        return b

    # -- candidates -----------------------------------------------------------------------------
    def measured_latency(self) -> torch.Tensor:
        """Latency (ms) of the measured table under the run's latency model."""
        m_idx = self.data["idx"]
        return self.data["latency"].double() if self.models.lat_pred is None else self.models.latency(m_idx)

    @torch.no_grad()
    def candidates(self, budgets: Sequence[float], samples: int = 1, seed: int = 0,
                   temperature: float = 1.0) -> torch.Tensor:
        """Generator proposals ``(len(budgets), samples, T)``: the greedy one, then ``samples - 1`` draws."""
        b = torch.as_tensor(np.asarray(budgets, dtype=np.float32))
        greedy, _, _ = self.generator.sample(b, greedy=True)
        out = [greedy[:, None, :]]
        if samples > 1:
            g = torch.Generator().manual_seed(seed)
            drawn, _, _ = self.generator.sample(b.repeat_interleave(samples - 1), generator=g, temperature=temperature)
            out.append(drawn.view(len(b), samples - 1, -1))
        T = self.generator.T
        return canonical(self.space, torch.cat(out, 1).reshape(-1, T)).view(len(b), -1, T)

    @torch.no_grad()
    def with_neighbours(self, budgets: Sequence[float], cand: torch.Tensor, parents: int) -> torch.Tensor:
        """``cand (B, K, T)`` plus, per budget, every one-decision neighbour of its first candidate
        (the generator's greedy proposal) and of the ``parents`` most accurate measured
        architectures within the budget: ``(B, K + K', T)`` (short rows padded with repeats)."""
        if parents <= 0:
            return cand
        m_idx, m_acc = self.data["idx"], self.data["accuracy"].double()
        m_lat = self.measured_latency()
        rows = []
        for i, b in enumerate(np.asarray(budgets, dtype=np.float64).tolist()):
            ok = torch.nonzero(m_lat <= b + 1e-9).flatten()
            top = ok[torch.argsort(m_acc[ok], descending=True)[:parents]]
            rows.append(neighbours(self.space, torch.cat([cand[i, :1], m_idx[top]])))
        n = max(len(r) for r in rows)
        pad = [torch.cat([r, r[:1].expand(n - len(r), -1)]) if len(r) < n else r for r in rows]
        return torch.cat([cand, torch.stack(pad)], 1)

    # -- the objective --------------------------------------------------------------------------
    def estimates(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """For rows ``idx (N, T)``: the accuracy estimate (% : measured where measured, else the
        predicted mean), the base score (the estimate, less ``choice_pessimism`` x spread where
        predicted), ``predicted`` (bool) and latency (ms, the run's latency model)."""
        mean, std = self.models.accuracy(idx)
        lookup = self._measured_rows()
        hit = torch.tensor([lookup.get(k, -1) for k in index_keys(idx)], dtype=torch.long)
        known = hit >= 0
        m_acc = self.data["accuracy"].double()
        est = torch.where(known, m_acc[hit.clamp_min(0)], mean)
        base = torch.where(known, est, mean - self.config.choice_pessimism * std)
        return est, base, ~known, self.models.latency(idx)

    def objective(self, idx: torch.Tensor, budgets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The run's objective of rows ``idx (N, T)`` under each budget (ms) of ``budgets (G,)``:
        ``(N, G)`` scores (feasibility not applied) and latency ``(N,)`` ms."""
        _, base, predicted, lat = self.estimates(idx)
        return base[:, None] + predicted.double()[:, None] * self.shifts(budgets.double())[None, :], lat

    def _measured_rows(self) -> dict[bytes, int]:
        """Row of each measured architecture by its key, built once per measured table (the generator
        stage asks for it at every step; the eval loop replaces the table when it adds rows)."""
        idx = self.data["idx"]
        if self._rows_of is not idx:
            self._rows_of, self._rows = idx, {k: i for i, k in enumerate(index_keys(idx))}
        return self._rows

    def shifts(self, budgets: torch.Tensor) -> torch.Tensor:
        """The calibration shift (points, <= 0) of unmeasured candidates per budget (ms)."""
        pred = self.models.acc_pred if self.models is not None else None
        return calibration_shift(budgets, self.measured_latency(), self.data["accuracy"],
                                 None if pred is None else pred.oob_pred, self.config.choice_calibration)

    @torch.no_grad()
    def choose(self, budgets: Sequence[float], cand: torch.Tensor, origin: torch.Tensor,
               include_table: bool = True) -> dict[str, torch.Tensor]:
        """Per budget the best feasible of ``cand (B, K, T)`` (with ``origin (B, K)`` codes of
        :data:`~pnag.search.choice.ORIGINS`), the measured table (``include_table``) and the fastest
        architecture, by the run's objective. Returns ``idx (B, T)``, ``accuracy`` (%), ``score``,
        ``latency`` (ms), ``measured`` (bool) and ``origin`` (codes)."""
        B, K, T = cand.shape
        b = torch.as_tensor(np.asarray(budgets, dtype=np.float64))
        fast = self.data["fastest_idx"].view(1, T)
        parts = [cand.reshape(-1, T), fast]
        own = [torch.arange(B).repeat_interleave(K), torch.full((1,), -1)]
        codes = [origin.reshape(-1), torch.full((1,), ORIGIN_CODE["fastest"])]
        if include_table:
            m_idx = self.data["idx"]
            parts.insert(1, m_idx)
            own.insert(1, torch.full((len(m_idx),), -1))
            codes.insert(1, torch.full((len(m_idx),), ORIGIN_CODE["measured"]))
        all_idx, owner, all_origin = torch.cat(parts), torch.cat(own), torch.cat(codes)
        est, base, predicted, lat = self.estimates(all_idx)
        shift = self.shifts(b)
        scores = base[None, :] + shift[:, None] * predicted[None, :]
        allowed_ = (owner[None, :] == torch.arange(B)[:, None]) | (owner[None, :] < 0)
        best = best_feasible(scores, lat, b, allowed_, fallback=len(all_idx) - 1)
        # monotone: each budget may serve a smaller budget's answer that its own objective rates higher
        obj = base[best][None, :] + shift[:, None] * predicted[best][None, :]
        src = best[monotone_sources(b, obj)]
        return {"idx": all_idx[src], "accuracy": est[src], "score": scores.gather(1, src[:, None]).squeeze(1),
                "latency": lat[src], "measured": ~predicted[src], "origin": all_origin[src]}

    @torch.no_grad()
    def refine(self, budgets: Sequence[float], cand: torch.Tensor, chosen: dict[str, torch.Tensor],
               generations: int) -> dict[str, torch.Tensor]:
        """Per budget a short evolution (once-for-all's operators, population 100, ``generations``
        generations) under the run's objective, started from ``cand (B, K, T)``, the chosen answer and the
        archive's elites within the budget;
        its best replaces the answer when the objective rates it higher (origin ``refined``)."""
        from .baselines import EVOLUTION_PEER, evolution_queries, evolutionary_search

        if generations <= 0:
            return chosen
        peer = EVOLUTION_PEER
        q = evolution_queries(peer["population"], generations, peer["parent_ratio"])
        rows = []
        for i, b in enumerate(np.asarray(budgets, dtype=np.float64).tolist()):
            bt = torch.tensor([b], dtype=torch.float64)

            def score(idx: np.ndarray) -> np.ndarray:
                return self.objective(torch.from_numpy(idx), bt)[0][:, 0].numpy()

            def latency(idx: np.ndarray) -> np.ndarray:
                return self.models.latency(torch.from_numpy(idx)).numpy()

            start = [chosen["idx"][i:i + 1], cand[i]]
            if self.archive is not None:  # the archive's front up to this budget: diverse starting points
                keep = self.archive.filled & (self.archive.latency <= b + 1e-9)
                start.append(self.archive.idx[keep])
            start = torch.cat(start).numpy()
            r = evolutionary_search(self.space, score, latency, b, q, population=peer["population"],
                                    parent_ratio=peer["parent_ratio"], mutation_ratio=peer["mutation_ratio"],
                                    mutate_prob=peer["mutate_prob"], seed=i, initial=start)
            rows.append(torch.as_tensor(np.asarray(r.indices), dtype=torch.long))
        found = torch.stack(rows)[:, None, :]
        both = torch.cat([chosen["idx"][:, None, :], found], 1)
        origin = torch.cat([chosen["origin"][:, None], torch.full((len(rows), 1), ORIGIN_CODE["refined"])], 1)
        return self.choose(budgets, both, origin, include_table=False)

    def generate(self, budgets: Sequence[float] | float, samples: int = 1, seed: int = 0,
                 mode: str = "pnag") -> list[Generation]:
        """For each budget (ms) the chosen architecture.

        ``mode="pnag"`` (default): the best, by the run's objective, of ``samples`` generator draws (the
        greedy one first), one-decision neighbours of the greedy draw and of the best measured
        architectures (``choice_parents``), the budget archive's elite (everything the generator stage
        evaluated), the measured table and the fastest architecture, then
        a short evolution per budget from those (``refine_generations``; :meth:`refine`). ``mode="generator"``: the generator's own answer, the
        best of its ``samples`` draws by the same objective (the fastest architecture if none fits).
        Answers are monotone in the budget among the budgets of one call (:mod:`pnag.search.choice`).
        """
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise PnagError(f"--samples: {samples!r}; allowed: an integer >= 1")
        if mode not in ANSWER_MODES:
            raise PnagError(f"answer mode: {mode!r} is not known; allowed: {', '.join(ANSWER_MODES)}")
        b = self.check_budgets(np.atleast_1d(np.asarray(budgets, dtype=np.float64)))
        if self.generator is None or self.models is None:
            raise DataError(f"run {self.dir}: no trained generator")
        cand = self.candidates(b, samples, seed)
        origin = torch.full(cand.shape[:2], ORIGIN_CODE["generator"])
        if mode == "pnag":
            wide = self.with_neighbours(b, cand, self.config.choice_parents)
            origin = torch.cat([origin, torch.full((len(b), wide.shape[1] - cand.shape[1]),
                                                   ORIGIN_CODE["neighbour"])], 1)
            if self.archive is not None:  # the archive's best within each budget
                bt = torch.as_tensor(b)
                elite, _ = self.archive.elites(bt, self.shifts(bt))
                wide = torch.cat([wide, elite[:, None, :]], 1)
                origin = torch.cat([origin, torch.full((len(b), 1), ORIGIN_CODE["archive"])], 1)
            chosen = self.refine(b, wide, self.choose(b, wide, origin), self.config.refine_generations)
        else:
            chosen = self.choose(b, cand, origin, include_table=False)
        out = []
        for i, x in enumerate(b.tolist()):
            arch = self.space.from_indices(chosen["idx"][i].tolist())
            out.append(Generation(budget=float(x), arch=self.space.format(arch),
                                  predicted_accuracy=float(chosen["accuracy"][i]),
                                  predicted_latency_ms=float(chosen["latency"][i]), madds_m=_madds_m(arch),
                                  origin=ORIGINS[int(chosen["origin"][i])], measured=bool(chosen["measured"][i]),
                                  resolution=getattr(arch, "resolution", None)))
        return out


def _madds_m(arch) -> float | None:
    if getattr(arch, "space", None) != "mbv3":
        return None
    from ..nn.cost import arch_cost

    return round(arch_cost(arch).madds_m, 3)


__all__ = ["Run", "RunModels", "Generation", "RUN_VERSION", "ANSWER_MODES", "read_config", "config_document"]
