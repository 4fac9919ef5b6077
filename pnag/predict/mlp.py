"""MLP predictors on a search space's encoding (accuracy in %, latency in ms, or any scalar).

One :class:`MLPPredictor` holds an *ensemble* of ``config.ensemble`` independent MLPs evaluated in
one batched matrix product (weights ``(K, d_in, d_out)``); each member sees its own bootstrap
weighting of the training data, so the spread of the members is an uncertainty estimate
(:meth:`MLPPredictor.predict_dist`). ``ensemble=1`` is a single plain MLP.

Presets (:meth:`PredictorConfig.preset_config`):

* ``"published"``: the published PNAG predictor: 3 hidden layers of 512, MSE, SGD Nesterov lr 0.2,
  momentum 0.9, weight decay 3e-5, cosine schedule, 1000 epochs, 80/20 split, one member.
* ``"fast"`` (default): Adam lr 3e-3, 3 hidden layers of 64, 60 epochs, batch 256, 5 bootstrap
  members trained once on all the data, held-out metrics out-of-bag. On the OFA MobileNetV3 w1.0
  data it measured RMSE 0.063 points / Kendall tau 0.963 (out-of-bag) in 7 s, against 0.070 / 0.962
  in 42 s with 128 hidden, 150 epochs, batch 128, lr 1e-3 (same shared 2-core machine).

Either preset can regress the value itself or, for an accuracy in %, the log of the error rate
(``PredictorConfig.target``; ``pnag train`` uses the latter for accuracies in %).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import DataError, PnagError, allowed
from .resume import restore_training, training_state

PRESETS = ("published", "fast")
TARGETS = ("identity", "log-error", "log-gap")
ERROR_CEILING_PCT = 100.5  # log-error regresses -log(ERROR_CEILING_PCT - accuracy %): see PredictorConfig.target


@dataclass(frozen=True)
class PredictorConfig:
    """Training settings of an :class:`MLPPredictor`. Build with :meth:`preset_config` or directly."""

    preset: str = "fast"
    hidden: int = 64
    layers: int = 3  # hidden layers
    optimizer: str = "adam"  # adam | sgd (Nesterov)
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 60
    batch_size: int = 256
    val_fraction: float = 0.2  # held out to report RMSE and Kendall tau
    ensemble: int = 5
    bootstrap: bool = True  # each member trains on its own bootstrap weighting of the data
    refit: bool = True  # final model sees all the data (bootstrap ensembles: out-of-bag metrics, one run)
    seed: int = 0
    # What the members regress. "identity": the value itself. "log-error" (accuracy in % only, values
    # 0..100): -log(100.5 - accuracy), the log of the error rate with half a point of headroom; members
    # predict on that scale and are mapped back before the mean and spread are taken, so predictions
    # and metrics stay in %. It stretches the top of the range, where a search chooses: on
    # NAS-Bench-201 (1,000 cells, seeds 0-2) Kendall tau on the 14,625 unmeasured cells 0.850 -> 0.861
    # on cifar10, and among their top 10 % 0.312 -> 0.373 (cifar100 0.381 -> 0.406, ImageNet16-120
    # unchanged); benchmarks/nb201_encoding.py, BENCHMARKS.md. "log-gap" (accuracy in %): the same with
    # the ceiling ``gap_pct`` points above the best training value instead of at 100.5 %, so that the
    # top is stretched alike whatever the dataset's accuracy level (on cifar10, best ~94.4 %, the two
    # nearly agree; on ImageNet16-120, best ~47 %, log-error is almost the identity).
    target: str = "identity"
    gap_pct: float = 3.0  # points (target "log-gap" only)
    # > 0: each member's loss adds this weight x a pairwise ranking term (logistic, on the standardised
    # scale) over the pairs of a batch that its bootstrap weighting holds, ordered by their targets; 0: off
    rank_weight: float = 0.0

    @classmethod
    def preset_config(cls, name: str = "fast", **overrides: Any) -> "PredictorConfig":
        """The named preset (``published`` or ``fast``) with ``overrides`` applied."""
        if name == "published":
            base = cls(preset="published", hidden=512, layers=3, optimizer="sgd", lr=0.2, momentum=0.9,
                       weight_decay=3e-5, epochs=1000, batch_size=256, val_fraction=0.2, ensemble=1,
                       bootstrap=False, refit=False)
        elif name == "fast":
            base = cls()
        else:
            raise PnagError(f"predictor preset: {name!r} is not known; allowed: {allowed(PRESETS)}")
        return replace(base, **overrides)

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise PnagError(f"predictor optimizer: {self.optimizer!r} is not known; allowed: adam or sgd")
        for name in ("hidden", "layers", "epochs", "batch_size", "ensemble"):
            if int(getattr(self, name)) < 1:
                raise PnagError(f"predictor {name}: {getattr(self, name)!r} is not allowed; allowed: an integer >= 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise PnagError(f"predictor val_fraction: {self.val_fraction!r}; allowed: 0 <= value < 1")
        if self.target not in TARGETS:
            raise PnagError(f"predictor target: {self.target!r} is not known; allowed: {allowed(TARGETS)}")
        if isinstance(self.rank_weight, bool) or not isinstance(self.rank_weight, (int, float)) \
                or not math.isfinite(self.rank_weight) or self.rank_weight < 0:
            raise PnagError(f"predictor rank_weight: {self.rank_weight!r}; allowed: a number >= 0")
        if isinstance(self.gap_pct, bool) or not isinstance(self.gap_pct, (int, float)) \
                or not math.isfinite(self.gap_pct) or self.gap_pct <= 0:
            raise PnagError(f"predictor gap_pct: {self.gap_pct!r}; allowed: a number of points > 0")


class EnsembleMLP(nn.Module):
    """``K`` MLPs ``d_in -> hidden x layers -> 1`` (ReLU) evaluated together.

    Input ``(N, d_in)``; output ``(K, N)``.
    """

    def __init__(self, d_in: int, hidden: int, layers: int, members: int = 1):
        super().__init__()
        dims = [d_in] + [hidden] * layers + [1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(a)  # as nn.Linear's default initialisation
            self.weights.append(nn.Parameter(torch.empty(members, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, b).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.matmul(h, w) + b
            if i < n - 1:
                h = torch.relu(h)
        return h.squeeze(-1)


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall rank correlation (tau-b) of two equal-length vectors; nan if undefined."""
    from scipy.stats import kendalltau

    if len(a) < 2:
        return float("nan")
    return float(kendalltau(np.asarray(a), np.asarray(b)).statistic)


