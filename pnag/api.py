"""The top-level Python API: ``pnag.train(...)`` and ``pnag.search(...)``, each returning a trained
:class:`~pnag.search.run.Run` whose ``generate(budgets)`` gives :class:`~pnag.search.answers.Generations`
(``to_frame()``, ``to_csv(path)``)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import fields, replace
from typing import Any

from .errors import PnagError
from .search.config import TrainConfig
from .search.main_job import search
from .search.run import Run


def train(config: TrainConfig | None = None, output: str | os.PathLike | None = None, *, accuracy: Any = None,
          latency: Any = None, progress: bool | None = True, threads: int | None = None, **options: Any) -> Run:
    """Train (or resume) one run and return it: ``pnag.train(accuracy=..., latency=..., budgets=(lo, hi),
    output="run")``.

    ``options``: fields of :class:`~pnag.search.config.TrainConfig` (``budgets`` in ms, ``space``,
    ``train_samples``, ``steps``, ``seed``, ...), over ``config`` when one is given. ``accuracy`` /
    ``latency``: a source spec (``"dataset:ofa-mbv3-w1.0-imagenet"``, ``"lut:i7-8700k"``, ...; the
    grammar of :mod:`pnag.sources`) or a Python object in its place: a function ``archs -> accuracy %``
    (one value per architecture) or an :class:`~pnag.sources.AccuracySource`; an object with
    ``latency_ms(archs) -> ms`` or such a function. The run records an object's name; reopen such a run
    with ``Run.load(dir, accuracy=..., latency=...)``.

    ``output``: the run folder (resumed when it holds a run of the same settings). Default: a new
    temporary folder (``pnag-run-*`` under the system's temporary directory, kept; ``run.dir`` says
    where). ``progress``: progress lines while training; ``threads``: torch threads while training
    (default: torch's, all cores; 1 on a busy machine).
    """
    from .search.training import train as train_run

    allowed = {f.name for f in fields(TrainConfig)} - {"accuracy", "latency"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise PnagError(f"pnag.train: {', '.join(map(repr, unknown))} is not an argument; allowed: config, output, "
                        f"accuracy, latency, progress, threads and the TrainConfig fields {', '.join(sorted(allowed))}")
    if config is None:
        config = TrainConfig()
    elif not isinstance(config, TrainConfig):
        raise PnagError(f"pnag.train: config {type(config).__name__} {config!r:.60}; allowed: a TrainConfig, or its "
                        "fields as keywords (and output= for the run folder)")
    objects = {}
    for name, value in (("accuracy", accuracy), ("latency", latency)):
        if isinstance(value, str):
            options[name] = value
        elif value is not None:
            objects[name] = value
    config = replace(config, **options)
    if output is None:
        output = tempfile.mkdtemp(prefix="pnag-run-")
    return train_run(config, output, progress=progress, threads=threads, **objects)


__all__ = ["train", "search"]
