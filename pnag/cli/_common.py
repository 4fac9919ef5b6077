"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import PnagError


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=1)
    sys.stdout.write("\n")


def bounded_int(name: str, minimum: int):
    """argparse type: an integer >= ``minimum``, with an error naming the option."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name}: {text!r} is not an integer; allowed: an integer >= {minimum}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{name}: {v} is not allowed; allowed: an integer >= {minimum}")
        return v

    return parse


def positive_int(name: str):
    """argparse type: an integer >= 1."""
    return bounded_int(name, 1)


def non_negative_int(name: str):
    """argparse type: an integer >= 0."""
    return bounded_int(name, 0)


def table(rows: list[list[Any]], header: list[str]) -> str:
    """Plain-text table with right-aligned numbers."""
    cells = [[str(h) for h in header]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if j and _num(c) else c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _num(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


__all__ = ["PnagError", "bounded_int", "non_negative_int", "print_json", "positive_int", "table"]
