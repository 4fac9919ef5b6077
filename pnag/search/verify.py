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
device measured is offered so. The rounds end when a round measures nothing new: every answer is a
measured network within its budget (its ``latency_is`` says ``measured``) and the probes found nothing
unmeasured. Where they do not settle within ``rounds`` rounds or ``per_budget`` measurements per budget
(on average; the answers are measured before the probes), each budget gets the best measured network
within it, by the run's objective (origin ``verified``; the fastest architecture, unmeasured, where no
measured one fits). The file keeps every measurement, so a later call starts from a better model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import torch

from .._progress import say
from ..errors import PnagError
from ..latency.adapted import AdaptedSource
from ..sources import get_latency_source, source_name
from ..sources.adapt import add_measurements, loo_error
from .answers import Generations, answers_of
from .choice import ORIGIN_CODE

ROUNDS = 8  # at most this many rounds of measuring the answers and serving again
# probes: the budgets enlarged by these multiples of the model's error (chosen over none, (1,), (0.5, 1) and (1, 2)
# on NAS-Bench-201 devices outside HELP's test split, seed 10: benchmarks/results/tuning/verify_probes_*.md; answers
# chosen under the model's latency x (1 + its error) instead were worse there, and were not kept)
PROBES = (0.5, 1.0)
PER_BUDGET = 4  # at most this many networks measured per budget asked, on average


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
                      progress: bool | None = None, measure: Any = None) -> Generations:
    """:meth:`pnag.search.Run.generate` for the device of the adapted model ``latency``, each answer
    measured on the device until it is a measured network within its budget (module docstring). ``measure``:
    the latency source that measures (a spec or an object with ``latency_ms(archs)``; default the model's
    ``target``). The returned :class:`Generations` carry ``measurements``: how many networks this call
    measured."""
    for name, v in (("verify rounds", rounds), ("verify measurements per budget", per_budget)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise PnagError(f"{name}: {v!r}; allowed: an integer >= 1")
    model = adapted_model(latency)
    start = len(model.measured_ms)
    b = np.atleast_1d(np.asarray(budgets, dtype=np.float64))
    cap = per_budget * len(b)
    for r in range(rounds):
        view = run.for_device(model)
        offer = _offer(view, model) if mode == "pnag" else None
        gens = view.generate(b, samples=samples, seed=seed, mode=mode, offer=offer)
        answers, probes = _new(model, [g.arch for g in gens]), []
        if mode == "pnag":  # probes: the budgets enlarged by the model's error
            u = loo_error(model)
            for f in PROBES:
                probe = np.minimum(b * (1 + f * u), view.budget_range[1])
                probes += [g.arch for g in view.generate(probe, samples=samples, seed=seed, mode=mode, offer=offer)]
            probes = [a for a in _new(model, probes) if a not in answers]
        if not answers and not probes:
            return _labelled(gens, model, start)
        left = cap - (len(model.measured_ms) - start)
        # the answers first; probes only while a measurement per budget stays for the answers of later rounds
        todo = answers[:left] + probes[:max(0, left - len(answers) - len(b))]
        if not todo:
            break
        if progress is not False:
            on = model.data["target"] if measure is None else source_name(measure)
            say(f"verify round {r + 1}: measuring {len(todo)} network(s) on {on}")
        model = add_measurements(model, todo, progress, measure)
    # not settled within the rounds or the measurements: each budget gets the best measured network within it
    view = run.for_device(model)
    offer = _offer(view, model)
    if mode != "pnag" or not len(offer):
        return _labelled(view.generate(b, samples=samples, seed=seed, mode=mode), model, start)
    B = len(b)
    chosen = view.choose(view.check_budgets(b), offer[None].expand(B, -1, -1),
                         torch.full((B, len(offer)), ORIGIN_CODE["verified"]), include_table=False)
    return _labelled(answers_of(view, b, chosen), model, start)


def _labelled(gens: Generations, model: AdaptedSource, start: int) -> Generations:
    known = model.is_measured([g.arch for g in gens])
    out = Generations(accuracy_column=gens.accuracy_column, accuracy_unit=gens.accuracy_unit)
    out.extend(replace(g, latency_is="measured" if k else g.latency_is) for g, k in zip(gens, known))
    out.measurements = len(model.measured_ms) - start
    return out


__all__ = ["ROUNDS", "adapted_model", "generate_verified"]
