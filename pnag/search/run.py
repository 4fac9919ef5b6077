"""A trained run, opened from its directory, and serving budgets from it (:meth:`Run.generate`). Its files:
:mod:`pnag.search.run_files`; an answer: :class:`~pnag.search.answers.Generation`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .._io import torch_save_atomic, write_json_atomic
from ..errors import BudgetError, DataError, PnagError
from ..predict.mlp import MLPPredictor
from ..predict.ranker import ParetoRanker
from .. import sources
from .answers import Generation, Generations, answers_of
from .archive import BudgetArchive
from . import devices
from .choice import ORIGIN_CODE, best_feasible, calibration_rows, calibration_shift, monotone_sources
from .config import TrainConfig, latency_specs, make_space
from .generator import Generator
from .indices import canonical, index_keys, neighbours
from .models import RunModels
from .run_files import (RUN_VERSION, config_document, damaged, load_data, load_devices, load_pt_file,
                        read_config, read_json_file)

ANSWER_MODES = ("pnag", "generator")


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
        self._device_latency: dict[int, Any] = {}
        # device-conditioned runs (pnag.search.devices): the devices as the run sees them, the reference
        # architectures of their signatures, one archive per device
        self.profiles: list[devices.DeviceProfile] = []
        self.reference: torch.Tensor | None = None
        self.archives: list[BudgetArchive | None] = []
        self.table_latency: torch.Tensor | None = None  # (N, D) ms: the measured table on each device
        self._own_profile: devices.DeviceProfile | None = None
        self.served: str | None = None  # a view of the run for one device (for_device): that device's name
        self.profile: devices.DeviceProfile | None = None  # ... its profile, and whether the run was trained on it
        self.trained_on = True
        self.models: RunModels | None = None
        self.ranker: ParetoRanker | None = None
        self.generator: Generator | None = None
        self._archive: BudgetArchive | None = None
        self._archive_later: Callable[[], BudgetArchive | None] | None = None  # builds it on first use (a view)
        self.resolution_note = ""  # which input resolutions the run searches and why (set by train())
        self.search_outputs = None  # what pnag.search wrote beside the run (pnag.search.main_job.SearchOutputs)
        self._rows_of: torch.Tensor | None = None  # the measured table _rows was built for
        self._rows: dict[bytes, int] = {}
        self.data: dict[str, torch.Tensor] = {}
        self.metrics: dict[str, Any] = {}

    @property
    def archive(self) -> BudgetArchive | None:
        """The budget archive (:mod:`pnag.search.archive`); a view of a device builds its own on first use
        (:func:`pnag.search.devices.serving_view`)."""
        if self._archive_later is not None:
            make, self._archive_later = self._archive_later, None
            self._archive = make()
        return self._archive

    @archive.setter
    def archive(self, value: BudgetArchive | None) -> None:
        self._archive, self._archive_later = value, None

    def archive_later(self, make: Callable[[], BudgetArchive | None]) -> None:
        """Build the archive with ``make()`` when it is first read (not at all if it never is)."""
        self._archive_later = make

    # sources are resolved lazily (they may read data files)
    @property
    def acc_source(self):
        if self._acc_source is None:
            self._acc_source = sources.get_accuracy_source(self.accuracy, self.space)
        return self._acc_source

    @property
    def lat_source(self):
        """The latency source (vectorised) of the run's device (the first, of a run of several)."""
        if self._lat_source is None:
            self._lat_source = self.device_latency(0)
        return self._lat_source

    @property
    def latencies(self) -> tuple:
        """The latency sources, one per device: specs, or the objects the run was given in their place."""
        return latency_specs(self.latency)

    def device_latency(self, d: int):
        """Device ``d``'s latency source, vectorised (:class:`pnag.sources.VectorLatency`)."""
        if d not in self._device_latency:
            spec = self.latencies[d]
            self._device_latency[d] = devices.device_latency(spec, self.space) if self.config.device_conditioned \
                else sources.VectorLatency(self.space, sources.get_latency_source(spec, self.space))
        return self._device_latency[d]

    def own_profile(self) -> "devices.DeviceProfile":
        """The profile of a run of one device in ms (its quantiles map budgets to other devices)."""
        if self._own_profile is None:
            self._own_profile = devices.own_profile(self)
        return self._own_profile

    def for_device(self, latency: Any = None, archive_from: BudgetArchive | None = None) -> "Run":
        """The run as it serves the device of ``latency`` (a spec or source object; None: its own device):
        itself, or a view of it for that device (:func:`pnag.search.devices.serving_view`; ``archive_from``:
        an earlier view's archive of the same device, whose rows the view's archive starts from)."""
        if self.generator is None or self.models is None:
            raise DataError(f"run {self.dir}: no trained generator")
        return devices.serving_view(self, latency, archive_from)

    def quantile_budgets(self, quantiles: Sequence[float], latency: Any = None) -> np.ndarray:
        """Budgets (ms) at ``quantiles`` (fractions in [0, 1]) of the latency over the space of the device of
        ``latency`` (None: the run's own; :func:`pnag.search.devices.quantile_budgets`)."""
        return devices.quantile_budgets(self, quantiles, latency)

    # -- persistence ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        st = read_json_file(self.dir, "state.json", dict, {"done": []})
        if not isinstance(st.get("done"), list) or not all(isinstance(s, str) for s in st["done"]):
            raise damaged(self.dir, "state.json", "no list of stages done")
        return st

    def mark(self, stage: str, **extra: Any) -> None:
        """Record ``stage`` done in state.json; its checkpoints (:mod:`pnag.search.checkpoint`) are then removed."""
        st = self.state()
        if stage not in st["done"]:
            st["done"].append(stage)
        st.update(extra)
        write_json_atomic(self.dir / "state.json", st)
        for ckpt in self.dir.glob("*.ckpt.pt"):
            ckpt.unlink(missing_ok=True)

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
        return load_pt_file(self.dir, name, keys)

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
            self.data = load_data(self.dir, len(self.space.decision_choices))
            if self.config.device_conditioned:
                self.reference, self.profiles, self.table_latency = load_devices(
                    self.dir, [sources.source_name(s) for s in self.latencies], len(self.space.decision_choices),
                    self.config.device_reference, len(self.data["idx"]))
        if "predictors" in done:
            st = self.load_file("predictors.pt", ("acc", "lat"))
            try:
                acc_pred = MLPPredictor.from_state_dict(st["acc"], self.space) if st["acc"] else None
                lat_pred = MLPPredictor.from_state_dict(st["lat"], self.space) if st["lat"] else None
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise damaged(self.dir, "predictors.pt", type(exc).__name__) from None
            acc_model = self.acc_source.model if acc_pred is None else None
            if acc_pred is None and acc_model is None:
                raise damaged(self.dir, "predictors.pt", "no accuracy predictor for a source that needs one")
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
                self.archives = [BudgetArchive.from_state_dict(a) for a in st.get("archives", [])]
            except (RuntimeError, TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
                raise damaged(self.dir, "generator.pt", f"{type(exc).__name__}: weights of another shape") from None
            self.generator.eval()
        self.metrics = read_json_file(self.dir, "metrics.json", dict, {})
        if "done" in done and not isinstance(self.metrics.get("min_latency_ms"), (int, float)):
            raise damaged(self.dir, "metrics.json", "no min_latency_ms")

    def new_generator(self) -> Generator:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed + 3)
            cond = 1 + self.config.device_reference if self.config.device_conditioned else 1
            return Generator(self.space, self.config.budgets, hidden=self.config.hidden, cond_dim=cond)

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
        (lo, hi), fastest = self.budget_range, self.min_latency_ms
        floor, on = max(lo, fastest), f" on {self.served}" if self.served else ""
        what = "the trained range" if self.trained_on else "the range of its fastest to slowest architecture"
        for x in b:
            if not np.isfinite(x) or x < lo - 1e-9 or x > hi + 1e-9:
                raise BudgetError(f"budget: {x:g} ms{on} is outside {what}; allowed: {floor:g}..{hi:g} ms")
            if x < fastest:
                raise BudgetError(f"budget: {x:g} ms{on} is below the fastest architecture ({fastest:.4g} ms); "
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
        out = [self.generator.draw(b, greedy=True)[:, None, :]]
        if samples > 1:
            g = torch.Generator().manual_seed(seed)
            drawn = self.generator.draw(b.repeat_interleave(samples - 1), generator=g, temperature=temperature)
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

    def _oob(self) -> np.ndarray | None:
        """The accuracy predictor's out-of-bag predictions of the measured table (None without a predictor)."""
        pred = self.models.acc_pred if self.models is not None else None
        return None if pred is None else pred.oob_pred

    def shifts(self, budgets: torch.Tensor) -> torch.Tensor:
        """The calibration shift (points, <= 0) of unmeasured candidates per budget (ms)."""
        return calibration_shift(budgets, self.measured_latency(), self.data["accuracy"], self._oob(),
                                 self.config.choice_calibration)

    def calibration_rows(self, budgets: torch.Tensor, margin: float | None = None) -> torch.Tensor:
        """Rows of the measured table whose residuals make the calibration shift of some budget (ms) of
        ``budgets`` (:func:`~pnag.search.choice.calibration_rows`), sorted; empty where there is no shift.
        ``margin`` (fraction): only rows whose latency is over the budget / (1 + margin), those near its edge."""
        b, m_lat = budgets.double(), self.measured_latency()
        top, valid = calibration_rows(b, m_lat, self._oob(), self.config.choice_calibration)
        if top is None:
            return torch.zeros(0, dtype=torch.long)
        if margin is not None:
            valid = valid & (m_lat[top] > b[:, None] / (1 + margin))
        return torch.unique(top[valid])

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
               generations: int, polish: int = 0) -> dict[str, torch.Tensor]:
        """Per budget a short evolution from the candidates under the run's objective, then ``polish`` rounds
        of hill climbing over one-decision neighbours; what they find replaces the answer when the objective
        rates it higher (origin ``refined``; :mod:`pnag.search.refine`)."""
        from .refine import polished, refined

        return polished(self, budgets, refined(self, budgets, cand, chosen, generations), polish)

    def generate(self, budgets: Sequence[float] | float, samples: int = 1, seed: int = 0,
                 mode: str = "pnag", latency: Any = None, verify: Any = False,
                 offer: torch.Tensor | None = None, max_measurements: int | None = None) -> Generations:
        """For each budget (ms) the chosen architecture, as :class:`~pnag.search.answers.Generations` (a list
        of :class:`Generation`, with ``to_frame()`` and ``to_csv(path)``).

        ``latency``: the device to serve (a spec or a source object), one the run was trained on or a new
        one (:meth:`for_device`); None: the run's own device (a run of several devices needs one). Every
        answer says the device it was chosen for (``Generation.device``).

        ``mode="pnag"`` (default): the best, by the run's objective, of ``samples`` generator draws (the
        greedy one first), one-decision neighbours of the greedy draw and of the best measured
        architectures (``choice_parents``), the budget archive's elite (everything the generator stage
        evaluated; a device served through a view has it grown under its latency first, ``serve_steps``), the
        measured table and the fastest architecture, then a short evolution per budget
        (``refine_generations``) and hill climbing from the answer (``polish_rounds``; :meth:`refine`).
        ``mode="generator"``: the generator's own answer, the best of its ``samples`` draws by the same
        objective (the fastest architecture if none fits).
        Answers are monotone in the budget among the budgets of one call (:mod:`pnag.search.choice`).
        ``verify``: with ``latency`` an ``adapted:FILE`` model, measure the answers on its device until each
        is a measured network within its budget (:mod:`pnag.search.verify`; a latency source in place of True
        measures instead of the model's target; ``max_measurements``: the most networks it measures, default 4 per
        budget, which settle the answers and then search for better ones); ``offer``: decision indices
        ``(M, T)`` offered at every budget beside the candidates (origin ``verified``; mode ``pnag``).
        """
        if verify:
            from .verify import generate_verified

            return generate_verified(self, budgets, latency, samples, seed, mode,
                                     measure=None if verify is True else verify, max_measurements=max_measurements)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise PnagError(f"--samples: {samples!r}; allowed: an integer >= 1")
        if mode not in ANSWER_MODES:
            raise PnagError(f"answer mode: {mode!r} is not known; allowed: {', '.join(ANSWER_MODES)}")
        if self.served is None:
            view = self.for_device(latency)
            if view is not self:
                return view.generate(budgets, samples, seed, mode, offer=offer)
        b = self.check_budgets(np.atleast_1d(np.asarray(budgets, dtype=np.float64)))
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
            if offer is not None and len(offer):
                wide = torch.cat([wide, offer[None].expand(len(b), -1, -1).to(wide.dtype)], 1)
                origin = torch.cat([origin, torch.full((len(b), len(offer)), ORIGIN_CODE["verified"])], 1)
            chosen = self.refine(b, wide, self.choose(b, wide, origin), self.config.refine_generations,
                                 self.config.polish_rounds)
        else:
            chosen = self.choose(b, cand, origin, include_table=False)
        return answers_of(self, b, chosen)


__all__ = ["Run", "RunModels", "Generation", "Generations", "RUN_VERSION", "ANSWER_MODES", "read_config",
           "config_document"]
