"""A run's accuracy and latency models, vectorised on decision indices (:class:`RunModels`)."""

from __future__ import annotations

import torch

from ..predict.mlp import MLPPredictor
from .config import TrainConfig
from .indices import index_keys

MEMO_ROWS = 1_000_000  # a memo of accuracy estimates is emptied when it would hold more rows (~300 MB)


class RunModels:
    """Accuracy / latency models of a run, vectorised on decision indices. ``memo``: a dict that keeps the
    accuracy estimate of every row asked (by :func:`~pnag.search.indices.index_keys`), for models that no longer
    change: the views that serve a device share their run's (``serving_memo``), since serving a device asks
    again and again for the same rows while only the latency changes (``--verify``: about 80 % of the rows
    asked in one call on MobileNetV3 were asked before)."""

    def __init__(self, space, config: TrainConfig, acc_model=None, acc_pred: MLPPredictor | None = None,
                 lat_exact=None, lat_pred: MLPPredictor | None = None, memo: dict | None = None):
        self.space, self.config = space, config
        self.acc_model, self.acc_pred = acc_model, acc_pred
        self.lat_exact, self.lat_pred = lat_exact, lat_pred
        self.memo = memo
        self.serving_memo: dict = {}  # the memo of the views of these models (a refit makes new models: a new memo)

    def accuracy(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and spread (%) ``(B,)`` (from the memo where there is one; rows on another device than the CPU
        bypass it)."""
        memo = self.memo
        if memo is None or idx.device.type != "cpu":
            return self._accuracy(idx)
        keys = index_keys(idx)
        miss = [i for i, k in enumerate(keys) if k not in memo]
        if miss:
            if len(memo) + len(miss) > MEMO_ROWS:
                memo.clear()
            m, s = self._accuracy(idx[miss])
            memo.update({keys[i]: v for i, v in zip(miss, zip(m.tolist(), s.tolist()))})
        out = torch.tensor([memo[k] for k in keys], dtype=torch.float64).reshape(len(keys), 2)
        return out[:, 0], out[:, 1]

    def _accuracy(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.acc_model is not None:
            m = self.acc_model(idx).double()
            return m, torch.zeros_like(m)
        m, s = self.acc_pred.predict_indices_dist(idx)
        return m.double(), s.double()

    def pessimistic(self, idx: torch.Tensor) -> torch.Tensor:
        m, s = self.accuracy(idx)
        return m - self.config.pessimism * s

    def latency(self, idx: torch.Tensor) -> torch.Tensor:
        """Latency (ms) ``(B,)``: the exact source, or the latency predictor's mean."""
        if self.lat_pred is not None:
            return self.lat_pred.predict_indices_dist(idx)[0].double()
        return self.lat_exact(idx).double()


__all__ = ["RunModels"]
