"""Latency specs: the one grammar every command and the Python API use to name a latency source.

=================================  =============================================================
``lut:FILE``                       a table measured with ``pnag latency profile`` (one or several resolutions)
``lut:note10``                     once-for-all's Samsung Note10 per-layer tables (width 1.2)
``lut:i7-8700k``                   NSGANetV2's Intel i7-8700K per-layer table (widths 1.0 and 1.2)
``nb201:DEVICE``                   HELP's measured NAS-Bench-201 latencies (e.g. ``nb201:pixel3``)
``table:help-ofa-gpu:GPU_BATCH``   HELP's whole-network GPU latencies of 5,000 OFA subnets
``measure:BACKEND``                measure each architecture now (torch, onnxruntime, torch-cuda)
``local``                          this machine's table (torch backend), profiled once and cached
``adapted:FILE``                   a model adapted to a device from K measurements (``pnag latency adapt``)
=================================  =============================================================

Where a spec goes, a Python object may go instead: anything with ``latency_ms(archs) -> ms`` (a
:class:`~pnag.latency.base.LatencySource` or a model of your own) is used as it is, and a callable
``archs -> ms`` is wrapped (:class:`~pnag.latency.base.FunctionSource`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import PnagError, allowed
from ..latency.base import FunctionSource, LatencySource, MeasuredSource, NB201Source, WholeNetworkTable, check_covers

SPEC_FORMS = ("lut:FILE", "lut:note10", "lut:i7-8700k", "nb201:DEVICE", "table:help-ofa-gpu:GPU_BATCH",
              "measure:BACKEND", "local", "adapted:FILE")


def get_latency_source(spec: Any, space: Any = None, progress: bool | None = None, check: bool = True) -> Any:
    """A latency source (``.latency_ms(archs) -> ms``) from a spec (forms in the module docstring), an
    object with ``latency_ms`` (returned as it is) or a callable ``archs -> ms`` (wrapped).

    ``space`` (an ``MBV3Space``) gives the width and resolution that table sources assume for
    text-form architectures and for :meth:`TableSource.latency_from_indices`; a per-layer table that
    does not describe them is refused (:func:`~pnag.latency.base.check_covers`) unless ``check`` is
    False (to ask the source what it covers).
    """
    if isinstance(spec, str):
        source = _latency_source(spec, space, progress)
    elif hasattr(spec, "latency_ms"):
        source = spec
    else:
        source = FunctionSource(spec)
    width, resolution = getattr(space, "width", None), getattr(space, "resolution", None)
    model_space = getattr(source, "space", None) if hasattr(source, "refuse_uncovered") else None
    if check and model_space is not None and getattr(space, "name", model_space) != model_space:
        raise PnagError(f"--latency {source.name}: a model of the {model_space} space; allowed: one of the "
                        f"{space.name} space")
    if check and width is not None and isinstance(resolution, int):
        check_covers(source, width, getattr(space, "resolutions", (resolution,)))
    return source


def _help_ofa_gpu(gpu_batch: str) -> WholeNetworkTable:
    from ..data import load_help_ofa_gpu
    from ..data.readers import help_ofa_devices

    devices = help_ofa_devices()
    if gpu_batch not in devices:
        raise PnagError(f"table:help-ofa-gpu: {gpu_batch!r} is not a device setting of the table; "
                        f"allowed: {allowed(devices)}")
    archs, lat = load_help_ofa_gpu()
    return WholeNetworkTable(f"table:help-ofa-gpu:{gpu_batch}", archs, lat[gpu_batch], device=gpu_batch)


def _latency_source(spec: str, space: Any, progress: bool | None) -> LatencySource:
    if not spec.strip():
        raise PnagError(f"latency source: {spec!r} is empty; allowed forms: {allowed(SPEC_FORMS)}")
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    width = getattr(space, "width", None)
    resolution = getattr(space, "resolution", None)
    if kind == "lut" and rest:
        from ..latency import published

        if rest.lower() == "note10":
            return published.load_note10(resolution=resolution or 224)
        if rest.lower() in ("i7-8700k", "i7"):
            return published.load_i7_8700k(width=width or 1.2, resolution=resolution or 224)
        if not Path(rest).is_file():
            raise PnagError(f"latency source {spec!r}: {rest} is neither a published table nor an existing file; "
                            "allowed: lut:note10, lut:i7-8700k or lut:FILE (a table written by 'pnag latency profile')")
        from ..latency.lut import load_lut

        return load_lut(rest, resolution=resolution)
    if kind == "nb201" and rest:
        return NB201Source(rest)
    if kind == "table" and rest.startswith("help-ofa-gpu:") and rest.split(":", 1)[1]:
        return _help_ofa_gpu(rest.split(":", 1)[1])
    if kind == "measure" and rest:
        return MeasuredSource(rest)
    if spec == "local":
        from ..latency.profile import local_lut

        searched = getattr(space, "resolutions", ()) if getattr(space, "searches_resolution", False) else None
        return local_lut(width=width or 1.2, resolution=resolution or 224, progress=progress, resolutions=searched)
    if kind == "adapted" and rest:
        from ..latency.adapted import load_adapted

        return load_adapted(rest)
    if kind == "python":
        raise PnagError(f"latency source {spec!r}: names a Python object a run was trained with; allowed: pass "
                        "the object again (latency=OBJ)")
    raise PnagError(f"latency source: {spec!r} is not known; allowed forms: {allowed(SPEC_FORMS)}")


__all__ = ["SPEC_FORMS", "get_latency_source"]
