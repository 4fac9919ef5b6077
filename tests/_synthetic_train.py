"""Synthetic accuracy and latency sources for the training tests (no public data needed).

NAS-Bench-201 cells; latency (ms) and accuracy (%) are fixed linear functions of the one-hot encoding,
so the truth is known for every cell. ``patch(setattr)`` installs them in :mod:`pnag.sources`,
where a run resolves its source specs.
"""

import functools

import numpy as np
import torch

from pnag.search import TrainConfig
from pnag import sources as S
from pnag.space import NB201Space

REAL_ACCURACY_SOURCE, REAL_LATENCY_SOURCE = S.get_accuracy_source, S.get_latency_source
W_ACC = np.random.default_rng(0).normal(0.0, 2.0, 30)
W_LAT = np.abs(np.random.default_rng(1).normal(1.0, 0.5, 30))


def _encode(archs):
    """``NB201Space().encode_many(archs)`` in one batch (a run's latency source encodes all 15,625 cells)."""
    space = NB201Space()
    idx = torch.as_tensor(np.stack([space.to_indices(a) for a in archs]).reshape(-1, 6))
    return space.encode_indices(idx).numpy()


def true_latency(archs):
    return _encode(archs) @ W_LAT


def true_accuracy(archs):
    return 70.0 + _encode(archs) @ W_ACC


class Latency:
    def latency_ms(self, archs):
        return true_latency(archs)


def accuracy_source(spec, space):
    """``synthetic``: a table and a measure; ``synthetic-exact``: the true accuracy as the model (an exact
    objective, as ``nb201-exact:*``)."""
    def table(n, seed):
        archs = list(dict.fromkeys(space.sample(100 if n is None else n, seed=seed)))
        return archs, true_accuracy(archs)

    if spec == "synthetic-exact":
        w = torch.as_tensor(W_ACC, dtype=torch.float32)
        return S.AccuracySource(spec, "%", table, model=lambda idx: 70.0 + space.encode_indices(idx) @ w,
                                note="synthetic, exact")
    return S.AccuracySource(spec, "%", table, measure=true_accuracy, note="synthetic")


def patch(setattr_):
    setattr_(S, "get_accuracy_source", accuracy_source)
    setattr_(S, "get_latency_source", lambda spec, space: Latency())


@functools.lru_cache(maxsize=1)
def all_latencies():
    return true_latency(NB201Space().all_archs())


def tiny_config(**kw):
    lat = all_latencies()
    base = dict(space="nb201", accuracy="synthetic", latency="synthetic",
                budgets=(float(lat.min()) * 0.5, float(np.quantile(lat, 0.9))), train_samples=100, steps=30,
                budgets_per_step=4, samples_per_budget=4, predictor_epochs=10, predictor_hidden=16, ensemble=2,
                ranker_steps=30, ranker_pool=100, checkpoint_every=5)
    base.update(kw)
    return TrainConfig(**base)
