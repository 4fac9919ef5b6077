"""What every per-budget search shares: the result record, the measured table, index look-ups, and the
checks and helpers of the searches (:mod:`pnag.search.baselines`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ...errors import BudgetError, DataError, PnagError
from ...space.base import SearchSpace
from ..indices import canonical

ScoreFn = Callable[[np.ndarray], np.ndarray]
TOP_K = 16  # distinct predicted-feasible candidates kept per search (for eval-budget re-ranking)


@dataclass(frozen=True)
class SearchResult:
    """What a per-budget search returns.

    ``indices``: the chosen architecture's decision indices; ``predicted_accuracy`` (score unit) and
    ``predicted_latency_ms``; ``feasible``: predicted latency <= budget; ``queries``: predictor
    queries spent, ``latency_queries``: latency look-ups, ``true_queries``: true-accuracy look-ups;
    ``top``: up to 16 distinct predicted-feasible candidates, best predicted first (k, T).
    """

    method: str
    budget_ms: float
    indices: tuple[int, ...]
    arch: Any
    predicted_accuracy: float
    predicted_latency_ms: float
    feasible: bool
    queries: int
    latency_queries: int = 0
    true_queries: int = 0
    top: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64), repr=False, compare=False)


def positive_int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise PnagError(f"{what}: {value!r} is not an integer >= {minimum}; allowed: integers >= {minimum}")
    return int(value)


def fraction(value: Any, what: str, lo_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PnagError(f"{what}: {value!r} is not a number; allowed: a fraction in [0, 1]") from None
    if not (0.0 < v <= 1.0 if lo_open else 0.0 <= v <= 1.0):
        rng = "(0, 1]" if lo_open else "[0, 1]"
        raise PnagError(f"{what}: {value!r} is outside {rng}; allowed: a fraction in {rng}")
    return v


def check_budget(budget: Any) -> float:
    try:
        b = float(budget)
    except (TypeError, ValueError):
        raise BudgetError(f"budget: {budget!r} is not a number; allowed: a latency in ms > 0") from None
    if not np.isfinite(b) or b <= 0:
        raise BudgetError(f"budget: {budget!r} is not a positive finite latency; allowed: a latency in ms > 0")
    return b


def equal_share(total_queries: int, n_budgets: int) -> int:
    """Per-budget query allowance of a baseline: the generator's total over the number of budgets."""
    total = positive_int(total_queries, "total queries")
    n = positive_int(n_budgets, "number of budgets")
    return max(1, total // n)


def decision_sizes(space: SearchSpace) -> np.ndarray:
    return np.array([len(c) for c in space.decision_choices], dtype=np.int64)


def sample_rows(space: SearchSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    sizes = decision_sizes(space)
    return canonical(space, (rng.random((n, sizes.size)) * sizes).astype(np.int64))


def checked_scores(fn: ScoreFn, idx: np.ndarray, what: str) -> np.ndarray:
    out = np.asarray(fn(idx), dtype=np.float64).reshape(-1)
    if out.size != idx.shape[0]:
        raise DataError(f"{what}: returned {out.size} values for {idx.shape[0]} architectures; allowed: one per row")
    return out


class IndexTable:
    """Values (e.g. measured accuracy or tabulated latency) keyed by canonical decision indices.

    ``lookup(idx)`` returns a float array; rows not in the table give ``missing`` (NaN by default).
    Vectorised through a mixed-radix key when the space is small enough (NAS-Bench-201), else a dict.
    """

    def __init__(self, space: SearchSpace, indices: np.ndarray, values: Sequence[float]):
        self.space = space
        idx = canonical(space, np.asarray(indices, dtype=np.int64).reshape(-1, len(space.decision_choices)))
        vals = np.asarray(values, dtype=np.float64).reshape(-1)
        if vals.size != idx.shape[0]:
            raise DataError(f"table: {idx.shape[0]} architectures but {vals.size} values; allowed: one value each")
        sizes = decision_sizes(space)
        self._radix = None
        if float(np.prod(sizes.astype(np.float64))) < 2.0**62:
            self._radix = np.r_[np.cumprod(sizes[::-1])[::-1][1:], 1].astype(np.int64)
            keys = idx @ self._radix
            order = np.argsort(keys, kind="stable")
            self._keys, self._vals = keys[order], vals[order]
        else:
            self._dict = {row.tobytes(): v for row, v in zip(idx, vals)}

    def __len__(self) -> int:
        return int(self._keys.size) if self._radix is not None else len(self._dict)

    def lookup(self, idx: np.ndarray, missing: float = np.nan) -> np.ndarray:
        idx = canonical(self.space, idx)
        if self._radix is None:
            return np.array([self._dict.get(row.tobytes(), missing) for row in idx], dtype=np.float64)
        keys = idx @ self._radix
        if self._keys.size == 0:
            return np.full(keys.size, missing, dtype=np.float64)
        pos = np.minimum(np.searchsorted(self._keys, keys), self._keys.size - 1)
        return np.where(self._keys[pos] == keys, self._vals[pos], missing)

    __call__ = lookup


@dataclass(frozen=True)
class Measured:
    """Architectures whose accuracy has been measured: indices (N, T), accuracy (N,), latency ms (N,)."""

    indices: np.ndarray
    accuracy: np.ndarray
    latency_ms: np.ndarray

    def __post_init__(self) -> None:
        n = np.asarray(self.indices).shape[0]
        if np.asarray(self.accuracy).shape != (n,) or np.asarray(self.latency_ms).shape != (n,):
            raise DataError(f"measured table: {n} architectures, accuracy {np.shape(self.accuracy)}, latency "
                            f"{np.shape(self.latency_ms)}; allowed: one accuracy and one latency per architecture")

    def extended(self, indices: np.ndarray, accuracy: np.ndarray, latency_ms: np.ndarray) -> "Measured":
        return Measured(np.concatenate([self.indices, indices]), np.r_[self.accuracy, accuracy],
                        np.r_[self.latency_ms, latency_ms])


def best_result(method: str, space: SearchSpace, budget: float, idx: np.ndarray, acc: np.ndarray, lat: np.ndarray,
            queries: int, latency_queries: int, select: np.ndarray | None = None) -> SearchResult:
    """Pick the best predicted-feasible row (by ``select``, default ``acc``); none feasible -> the fastest."""
    select = acc if select is None else select
    ok = lat <= budget
    if ok.any():
        cand = np.flatnonzero(ok)
        order = cand[np.lexsort((lat[cand], -select[cand]))]
        _, first = np.unique(idx[order], axis=0, return_index=True)
        top = idx[order[np.sort(first)][:TOP_K]]
        i = int(order[0])
    else:
        i = int(np.argmin(lat))
        top = idx[:0]
    row = idx[i]
    return SearchResult(method, budget, tuple(int(x) for x in row), space.from_indices(row), float(acc[i]),
                        float(lat[i]), bool(ok[i]), int(queries), int(latency_queries), 0, top)
