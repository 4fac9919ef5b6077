"""Searches that sample and score: uniform random search and once-for-all-style evolution."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...space.base import SearchSpace, make_rng
from ..indices import canonical
from ._common import (ScoreFn, SearchResult, best_result, check_budget, checked_scores, decision_sizes, fraction,
                      positive_int, sample_rows)

# once-for-all's EvolutionFinder defaults (its tutorial search): population 100, 500 generations, the top
# 25 % kept as parents, half the population mutants (each decision redrawn with probability 0.1), the
# rest crossovers; 100 + 500 x 75 = 37,600 predictor queries per budget
EVOLUTION_PEER = {"population": 100, "generations": 500, "parent_ratio": 0.25, "mutation_ratio": 0.5,
                  "mutate_prob": 0.1}


def evolution_queries(population: int, generations: int, parent_ratio: float) -> int:
    """Predictor queries of ``generations`` generations: the first population, then its children each time."""
    n_par = max(1, int(round(parent_ratio * population)))
    return population + generations * (population - n_par)


def random_search(space: SearchSpace, score_fn: ScoreFn, latency_fn: ScoreFn, budget: float, n: int,
                  seed: int | None = None, rng: np.random.Generator | None = None) -> SearchResult:
    """Score ``n`` uniformly sampled architectures at once; the best predicted one within ``budget``."""
    b = check_budget(budget)
    n = positive_int(n, "random search samples")
    idx = sample_rows(space, n, make_rng(seed, rng))
    lat = checked_scores(latency_fn, idx, "latency_fn")
    acc = checked_scores(score_fn, idx, "score_fn")
    return best_result("random", space, b, idx, acc, lat, n, n)


def feasible_fill(space: SearchSpace, make: Callable[[int], np.ndarray], n: int, latency_fn: ScoreFn,
                   budget: float, tries: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Draw rows from ``make(k)`` until ``n`` have latency <= budget (at most ``tries`` rounds).

    Rows still missing after the last round are the fastest infeasible ones seen. Returns the rows,
    their latency and the number of latency look-ups."""
    got_i, got_l, spare_i, spare_l, looks = [], [], [], [], 0
    need = n
    for _ in range(tries):
        cand = make(max(need, 1) * 2)
        lat = checked_scores(latency_fn, cand, "latency_fn")
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
    b = check_budget(budget)
    queries = positive_int(queries, "evolution queries")
    population = positive_int(population, "population", 2)
    parent_ratio = fraction(parent_ratio, "parent ratio", lo_open=True)
    mutation_ratio = fraction(mutation_ratio, "mutation ratio")
    mutate_prob = fraction(mutate_prob, "mutation probability")
    gen = make_rng(seed, rng)
    sizes = decision_sizes(space)
    T = sizes.size
    pop_n = min(population, queries)

    def mutants_of(parents: np.ndarray) -> Callable[[int], np.ndarray]:
        """``k`` -> ``k`` mutants of random ``parents`` (each decision redrawn with ``mutate_prob``)."""
        def make(k: int) -> np.ndarray:
            base = parents[gen.integers(0, len(parents), k)]
            fresh = (gen.random((k, T)) * sizes).astype(np.int64)
            return canonical(space, np.where(gen.random((k, T)) < mutate_prob, fresh, base))
        return make

    pop, pop_lat, looks = feasible_fill(space, lambda k: sample_rows(space, k, gen), pop_n, latency_fn, b, max_tries)
    pop_acc = checked_scores(score_fn, pop, "score_fn")
    extra = 0
    if initial is not None and len(initial):  # the best feasible starting rows and their mutants
        init = np.unique(canonical(space, np.asarray(initial, dtype=np.int64).reshape(-1, T)), axis=0)
        init_lat = checked_scores(latency_fn, init, "latency_fn")
        looks += len(init)
        init, init_lat = init[init_lat <= b], init_lat[init_lat <= b]
        if len(init):
            init_acc = checked_scores(score_fn, init, "score_fn")
            extra = len(init)
            top = np.argsort(-init_acc, kind="stable")[:max(1, pop_n // 2)]
            seeds = init[top]
            kids, kids_lat, lk = feasible_fill(space, mutants_of(seeds), pop_n - len(seeds), latency_fn, b, max_tries)
            looks += lk
            pop = np.concatenate([seeds, kids])
            pop_lat = np.r_[init_lat[top], kids_lat]
            pop_acc = np.r_[init_acc[top], checked_scores(score_fn, kids, "score_fn")]
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

        def crossovers(k: int) -> np.ndarray:
            a = par[gen.integers(0, len(par), k)]
            c = par[gen.integers(0, len(par), k)]
            return canonical(space, np.where(gen.random((k, T)) < 0.5, a, c))

        kids, kid_lat = [], []
        for make, k in ((mutants_of(par), n_mut), (crossovers, n_child - n_mut)):
            if k > 0:
                i, l, lk = feasible_fill(space, make, k, latency_fn, b, max_tries)
                kids.append(i)
                kid_lat.append(l)
                looks += lk
        kids_i, kids_l = np.concatenate(kids), np.concatenate(kid_lat)
        kids_a = checked_scores(score_fn, kids_i, "score_fn")
        spent += kids_i.shape[0]
        seen_i.append(kids_i)
        seen_a.append(kids_a)
        seen_l.append(kids_l)
        pop = np.concatenate([par, kids_i])
        pop_acc = np.r_[par_acc, kids_a]
        pop_lat = np.r_[par_lat, kids_l]
    return best_result("evolution", space, b, np.concatenate(seen_i), np.concatenate(seen_a), np.concatenate(seen_l),
                   spent, looks)
