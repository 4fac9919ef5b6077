"""ImageNet evaluation: batch-norm recalibration, top-1 / top-5, and the evaluation loop.

Published protocol for networks with weights inherited from the supernet (once-for-all's
``set_running_statistics``): 2,000 training images chosen by ``torch.randperm`` with seed
937162211, batches of 100; every batch-norm layer normalises with the batch's own statistics while
its running mean and (biased) variance are replaced by the image-weighted average of the batch
statistics. Unlike once-for-all, the calibration images go through the evaluation transform in the
order ``randperm`` lists them (no augmentation, no unseeded shuffle), so calibration is
deterministic. Under torchrun every rank calibrates on the same images and rank 0's statistics are
then broadcast, so the network is the same on every rank and equals the one-process network.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from ..errors import DataError, PnagError
from .distributed import DistContext, all_reduce_sum, broadcast_buffers, shard_batches
from .imagefolder import EvalTransform, ImageFolder, find_split

CALIB_SEED = 937162211
CALIB_IMAGES = 2000
CALIB_BATCH = 100


@dataclass(frozen=True)
class EvalResult:
    """Counts and accuracies of one evaluation. ``top1`` / ``top5`` in % of readable images."""

    top1: float
    top5: float
    images: int  # readable images evaluated
    skipped: int  # unreadable images (not counted in top1/top5)
    correct1: int
    correct5: int
    calib_images: int = 0  # training images used for batch-norm recalibration (0: none)
    calib_skipped: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled or not sys.stderr.isatty():
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="batch", file=sys.stderr, leave=False)


def _loader(dataset: ImageFolder, batches: list[list[int]], workers: int, device: torch.device):
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers,
                                       pin_memory=device.type == "cuda", persistent_workers=False)


def calibration_indices(n_total: int, n_images: int = CALIB_IMAGES, seed: int = CALIB_SEED) -> list[int]:
    """The first ``n_images`` of ``torch.randperm(n_total)`` under ``seed`` (once-for-all's choice)."""
    if n_images < 0:
        raise PnagError(f"calibration images: {n_images}; allowed: an integer >= 0")
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n_total, generator=g)[:n_images].tolist()


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Replace every ``BatchNorm2d``'s running statistics by averages over ``batches``; returns images used.

    Each batch is normalised with its own statistics (training-mode batch norm); running mean and
    biased variance become the image-weighted mean of the per-batch values. Other layers run in
    eval mode (no dropout). The model is left in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    sums: dict[nn.BatchNorm2d, list] = {bn: [0.0, 0.0, 0] for bn in bns}

    def record(bn: nn.BatchNorm2d, inputs: tuple) -> None:
        x = inputs[0]
        mean = x.mean((0, 2, 3))
        var = (x - mean.view(1, -1, 1, 1)).pow(2).mean((0, 2, 3))
        n = x.size(0)
        acc = sums[bn]  # accumulated in float64 over batches
        acc[0], acc[1], acc[2] = acc[0] + mean.double() * n, acc[1] + var.double() * n, acc[2] + n

    hooks = [bn.register_forward_pre_hook(record) for bn in bns]
    try:
        model.eval()
        for bn in bns:
            bn.train()
        device = next(model.parameters()).device
        n_images = 0
        for x in batches:
            if x.numel():
                model(x.to(device, non_blocking=True))
                n_images += x.size(0)
    finally:
        for h in hooks:
            h.remove()
        model.eval()
    if n_images:
        for bn, (mean, var, n) in sums.items():
            bn.running_mean.copy_((mean / n).to(bn.running_mean.dtype))
            bn.running_var.copy_((var / n).to(bn.running_var.dtype))
            bn.num_batches_tracked.zero_()
    return n_images


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[int, int]:
    """Counts of valid rows whose label is the top-1 / among the top-5 logits."""
    k = min(5, logits.size(1))
    pred = logits.topk(k, dim=1).indices
    hit = pred == labels.view(-1, 1)
    c1, c5 = hit[:, 0], hit.any(1)
    if valid is not None:
        c1, c5 = c1 & valid, c5 & valid
    return int(c1.sum()), int(c5.sum())


