"""What a run answers: :class:`Generation`, one architecture for one budget, and :class:`Generations`,
the answers of one :meth:`~pnag.search.run.Run.generate` call (a list, with a table, JSON, a pandas
DataFrame and a CSV file of them).

Every value says what it is. An accuracy is ``measured`` (a published or looked-up measurement),
``predicted`` (a model's estimate: the run's accuracy predictor, or the published once-for-all
predictor used as the source), ``proxy`` (a training-free proxy's score, computed) or
``predicted-proxy`` (the predictor's estimate of that score). A latency is ``measured`` (each network
timed whole: ``measure:``, NAS-Bench-201, whole-network tables), ``lut-estimate`` (the sum of a
per-layer lookup table's entries, corrected) or ``predicted`` (the run's latency predictor,
``latency_samples``, or a model adapted to the device, ``adapted:FILE``). Tables, CSV files, frames, JSON
and plots use these names.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import PnagError

ACCURACY_KINDS = ("measured", "predicted", "proxy", "predicted-proxy")
LATENCY_KINDS = ("measured", "lut-estimate", "predicted")


@dataclass(frozen=True)
class Generation:
    """One architecture for one budget. Accuracy in % (a score for a proxy), latency in ms, MAdds in millions.

    ``origin``: what proposed it (``generator``: one of the generator's draws; ``neighbour``: one
    decision away from the generator's greedy draw or a measured architecture; ``archive``: the best
    that the generator stage evaluated within the budget (:mod:`pnag.search.archive`); ``refined``: a
    short evolution from the candidates (:meth:`pnag.search.run.Run.refine`); ``measured``: the measured
    table; ``fastest``: the fastest architecture known, when nothing else fits). ``measured``: its
    accuracy is a measured value; otherwise ``predicted_accuracy`` is the accuracy model's estimate.
    ``accuracy_is`` / ``latency_is``: what the two values are (:data:`ACCURACY_KINDS`,
    :data:`LATENCY_KINDS`; "" where no run labelled them).
    ``device``: the latency source (device) it was chosen for; ``predicted_latency_ms`` is on that device.
    """

    budget: float
    arch: str
    predicted_accuracy: float
    predicted_latency_ms: float
    madds_m: float | None
    origin: str
    measured: bool = False
    resolution: int | None = None
    accuracy_is: str = ""
    latency_is: str = ""
    device: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Generations(list):
    """The answers of one :meth:`~pnag.search.run.Run.generate` call: a list of :class:`Generation`, in
    the order of the budgets asked, that also knows what its accuracy values are (``accuracy_column``:
    ``accuracy_%``, or ``<proxy>_score`` for a proxy's score; ``accuracy_unit``: ``%`` or ``score``).

    :meth:`columns` and :meth:`records` are the rows of ``pnag generate`` (values at full precision),
    :meth:`table_rows` the same rounded for printing, :meth:`to_json` its ``--json``,
    :meth:`to_frame` a pandas DataFrame and :meth:`to_csv` its ``--csv`` file. ``measurements``: how many
    networks were measured on the device to verify the answers (``verify=True``), else None.
    """

    def __init__(self, answers: Iterable[Generation] = (), accuracy_column: str = "accuracy_%",
                 accuracy_unit: str = "%"):
        super().__init__(answers)
        self.accuracy_column, self.accuracy_unit = accuracy_column, accuracy_unit
        self.measurements: int | None = None

    def columns(self) -> list[str]:
        return ["budget_ms", self.accuracy_column, "accuracy_is", "latency_ms", "latency_is", "madds_m",
                "resolution", "origin", "arch"]

    def records(self) -> list[list[Any]]:
        """One row per answer, in :meth:`columns` order: numbers as numbers (None where there is none)."""
        return [[g.budget, g.predicted_accuracy, g.accuracy_is, g.predicted_latency_ms, g.latency_is, g.madds_m,
                 g.resolution, g.origin, g.arch] for g in self]

    def table_rows(self) -> list[list[str]]:
        """:meth:`records` as text for a printed table: accuracy to 0.01, latency to 0.001 ms, MAdds to 0.1 M."""
        return [[f"{g.budget:g}", f"{g.predicted_accuracy:.2f}", g.accuracy_is, f"{g.predicted_latency_ms:.3f}",
                 g.latency_is, "" if g.madds_m is None else f"{g.madds_m:.1f}",
                 "" if g.resolution is None else str(g.resolution), g.origin, g.arch] for g in self]

    def to_json(self) -> list[dict[str, Any]]:
        """The answers as JSON values, each with its units and what each value is."""
        return [{"budget_ms": g.budget, "accuracy": g.predicted_accuracy, "accuracy_unit": self.accuracy_unit,
                 "accuracy_is": g.accuracy_is, "latency_ms": g.predicted_latency_ms, "latency_is": g.latency_is,
                 "madds_m": g.madds_m, "resolution": g.resolution, "origin": g.origin, "arch": g.arch,
                 "device": g.device} for g in self]

    def to_frame(self):
        """A pandas DataFrame with :meth:`columns`: ``budget_ms``, the accuracy, ``latency_ms`` and
        ``madds_m`` float64 (NaN where no MAdds), ``resolution`` Int64 (<NA> where none), the rest text.
        Needs pandas (``pip install 'pnag[frame]'``)."""
        try:
            import pandas as pd
        except ImportError:
            raise PnagError("to_frame: needs pandas, which is not installed; allowed: install it with "
                            "pip install 'pnag[frame]' (or use to_csv / to_json, which need nothing)") from None
        frame = pd.DataFrame(self.records(), columns=self.columns())
        for col in ("budget_ms", self.accuracy_column, "latency_ms", "madds_m"):
            frame[col] = frame[col].astype("float64")
        frame["resolution"] = frame["resolution"].astype("Int64")
        return frame

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write :meth:`columns` and :meth:`records` as CSV (floats at full precision, "" for none),
        atomically; returns the path. ``pandas.read_csv`` reads back :meth:`to_frame`'s values."""
        from .._io import write_csv_atomic

        write_csv_atomic(path, self.columns(), (["" if v is None else v for v in row] for row in self.records()))
        return Path(path)


# -- what a run's values are ---------------------------------------------------------------------
def is_proxy(run) -> bool:
    """True when the run's "accuracy" is a training-free proxy's score, not a top-1 %."""
    return str(run.config.accuracy).startswith("proxy:")


def accuracy_kind(run, measured: bool) -> str:
    """What an accuracy value of ``run`` is (one of :data:`ACCURACY_KINDS`); ``measured``: the value
    comes from the run's table rather than its predictor (``Generation.measured``)."""
    spec = str(run.config.accuracy)
    if spec.startswith("proxy:"):
        return "proxy" if measured else "predicted-proxy"
    if spec == "ofa-predictor":  # the source is itself a predictor: even its table is predicted
        return "predicted"
    if spec.startswith("nb201-exact:"):  # the whole measured table is the model
        return "measured"
    return "measured" if measured else "predicted"


def answers_of(run, budgets: Sequence[float], chosen: dict) -> "Generations":
    """The :class:`Generations` of ``run`` for ``budgets`` (ms) from :meth:`~pnag.search.run.Run.choose`'s
    ``chosen`` (``idx``, ``accuracy``, ``latency``, ``measured``, ``origin``)."""
    from .choice import ORIGINS
    from ..sources import source_name

    lat_is = latency_kind(run)
    out = Generations(accuracy_column=accuracy_column(run), accuracy_unit="score" if is_proxy(run) else "%")
    for i, x in enumerate(budgets):
        arch = run.space.from_indices(chosen["idx"][i].tolist())
        measured = bool(chosen["measured"][i])
        out.append(Generation(budget=float(x), arch=run.space.format(arch),
                              predicted_accuracy=float(chosen["accuracy"][i]),
                              predicted_latency_ms=float(chosen["latency"][i]), madds_m=madds_m(arch),
                              origin=ORIGINS[int(chosen["origin"][i])], measured=measured,
                              resolution=getattr(arch, "resolution", None),
                              accuracy_is=accuracy_kind(run, measured), latency_is=lat_is,
                              device=run.served or source_name(run.latencies[0])))
    return out


def latency_kind(run) -> str:
    """What the run's latencies are (one of :data:`LATENCY_KINDS`)."""
    from ..latency.base import TableSource

    source = run.lat_source.source
    if run.config.latency_samples or getattr(source, "kind", None) == "predicted":  # e.g. an adapted: model
        return "predicted"
    return "lut-estimate" if isinstance(source, TableSource) else "measured"


def accuracy_column(run) -> str:
    """The header of the accuracy column: ``accuracy_%`` or, for a proxy, ``<proxy>_score``."""
    return f"{str(run.config.accuracy).split(':', 1)[1]}_score" if is_proxy(run) else "accuracy_%"


def madds_m(arch) -> float | None:
    """MAdds (millions) of a MobileNetV3 architecture; None for other spaces."""
    if getattr(arch, "space", None) != "mbv3":
        return None
    from ..nn.cost import arch_cost

    return round(arch_cost(arch).madds_m, 3)


__all__ = ["ACCURACY_KINDS", "LATENCY_KINDS", "Generation", "Generations", "is_proxy", "accuracy_kind", "latency_kind",
           "accuracy_column", "madds_m"]
