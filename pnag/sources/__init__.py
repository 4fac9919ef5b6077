"""Sources: where accuracy and latency come from, named one way for every command and the Python API.

This layer parses every source spec (``--accuracy`` and ``--latency`` of ``pnag train``, ``pnag
search``, ``pnag collect`` and ``pnag latency``, and the ``accuracy`` / ``latency`` arguments of the
library) and builds the source objects; a Python object may go wherever a spec goes. It may import
``pnag.data``, ``pnag.latency``, ``pnag.predict`` and ``pnag.evaluate``; ``pnag.search``,
``pnag.collect`` and the CLI build on it (the layers are listed in ``tests/test_layers.py``).

Modules: ``accuracy`` (the accuracy grammar, :class:`AccuracySource`, the registry of prefixes),
``latency`` (the latency grammar), ``vector`` (any latency source as a vectorised function of
decision indices), ``resolutions`` (which input resolutions two sources both cover).
"""

from .accuracy import (ACCURACY_KINDS, AccuracySource, accuracy_source_prefixes, get_accuracy_source,
                       register_accuracy_source, source_name)
from .latency import SPEC_FORMS as LATENCY_FORMS, get_latency_source
from .resolutions import latency_resolutions, resolve_resolutions
from .vector import NB201Lookup, VectorLatency, mixed_radix_codes

__all__ = ["ACCURACY_KINDS", "AccuracySource", "accuracy_source_prefixes", "get_accuracy_source",
           "register_accuracy_source", "source_name", "LATENCY_FORMS", "get_latency_source", "latency_resolutions",
           "resolve_resolutions", "NB201Lookup", "VectorLatency", "mixed_radix_codes"]
