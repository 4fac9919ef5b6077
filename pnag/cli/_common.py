"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._io import check_output_path, removed_on_error
from ..errors import PnagError, check_ascii_number, parse_int, shown


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=1)
    sys.stdout.write("\n")


# The one source grammar of every command (pnag.sources; tests/test_sources.py keeps these in step with it):
# written out here so that `pnag --help` need not import torch.
ACCURACY_HELP = ("dataset:NAME (or a records file), nb201:cifar10|cifar100|ImageNet16-120, nb201-exact:DATASET, "
                 "ofa-predictor, proxy:NAME (madds, params, synflow, gradnorm, zico), supernet:CKPT (with --imagenet) "
                 "or a registered prefix")
LATENCY_HELP = ("lut:FILE, lut:note10, lut:i7-8700k, nb201:DEVICE, table:help-ofa-gpu:GPU_BATCH, measure:BACKEND, "
                "local or adapted:FILE")

# Seeds: torch's generators take 0..2**64-1 and numpy's any integer >= 0; pnag derives further seeds as
# seed + k (k < 10**4), so a seed is 0..2**63-1, a signed 64-bit integer, which every one of them accepts.
MAX_SEED = 2**63 - 1
# Counts that allocate per item (arrays, candidate tensors, architecture objects) are capped before any work.
MAX_ARCH_SAMPLES = 100_000  # pnag arch sample -n, pnag train --train-samples / --latency-samples
MAX_DRAWS = 10_000  # generator draws per budget (--samples of generate and search)
MAX_BUDGET_DRAWS = 1_000_000  # budgets x draws per budget: about 400 bytes each, so at most some 400 MB
MAX_MEASURED = 10_000  # networks measured end to end (seconds each): latency validate --samples, --calibration
MAX_THREADS = 1024  # torch takes a C int; more threads than this machine could run help nothing
MAX_WORKERS = 256  # data-loading worker processes
MAX_BATCH = 4096  # images in memory at once (about 0.6 MB each at 224 px)
MAX_PIXELS = 2048  # input resolution of a network (memory)


def bounded_int(name: str, minimum: int, maximum: int | None = None, why: str = ""):
    """argparse type: an integer in ``minimum..maximum`` written in ASCII digits, with an error naming the
    option, the value and the range (``why``: a reason for the maximum, said after it)."""
    allowed_text = f"an integer >= {minimum}" if maximum is None else f"an integer in {minimum}..{maximum}{why}"

    def parse(text: str) -> int:
        try:
            v = parse_int(text, name, allowed_text)
        except PnagError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if v < minimum or maximum is not None and v > maximum:
            raise argparse.ArgumentTypeError(f"{name}: {v} is not allowed; allowed: {allowed_text}")
        return v

    return parse


def positive_int(name: str, maximum: int | None = None, why: str = ""):
    """argparse type: an integer >= 1 (and <= ``maximum``)."""
    return bounded_int(name, 1, maximum, why)


def non_negative_int(name: str, maximum: int | None = None, why: str = ""):
    """argparse type: an integer >= 0 (and <= ``maximum``)."""
    return bounded_int(name, 0, maximum, why)


def threads_int(name: str = "--threads"):
    """argparse type: a number of CPU threads, 1..:data:`MAX_THREADS`."""
    return positive_int(name, MAX_THREADS)


def seed_int(name: str = "--seed"):
    """argparse type: a random seed, 0..2**63-1 (see :data:`MAX_SEED`)."""
    return bounded_int(name, 0, MAX_SEED, " (2**63-1, the range torch's and numpy's generators share)")


def ascii_float(name: str, what: str = "a number"):
    """argparse type: a float written in ASCII (``float()`` also reads other scripts' digits)."""

    def parse(text: str) -> float:
        try:
            return float(check_ascii_number(text, name, what))
        except PnagError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {shown(text)} is not a number; allowed: {what}") from None

    return parse


def check_draws(n_budgets: int, samples: int, what: str = "--samples") -> None:
    """Refuse, before any allocation, more generator draws in all than :data:`MAX_BUDGET_DRAWS`."""
    if n_budgets * samples > MAX_BUDGET_DRAWS:
        raise PnagError(f"{what}: {samples} draws for each of {n_budgets} budgets ({n_budgets * samples} in all) "
                        f"is too many; allowed: budgets x samples <= {MAX_BUDGET_DRAWS} (memory)")


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


__all__ = ["PnagError", "ascii_float", "bounded_int", "check_draws", "check_output_path", "non_negative_int",
           "print_json", "positive_int", "removed_on_error", "seed_int", "table", "threads_int"]