@torch.no_grad()
def calibrate_on_imagefolder(model: nn.Module, data_dir: str | os.PathLike, crop: int, ctx: DistContext,
                             n_images: int = CALIB_IMAGES, batch_size: int = CALIB_BATCH, seed: int = CALIB_SEED,
                             workers: int = 0, progress: bool = True) -> tuple[int, int]:
    """Recalibrate ``model``'s batch norm on ``n_images`` of ``DATA_DIR/train``; returns (used, skipped).

    Every rank runs the same calibration; rank 0's statistics are broadcast so all ranks agree.
    """
    dataset = ImageFolder(find_split(data_dir, "train"), EvalTransform(crop))
    idx = calibration_indices(len(dataset), n_images, seed)
    batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    skipped = [0]

    def images():
        for x, _, valid in _progress(_loader(dataset, batches, workers, ctx.device), len(batches),
                                     "calibrating BN", progress and ctx.is_main):
            skipped[0] += int((~valid).sum())
            yield x[valid]

    used = recalibrate_bn(model, images())
    broadcast_buffers(ctx, model)
    return used, skipped[0]


@torch.no_grad()
def evaluate_imagefolder(model: nn.Module, data_dir: str | os.PathLike, crop: int, ctx: DistContext | None = None,
                         batch_size: int = 100, workers: int = 0, progress: bool = True,
                         split: str = "val", on_batch: Callable[[int], None] | None = None) -> EvalResult:
    """Top-1 / top-5 (%) of ``model`` on ``DATA_DIR/<split>`` with the evaluation transform at ``crop``.

    Under torchrun each rank evaluates every ``world_size``-th batch and counts are summed, so the
    result equals one process's. Unreadable images are skipped and counted.
    """
    ctx = ctx or DistContext()
    dataset = ImageFolder(find_split(data_dir, split), EvalTransform(crop))
    batches = shard_batches(len(dataset), batch_size, ctx.rank, ctx.world_size)
    model.eval()
    c1 = c5 = n = bad = narrow = 0
    for x, y, valid in _progress(_loader(dataset, batches, workers, ctx.device), len(batches),
                                 "evaluating", progress and ctx.is_main):
        logits = model(x.to(ctx.device, non_blocking=True)).float().cpu()
        narrow = max(narrow, int(logits.size(1) <= int(y.max())))
        a, b = topk_correct(logits, y, valid)
        c1, c5, n, bad = c1 + a, c5 + b, n + int(valid.sum()), bad + int((~valid).sum())
        if on_batch is not None:
            on_batch(x.size(0))
    # Reduce before raising so that every rank raises the same error (none waits forever).
    c1, c5, n, bad, narrow = all_reduce_sum(ctx, [c1, c5, n, bad, narrow])
    if narrow:
        raise DataError(f"image folder {str(dataset.root)!r}: {len(dataset.classes)} class folders, more than "
                        "the model's outputs; allowed: at most as many classes as outputs (1000 for ImageNet)")
    if not n:
        raise DataError(f"image folder {str(dataset.root)!r}: none of its {bad} images could be read; "
                        "allowed: images Pillow can decode (JPEG, PNG, ...)")
    top1, top5 = 100.0 * c1 / n, 100.0 * c5 / n
    return EvalResult(top1=top1, top5=top5, images=n, skipped=bad, correct1=c1, correct5=c5)




# -- networks with weights inherited from the supernet -------------------------------------------------

def evaluate_supernet_arch(supernet, arch, data_dir: str | os.PathLike, ctx: DistContext | None = None,
                           calib_images: int = CALIB_IMAGES, calib_batch_size: int = CALIB_BATCH,
                           calib_seed: int = CALIB_SEED, batch_size: int = 100, workers: int = 0,
                           progress: bool = True) -> EvalResult:
    """Extract ``arch`` from ``supernet``, recalibrate its batch norm, evaluate on ``DATA_DIR/val``.

    The crop is ``arch.resolution``. ``calib_images=0`` keeps the supernet's statistics.
    """
    ctx = ctx or DistContext()
    net = supernet.get_active_subnet(arch).to(ctx.device).eval()
    used = skipped = 0
    if calib_images:
        used, skipped = calibrate_on_imagefolder(net, data_dir, arch.resolution, ctx, calib_images,
                                                 calib_batch_size, calib_seed, workers, progress)
    result = evaluate_imagefolder(net, data_dir, arch.resolution, ctx, batch_size, workers, progress)
    return EvalResult(**{**result.to_dict(), "calib_images": used, "calib_skipped": skipped})


def load_supernet_spec(spec: str, width: float, seed: int = 0):
    """``spec`` is a checkpoint path or ``random`` (seeded random weights, for testing)."""
    from ..nn.supernet import load_supernet, random_supernet

    return random_supernet(width, seed=seed) if spec == "random" else load_supernet(spec, width)


__all__ = ["EvalResult", "recalibrate_bn", "calibration_indices", "calibrate_on_imagefolder",
           "evaluate_imagefolder", "evaluate_supernet_arch", "load_supernet_spec",
           "topk_correct", "CALIB_SEED", "CALIB_IMAGES", "CALIB_BATCH"]
