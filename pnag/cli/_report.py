"""What the commands print about a run's answers and its latency source, every value labelled with what
it is: the names live in the library (:mod:`pnag.search.answers` for the accuracy and latency kinds and
the answers' rows, :mod:`pnag.latency.describe` for a latency source in words) and are gathered here for
the commands."""

from __future__ import annotations

from ..latency.describe import NOISY, device_words, noisy, table_noise, table_noise_stats
from ..search.answers import (ACCURACY_KINDS, LATENCY_KINDS, accuracy_column, accuracy_kind, is_proxy,
                              latency_kind)

__all__ = ["ACCURACY_KINDS", "LATENCY_KINDS", "accuracy_kind", "latency_kind", "accuracy_column", "device_words",
           "table_noise", "table_noise_stats", "noisy", "is_proxy", "NOISY"]
