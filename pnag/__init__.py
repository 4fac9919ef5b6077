"""pnag: Pareto-aware neural architecture generation, hardware-aware NAS in one trained generator.

``pnag.train(...)`` trains a run and ``pnag.search(...)`` runs the main job (:mod:`pnag.api`); both return a
:class:`~pnag.search.run.Run`. They, ``Run``, ``TrainConfig`` and ``Generations`` are imported on first use,
so that ``import pnag`` stays light.
"""

from importlib import import_module

from .errors import ArchError, BudgetError, DataError, PnagError
from .space import MBV3Arch, MBV3Space, SearchSpace, parse_arch

__version__ = "0.1.0"

_FROM_SEARCH = ("Run", "TrainConfig", "Generation", "Generations")


def __getattr__(name: str):
    if name == "train":
        from .api import train

        return train
    if name == "search":  # the subpackage, which runs the main job when called (pnag.search.main_job.search)
        return import_module(".search", __name__)  # not "from . import search": its hasattr would recurse here
    if name in _FROM_SEARCH:
        return getattr(import_module(".search", __name__), name)
    raise AttributeError(f"module 'pnag' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"train", "search", *_FROM_SEARCH})


__all__ = ["ArchError", "BudgetError", "DataError", "PnagError", "MBV3Arch", "MBV3Space", "SearchSpace",
           "parse_arch", "__version__", "train", "search", *_FROM_SEARCH]
