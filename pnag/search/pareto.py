"""Pareto utilities for (accuracy, latency) sets: the front, 2-D hypervolume, best-within-budget and regret.

Conventions: accuracy is maximised and latency minimised. Accuracy and regret share whatever unit
the caller uses (the public tables use top-1 %, so regret is in percentage points); latency is in
ms, as are budgets. All functions are vectorised (numpy) and run in O(n log n).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import BudgetError, DataError

__all__ = [
    "pareto_front",
    "hypervolume_2d",
    "best_within_budget",
    "best_within_budgets",
    "regret",
    "regrets",
]


def _pair(accuracy: Sequence[float], latency: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    acc = np.asarray(accuracy, dtype=np.float64)
    lat = np.asarray(latency, dtype=np.float64)
    if acc.ndim != 1 or lat.ndim != 1:
        raise DataError(f"accuracy/latency: got shapes {acc.shape} and {lat.shape}; allowed: two 1-D arrays")
    if acc.shape != lat.shape:
        raise DataError(f"accuracy/latency: lengths {acc.size} and {lat.size} differ; allowed: equal lengths")
    for name, v in (("accuracy", acc), ("latency", lat)):
        bad = ~np.isfinite(v)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{name}[{i}]: {v[i]} is not a finite number; allowed: finite values")
    return acc, lat


def _budget(budget: float, what: str = "budget") -> float:
    try:
        b = float(budget)
    except (TypeError, ValueError):
        raise BudgetError(f"{what}: {budget!r} is not a number; allowed: a latency in ms") from None
    if not np.isfinite(b):
        raise BudgetError(f"{what}: {budget!r} is not finite; allowed: a finite latency in ms")
    return b


def pareto_front(accuracy: Sequence[float], latency: Sequence[float]) -> np.ndarray:
    """Bool mask (n,) of the non-dominated points (maximise accuracy, minimise latency).

    A point is dominated when another has accuracy >= and latency <= with at least one strict;
    exact duplicates of a front point are all on the front. O(n log n).
    """
    acc, lat = _pair(accuracy, latency)
    n = acc.size
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    order = np.lexsort((-acc, lat))  # latency ascending, ties by accuracy descending
    a, l = acc[order], lat[order]
    pos = np.arange(n)
    # First sorted position of each equal-latency group; its accuracy is the group's maximum.
    start = np.maximum.accumulate(np.where(np.r_[True, l[1:] != l[:-1]], pos, 0))
    running = np.maximum.accumulate(a)
    before = np.where(start > 0, running[np.maximum(start - 1, 0)], -np.inf)  # best of strictly faster
    mask[order] = (a == a[start]) & (a > before)
    return mask


def hypervolume_2d(
    accuracy: Sequence[float],
    latency: Sequence[float],
    ref_accuracy: float,
    ref_latency: float,
) -> float:
    """Area (accuracy unit x ms) dominated by the set and bounded by the reference point.

    The reference point is the worst corner: ``ref_accuracy`` below and ``ref_latency`` above the
    points of interest; points not strictly better than it in both objectives add nothing.
    Exact sweep over the front sorted by latency.
    """
    acc, lat = _pair(accuracy, latency)
    ra, rl = float(ref_accuracy), float(ref_latency)
    if not (np.isfinite(ra) and np.isfinite(rl)):
        raise DataError(f"reference point: ({ref_accuracy!r}, {ref_latency!r}) is not finite; allowed: finite numbers")
    keep = (acc > ra) & (lat < rl)
    acc, lat = acc[keep], lat[keep]
    if acc.size == 0:
        return 0.0
    front = pareto_front(acc, lat)
    a, l = acc[front], lat[front]
    order = np.lexsort((a, l))  # along the front accuracy rises with latency
    a, l = a[order], l[order]
    a, idx = np.unique(a, return_index=True)  # exact duplicates share one rectangle
    l = l[idx]
    steps = np.diff(np.r_[ra, a])
    return float(np.sum(steps * (rl - l)))


def best_within_budgets(
    accuracy: Sequence[float], latency: Sequence[float], budgets: Sequence[float]
) -> np.ndarray:
    """Per budget (ms), the index of the most accurate point with latency <= budget, or -1.

    Ties in accuracy go to the lower latency, then to the lower index. Returns int64 (m,).
    O((n + m) log n).
    """
    acc, lat = _pair(accuracy, latency)
    b = np.asarray(budgets, dtype=np.float64).reshape(-1)
    if not np.isfinite(b).all():
        i = int(np.flatnonzero(~np.isfinite(b))[0])
        raise BudgetError(f"budgets[{i}]: {b[i]} is not finite; allowed: finite latencies in ms")
    if acc.size == 0:
        return np.full(b.size, -1, dtype=np.int64)
    order = np.lexsort((np.arange(acc.size), lat))  # latency ascending, then index
    a = acc[order]
    # Index (in sorted order) of the running best: strictly greater accuracy replaces it, so ties
    # keep the earlier (faster, then lower-index) point.
    pos = np.arange(a.size)
    run_max = np.maximum.accumulate(a)
    is_new = np.r_[True, a[1:] > run_max[:-1]]
    best_pos = np.maximum.accumulate(np.where(is_new, pos, 0))
    k = np.searchsorted(lat[order], b, side="right")  # number of points with latency <= budget
    out = np.full(b.size, -1, dtype=np.int64)
    ok = k > 0
    out[ok] = order[best_pos[k[ok] - 1]]
    return out


def best_within_budget(accuracy: Sequence[float], latency: Sequence[float], budget: float) -> int:
    """Index of the most accurate point with latency <= ``budget`` (ms), or -1 if none fits."""
    return int(best_within_budgets(accuracy, latency, [_budget(budget)])[0])


def regrets(
    true_acc_all: Sequence[float],
    true_lat_all: Sequence[float],
    chosen: Sequence[int],
    budgets: Sequence[float],
) -> np.ndarray:
    """Vectorised :func:`regret`: one value per (chosen index, budget) pair; float64 (m,)."""
    acc, lat = _pair(true_acc_all, true_lat_all)
    ch = np.asarray(chosen).reshape(-1)
    b = np.asarray(budgets, dtype=np.float64).reshape(-1)
    if ch.size != b.size:
        raise DataError(f"chosen/budgets: lengths {ch.size} and {b.size} differ; allowed: one choice per budget")
    if ch.size and not np.issubdtype(ch.dtype, np.integer):
        raise DataError(f"chosen: dtype {ch.dtype} is not an integer index; allowed: indices 0..{acc.size - 1} or -1")
    ch = ch.astype(np.int64)
    bad = (ch < -1) | (ch >= acc.size)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"chosen[{i}]: index {ch[i]} is out of range; allowed: 0..{acc.size - 1} or -1 (nothing chosen)")
    best = best_within_budgets(acc, lat, b)
    if (best < 0).any():
        i = int(np.flatnonzero(best < 0)[0])
        raise BudgetError(f"budget {b[i]:g} ms: no architecture is that fast; allowed: budgets >= {lat.min():g} ms")
    out = acc[best] - np.where(ch >= 0, acc[np.maximum(ch, 0)], np.nan)
    return out


def regret(
    true_acc_all: Sequence[float],
    true_lat_all: Sequence[float],
    chosen_index: int,
    budget: float,
) -> float:
    """Best true accuracy within ``budget`` (ms) minus the true accuracy of the chosen point.

    Same unit as the accuracies (percentage points for top-1 %). The value ignores whether the
    chosen point itself fits the budget (report feasibility separately; an infeasible choice can
    have negative regret). ``chosen_index == -1`` (nothing chosen) gives NaN. Raises BudgetError
    when no point at all fits the budget.
    """
    return float(regrets(true_acc_all, true_lat_all, [int(chosen_index)], [_budget(budget)])[0])
