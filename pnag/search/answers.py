"""What a run answers for a budget: :class:`Generation`, one architecture with its estimates and origin."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Generation:
    """One architecture for one budget. Accuracy in %, latency in ms, MAdds in millions.

    ``origin``: what proposed it (``generator``: one of the generator's draws; ``neighbour``: one
    decision away from the generator's greedy draw or a measured architecture; ``archive``: the best
    that the generator stage evaluated within the budget (:mod:`pnag.search.archive`); ``refined``: a
    short evolution from the candidates (:meth:`pnag.search.run.Run.refine`); ``measured``: the measured
    table; ``fastest``: the fastest architecture known, when nothing else fits). ``measured``: its
    accuracy is a measured value; otherwise ``predicted_accuracy`` is the accuracy model's estimate.
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
    device: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def madds_m(arch) -> float | None:
    """MAdds (millions) of a MobileNetV3 architecture; None for other spaces."""
    if getattr(arch, "space", None) != "mbv3":
        return None
    from ..nn.cost import arch_cost

    return round(arch_cost(arch).madds_m, 3)


__all__ = ["Generation", "madds_m"]
