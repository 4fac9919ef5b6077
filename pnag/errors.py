"""Errors a user can cause.

Every message names the input, the offending value and what is allowed. The CLI prints the message
(no traceback) and exits with status 2.
"""

from __future__ import annotations

import math
import numbers
import re


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


def check_number(value, what: str, positive: bool = False, low: float | None = None,
                 high: float | None = None) -> float:
    """``value`` as a float if it is a finite real number (not a bool, not text), ``> 0`` when
    ``positive`` and within ``[low, high]`` where given; else a :class:`DataError` naming ``what``.

    For numbers read from files (a latency in ms, an accuracy), so that NaN, infinities, negative
    times, ``true`` and ``"5"`` are refused where they are read instead of spreading silently."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    outside = number and ((low is not None and value < low) or (high is not None and value > high))
    if not number or outside or (positive and not value > 0):
        rules = ["> 0"] if positive else []
        if low is not None and high is not None:
            rules.append(f"in [{low:g}, {high:g}]")
        elif low is not None or high is not None:
            rules.append(f">= {low:g}" if low is not None else f"<= {high:g}")
        rule = " and ".join(rules)
        problem = "is outside the allowed range" if outside else "is not allowed"
        raise DataError(f"{what}: {value!r} {problem}; allowed: a finite number {rule}".rstrip())
    return float(value)


def allowed(values) -> str:
    """Format a set of allowed values for an error message: ``2, 3 or 4`` (``""`` for none, so that
    ``allowed(values) or "none"`` reads as it should)."""
    vals = [str(v) for v in values]
    if len(vals) <= 1:
        return "".join(vals)
    return ", ".join(vals[:-1]) + " or " + vals[-1]


# An integer written with ASCII digits only: str.isdigit() and int() also take superscripts and other
# scripts' digits (int("\u0663") == 3), which pnag does not read as numbers.
_ASCII_INT = re.compile(r"[+-]?[0-9]+")
MAX_INT_DIGITS = 30  # longer integers are out of every range pnag accepts (and int() refuses > 4300 digits)


def one_line(message: object) -> str:
    """``message`` as one line (a value quoted in it may hold line breaks)."""
    return str(message).replace("\r", "\\r").replace("\n", "\\n")


def shown(value, limit: int = 60) -> str:
    """``repr(value)`` for an error message, shortened to about ``limit`` characters (one line)."""
    r = repr(value)
    return r if len(r) <= limit else f"{r[:limit - 20]}...{r[-12:]} ({len(r)} characters)"


def parse_int(text: str, what: str, allowed_text: str, error: type[PnagError] = PnagError,
              noun: str = "an integer") -> int:
    """``text`` (surrounding spaces allowed) as an int when it is an integer in ASCII digits with an optional
    sign; else ``error`` naming ``what``, the value and ``allowed_text``. Non-ASCII digits (superscripts,
    Arabic-Indic, ...) are refused with a message saying so."""
    s = str(text).strip()
    if not _ASCII_INT.fullmatch(s):
        hint = "" if s.isascii() else " (only the ASCII digits 0-9 are read as numbers)"
        raise error(f"{what}: {shown(text)} is not {noun}{hint}; allowed: {allowed_text}")
    if len(s.lstrip("+-")) > MAX_INT_DIGITS:
        raise error(f"{what}: {shown(text)} is out of range; allowed: {allowed_text}")
    return int(s)


def check_ascii_number(text: str, what: str, allowed_text: str, error: type[PnagError] = PnagError) -> str:
    """``text`` unchanged when it is ASCII (float() also reads other scripts' digits); else ``error``."""
    if not str(text).isascii():
        raise error(f"{what}: {shown(text)} is not a number (only the ASCII digits 0-9 are read as numbers); "
                    f"allowed: {allowed_text}")
    return text
