"""Export a network to ONNX or TorchScript, verified against PyTorch before the file is written.

The exported bytes are produced in memory, run back (onnxruntime for ONNX, ``torch.jit.load`` for
TorchScript) at several batch sizes and compared with the PyTorch model's own output; only then is
the file written (atomically). The batch axis is dynamic.

ONNX exporter choice: torch 2.13 defaults to the ``torch.export``-based ("dynamo") exporter, which
needs the extra ``onnxscript`` package. We deliberately call the TorchScript-based exporter
(``dynamo=False``), still shipped (deprecated) in 2.13: MobileNetV3 is a static graph that it
exports exactly, it supports ``dynamic_axes`` for the batch axis, and it spares every user a
dependency. If a later torch drops it, switch to ``dynamo=True`` + ``dynamic_shapes`` and add
``onnxscript`` to the dependencies.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ._io import atomic_open
from .errors import PnagError, allowed
from .nn.mobilenetv3 import MobileNetV3
from .space.mbv3 import MBV3Arch, check_resolution

FORMATS = ("onnx", "torchscript")
DEFAULT_OPSET = 17
VERIFY_BATCHES = (1, 3)
VERIFY_ATOL = 1e-4


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote. ``max_abs_diff``: largest |exported - PyTorch| output over
    the verification batches (logits; NaN when verification was skipped)."""

    path: str
    fmt: str
    resolution: int
    batch_sizes: tuple[int, ...]
    max_abs_diff: float
    n_bytes: int


def resolve_model(spec: Any, width: float | None = None, resolution: int | None = None,
                  pretrained: bool = False, weights: str | os.PathLike | None = None,
                  map_location: Any = "cpu", seed: int = 0) -> MobileNetV3 | torch.nn.Module:
    """A model from a module, a zoo name, an :class:`MBV3Arch` or any architecture text.

    Zoo names get the published weights only with ``pretrained=True``; ``weights`` loads a local
    file into whatever is built. ``width``/``resolution`` override the architecture's own. Without
    weights the model gets random weights drawn from ``seed`` (the global RNG is left untouched)
    and calibrated batch norm (:func:`calibrate_random_bn`); it is returned in eval mode.
    """
    from . import zoo

    if isinstance(spec, torch.nn.Module):
        if weights is not None:
            zoo.load_weights(spec, weights, map_location=map_location)
        return spec
    if not isinstance(spec, (str, MBV3Arch)):
        raise PnagError(f"model: {spec!r} is not a model; allowed: a torch module, a zoo name, an MBV3Arch "
                        "or an architecture string")
    info = zoo.get_model_info(spec) if isinstance(spec, str) and zoo.is_model(spec) else None
    arch = zoo.resolve_arch(spec, width=width, resolution=resolution)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MobileNetV3(arch)
    if weights is None and not pretrained:
        calibrate_random_bn(model, arch.resolution, seed=seed)
    if weights is not None:
        zoo.load_weights(model, weights, map_location=map_location)
    elif pretrained:
        if info is None:
            raise PnagError(f"pretrained: {arch} is not a published model, so it has no published weights; "
                            "allowed: a zoo name (see `pnag zoo list`) or a local weight file (--weights FILE)")
        if arch.width != info.width:
            raise PnagError(f"width: {arch.width} differs from {info.name}'s {info.width}, so the published weights "
                            f"do not fit; allowed: width {info.width} with pretrained weights")
        zoo.load_pretrained(model, info.name, map_location=map_location)
    return model.eval()


