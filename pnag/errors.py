"""Errors a user can cause.

Every message names the input, the offending value and what is allowed. The CLI prints the message
(no traceback) and exits with status 2.
"""

from __future__ import annotations


class PnagError(ValueError):
    """Base class of errors caused by user input (bad arguments, files, data)."""


class ArchError(PnagError):
    """A malformed architecture: wrong counts, separators, values outside the choices, ..."""


class DataError(PnagError):
    """A dataset or file that is missing, corrupt or of the wrong format."""


class BudgetError(PnagError):
    """A latency budget outside what a trained run or a table can serve."""


def check_fraction(value, what: str) -> float:
    """``value`` as a float if it is a real number in [0, 1] (not a bool); else a :class:`PnagError`
    naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise PnagError(f"{what}: {value!r}; allowed: a fraction in [0, 1]")
    return float(value)


def allowed(values) -> str:
    """Format a set of allowed values for an error message: ``2, 3 or 4``."""
    vals = [str(v) for v in values]
    if len(vals) == 1:
        return vals[0]
    return ", ".join(vals[:-1]) + " or " + vals[-1]
