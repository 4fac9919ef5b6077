"""Rewards for policy-gradient search under a latency budget.

Accuracy here is a **fraction** (0..1), latency and budget in ms. All functions are elementwise and
broadcast over numpy arrays or torch tensors.

* ``mnas``:  ``acc * (lat / B) ** w`` with ``w = -0.07`` (MnasNet soft constraint, as published
  in the PNAG comparison);
* ``tunas``: ``acc + beta * |lat / B - 1|`` with ``beta = -0.07`` (TuNAS absolute reward);
* ``pareto``: the score of the Pareto-aware ranker (:func:`pareto_reward`);
* ``objective``: the run's own objective under the same rule, without a ranker
  (:func:`pnag.search.training.reward_fn`).
"""

from __future__ import annotations

from typing import Any

REWARDS = ("pareto", "objective", "mnas", "tunas")


def mnas_reward(acc: Any, lat: Any, budget: Any, w: float = -0.07) -> Any:
    """MnasNet reward ``acc * (lat / budget) ** w`` (acc fraction, lat and budget ms)."""
    return acc * (lat / budget) ** w


def tunas_reward(acc: Any, lat: Any, budget: Any, beta: float = -0.07) -> Any:
    """TuNAS absolute reward ``acc + beta * |lat / budget - 1|`` (acc fraction, lat and budget ms)."""
    return acc + beta * abs(lat / budget - 1)


def pareto_reward(ranker, x, budget):
    """Pareto-aware ranker score of encodings ``x (B, D)`` under budgets ``(B,)`` ms (higher is better)."""
    return ranker(x, budget)


__all__ = ["REWARDS", "mnas_reward", "tunas_reward", "pareto_reward"]
