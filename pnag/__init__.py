"""pnag: Pareto-aware neural architecture generation, hardware-aware NAS in one trained generator."""

from .errors import ArchError, BudgetError, DataError, PnagError
from .space import MBV3Arch, MBV3Space, SearchSpace, parse_arch

__version__ = "0.1.0"

__all__ = ["ArchError", "BudgetError", "DataError", "PnagError", "MBV3Arch", "MBV3Space", "SearchSpace",
           "parse_arch", "__version__"]
