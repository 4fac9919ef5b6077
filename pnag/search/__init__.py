"""Search: the budget-conditioned generator and its training (train once, generate for any budget),
the choice rule, rewards; ``pareto`` (front, hypervolume, regret) and ``baselines``.

Modules: ``config`` (TrainConfig), ``training`` (the stages and :func:`train`), ``active`` (the
look-up loop of an eval budget), ``run`` (:class:`Run` and :meth:`Run.generate`), ``run_files`` (a run
directory's files, their format and version), ``answers`` (:class:`Generation`), ``choice`` (the
choice rule as pure functions), ``policy`` (one policy-gradient step), ``generator``, ``indices``.
Accuracy and latency sources are :mod:`pnag.sources` (re-exported here: ``get_accuracy_source``,
``get_latency_source``).
"""

from ..sources import get_accuracy_source, get_latency_source
from .config import TrainConfig
from .generator import Generator
from .rewards import REWARDS, mnas_reward, pareto_reward, tunas_reward
from .run import Generation, Run
from .training import train

__all__ = ["Generator", "REWARDS", "mnas_reward", "pareto_reward", "tunas_reward", "get_accuracy_source",
           "get_latency_source", "Generation", "Run", "TrainConfig", "train"]
