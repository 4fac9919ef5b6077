"""A run's accuracy and latency models, vectorised on decision indices (:class:`RunModels`)."""

from __future__ import annotations

import torch

from ..predict.mlp import MLPPredictor
from .config import TrainConfig


class RunModels:
    """Accuracy / latency models of a run, vectorised on decision indices."""

    def __init__(self, space, config: TrainConfig, acc_model=None, acc_pred: MLPPredictor | None = None,
                 lat_exact=None, lat_pred: MLPPredictor | None = None):
        self.space, self.config = space, config
        self.acc_model, self.acc_pred = acc_model, acc_pred
        self.lat_exact, self.lat_pred = lat_exact, lat_pred

    def accuracy(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and spread (%) ``(B,)``."""
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
