"""Answers checked on the device: ``pnag generate --latency adapted:FILE --verify``.

A device served through a model adapted from a few measurements (``pnag latency adapt``) gets answers
chosen under that model's latency, which errs (a few % on a GPU of NAS-Bench-201, 10-15 % on a phone):
an answer chosen at the edge of its budget is then over it about half the time. Verifying measures each
answer on the model's device (its ``target``: a table look-up, or a timing on this machine), adds the
measurement to the model (refitted, written back to its file) and serves the budgets again; a measured
network is priced at its measurement, so an answer over its budget is not chosen again.

Each round also *probes*: it serves every budget enlarged by the model's error (``u``: the 90th percentile
of its leave-one-out relative error on the networks measured so far; enlarged by ``u / 2`` and by ``u``,
:data:`PROBES`) and measures those answers too; one
that truly fits a smaller budget than the model thought is offered to every budget in the next round
(origin ``verified``), where the objective takes it when it beats the other candidates. Every network the
device measured is offered so. Each round also measures the *calibration* networks: per budget, the
measured-accuracy networks within it that the accuracy predictor rates highest, whose out-of-bag errors make
the budget's calibration shift (:func:`pnag.search.choice.calibration_shift`). They are chosen by the model's
latency, and on a phone a 10-15 % error moves networks across a budget: a cheap budget's shift was -0.4 points
under the model against -1.1 under the device's latency, and the objective took a cell that the predictor
over-rated by 6 points (NAS-Bench-201 raspi4, ImageNet16-120). Those the model prices within its error ``u``
of the budget (whether they fit is its guess) are measured, so the shift is the one the device's latency
gives. The rounds end when a round measures nothing new: every answer is a measured network within its budget
(its ``latency_is`` says ``measured``), those calibration networks are measured and the probes found nothing
unmeasured. Where they do not settle within ``rounds`` rounds or ``per_budget`` measurements per budget
(on average; the answers are measured before the probes), each budget gets the best measured network
within it, by the run's objective (origin ``verified``; the fastest architecture, unmeasured, where no
measured one fits). The file keeps every measurement, so a later call starts from a better model.

Given ``max_measurements`` (``pnag generate --verify --max-measurements N``), the measurements left once the
answers are settled (or the rounds spent) *search*: a network the model prices over a budget may truly fit it.
On a phone the model errs by 10-15 % on each network, an error that the network's neighbours do not share
(``benchmarks/results/devices_residuals.md``), so no model finds such a network and only measuring does. Each
search step measures the networks of a pool (every architecture of a space small enough to list, else the
answers at budgets enlarged up to :data:`LADDER` x the model's error, to which each step adds the networks one
decision away from each budget's best measured network within it) with the highest *expected gain*: summed
over the budgets, the objective above the budget's best measured network within it, times the chance that the
network fits (:func:`chance_within`: the model's leave-one-out log errors, smoothed, tell how far off its price
may be); then the answers are served again. The search ends when no network's expected gain reaches
:data:`SEARCH_GAIN` points or the measurements are spent.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import torch

from .._progress import say
from ..errors import PnagError
from ..latency.adapted import AdaptedSource
from ..sources import get_latency_source, source_name
from ..sources.adapt import add_measurements, loo_ratios, relative_error
from .answers import Generations, answers_of
from .choice import ORIGIN_CODE, best_feasible
from .indices import canonical, index_keys, neighbours

ROUNDS = 8  # at most this many rounds of measuring the answers and serving again
# probes: the budgets enlarged by these multiples of the model's error (chosen over none, (1,), (0.5, 1) and (1, 2)
# on NAS-Bench-201 devices outside HELP's test split, seed 10: benchmarks/results/tuning/verify_probes_*.md; answers
# chosen under the model's latency x (1 + its error) instead were worse there, and were not kept)
PROBES = (0.5, 1.0)
PER_BUDGET = 4  # at most this many networks measured per budget asked, on average (default of max_measurements)
# points: the search measures a network only if its expected gain (module docstring) reaches this; 0.01 over 0.05
# (which stopped on a phone after 47 measurements, its answers no better), on NAS-Bench-201 devices outside HELP's
# test split, seed 10: benchmarks/results/tuning/verify_search_*.md
SEARCH_GAIN = 0.01
LADDER = (0.25, 0.5, 1.0, 1.5, 2.0)  # search pool on a space too large to list: budgets x (1 + these x the error)
SCALE_FLOOR = 1e-3  # the least log-latency scale the search assumes (a model exact on what it measured)
CHUNK = 1 << 22  # expected_gain: at most this many floats of chances at once (32 MB)


def adapted_model(latency: Any) -> AdaptedSource:
    """The adapted model of ``latency`` (an ``adapted:FILE`` spec or the source), else a PnagError."""
    model = get_latency_source(latency) if isinstance(latency, str) else latency
    if not isinstance(model, AdaptedSource) or model.path is None:
        raise PnagError(f"--verify: --latency {source_name(latency) if latency is not None else 'none'} is no "
                        "adapted model; allowed: adapted:FILE (a model from pnag latency adapt: its device "
                        "measures the answers)")
    return model


def _offer(view, model: AdaptedSource) -> torch.Tensor:
    """Decision indices of the networks the device measured (those of the run's space)."""
    rows = []
    for m in model.data["measured"]:
        try:
            rows.append(view.space.to_indices(view.space.parse(m["arch"])))
        except PnagError:  # e.g. a resolution the run does not search
            continue
    return torch.as_tensor(np.stack(rows)) if rows else torch.zeros((0, view.generator.T), dtype=torch.long)


def _new(model: AdaptedSource, archs: list) -> list:
    """``archs`` not measured yet, each once, in order."""
    seen: set = set()
    out = [a for a, k in zip(archs, model.is_measured(archs)) if not k and not (a in seen or seen.add(a))]
    return out


def generate_verified(run, budgets: Sequence[float], latency: Any, samples: int = 1, seed: int = 0,
                      mode: str = "pnag", rounds: int = ROUNDS, per_budget: int = PER_BUDGET,
                      progress: bool | None = None, measure: Any = None,
                      max_measurements: int | None = None) -> Generations:
    """:meth:`pnag.search.Run.generate` for the device of the adapted model ``latency``, each answer
    measured on the device until it is a measured network within its budget, then a search for better ones
    (module docstring). ``measure``: the latency source that measures (a spec or an object with
    ``latency_ms(archs)``; default the model's ``target``). ``max_measurements``: the most networks this call
    measures, those left after the answers settle searching for better ones (default: ``per_budget`` x the
    budgets, and no search). The returned :class:`Generations` carry ``measurements``: how many networks this
    call measured."""
    for name, v in (("verify rounds", rounds), ("verify measurements per budget", per_budget)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise PnagError(f"{name}: {v!r}; allowed: an integer >= 1")
    if max_measurements is not None and (isinstance(max_measurements, bool) or not isinstance(max_measurements, int)
                                         or max_measurements < 0):
        raise PnagError(f"--max-measurements: {max_measurements!r}; allowed: an integer >= 0")
    model = adapted_model(latency)
    start = len(model.measured_ms)
    b = np.atleast_1d(np.asarray(budgets, dtype=np.float64))
    cap = per_budget * len(b) if max_measurements is None else max_measurements
    search = _Search(b, samples, seed) if mode == "pnag" and max_measurements is not None else None
    r, view = 0, None
    while True:  # each round's view starts from the last one's archive (the model refitted since)
        view = run.for_device(model, archive_from=None if view is None or mode != "pnag" else view.archive)
        offer = _offer(view, model) if mode == "pnag" else None
        gens = view.generate(b, samples=samples, seed=seed, mode=mode, offer=offer)
        answers, probes = _new(model, [g.arch for g in gens]), []
        if mode == "pnag":  # probes: the budgets enlarged by the model's error
            ratios = loo_ratios(model)  # leave-one-out predicted / measured, once per round (the search reads them too)
            u = relative_error(ratios)
            for f in PROBES:
                probe = np.minimum(b * (1 + f * u), view.budget_range[1])
                probes += [g.arch for g in view.generate(probe, samples=samples, seed=seed, mode=mode, offer=offer)]
            probes = [a for a in _new(model, _calibration(view, b, u) + probes) if a not in answers]  # calibration first
        left = cap - (len(model.measured_ms) - start)
        settled = not answers and not probes
        if settled or r == rounds:  # settled, or out of rounds: search with the measurements left
            todo = search.step(view, offer, ratios, left, model) if search is not None and left > 0 else []
            if not todo:
                if settled:
                    return _labelled(gens, model, start)
                break
            what = "searching"
        else:
            r += 1
            # the answers first; probes only while a measurement per budget stays for the answers of later rounds
            todo = answers[:left] + probes[:max(0, left - len(answers) - len(b))]
            if not todo:
                break
            what = f"round {r}"
        if progress is not False:
            on = model.data["target"] if measure is None else source_name(measure)
            say(f"verify {what}: measuring {len(todo)} network(s) on {on}")
        model = add_measurements(model, todo, progress, measure)
    # not settled within the rounds or the measurements: each budget gets the best measured network within it
    view = run.for_device(model, archive_from=view.archive if mode == "pnag" else None)
    offer = _offer(view, model)
    if mode != "pnag" or not len(offer):
        return _labelled(view.generate(b, samples=samples, seed=seed, mode=mode), model, start)
    B = len(b)
    chosen = view.choose(view.check_budgets(b), offer[None].expand(B, -1, -1),
                         torch.full((B, len(offer)), ORIGIN_CODE["verified"]), include_table=False)
    return _labelled(answers_of(view, b, chosen), model, start)


def _calibration(view, budgets: np.ndarray, u: float) -> list:
    """Text forms of the measured-accuracy networks whose residuals make the budgets' calibration shift
    (:meth:`pnag.search.run.Run.calibration_rows`) and that the model prices within ``u`` (its relative error)
    of the budget: whether they fit the budget is the model's guess, so measuring them makes the shift the one
    the device's true latency gives."""
    rows = view.calibration_rows(torch.as_tensor(budgets, dtype=torch.float64), margin=u)
    idx = view.data["idx"][rows]
    return [view.space.format(view.space.from_indices(r.tolist())) for r in idx]


def _bandwidth(e: torch.Tensor) -> float:
    """The kernel bandwidth of :func:`chance_within` over log errors ``e``: Silverman's rule, at least
    :data:`SCALE_FLOOR`."""
    return max(1.06 * float(e.std()) * len(e) ** -0.2 if len(e) > 1 else 0.0, SCALE_FLOOR)


def chance_within(log_ratio: torch.Tensor, errors: np.ndarray) -> torch.Tensor:
    """The chance that a network the model prices at ``log_ratio`` (``log(model / budget)``, any shape) truly
    fits the budget: its log error exceeds ``log_ratio``, the errors distributed as a normal kernel density
    over ``errors`` (leave-one-out log errors; bandwidth by Silverman's rule, at least :data:`SCALE_FLOOR`)."""
    e = torch.as_tensor(errors, dtype=torch.float64)
    return torch.special.ndtr((e - log_ratio.unsqueeze(-1)) / _bandwidth(e)).mean(-1)


def expected_gain(scores: torch.Tensor, latency: torch.Tensor, measured: torch.Tensor, budgets: torch.Tensor,
                  errors: np.ndarray) -> torch.Tensor:
    """Per network of a pool, what measuring it is expected to add (points, summed over the budgets): for each
    budget, its objective above the budget's best measured network within it (the pool's least objective where
    none fits), times the chance that it fits (:func:`chance_within`, with the model's leave-one-out log
    ``errors``).

    ``scores (N, G)``: the objective under each budget ``budgets (G,)`` ms; ``latency (N,)`` ms (the measurement
    where ``measured (N,)``); measured networks gain 0."""
    fits = latency[:, None] <= budgets[None, :] + 1e-9
    best = torch.where(measured[:, None] & fits, scores, torch.tensor(-math.inf, dtype=scores.dtype)).max(0).values
    best = torch.where(torch.isfinite(best), best, scores.min(0).values)
    gain = (scores - best[None, :]).clamp_min(0)
    ratio = latency.clamp_min(1e-12).log()[:, None] - budgets.log()[None, :]  # (N, G): log(model / budget)
    e = torch.as_tensor(errors, dtype=torch.float64)
    if len(e):  # priced past every error by 8 bandwidths: a chance under ndtr(-8) ~ 6e-16, taken as none
        gain = torch.where(ratio > float(e.max()) + 8 * _bandwidth(e), 0.0, gain)
    some = torch.nonzero(~measured & (gain > 0).any(1)).flatten()  # only these need the chance
    out = torch.zeros(len(scores), dtype=torch.float64)
    step = max(1, CHUNK // max(1, len(budgets) * len(errors)))  # rows at once: (rows, G, errors) floats in memory
    for rows in torch.split(some, step):
        out[rows] = (chance_within(ratio[rows], errors) * gain[rows]).sum(1)
    return out


class _Search:
    """The search steps of one :func:`generate_verified` call (module docstring): its pool, built once."""

    def __init__(self, budgets: np.ndarray, samples: int, seed: int):
        self.b, self.samples, self.seed = budgets, samples, seed
        self.pool: torch.Tensor | None = None
        self.also_measured: torch.Tensor | None = None  # pool rows the model has measured, missing from the offer
        self.keys: set = set()  # index_keys of the pool's rows
        self.listed = False  # the pool is the whole space

    def _grow(self, view, offer: torch.Tensor, budgets: torch.Tensor) -> None:
        """Adds to a pool of answers (a space too large to list) the neighbours (one decision away,
        :func:`~pnag.search.indices.neighbours`) of each budget's best measured network within it, by the
        objective: a network priced over a budget that truly fits it is likelier near one that fits."""
        if self.listed or not len(offer):
            return
        rows = canonical(view.space, offer)
        scores, lat = view.objective(rows, budgets)
        best = best_feasible(scores.double().T, lat.double(), budgets, torch.ones(len(budgets), len(rows),
                                                                                  dtype=torch.bool), fallback=-1)
        best = best[best >= 0].unique()  # -1: no measured network within that budget
        if not len(best):
            return
        near = neighbours(view.space, rows[best])
        new, seen = [], set()
        for k, r in zip(index_keys(near), near):
            if k not in self.keys and k not in seen:
                seen.add(k)
                new.append(r)
        if new:
            self.pool = torch.cat([self.pool, torch.stack(new)])
            self.also_measured = torch.cat([self.also_measured, torch.zeros(len(new), dtype=torch.bool)])
            self.keys |= seen

    def _pool(self, view, offer: torch.Tensor, u: float) -> torch.Tensor:
        space = view.space
        if callable(getattr(space, "all_indices", None)):  # a space small enough to list (NAS-Bench-201)
            self.listed = True
            return torch.as_tensor(space.all_indices())
        wide = np.minimum(self.b[:, None] * (1 + np.asarray(LADDER)[None, :] * u), view.budget_range[1]).ravel()
        gens = view.generate(wide, samples=self.samples, seed=self.seed, offer=offer)
        return torch.as_tensor(np.stack([space.to_indices(space.parse(g.arch)) for g in gens]))

    def step(self, view, offer: torch.Tensor, ratios: np.ndarray, left: int, model: AdaptedSource) -> list:
        """The networks to measure next (text forms, none that ``model`` has measured; empty: the search is over);
        ``offer``: the measured ones (:func:`_offer`), ``ratios``: the model's leave-one-out ``predicted /
        measured`` on them (:func:`~pnag.sources.adapt.loo_ratios`)."""
        if self.pool is None:
            self.pool = canonical(view.space, self._pool(view, offer, relative_error(ratios)))
            self.also_measured = torch.zeros(len(self.pool), dtype=torch.bool)
            self.keys = set(index_keys(self.pool))
        bt = torch.as_tensor(self.b)
        self._grow(view, offer, bt)
        scores, lat = view.objective(self.pool, bt)
        known = set(index_keys(canonical(view.space, offer)))
        measured = torch.tensor([k in known for k in index_keys(self.pool)], dtype=torch.bool) | self.also_measured
        gain = expected_gain(scores.double(), lat.double(), measured, bt, np.log(ratios))
        order = torch.argsort(gain, descending=True)
        out: list = []
        for j in order[gain[order] >= SEARCH_GAIN].tolist():
            text = view.space.format(view.space.from_indices(self.pool[j].tolist()))
            if bool(model.is_measured([text])[0]):  # measured, though its row was not in the offer: gains nothing
                self.also_measured[j] = True
            elif text not in out:
                out.append(text)
                if len(out) == min(left, max(1, len(self.b) // 5)):
                    break
        return out


def _labelled(gens: Generations, model: AdaptedSource, start: int) -> Generations:
    known = model.is_measured([g.arch for g in gens])
    out = Generations(accuracy_column=gens.accuracy_column, accuracy_unit=gens.accuracy_unit)
    out.extend(replace(g, latency_is="measured" if k else g.latency_is) for g, k in zip(gens, known))
    out.measurements = len(model.measured_ms) - start
    return out


__all__ = ["ROUNDS", "adapted_model", "generate_verified", "expected_gain", "chance_within"]
