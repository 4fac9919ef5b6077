"""The configuration of a training run: one frozen dataclass, checked when built."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import BudgetError, DataError, PnagError, allowed, check_fraction
from ..predict.mlp import TARGETS
from ..predict.ranker import BUDGET_MODES
from .rewards import REWARDS

SPACES = ("mbv3", "nb201")
W10_DATASET = "dataset:ofa-mbv3-w1.0-imagenet"

# integer fields and their minimum (None-able fields are skipped when None)
_INT_MIN = {"steps": 1, "budgets_per_step": 1, "samples_per_budget": 2, "hidden": 1, "ensemble": 1,
            "eval_rounds": 1, "eval_candidates": 1, "checkpoint_every": 1, "ranker_steps": 1, "ranker_pool": 1,
            "predictor_hidden": 1, "predictor_epochs": 1, "train_samples": 2, "latency_samples": 2,
            "eval_budget": 0, "eval_parents": 0, "choice_parents": 0, "choice_calibration": 0, "refine_generations": 0,
            "archive_grid": 2, "archive_per_bin": 1, "archive_offspring": 0, "archive_parents": 0, "polish_rounds": 0,
            "serve_steps": 0, "device_reference": 2, "quantile_samples": 16}
_NUM_MIN0 = ("pessimism", "choice_pessimism", "optimism", "imitation")
_FLAGS = {"train_samples": "--train-samples", "latency_samples": "--latency-samples", "eval_budget": "--eval-budget"}
BUDGET_UNITS = ("ms", "quantile")
# fields added for device-conditioned runs: left out of config.json at their default, so that a run of one
# device and ms budgets writes the file an earlier pnag wrote (and reads)
_DEVICE_FIELDS = {"budget_unit": "ms", "device_reference": 32, "quantile_samples": 4096}
# fields added with the schedules: left out of config.json at these values (what a run before them did), and
# read back as them from a config.json without them
_SCHEDULE_FIELDS = {"schedule": "full", "archive_parents": 0, "polish_rounds": 0}
# The generator stage's settings that a TrainConfig leaves at None are its schedule's. "full": as published
# (and measured on the main job and NB201 with predicted accuracy). "fast": for an exact objective, where the
# accuracy source is itself a model (ofa-predictor, nb201-exact:*) and latency comes from its source: nothing
# is fitted, a ranker would only learn what the objective already says (so the reward is the objective), and
# a query costs ~10 us against ~0.2 ms per generator draw, so the budget archive's evolution gets more of the
# work and the generator less (chosen on MobileNetV3 ofa-predictor x lut:note10 tuning seeds 10-11:
# BENCHMARKS.md, "How the defaults were chosen"). "auto" picks "fast" for an exact objective on MobileNetV3,
# else "full" (on NAS-Bench-201 the fast generator's own answers fall short of their target).
SCHEDULES = {
    "full": {"reward": "pareto", "steps": 200, "hidden": 64, "lr": 3e-3, "samples_per_budget": 8,
             "archive_offspring": 256, "archive_parents": 0, "polish_rounds": 0},
    "fast": {"reward": "objective", "steps": 50, "hidden": 32, "lr": 1e-2, "samples_per_budget": 4,
             "archive_offspring": 1024, "archive_parents": 3, "polish_rounds": 3},
}
_SCHEDULED = tuple(SCHEDULES["full"])


def parse_range(text: str, what: str = "--budgets") -> tuple[float, float]:
    """``LO:HI`` (ms) -> (lo, hi) with 0 < lo < hi."""
    parts = str(text).split(":")
    try:
        if len(parts) != 2 or not str(text).isascii():
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise BudgetError(f"{what}: {text!r} is not a range; allowed: LO:HI in ms, e.g. 10:24") from None
    if not (0 < lo < hi and math.isfinite(hi)):
        raise BudgetError(f"{what}: {text!r}; allowed: LO:HI in ms with 0 < LO < HI")
    return lo, hi


def parse_budget_range(text: str, what: str = "--budgets") -> tuple[tuple[float, float], str]:
    """``LO:HI`` (ms) or ``qLO:qHI`` (quantiles of each device's latency over the space, fractions in
    [0, 1]) -> ((lo, hi), unit) with unit ``ms`` or ``quantile``."""
    s = str(text).strip()
    parts = s.split(":")
    if not any(p.strip().startswith("q") for p in parts):
        try:
            return parse_range(s, what), "ms"
        except BudgetError as exc:
            raise BudgetError(f"{exc}, or qLO:qHI quantiles of each device's latency, e.g. q0.05:q0.95") from None
    try:
        if len(parts) != 2 or not s.isascii() or not all(p.strip().startswith("q") for p in parts):
            raise ValueError
        lo, hi = (float(p.strip()[1:]) for p in parts)
    except ValueError:
        raise BudgetError(f"{what}: {text!r} is not a range; allowed: qLO:qHI quantiles, e.g. q0.05:q0.95, or "
                          "LO:HI in ms") from None
    if not 0 <= lo < hi <= 1:
        raise BudgetError(f"{what}: {text!r}; allowed: qLO:qHI quantiles with 0 <= LO < HI <= 1")
    return (lo, hi), "quantile"


def latency_specs(latency) -> tuple:
    """The latency sources of a run, one per device: a spec ``"SRC1,SRC2,..."`` split at commas, a
    list or tuple as it is (its items specs or Python objects), anything else alone."""
    if isinstance(latency, str):
        parts = tuple(p.strip() for p in latency.split(","))
        return parts if len(parts) > 1 else (latency,)
    if isinstance(latency, (list, tuple)):
        return tuple(p.strip() if isinstance(p, str) else p for p in latency)
    return (latency,)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Latencies and budgets in ms; accuracy in %."""

    space: str = "mbv3"
    accuracy: str = W10_DATASET
    # one latency spec, or several (a tuple, or "SRC1,SRC2,..."): a device-conditioned run (pnag.search.devices)
    latency: str | tuple[str, ...] = "lut:i7-8700k"
    budgets: tuple[float, float] = (10.0, 24.0)  # or a text "LO:HI" (ms) / "qLO:qHI" (quantiles)
    # "ms": budgets is LO:HI in ms (one device); "quantile": LO:HI are quantiles (fractions) of each device's
    # latency over the space (exact where the space is enumerable, else over quantile_samples seeded archs)
    budget_unit: str = "ms"
    width: float | None = None  # mbv3: default 1.0 with the w1.0 dataset, else 1.2
    resolution: int = 224
    # mbv3: the input resolutions searched (one: fixed); None: chosen by train() from what both sources cover
    # (pnag.sources.resolve_resolutions), then stored resolved
    resolutions: tuple[int, ...] | None = None
    train_samples: int | None = None  # None: every record (dataset) or 1000 (nb201 / sampled sources)
    latency_samples: int | None = None  # learn latency from this many architectures instead of the source
    # the generator's reward (pnag.search.rewards.REWARDS); None: the schedule's ("pareto" as published; the
    # objective itself for an exact objective)
    reward: str | None = None
    eval_budget: int = 0
    seed: int = 0
    # "auto" (an exact objective on MobileNetV3: "fast", else "full"), "full" or "fast": what the
    # generator-stage fields left at None below take (SCHEDULES); train() stores the run's config resolved
    schedule: str = "auto"
    steps: int | None = None  # generator steps (full: 200, fast: 50)
    budgets_per_step: int = 16
    samples_per_budget: int | None = None  # full: 8, fast: 4
    lr: float | None = None  # full: 3e-3, fast: 1e-2
    entropy: float = 1e-3
    hidden: int | None = None  # the generator's LSTM width (full: 64, fast: 32)
    predictor_preset: str = "fast"
    predictor_hidden: int | None = None  # None: 64 for mbv3, 128 for nb201 (measured; see BENCHMARKS.md)
    predictor_epochs: int | None = None  # None: 60 for mbv3, 150 for nb201
    # what the accuracy members regress (PredictorConfig.target); None: for an accuracy in %, "log-gap" on
    # nb201 (measured: BENCHMARKS.md, NAS-Bench-201 accuracy predictor) and "log-error" on mbv3 (as before;
    # log-gap not measured there), "identity" for a score (proxies). The latency predictor regresses ms.
    predictor_target: str | None = None
    ensemble: int = 5
    # k of the lower confidence bound mean - k * std that labels every row the ranker learns from
    # (measured and sampled alike, on one scale)
    pessimism: float = 3.0
    # k of the final choice among candidates, mean - k * std; 0 since the calibration below corrects
    # the predictor's over-rating (measured on NB201 tuning seeds 10-49: benchmarks/results/tuning/choice_*.md)
    choice_pessimism: float = 0.0
    choice_parents: int = 4  # generate() also weighs neighbours of this many best measured archs per budget
    # > 0: generate() lowers the scores of unmeasured candidates, per budget, by the accuracy predictor's
    # out-of-bag over-prediction on this many measured archs within the budget (those it rates highest;
    # pnag.search.choice.calibration_shift); 0: off
    choice_calibration: int = 5
    # generate(): generations of a short evolution per budget, started from the candidates (the generator's
    # draws, the archive's elite, the best measured) under the run's objective (origin "refined"); 0: off
    refine_generations: int = 0
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
    # the generator stage saves a checkpoint every this many steps (every stage also at least once a second:
    # pnag.search.checkpoint.CHECKPOINT_SECONDS)
    checkpoint_every: int = 50
    # weight of the generator's imitation of the budget archive's elites (pnag.search.archive); 0: plain
    # policy gradient as published, no archive. 3 measured on tuning seeds (NB201 cifar10/raspi4 seeds
    # 10-13: generator-own regret 0.077 -> 0.016 exact, 0.379 -> 0.339 with 1,000 measured cells)
    imitation: float = 3.0
    archive_grid: int = 64  # latency bins of the archive across the trained range
    archive_per_bin: int = 8  # elites kept per bin
    # offspring of the archive's elites evaluated per generator step (full: 256, fast: 1024)
    archive_offspring: int | None = None
    # parents of those offspring: the best this many of each latency bin; 0: every elite (full: 0, fast: 3)
    archive_parents: int | None = None
    # generate(): rounds of hill climbing from each budget's answer over its one-decision neighbours, under the
    # run's objective (origin "refined"; full: 0, fast: 3)
    polish_rounds: int | None = None
    # generate() on a device served through a view (any device of a run of several latency sources, or a device
    # the run was not trained on): steps of the budget archive's evolution under that device's latency before
    # answering (archive_offspring offspring each; a space small enough to list has every architecture offered
    # instead); 0: the training devices' elites alone, scored on the device. 300 over 0, 50 and 150 on
    # help-ofa-gpu tuning seeds 10-11 (benchmarks/results/tuning/serve_steps_mbv3_*.md)
    serve_steps: int = 300
    # device-conditioned runs (several latency sources, or quantile budgets): the device signature is the
    # device's standardised log latency on this many seeded reference architectures (pnag.search.devices)
    device_reference: int = 32
    quantile_samples: int = 4096  # seeded architectures whose latency gives a device's quantiles (not enumerable)

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise PnagError(f"--space: {self.space!r} is not known; allowed: {allowed(SPACES)}")
        if isinstance(self.budgets, str):  # "LO:HI" in ms or "qLO:qHI" quantiles, as --budgets takes them
            budgets, unit = parse_budget_range(self.budgets, "budgets")
            object.__setattr__(self, "budgets", budgets)
            object.__setattr__(self, "budget_unit", unit)
        if self.budget_unit not in BUDGET_UNITS:
            raise BudgetError(f"budget unit: {self.budget_unit!r} is not known; allowed: {allowed(BUDGET_UNITS)}")
        try:
            lo, hi = (float(b) for b in self.budgets)
        except (TypeError, ValueError):
            raise BudgetError(f"--budgets: {self.budgets!r}; allowed: LO:HI in ms with 0 < LO < HI") from None
        if self.budget_unit == "quantile":
            if not 0 <= lo < hi <= 1:
                raise BudgetError(f"--budgets: q{lo:g}:q{hi:g}; allowed: qLO:qHI quantiles with 0 <= LO < HI <= 1")
        elif not (0 < lo < hi and math.isfinite(hi)):
            raise BudgetError(f"--budgets: {lo:g}:{hi:g}; allowed: LO:HI in ms with 0 < LO < HI")
        object.__setattr__(self, "budgets", (lo, hi))
        self._check_devices()
        object.__setattr__(self, "ranker_budgets", tuple(float(b) for b in self.ranker_budgets))
        if self.schedule not in ("auto", *SCHEDULES):
            raise PnagError(f"--schedule: {self.schedule!r} is not known; allowed: {allowed(('auto', *SCHEDULES))}")
        if self.reward is not None and self.reward not in REWARDS:
            raise PnagError(f"--reward: {self.reward!r} is not known; allowed: {allowed(REWARDS)}")
        if self.ranker_mode not in BUDGET_MODES:
            raise PnagError(f"ranker mode: {self.ranker_mode!r} is not known; allowed: {allowed(BUDGET_MODES)}")
        for name, minimum in _INT_MIN.items():
            v = getattr(self, name)
            if v is None and name in ("train_samples", "latency_samples", "predictor_hidden", "predictor_epochs",
                                      *_SCHEDULED):
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise PnagError(f"{_FLAGS.get(name, name)}: {v!r}; allowed: an integer >= {minimum}")
        check_fraction(self.ranker_top_pairs, "ranker_top_pairs")
        if self.lr is not None and (isinstance(self.lr, bool) or not isinstance(self.lr, (int, float))
                                    or not math.isfinite(self.lr) or self.lr <= 0):
            raise PnagError(f"lr: {self.lr!r}; allowed: a number > 0")
        for name in _NUM_MIN0:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise PnagError(f"{name}: {v!r}; allowed: a number >= 0")
        if self.predictor_target is not None and self.predictor_target not in TARGETS:
            raise PnagError(f"predictor_target: {self.predictor_target!r} is not known; allowed: {allowed(TARGETS)}")
        if self.space == "nb201" and self.width is not None:
            raise PnagError(f"--width: {self.width}; allowed only with --space mbv3")
        if self.resolutions is not None:
            if self.space != "mbv3":
                raise PnagError(f"--resolutions: {self.resolutions!r}; allowed only with --space mbv3")
            from ..space.mbv3 import check_resolutions

            object.__setattr__(self, "resolutions", check_resolutions(self.resolutions))

    def _check_devices(self) -> None:
        specs = latency_specs(self.latency)
        n = len(specs)
        if n > 1:
            if not all(isinstance(s, str) and s for s in specs):
                raise PnagError(f"--latency: {self.latency!r}; allowed: SRC1,SRC2,... with no empty source")
            if len(set(specs)) < n:
                twice = next(s for s in specs if specs.count(s) > 1)
                raise PnagError(f"--latency: {twice!r} is given twice; allowed: each device once")
            object.__setattr__(self, "latency", specs)
            if self.budget_unit != "quantile":
                lo, hi = self.budgets
                raise BudgetError(f"--budgets: {lo:g}:{hi:g} ms with {n} latency sources; allowed: qLO:qHI, "
                                  "quantiles of each device's latency (ms differ from device to device)")
        if not self.device_conditioned:
            return
        why = f"with {n} latency sources" if n > 1 else "with quantile budgets"
        for name, flag in (("eval_budget", "--eval-budget"), ("latency_samples", "--latency-samples")):
            if getattr(self, name):
                raise PnagError(f"{flag}: {getattr(self, name)} {why}; allowed: {flag} only with one latency "
                                "source and budgets in ms")
        if self.ranker_mode != "continuous":
            raise PnagError(f"ranker mode: {self.ranker_mode!r} {why}; allowed: continuous")

    @property
    def devices(self) -> tuple:
        """The latency sources, one per device (:func:`latency_specs`)."""
        return latency_specs(self.latency)

    @property
    def device_conditioned(self) -> bool:
        """True when the run conditions on the device (several latency sources, or quantile budgets):
        its generator and ranker read a device signature and a budget position (pnag.search.devices)."""
        return len(self.devices) > 1 or self.budget_unit == "quantile"

    def scheduled(self, fast: bool) -> "TrainConfig":
        """This config with its schedule decided ("auto": "fast" when ``fast``, else "full") and every
        generator-stage field left at None set to the schedule's value."""
        name = self.schedule if self.schedule != "auto" else ("fast" if fast else "full")
        fill = {k: v for k, v in SCHEDULES[name].items() if getattr(self, k) is None}
        return replace(self, schedule=name, **fill)

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
        d["resolutions"] = None if self.resolutions is None else list(self.resolutions)
        if isinstance(self.latency, tuple):
            d["latency"] = list(self.latency)
        for k, default in (*_DEVICE_FIELDS.items(), *_SCHEDULE_FIELDS.items()):
            if d[k] == default:
                del d[k]
        return d

    @classmethod
    def from_json(cls, d: Any) -> "TrainConfig":
        if not isinstance(d, dict):
            raise DataError(f"run config: a JSON {type(d).__name__}; allowed: a JSON object of TrainConfig fields")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise DataError(f"run config: unknown field(s) {', '.join(unknown)}")
        d = {**_SCHEDULE_FIELDS, **d}
        try:
            d["budgets"] = tuple(d.get("budgets", (10.0, 24.0)))
            d["ranker_budgets"] = tuple(d.get("ranker_budgets", ()))
        except TypeError:
            raise DataError(f"run config: budgets {d.get('budgets')!r}; allowed: a list [LO, HI] in ms") from None
        if isinstance(d.get("latency"), list):
            d["latency"] = tuple(d["latency"])
        return cls(**d)


def make_space(config: TrainConfig):
    """The search space a run searches."""
    from ..space import get_space

    if config.space == "mbv3":
        res = config.resolutions
        if res is not None and len(res) > 1:
            return get_space("mbv3", width=config.resolved_width, resolution=config.resolution, resolutions=res)
        return get_space("mbv3", width=config.resolved_width, resolution=res[0] if res else config.resolution)
    return get_space("nb201")


__all__ = ["TrainConfig", "SCHEDULES", "make_space", "latency_specs", "parse_range", "parse_budget_range", "SPACES", "W10_DATASET",
           "BUDGET_UNITS"]