def regression_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """``{"rmse", "kendall_tau", "n"}`` of predictions against true values (same units)."""
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    rmse = float(np.sqrt(np.mean((pred - true) ** 2))) if len(true) else float("nan")
    return {"rmse": rmse, "kendall_tau": kendall_tau(pred, true), "n": int(len(true))}


def pairwise_rank_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per member, the weighted mean logistic ranking loss ``log(1 + exp(-(p_i - p_j)))`` over the
    pairs ``(i, j)`` with ``target_i > target_j``; pair weight ``weight_i x weight_j``.

    ``pred (K, N)``, ``target (N,)``, ``weight (K, N)``; returns ``(K,)`` (0 for a member without
    such a pair)."""
    order = (target[:, None] > target[None, :]).to(pred.dtype)  # (N, N): i ranks above j
    w = weight[:, :, None] * weight[:, None, :] * order  # (K, N, N)
    diff = pred[:, :, None] - pred[:, None, :]
    return (nn.functional.softplus(-diff) * w).sum((1, 2)) / w.sum((1, 2)).clamp_min(1.0)


class MLPPredictor:
    """A scalar predictor (ensemble of MLPs) on encodings of a search space.

    ``space`` is needed only for :meth:`predict_indices` (vectorised through
    ``space.encode_indices``); ``d_in`` defaults to ``space.encoding_size``.
    """

    def __init__(self, space=None, config: PredictorConfig | None = None, d_in: int | None = None):
        self.space = space
        self.config = config or PredictorConfig()
        if d_in is None:
            if space is None:
                raise PnagError("MLPPredictor: give a search space or d_in (the encoding size)")
            d_in = int(space.encoding_size)
        self.d_in = int(d_in)
        self.y_mean = 0.0
        self.y_std = 1.0
        self.ceiling = ERROR_CEILING_PCT  # % : log-error's, or log-gap's as fitted (best training value + gap_pct)
        self.metrics: dict[str, Any] = {}
        # out-of-bag prediction of each example of the last fit (target units; NaN where every member
        # saw it); None unless a bootstrap ensemble with refit
        self.oob_pred: np.ndarray | None = None
        self.net = self._new_net(self.config.seed)

    def _new_net(self, seed: int) -> EnsembleMLP:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return EnsembleMLP(self.d_in, self.config.hidden, self.config.layers, self.config.ensemble)

    # -- training ----------------------------------------------------------------------------------
    def _check_xy(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64).ravel()
        if X.ndim != 2 or X.shape[1] != self.d_in:
            raise DataError(f"predictor inputs: shape {X.shape}; allowed: (N, {self.d_in})")
        if len(y) != len(X):
            raise DataError(f"predictor targets: {len(y)} values for {len(X)} inputs; allowed: one per input")
        if len(y) < 2:
            raise DataError(f"predictor training data: {len(y)} examples; allowed: at least 2")
        if not np.all(np.isfinite(y)):
            raise DataError("predictor targets: contain NaN or infinite values; allowed: finite numbers")
        return X, y

    def fit(self, X: Any, y: Any, progress: bool = False, checkpoint: Any = None) -> dict[str, Any]:
        """Train on encodings ``X (N, d_in)`` and targets ``y (N,)``.

        Reports ``{"rmse", "kendall_tau"}`` (units of ``y``) on held-out data: for a bootstrap ensemble
        with ``refit``, out-of-bag (every example judged by the members that never saw it, one
        training run on all the data); otherwise on a seeded ``val_fraction`` split, and with
        ``refit`` the model is then retrained on all the data.

        ``checkpoint`` (:mod:`pnag.predict.resume`): the fit saves its state after any epoch where
        ``checkpoint.due()`` and resumes from ``checkpoint.state``; the result is the same as an
        uninterrupted fit's.
        """
        X, y = self._check_xy(X, y)
        saved = None if checkpoint is None else checkpoint.state
        cfg = self.config
        n = len(y)
        self.oob_pred = None
        yt = self._to_target(y)  # what the members regress; predictions and metrics stay in y's units
        if cfg.ensemble > 1 and cfg.bootstrap and cfg.refit:
            # out-of-bag: each example is held out from the members whose bootstrap left it out (~37 %)
            w = self._train(X, yt, seed=cfg.seed, checkpoint=checkpoint, saved=saved)
            with torch.no_grad():
                m = self._members(torch.from_numpy(X)).numpy()
            oob = (w.numpy() == 0)
            has = oob.any(0)
            pred = (m * oob).sum(0)[has] / oob.sum(0)[has]
            self.oob_pred = np.full(n, np.nan)
            self.oob_pred[has] = pred
            metrics: dict[str, Any] = {"n_train": int(n), "n_val": int(has.sum()), "preset": cfg.preset,
                                       "validation": "out-of-bag"}
            mm = regression_metrics(pred, y[has])
            metrics.update(rmse=mm["rmse"], kendall_tau=mm["kendall_tau"])
            self.metrics = metrics
            return metrics
        rng = np.random.default_rng(cfg.seed)
        n_val = int(round(n * cfg.val_fraction)) if n >= 10 else 0
        perm = rng.permutation(n)
        val, tr = perm[:n_val], perm[n_val:]
        metrics = {"n_train": int(len(tr)), "n_val": int(n_val), "preset": cfg.preset, "validation": "split"}
        # part 0 trains on the split; part 1 (refit) on all the data, its checkpoints holding part 0's metrics
        parts = 2 if n_val and cfg.refit else 1
        part = 0 if saved is None else saved.get("part")
        if part not in range(parts) or part == 1 and not (isinstance(saved.get("metrics"), dict)
                                                          and {"rmse", "kendall_tau"} <= set(saved["metrics"])):
            raise checkpoint.damaged(f"part {part!r} of a fit in {parts} part(s)")
        if part == 0:
            self._train(X[tr], yt[tr], seed=cfg.seed, checkpoint=checkpoint, saved=saved, part=0)
            saved = None
        if n_val:
            m = regression_metrics(self.predict(X[val]), y[val]) if part == 0 else saved["metrics"]
            metrics.update(rmse=m["rmse"], kendall_tau=m["kendall_tau"])
            if cfg.refit:
                self._train(X, yt, seed=cfg.seed + 1, checkpoint=checkpoint, saved=saved, part=1, metrics=metrics)
                metrics["n_train"] = int(n)
        else:
            metrics.update(rmse=float("nan"), kendall_tau=float("nan"))
        self.metrics = metrics
        return metrics

    def _to_target(self, y: np.ndarray) -> np.ndarray:
        """``y`` (the training values) on the scale the members regress (:attr:`PredictorConfig.target`);
        sets the ceiling of "log-gap" from them."""
        if self.config.target == "identity":
            return y
        bad = (y < 0) | (y > 100)
        if bad.any():
            raise DataError(f"predictor targets: {float(y[bad][0])!r} with target {self.config.target!r}; allowed: "
                            "accuracy in % (0..100)")
        if self.config.target == "log-gap":
            self.ceiling = float(y.max()) + float(self.config.gap_pct)
        return -np.log(self.ceiling - y)

    def _from_target(self, t: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`_to_target`, on member predictions."""
        if self.config.target == "identity":
            return t
        return self.ceiling - torch.exp(-t)

    def _train(self, X: np.ndarray, y: np.ndarray, seed: int, checkpoint: Any = None, saved: dict | None = None,
               **extra: Any) -> torch.Tensor:
        """Train a fresh ensemble on targets ``y`` (already on the members' scale), from the state
        ``saved`` where given, saving to ``checkpoint`` (with ``extra``) when it is due; returns the
        per-member example weights ``(K, N)`` used."""
        cfg = self.config
        self.y_mean = float(y.mean())
        self.y_std = float(y.std()) or 1.0
        self.net = self._new_net(seed)
        xt = torch.from_numpy(X)
        yt = torch.from_numpy(((y - self.y_mean) / self.y_std).astype(np.float32))
        n, K = len(yt), cfg.ensemble
        gen = torch.Generator().manual_seed(seed)
        if cfg.bootstrap and K > 1:
            w = torch.poisson(torch.ones(K, n), generator=gen)  # bootstrap as Poisson(1) counts
        else:
            w = torch.ones(K, n)
        params = list(self.net.parameters())
        if cfg.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                                  weight_decay=cfg.weight_decay)
        else:
            opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        bs = min(cfg.batch_size, n)
        steps_per_epoch = max(1, math.ceil(n / bs))
        total = cfg.epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        start = 0 if saved is None else restore_training(saved, cfg.epochs, self.net, opt, gen, checkpoint.damaged,
                                                         sched)
        self.net.train()
        for epoch in range(start, cfg.epochs):
            perm = torch.randperm(n, generator=gen)
            for s in range(steps_per_epoch):
                b = perm[s * bs:(s + 1) * bs]
                pred = self.net(xt[b])  # (K, b)
                wb = w[:, b]
                loss = ((pred - yt[b]) ** 2 * wb).sum(1) / wb.sum(1).clamp_min(1.0)
                if cfg.rank_weight:
                    loss = loss + cfg.rank_weight * pairwise_rank_loss(pred, yt[b], wb)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                opt.step()
                sched.step()
            if checkpoint is not None and epoch + 1 < cfg.epochs and checkpoint.due():
                checkpoint.save(training_state(epoch + 1, self.net, opt, gen, sched, **extra))
        self.net.eval()
        return w

    # -- prediction --------------------------------------------------------------------------------
    def _members(self, x: torch.Tensor) -> torch.Tensor:
        """``(K, N)`` member predictions in the units of the values fitted."""
        return self._from_target(self.net(x) * self.y_std + self.y_mean)

    @torch.no_grad()
    def predict_dist(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread (std across ensemble members; 0 for one member) per row of ``X``."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.d_in:
            raise DataError(f"predictor inputs: shape {X.shape}; allowed: (N, {self.d_in})")
        m = self._members(torch.from_numpy(X))
        std = m.std(0, unbiased=False) if m.shape[0] > 1 else torch.zeros_like(m[0])
        return m.mean(0).numpy().astype(np.float64), std.numpy().astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values (ensemble mean, target units) for encodings ``X (N, d_in)``."""
        return self.predict_dist(X)[0]

    def predict_indices(self, idx: torch.Tensor) -> torch.Tensor:
        """Differentiable-free batch prediction from choice indices ``(B, T)`` -> ``(B,)``."""
        return self.predict_indices_dist(idx)[0]

    @torch.no_grad()
    def predict_indices_dist(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and member spread ``(B,)`` from choice indices ``(B, T)``."""
        if self.space is None:
            raise PnagError("MLPPredictor.predict_indices: the predictor was built without a search space")
        m = self._members(self.space.encode_indices(idx))
        std = m.std(0, unbiased=False) if m.shape[0] > 1 else torch.zeros_like(m[0])
        return m.mean(0), std

    # -- persistence -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the predictor (plain types and tensors: ``weights_only`` safe)."""
        st = {"config": asdict(self.config), "d_in": self.d_in, "y_mean": self.y_mean, "y_std": self.y_std,
              "ceiling": self.ceiling, "metrics": dict(self.metrics), "net": self.net.state_dict()}
        if self.oob_pred is not None:
            st["oob"] = torch.from_numpy(self.oob_pred.copy())
        return st

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], space=None) -> "MLPPredictor":
        try:
            cfg = PredictorConfig(**state["config"])
            p = cls(space, cfg, d_in=int(state["d_in"]))
            p.y_mean, p.y_std = float(state["y_mean"]), float(state["y_std"])
            p.ceiling = float(state.get("ceiling", ERROR_CEILING_PCT))  # saved before log-gap: log-error's
            p.metrics = dict(state.get("metrics", {}))
            p.net.load_state_dict(state["net"])
            oob = state.get("oob")
            p.oob_pred = None if oob is None else torch.as_tensor(oob, dtype=torch.float64).numpy().copy()
        except (KeyError, TypeError, RuntimeError) as exc:
            raise DataError(f"predictor state: not a saved MLPPredictor ({exc})") from None
        p.net.eval()
        return p

    def load_state_dict(self, state: dict[str, Any]) -> None:
        other = MLPPredictor.from_state_dict(state, self.space)
        self.__init__(self.space, other.config, other.d_in)  # rebuild shapes for the saved config
        self.y_mean, self.y_std, self.metrics, self.ceiling = other.y_mean, other.y_std, other.metrics, other.ceiling
        self.oob_pred = other.oob_pred
        self.net = other.net


__all__ = ["PredictorConfig", "MLPPredictor", "EnsembleMLP", "kendall_tau", "regression_metrics", "pairwise_rank_loss",
           "PRESETS"]
