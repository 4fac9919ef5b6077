"""The collection file format of ``pnag collect``: an append-only JSON-lines file, a header line with
the collection's settings (:class:`CollectConfig`), then one record per line. A run killed mid-write
leaves at most a torn last line, which :func:`read_collection` detects (and with ``repair`` cuts off).
The collecting itself (sampling, pricing, scoring) is :mod:`pnag.collect`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import DataError, PnagError, allowed
from .records import Dataset, Record, make_dataset, record_from_dict

FORMAT_VERSION = 1
SPACES = ("mbv3", "nb201")


@dataclass(frozen=True)
class CollectConfig:
    """What to collect. ``latency`` / ``stratify_by`` are spec strings (see pnag.latency) or names of
    callables passed to :func:`collect`; ``pool`` candidates are priced for stratification
    (default ``max(20 * samples, 2000)``); ``strata`` latency bins (default ``min(samples, 10)``)."""

    space: str = "mbv3"
    samples: int = 100
    seed: int = 0
    width: float | None = None
    resolution: int | None = None
    accuracy: str = "none"
    latency: tuple[str, ...] = ()
    stratify_by: str | None = None
    pool: int | None = None
    strata: int | None = None
    proxy_batch: int = 8
    proxy_resolution: int = 96

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise PnagError(f"--space: {self.space!r} is not known; allowed: {allowed(SPACES)}")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise PnagError(f"--samples: {self.samples!r} is not allowed; allowed: an integer >= 1")
        if self.space == "nb201" and (self.width is not None or self.resolution is not None):
            raise PnagError("--width/--resolution: not part of the nb201 space; allowed only with --space mbv3")
        held = math.prod(len(c) for c in make_space(self).decision_choices)  # distinct archs at most
        if self.samples > held:  # else the candidate stream would never end
            raise PnagError(f"--samples: {self.samples} is more than the {held} architectures of the {self.space} "
                            f"space; allowed: 1..{held}")

    def header(self) -> dict:
        d = asdict(self)
        d["latency"] = list(self.latency)
        return {"pnag_collect": FORMAT_VERSION, **d}


def make_space(cfg: CollectConfig):
    from ..space import get_space

    if cfg.space == "mbv3":
        kw = {k: v for k, v in (("width", cfg.width), ("resolution", cfg.resolution)) if v is not None}
        return get_space("mbv3", **kw)
    return get_space("nb201")


def read_collection(path: str | os.PathLike, repair: bool = False) -> tuple[dict | None, list[Record]]:
    """Header and records of a collection file. A torn last line (no newline or not JSON) is ignored,
    and with ``repair`` cut off the file; any other bad line raises DataError naming it."""
    path = Path(path)
    if not path.exists():
        return None, []
    try:
        raw = path.read_bytes()
    except OSError as exc:  # a folder, no permission
        raise DataError(f"collection file {path}: cannot be read ({exc.strerror or exc}); allowed: a file written "
                        "by `pnag collect`") from None
    lines = raw.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    good_end = len(raw) - len(tail)
    parsed: list[dict] = []
    for i, line in enumerate(lines):
        try:
            parsed.append(json.loads(line))
        except (ValueError, RecursionError):  # not JSON or not UTF-8; nested or long beyond Python's limits
            if i == len(lines) - 1 and not tail:  # a torn last line that happened to end in "\n"
                good_end -= len(line) + 1
                break
            raise DataError(f"{path} line {i + 1}: not valid JSON; the collection file is damaged "
                            "(only a torn last line is repaired automatically)") from None
    if repair and good_end < len(raw):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())
    if not parsed:
        return None, []
    header = parsed[0]
    if not isinstance(header, dict) or header.get("pnag_collect") != FORMAT_VERSION:
        raise DataError(f"{path}: first line is not a pnag collection header; allowed: a file written by "
                        "`pnag collect` (or choose a new --out)")
    recs = []
    for i, d in enumerate(parsed[1:], start=2):
        try:
            recs.append(record_from_dict(d))
        except PnagError as exc:
            raise DataError(f"{path} line {i}: {exc}") from None
    return header, recs


def load_collection(path: str | os.PathLike) -> Dataset:
    """A collection file as a :class:`Dataset`."""
    header, recs = read_collection(path)
    if header is None:
        raise DataError(f"{path}: empty or missing collection file")
    return make_dataset(Path(path).stem, recs, provenance=f"pnag collect {json.dumps(header)}")


__all__ = ["FORMAT_VERSION", "SPACES", "CollectConfig", "make_space", "read_collection", "load_collection"]