def calibrate_random_bn(model: torch.nn.Module, resolution: int = 224, batch: int = 4, seed: int = 0) -> torch.nn.Module:
    """Set every batch norm's running statistics from one seeded random batch; returns ``model``.

    With PyTorch's default initialisation and fresh statistics (mean 0, var 1) a randomly weighted
    MobileNetV3 shrinks its activations to ~1e-9 by the last layer, so its logits barely depend on
    the input and comparing exported outputs with PyTorch's would prove nothing. Calibrated
    statistics keep every layer's activations O(1). The model is left in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: exactly this batch's statistics
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        model(torch.randn(batch, 3, resolution, resolution, generator=g))
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return model.eval()


def _inputs(batch_sizes: Sequence[int], resolution: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3, resolution, resolution, generator=g) for b in batch_sizes]


def _device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _reference(model: torch.nn.Module, xs: list[torch.Tensor]) -> list[np.ndarray]:
    dev = _device(model)
    with torch.no_grad():
        return [model(x.to(dev)).float().cpu().numpy() for x in xs]


def verify_onnx(onnx_model: str | os.PathLike | bytes, model: torch.nn.Module, batch_sizes: Sequence[int] = VERIFY_BATCHES,
                resolution: int = 224, seed: int = 0) -> float:
    """Largest |onnxruntime - PyTorch| output over random inputs at each batch size (model in eval mode)."""
    import onnxruntime as ort

    src = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    xs = _inputs(batch_sizes, resolution, seed)
    refs = _reference(model, xs)
    return max(float(np.abs(sess.run(None, {name: x.numpy()})[0] - r).max()) for x, r in zip(xs, refs))


def verify_torchscript(ts_model: str | os.PathLike | bytes, model: torch.nn.Module, batch_sizes: Sequence[int] = VERIFY_BATCHES,
                       resolution: int = 224, seed: int = 0) -> float:
    """Largest |TorchScript - PyTorch| output after loading the TorchScript file back."""
    src = io.BytesIO(ts_model) if isinstance(ts_model, bytes) else str(ts_model)
    dev = _device(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # see _torchscript_bytes
        loaded = torch.jit.load(src, map_location=dev)
    xs = _inputs(batch_sizes, resolution, seed)
    refs = _reference(model, xs)
    # Without the profiling executor's optimisation passes: same numbers, no warm-up runs.
    with torch.no_grad(), torch.jit.optimized_execution(False):
        return max(float(np.abs(loaded(x.to(dev)).float().cpu().numpy() - r).max()) for x, r in zip(xs, refs))


def _onnx_bytes(model: torch.nn.Module, x: torch.Tensor, opset: int, dynamic_batch: bool) -> bytes:
    buf = io.BytesIO()
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice of the TorchScript-based exporter
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["input"], output_names=["logits"],
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
    return buf.getvalue()


def _torchscript_bytes(model: torch.nn.Module, x: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    # torch 2.13 marks TorchScript deprecated (in favour of torch.export); it still works and is what
    # libtorch (C++) deployments load, so we keep offering it and silence the notice.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, (x,), check_trace=False)
        torch.jit.save(traced, buf)
    return buf.getvalue()


def export_model(model: Any, path: str | os.PathLike, fmt: str = "onnx", resolution: int | None = None,
                 dynamic_batch: bool = True, verify: bool = True, batch_sizes: Sequence[int] = VERIFY_BATCHES,
                 atol: float = VERIFY_ATOL, opset: int = DEFAULT_OPSET, width: float | None = None) -> ExportResult:
    """Export ``model`` (a module, zoo name, :class:`MBV3Arch` or arch string) to ``path``.

    Args:
        fmt: ``"onnx"`` or ``"torchscript"``.
        resolution: input size in pixels (default: the architecture's own, else 224).
        dynamic_batch: make the batch axis dynamic (ONNX; a traced TorchScript model is batch-agnostic).
        verify: run the exported model at ``batch_sizes`` and compare with PyTorch; if the largest
            absolute difference exceeds ``atol`` nothing is written and a RuntimeError is raised.
        width: width multiplier for a zoo name or arch string.
    Zoo names and archs are built with random weights (batch norm calibrated, see
    :func:`calibrate_random_bn`); pass a module for trained weights.
    """
    if fmt not in FORMATS:
        raise PnagError(f"format: {fmt!r} is not an export format; allowed: {allowed(FORMATS)}")
    if isinstance(opset, bool) or not isinstance(opset, int) or not 11 <= opset <= 20:
        raise PnagError(f"opset: {opset!r} is not supported; allowed: an integer in 11..20")
    net = resolve_model(model, width=width, resolution=resolution)
    arch = getattr(net, "arch", None)
    res = check_resolution(resolution) if resolution is not None else (arch.resolution if isinstance(arch, MBV3Arch) else 224)
    if not dynamic_batch:
        batch_sizes = (1,)
    was_training = net.training
    net.eval()
    try:
        x = torch.zeros(1, 3, res, res, device=_device(net))
        data = _onnx_bytes(net, x, opset, dynamic_batch) if fmt == "onnx" else _torchscript_bytes(net, x)
        diff = float("nan")
        if verify:
            check = verify_onnx if fmt == "onnx" else verify_torchscript
            diff = check(data, net, batch_sizes, res)
            if not diff <= atol:
                raise RuntimeError(f"export verification failed: {fmt} output differs from PyTorch by {diff:.3g} "
                                   f"(> {atol:g}); nothing was written to {path}")
    finally:
        net.train(was_training)
    with atomic_open(Path(path), "wb") as fh:
        fh.write(data)
    return ExportResult(str(path), fmt, res, tuple(batch_sizes), diff, len(data))


__all__ = ["FORMATS", "ExportResult", "export_model", "resolve_model", "calibrate_random_bn", "verify_onnx", "verify_torchscript"]
