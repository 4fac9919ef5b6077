"""Predictors on architecture encodings: MLP accuracy/latency predictors (ensembles), the published
once-for-all accuracy predictor, the Pareto-aware ranker, and (``pnag.predict.proxies``)
training-free proxies."""

from .mlp import MLPPredictor, PredictorConfig, kendall_tau, regression_metrics
from .ofa import OFAAccuracyPredictor
from .ranker import ParetoRanker, pareto_pair_targets, pareto_ranking_loss

__all__ = ["MLPPredictor", "PredictorConfig", "kendall_tau", "regression_metrics", "OFAAccuracyPredictor",
           "ParetoRanker", "pareto_pair_targets", "pareto_ranking_loss"]
