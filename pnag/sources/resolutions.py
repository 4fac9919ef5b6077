"""Which MobileNetV3 input resolutions a run searches: what its accuracy and latency sources cover."""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import PnagError, allowed
from ..latency.base import WholeNetworkTable, check_covers
from .accuracy import AccuracySource


def latency_resolutions(source: Any, width: float, candidates: Sequence[int]) -> tuple[int, ...] | None:
    """Which of ``candidates`` (pixels) a MobileNetV3 latency source prices at ``width``: a table, the
    resolutions it covers completely; a whole-network table, those of its networks; a source that
    measures, all (None: it does not say, e.g. NAS-Bench-201)."""
    if hasattr(source, "covers"):
        return tuple(r for r in candidates if source.covers(width, r))
    if isinstance(source, WholeNetworkTable):
        return tuple(r for r in source.resolutions(width) if r in set(candidates))
    if str(getattr(source, "name", "")).startswith("measure:"):
        return tuple(candidates)
    return None


def resolve_resolutions(config, acc_source: AccuracySource, lat_source: Any, requested: Sequence[int] | None):
    """The input resolutions a MobileNetV3 run searches, and a sentence saying why.

    ``requested`` None: once-for-all's default list where both sources cover more than one of it, else
    the config's one resolution (fixed); a list: exactly those, each covered by both sources (a
    :class:`PnagError` naming the first that is not and what each source covers)."""
    from ..space.mbv3 import DEFAULT_RESOLUTIONS, RESOLUTION_RANGE

    width = config.resolved_width
    cands = tuple(requested) if requested is not None else DEFAULT_RESOLUTIONS
    every = tuple(range(RESOLUTION_RANGE[0], RESOLUTION_RANGE[1] + 1, 16))
    acc_cov = acc_source.resolutions
    lat_cov = latency_resolutions(lat_source, width, sorted(set(every) | set(cands) | {config.resolution}))
    ok = [r for r in cands if (acc_cov is None or r in acc_cov) and (lat_cov is None or r in lat_cov)]

    def says(name, cov):
        return f"{name} covers {'any resolution' if cov is None else allowed(cov) or 'none of them'}"

    lat_name = config.latency if isinstance(config.latency, str) else ",".join(config.latency)
    covers = f"{says(config.accuracy, acc_cov)}; {says(lat_name, lat_cov)} (width {width:g})"
    if requested is not None:
        bad = [r for r in cands if r not in ok]
        if bad:
            if lat_cov == ():  # a table for another network (width): it says what it describes
                check_covers(lat_source, width, bad)
            raise PnagError(f"--resolutions: {bad[0]} is not covered by the sources; {covers}; allowed: "
                            f"{allowed(ok) or 'none of those asked'}")
        return tuple(ok), f"resolution searched over {allowed(ok)}" if len(ok) > 1 else f"resolution fixed at {ok[0]}"
    if len(ok) > 1:
        return tuple(ok), f"resolution searched over {allowed(ok)} ({covers})"
    both = [r for r in every if (acc_cov is None or r in acc_cov) and (lat_cov is None or r in lat_cov)]
    fixed = config.resolution if config.resolution in both or not both else both[-1]
    return (fixed,), f"resolution fixed at {fixed}: the sources share no other of {allowed(cands)} ({covers})"


__all__ = ["latency_resolutions", "resolve_resolutions"]
