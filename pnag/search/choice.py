"""The choice rule, as pure functions on tensors: which candidate a budget gets.

A run's *objective* for a budget ``B`` (ms): among candidates whose latency (the run's latency model,
ms) is within ``B``, the highest accuracy estimate (%): the measured accuracy where the architecture
was measured, else the predicted mean lowered by the predictor's calibration shift for ``B``
(:func:`calibration_shift`) and by ``choice_pessimism`` x its spread.

Answers are *monotone*: served together, a larger budget never gets an answer that its own objective
rates below the answer of a smaller budget (:func:`monotone_sources`); without that rule a larger
budget could get a slower-and-worse network than a smaller one, by the chance of sampling.
"""

from __future__ import annotations

import math

import torch

# where an answer came from (Generation.origin)
ORIGINS = ("generator", "neighbour", "archive", "refined", "measured", "fastest", "verified")
ORIGIN_CODE = {name: i for i, name in enumerate(ORIGINS)}


def calibration_shift(budgets: torch.Tensor, m_lat: torch.Tensor, m_acc: torch.Tensor, oob: torch.Tensor | None,
                      n: int) -> torch.Tensor:
    """Per budget (ms), how far (accuracy points, <= 0) the accuracy predictor over-rates the best it
    sees within the budget: the mean of measured - out-of-bag predicted accuracy over the ``n``
    measured architectures within the budget with the highest out-of-bag prediction; 0 where that mean
    is positive, ``n`` is 0, or there are no out-of-bag predictions for the table (``oob`` None or of
    another length; NaN where a row has none).

    Why: a predictor maximised over unmeasured architectures picks the ones it over-rates most; its
    out-of-bag errors at the top of its own ranking show how much, region by region. On NB201
    cifar10/raspi4 the ensemble over-rated its best unmeasured cell by 1.0-1.6 points below the 25 %
    latency quantile and by 0.0-0.3 above it, while its spread differed far less (0.32-0.50 against
    0.11-0.24 points), so no multiple of the spread told the two apart (git history of BENCHMARKS.md,
    commit 6439865).
    """
    out = torch.zeros(len(budgets), dtype=torch.float64)
    top, valid = calibration_rows(budgets, m_lat, oob, n)
    if top is None:
        return out
    resid = m_acc.double() - torch.as_tensor(oob, dtype=torch.float64)
    total = torch.where(valid, resid[top], torch.zeros((), dtype=torch.float64)).sum(1)
    mean = total / valid.sum(1).clamp_min(1)
    return torch.where(valid.any(1), mean.clamp_max(0.0), out)


def calibration_rows(budgets: torch.Tensor, m_lat: torch.Tensor, oob: torch.Tensor | None,
                     n: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The measured rows whose residuals make :func:`calibration_shift`: per budget (ms) the ``n`` within it
    (``m_lat`` ms) with the highest out-of-bag prediction. Returns ``top (B, n)`` row indices and ``valid (B, n)``
    (False where fewer than ``n`` are within the budget); ``(None, None)`` where there are none to take (``n``
    0, ``oob`` None or of another length than ``m_lat``)."""
    if n == 0 or oob is None or len(oob) != len(m_lat):
        return None, None
    oob = torch.as_tensor(oob, dtype=torch.float64)
    ok = torch.isfinite(oob)[None, :] & (m_lat[None, :] <= budgets[:, None] + 1e-9)  # (B, M)
    ranked = torch.where(ok, oob[None, :].expand_as(ok), torch.tensor(-math.inf, dtype=torch.float64))
    top = torch.topk(ranked, min(n, len(oob)), dim=1).indices  # (B, n)
    return top, ok.gather(1, top)


def best_feasible(scores: torch.Tensor, lat: torch.Tensor, budgets: torch.Tensor, allowed: torch.Tensor,
                  fallback: int) -> torch.Tensor:
    """Per budget the column of the highest score among allowed candidates within it.

    ``scores (B, N)``, ``lat (N,)`` ms, ``budgets (B,)`` ms, ``allowed (B, N)`` bool; a budget with no
    allowed candidate within it gets column ``fallback`` (the fastest architecture)."""
    feasible = allowed & (lat[None, :] <= budgets[:, None] + 1e-9)
    s = torch.where(feasible, scores, torch.tensor(-math.inf, dtype=scores.dtype))
    return torch.where(feasible.any(1), s.argmax(1), torch.full((len(budgets),), fallback))


def monotone_sources(budgets: torch.Tensor, objective: torch.Tensor) -> torch.Tensor:
    """For each budget, the budget whose answer it serves.

    ``objective (B, B)``: ``objective[j, i]`` is the objective under budget ``j`` of the answer chosen
    for budget ``i``. Budget ``j`` serves the answer of the budget ``i`` with ``budgets[i] <= budgets[j]``
    whose objective under ``j`` is highest (its own on ties): that answer is within budget ``i``, so
    within ``j``. Then a larger budget ``k`` never serves an answer worse, under ``k``'s objective, than
    the one a smaller budget ``j`` serves, since that one was among ``k``'s options. Returns indices
    into ``budgets`` ``(B,)``."""
    b = budgets.double()
    eligible = b[None, :] <= b[:, None] + 1e-12  # (j, i): budget i is not larger than budget j
    s = torch.where(eligible, objective.double(), torch.tensor(-math.inf, dtype=torch.float64))
    own = s.diagonal()
    best = s.argmax(1)
    return torch.where(s.max(1).values > own, best, torch.arange(len(b)))


__all__ = ["ORIGINS", "calibration_shift", "calibration_rows", "best_feasible", "monotone_sources"]
