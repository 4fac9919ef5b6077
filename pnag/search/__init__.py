"""Search: the budget-conditioned generator and its training (train once, generate for any budget),
the choice rule, rewards; ``pareto`` (front, hypervolume, regret) and ``baselines``.

Calling the package runs the main job: ``pnag.search(...)`` is :func:`pnag.search.main_job.search`
(what ``pnag search`` does), while ``pnag.search.Run``, ``pnag.search.TrainConfig`` etc. stay what they are.

Modules: ``config`` (TrainConfig), ``training`` (the stages and :func:`train`), ``active`` (the
look-up loop of an eval budget), ``run`` (:class:`Run` and :meth:`Run.generate`), ``run_files`` (a run
directory's files, their format and version), ``answers`` (:class:`Generation`, :class:`Generations`),
``choice`` (the choice rule as pure functions), ``policy`` (one policy-gradient step), ``generator``,
``indices``, ``main_job`` (the main job), ``stage_lines`` (its progress lines), ``plot`` (a run on a plot).
Accuracy and latency sources are :mod:`pnag.sources` (re-exported here: ``get_accuracy_source``,
``get_latency_source``).
"""

import sys
import types

from ..sources import get_accuracy_source, get_latency_source
from .answers import Generation, Generations
from .config import TrainConfig
from .generator import Generator
from .rewards import REWARDS, mnas_reward, pareto_reward, tunas_reward
from .run import Run
from .training import train


class _CallablePackage(types.ModuleType):
    """This package, callable: ``pnag.search(...)`` runs the main job (``import pnag.search`` makes the
    name the package, so the package itself answers the call)."""

    def __call__(self, *args, **kwargs) -> Run:
        from .main_job import search

        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["Generator", "REWARDS", "mnas_reward", "pareto_reward", "tunas_reward", "get_accuracy_source",
           "get_latency_source", "Generation", "Generations", "Run", "TrainConfig", "train"]
