"""Search: the budget-conditioned generator and its trainer (train once, generate for any budget),
rewards, accuracy/latency sources; ``pareto`` (front, hypervolume, regret) and ``baselines``."""

from .generator import Generator
from .rewards import REWARDS, mnas_reward, pareto_reward, tunas_reward
from .sources import get_accuracy_source, get_latency_source
from .train import Generation, Run, TrainConfig  # train(): pnag.search.train.train (the module keeps its name)

__all__ = ["Generator", "REWARDS", "mnas_reward", "pareto_reward", "tunas_reward", "get_accuracy_source",
           "get_latency_source", "Generation", "Run", "TrainConfig"]
