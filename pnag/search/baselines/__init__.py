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


Modules: ``_common`` (:class:`SearchResult`, :class:`Measured`, :class:`IndexTable`, the checks),
``measured`` (:func:`best_measured`, :func:`refine_with_measurements`), ``evolution``
(:func:`random_search`, :func:`evolutionary_search`), ``policy_gradient`` (:func:`policy_gradient_search`).
"""

from ..indices import canonical
from ._common import IndexTable, Measured, ScoreFn, SearchResult, equal_share
from .evolution import EVOLUTION_PEER, evolution_queries, evolutionary_search, random_search
from .measured import best_measured, refine_with_measurements
from .policy_gradient import policy_gradient_search

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
