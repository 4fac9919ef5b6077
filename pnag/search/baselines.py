"""Per-budget search baselines, run on the same predictors and measured data as the generator.

Every search works on the space's *decision interface* (``decision_choices``, ``to_indices``,
``from_indices``, ``active_mask``), so it serves any search space. Architectures travel as int64
index matrices ``(N, T)`` (one row per architecture, one column per decision); a *score function*
maps such a matrix to a float array ``(N,)`` in one call, so whole populations are scored at once:

* ``score_fn``: predicted accuracy (higher is better; e.g. %), one *query* per row;
* ``latency_fn``: latency in ms (a device table or LUT; as measuring on the device would).

**Equal cost.** Cost is counted in accuracy-predictor queries (rows passed to ``score_fn``); latency
look-ups are counted separately (they stand for a device table, not a model) and true-accuracy
look-ups (``eval_budget``) separately again. The generator is trained once for all budgets, so a
per-budget baseline gets ``generator queries / number of budgets`` predictor queries
(:func:`equal_share`), and ``eval_budget / number of budgets`` true look-ups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import BudgetError, DataError, PnagError, allowed
from ..space.base import SearchSpace, make_rng
from .generator import Generator
from .indices import canonical
from .policy import policy_gradient_step
from .rewards import mnas_reward, tunas_reward

__all__ = [
    "ScoreFn",
    "SearchResult",
    "IndexTable",
    "Measured",
    "equal_share",
    "canonical",
    "best_measured",
    "random_search",
    "evolutionary_search",
    "EVOLUTION_PEER",
    "evolution_queries",
    "policy_gradient_search",
    "refine_with_measurements",
]

ScoreFn = Callable[[np.ndarray], np.ndarray]
# once-for-all's EvolutionFinder defaults (its tutorial search): population 100, 500 generations, the top
# 25 % kept as parents, half the population mutants (each decision redrawn with probability 0.1), the
# rest crossovers; 100 + 500 x 75 = 37,600 predictor queries per budget
EVOLUTION_PEER = {"population": 100, "generations": 500, "parent_ratio": 0.25, "mutation_ratio": 0.5,
                  "mutate_prob": 0.1}


def evolution_queries(population: int, generations: int, parent_ratio: float) -> int:
    """Predictor queries of ``generations`` generations: the first population, then its children each time."""
    n_par = max(1, int(round(parent_ratio * population)))
    return population + generations * (population - n_par)
REWARDS = ("mnas", "tunas")
TOP_K = 16  # distinct predicted-feasible candidates kept per search (for eval-budget re-ranking)


# ------------------------------------------------------------------------------------------------
# records and helpers
# ------------------------------------------------------------------------------------------------
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


def _positive_int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise PnagError(f"{what}: {value!r} is not an integer >= {minimum}; allowed: integers >= {minimum}")
    return int(value)


def _fraction(value: Any, what: str, lo_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PnagError(f"{what}: {value!r} is not a number; allowed: a fraction in [0, 1]") from None
    if not (0.0 < v <= 1.0 if lo_open else 0.0 <= v <= 1.0):
        rng = "(0, 1]" if lo_open else "[0, 1]"
        raise PnagError(f"{what}: {value!r} is outside {rng}; allowed: a fraction in {rng}")
    return v


def _check_budget(budget: Any) -> float:
    try:
        b = float(budget)
    except (TypeError, ValueError):
        raise BudgetError(f"budget: {budget!r} is not a number; allowed: a latency in ms > 0") from None
    if not np.isfinite(b) or b <= 0:
        raise BudgetError(f"budget: {budget!r} is not a positive finite latency; allowed: a latency in ms > 0")
    return b


def equal_share(total_queries: int, n_budgets: int) -> int:
    """Per-budget query allowance of a baseline: the generator's total over the number of budgets."""
    total = _positive_int(total_queries, "total queries")
    n = _positive_int(n_budgets, "number of budgets")
    return max(1, total // n)


def _sizes(space: SearchSpace) -> np.ndarray:
    return np.array([len(c) for c in space.decision_choices], dtype=np.int64)


def _sample(space: SearchSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    sizes = _sizes(space)
    return canonical(space, (rng.random((n, sizes.size)) * sizes).astype(np.int64))


def _scores(fn: ScoreFn, idx: np.ndarray, what: str) -> np.ndarray:
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
        sizes = _sizes(space)
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


def _result(method: str, space: SearchSpace, budget: float, idx: np.ndarray, acc: np.ndarray, lat: np.ndarray,
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


# ------------------------------------------------------------------------------------------------
# baselines
# ------------------------------------------------------------------------------------------------
def best_measured(space: SearchSpace, table: Measured, budget: float) -> SearchResult:
    """The most accurate already-measured architecture within ``budget`` (ms); no search, no queries.

    Here ``predicted_*`` are the measured values. If nothing measured fits, the fastest is returned
    with ``feasible=False``.
    """
    b = _check_budget(budget)
    idx = np.asarray(table.indices, dtype=np.int64)
    if idx.shape[0] == 0:
        raise DataError("measured table: it is empty; allowed: at least one measured architecture")
    return _result("best-measured", space, b, idx, np.asarray(table.accuracy, float),
                   np.asarray(table.latency_ms, float), 0, 0)


def random_search(space: SearchSpace, score_fn: ScoreFn, latency_fn: ScoreFn, budget: float, n: int,
                  seed: int | None = None, rng: np.random.Generator | None = None) -> SearchResult:
    """Score ``n`` uniformly sampled architectures at once; the best predicted one within ``budget``."""
    b = _check_budget(budget)
    n = _positive_int(n, "random search samples")
    idx = _sample(space, n, make_rng(seed, rng))
    lat = _scores(latency_fn, idx, "latency_fn")
    acc = _scores(score_fn, idx, "score_fn")
    return _result("random", space, b, idx, acc, lat, n, n)


def _feasible_fill(space: SearchSpace, make: Callable[[int], np.ndarray], n: int, latency_fn: ScoreFn,
                   budget: float, tries: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Draw rows from ``make(k)`` until ``n`` have latency <= budget (at most ``tries`` rounds).

    Rows still missing after the last round are the fastest infeasible ones seen. Returns the rows,
    their latency and the number of latency look-ups."""
    got_i, got_l, spare_i, spare_l, looks = [], [], [], [], 0
    need = n
    for _ in range(tries):
        cand = make(max(need, 1) * 2)
        lat = _scores(latency_fn, cand, "latency_fn")
        looks += cand.shape[0]
        ok = lat <= budget
        got_i.append(cand[ok][:need])
        got_l.append(lat[ok][:need])
        spare_i.append(cand[~ok])
        spare_l.append(lat[~ok])
        need -= int(min(ok.sum(), need))
        if need == 0:
            break
    if need > 0:
        si, sl = np.concatenate(spare_i), np.concatenate(spare_l)
        order = np.argsort(sl, kind="stable")[:need]
        got_i.append(si[order])
        got_l.append(sl[order])
    return np.concatenate(got_i)[:n], np.concatenate(got_l)[:n], looks


def evolutionary_search(
    space: SearchSpace,
    score_fn: ScoreFn,
    latency_fn: ScoreFn,
    budget: float,
    queries: int,
    population: int = 100,
    parent_ratio: float = 0.25,
    mutation_ratio: float = 0.5,
    mutate_prob: float = 0.1,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
    max_tries: int = 20,
    initial: np.ndarray | None = None,
) -> SearchResult:
    """Once-for-all style evolution under the constraint latency <= ``budget`` (ms).

    A feasible random population is scored; each generation keeps the top ``parent_ratio`` as
    parents and fills the rest with ``mutation_ratio x population`` mutants (each decision resampled
    with ``mutate_prob``) and uniform crossovers of two parents, both redrawn until feasible (OFA's
    rule; at most ``max_tries`` rounds). Stops when ``queries`` predictor queries are spent
    (:data:`EVOLUTION_PEER` with :func:`evolution_queries` gives once-for-all's published settings).
    ``initial (N, T)``: starting rows; the first population is then the best half population of the
    feasible ones (by ``score_fn``, their queries counted) and mutants of them.
    """
    b = _check_budget(budget)
    queries = _positive_int(queries, "evolution queries")
    population = _positive_int(population, "population", 2)
    parent_ratio = _fraction(parent_ratio, "parent ratio", lo_open=True)
    mutation_ratio = _fraction(mutation_ratio, "mutation ratio")
    mutate_prob = _fraction(mutate_prob, "mutation probability")
    gen = make_rng(seed, rng)
    sizes = _sizes(space)
    T = sizes.size
    pop_n = min(population, queries)
    pop, pop_lat, looks = _feasible_fill(space, lambda k: _sample(space, k, gen), pop_n, latency_fn, b, max_tries)
    pop_acc = _scores(score_fn, pop, "score_fn")
    extra = 0
    if initial is not None and len(initial):  # the best feasible starting rows and their mutants
        init = np.unique(canonical(space, np.asarray(initial, dtype=np.int64).reshape(-1, T)), axis=0)
        init_lat = _scores(latency_fn, init, "latency_fn")
        looks += len(init)
        init, init_lat = init[init_lat <= b], init_lat[init_lat <= b]
        if len(init):
            init_acc = _scores(score_fn, init, "score_fn")
            extra = len(init)
            top = np.argsort(-init_acc, kind="stable")[:max(1, pop_n // 2)]
            seeds = init[top]

            def seeded(k: int) -> np.ndarray:
                base = seeds[gen.integers(0, len(seeds), k)]
                fresh = (gen.random((k, T)) * sizes).astype(np.int64)
                return canonical(space, np.where(gen.random((k, T)) < mutate_prob, fresh, base))

            kids, kids_lat, lk = _feasible_fill(space, seeded, pop_n - len(seeds), latency_fn, b, max_tries)
            looks += lk
            pop = np.concatenate([seeds, kids])
            pop_lat = np.r_[init_lat[top], kids_lat]
            pop_acc = np.r_[init_acc[top], _scores(score_fn, kids, "score_fn")]
    spent = pop_n + extra
    seen_i, seen_a, seen_l = [pop], [pop_acc], [pop_lat]
    n_par = max(1, int(round(parent_ratio * population)))
    while spent < queries:
        order = np.lexsort((pop_lat, -pop_acc))[:n_par]
        par, par_acc, par_lat = pop[order], pop_acc[order], pop_lat[order]
        n_child = min(population - n_par, queries - spent)
        if n_child <= 0:
            break
        n_mut = min(n_child, int(round(mutation_ratio * population)))  # once-for-all: a share of the population

        def mutants(k: int) -> np.ndarray:
            base = par[gen.integers(0, len(par), k)]
            fresh = (gen.random((k, T)) * sizes).astype(np.int64)
            return canonical(space, np.where(gen.random((k, T)) < mutate_prob, fresh, base))

        def crossovers(k: int) -> np.ndarray:
            a = par[gen.integers(0, len(par), k)]
            c = par[gen.integers(0, len(par), k)]
            return canonical(space, np.where(gen.random((k, T)) < 0.5, a, c))

        kids, kid_lat = [], []
        for make, k in ((mutants, n_mut), (crossovers, n_child - n_mut)):
            if k > 0:
                i, l, lk = _feasible_fill(space, make, k, latency_fn, b, max_tries)
                kids.append(i)
                kid_lat.append(l)
                looks += lk
        kids_i, kids_l = np.concatenate(kids), np.concatenate(kid_lat)
        kids_a = _scores(score_fn, kids_i, "score_fn")
        spent += kids_i.shape[0]
        seen_i.append(kids_i)
        seen_a.append(kids_a)
        seen_l.append(kids_l)
        pop = np.concatenate([par, kids_i])
        pop_acc = np.r_[par_acc, kids_a]
        pop_lat = np.r_[par_lat, kids_l]
    return _result("evolution", space, b, np.concatenate(seen_i), np.concatenate(seen_a), np.concatenate(seen_l),
                   spent, looks)


# ------------------------------------------------------------------------------------------------
# rewards and per-budget policy gradient
# ------------------------------------------------------------------------------------------------
def policy_gradient_search(
    space: SearchSpace,
    score_fn: ScoreFn,
    latency_fn: ScoreFn,
    budget: float,
    reward: str = "mnas",
    steps: int = 100,
    batch: int = 32,
    lr: float = 1e-2,
    entropy: float = 1e-3,
    seed: int | None = None,
    acc_scale: float = 100.0,
    hidden: int = 64,
) -> SearchResult:
    """Per-budget policy gradient with the project's LSTM :class:`~pnag.search.generator.Generator`.

    The generator is trained for this one budget only, with reward ``mnas`` or ``tunas``
    (:mod:`pnag.search.rewards`) on predicted accuracy (divided by ``acc_scale``: a % score becomes
    the fraction the rewards assume) and latency (ms). Batches of ``batch`` samples, Adam ``lr``
    (default 1e-2: the published 3e-4 barely moves in a per-budget share of queries), entropy bonus
    ``entropy``; the step is the run's own (:func:`pnag.search.policy.policy_gradient_step`:
    leave-one-out baseline, standardised). Spends ``steps * batch`` predictor queries and returns the sampled architecture with the highest reward: these rewards are soft constraints,
    so it may exceed the budget.
    """
    b = _check_budget(budget)
    if reward not in REWARDS:
        raise PnagError(f"reward: {reward!r} is not a per-budget policy-gradient reward; allowed: {allowed(REWARDS)}")
    steps = _positive_int(steps, "policy-gradient steps")
    batch = _positive_int(batch, "policy-gradient batch", 2)
    reward_fn = mnas_reward if reward == "mnas" else tunas_reward
    seed = 0 if seed is None else int(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = Generator(space, (0.0, 2.0 * b), hidden=hidden)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    seen_i, seen_a, seen_l, seen_r = [], [], [], []

    def scored(idx: torch.Tensor, budgets: torch.Tensor) -> torch.Tensor:
        idx_np = canonical(space, idx.numpy())
        acc = _scores(score_fn, idx_np, "score_fn")
        lat = _scores(latency_fn, idx_np, "latency_fn")
        r = reward_fn(acc / acc_scale, lat, b)
        seen_i.append(idx_np)
        seen_a.append(acc)
        seen_l.append(lat)
        seen_r.append(np.asarray(r, dtype=np.float64))
        return torch.as_tensor(r, dtype=torch.float64)

    for _ in range(steps):
        policy_gradient_step(policy, opt, torch.full((1,), b), batch, scored, entropy, g)
    idx_all = np.concatenate(seen_i)
    acc_all, lat_all, rew = np.concatenate(seen_a), np.concatenate(seen_l), np.concatenate(seen_r)
    i = int(np.argmax(rew))
    top = _result("pg", space, b, idx_all, acc_all, lat_all, 0, 0).top
    return SearchResult(f"pg-{reward}", b, tuple(int(x) for x in idx_all[i]), space.from_indices(idx_all[i]),
                        float(acc_all[i]), float(lat_all[i]), bool(lat_all[i] <= b), steps * batch, steps * batch,
                        0, top)


# ------------------------------------------------------------------------------------------------
# eval budget: measure the best candidates of a search
# ------------------------------------------------------------------------------------------------
def refine_with_measurements(space: SearchSpace, result: SearchResult, measured: Measured, true_acc_fn: ScoreFn,
                             latency_fn: ScoreFn, q: int) -> SearchResult:
    """Spend up to ``q`` true-accuracy look-ups on the search's best not-yet-measured candidates.

    Returns the most accurate architecture within the budget among those and the already-measured
    ones (``predicted_accuracy`` is then the true, measured value); ``true_queries`` counts the
    look-ups. ``q == 0`` returns ``result`` unchanged.
    """
    q = _positive_int(q, "eval budget", 0)
    if q == 0 or result.top.shape[0] == 0:
        return result
    known = IndexTable(space, measured.indices, np.zeros(len(measured.accuracy)))
    fresh = result.top[np.isnan(known.lookup(result.top))][:q]
    if fresh.shape[0] == 0:
        return result
    true_acc = _scores(true_acc_fn, fresh, "true_acc_fn")
    fresh_lat = _scores(latency_fn, fresh, "latency_fn")
    idx = np.concatenate([np.asarray(measured.indices, np.int64), fresh])
    acc = np.r_[measured.accuracy, true_acc]
    lat = np.r_[measured.latency_ms, fresh_lat]
    best = _result(result.method, space, result.budget_ms, idx, acc, lat, 0, 0)
    return SearchResult(best.method, best.budget_ms, best.indices, best.arch, best.predicted_accuracy,
                        best.predicted_latency_ms, best.feasible, result.queries,
                        result.latency_queries + int(fresh.shape[0]), int(fresh.shape[0]), result.top)
