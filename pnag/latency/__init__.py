"""Latency on real hardware: the measurement protocol, per-layer lookup tables measured on this
machine or published, and latency sources with one interface (``get_latency_source``)."""

from .backends import BACKENDS, Backend, get_backend
from .lut import LUT, ProfileReport, load_lut, local_lut, lut_entries, profile_lut
from .measure import LatencyEnv, LatencyMeasurement, MeasureProtocol, measure_latency, measure_module
from .published import load_i7_8700k, load_note10
from .sources import LatencySource, TableSource, get_latency_source
from .validate import error_metrics, validate_lut

__all__ = ["BACKENDS", "Backend", "get_backend", "LUT", "ProfileReport", "load_lut", "local_lut", "lut_entries",
           "profile_lut", "LatencyEnv", "LatencyMeasurement", "MeasureProtocol", "measure_latency",
           "measure_module", "load_i7_8700k", "load_note10", "LatencySource", "TableSource", "get_latency_source",
           "error_metrics", "validate_lut"]
