"""Baselines on the measured table: the best measured architecture within a budget, and spending an
eval budget of true-accuracy look-ups on a search's best candidates."""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from ...space.base import SearchSpace
from ._common import (IndexTable, Measured, ScoreFn, SearchResult, best_result, check_budget, checked_scores,
                      positive_int)


def best_measured(space: SearchSpace, table: Measured, budget: float) -> SearchResult:
    """The most accurate already-measured architecture within ``budget`` (ms); no search, no queries.

    Here ``predicted_*`` are the measured values. If nothing measured fits, the fastest is returned
    with ``feasible=False``.
    """
    b = check_budget(budget)
    idx = np.asarray(table.indices, dtype=np.int64)
    if idx.shape[0] == 0:
        raise DataError("measured table: it is empty; allowed: at least one measured architecture")
    return best_result("best-measured", space, b, idx, np.asarray(table.accuracy, float),
                   np.asarray(table.latency_ms, float), 0, 0)


def refine_with_measurements(space: SearchSpace, result: SearchResult, measured: Measured, true_acc_fn: ScoreFn,
                             latency_fn: ScoreFn, q: int) -> SearchResult:
    """Spend up to ``q`` true-accuracy look-ups on the search's best not-yet-measured candidates.

    Returns the most accurate architecture within the budget among those and the already-measured
    ones (``predicted_accuracy`` is then the true, measured value); ``true_queries`` counts the
    look-ups. ``q == 0`` returns ``result`` unchanged.
    """
    q = positive_int(q, "eval budget", 0)
    if q == 0 or result.top.shape[0] == 0:
        return result
    known = IndexTable(space, measured.indices, np.zeros(len(measured.accuracy)))
    fresh = result.top[np.isnan(known.lookup(result.top))][:q]
    if fresh.shape[0] == 0:
        return result
    true_acc = checked_scores(true_acc_fn, fresh, "true_acc_fn")
    fresh_lat = checked_scores(latency_fn, fresh, "latency_fn")
    idx = np.concatenate([np.asarray(measured.indices, np.int64), fresh])
    acc = np.r_[measured.accuracy, true_acc]
    lat = np.r_[measured.latency_ms, fresh_lat]
    best = best_result(result.method, space, result.budget_ms, idx, acc, lat, 0, 0)
    return SearchResult(best.method, best.budget_ms, best.indices, best.arch, best.predicted_accuracy,
                        best.predicted_latency_ms, best.feasible, result.queries,
                        result.latency_queries + int(fresh.shape[0]), int(fresh.shape[0]), result.top)
