"""Latency on real hardware: the measurement protocol, per-layer lookup tables measured on this
machine or published, and the latency-source interface (``base``). A source is built from a spec
by :func:`pnag.sources.get_latency_source`."""

from .backends import BACKENDS, Backend, get_backend
from .base import FunctionSource, LatencySource, TableSource
from .lut import LUT, load_lut, lut_entries
from .profile import ProfileReport, local_lut, profile_lut
from .measure import LatencyEnv, LatencyMeasurement, MeasureProtocol, measure_latency, measure_module
from .published import load_i7_8700k, load_note10
from .validate import error_metrics, validate_lut

__all__ = ["BACKENDS", "Backend", "get_backend", "LUT", "ProfileReport", "load_lut", "local_lut", "lut_entries",
           "profile_lut", "LatencyEnv", "LatencyMeasurement", "MeasureProtocol", "measure_latency",
           "measure_module", "load_i7_8700k", "load_note10", "FunctionSource", "LatencySource", "TableSource",
           "error_metrics", "validate_lut"]
