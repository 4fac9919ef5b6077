"""The measurement protocol: warm-up, repeated timed runs, median and interquartile range (ms),
and the environment recorded with every figure.

Protocol (:class:`MeasureProtocol`): ``warmup`` untimed forward passes, then timed passes until at
least ``runs`` were made *and* at least ``min_time_s`` seconds were spent timing, or ``max_runs``
were made. The reported latency is the median of the timed passes; the spread is the
interquartile range (p75 - p25). Each pass is one forward of a batch of ``batch`` images at
``resolution`` x ``resolution`` (random input; latency does not depend on the values).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import PnagError
from .backends import Backend, cpu_model, get_backend


@dataclass(frozen=True)
class MeasureProtocol:
    """How one latency figure is taken (see the module docstring)."""

    warmup: int = 10
    runs: int = 30
    min_time_s: float = 0.5
    max_runs: int = 10_000

    def __post_init__(self) -> None:
        for name, lo in (("warmup", 0), ("runs", 1), ("max_runs", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise PnagError(f"{name}: {v!r} is not allowed; allowed: an integer >= {lo}")
        if isinstance(self.min_time_s, bool) or not isinstance(self.min_time_s, (int, float)) \
                or not np.isfinite(self.min_time_s) or self.min_time_s < 0:
            raise PnagError(f"min_time_s: {self.min_time_s!r} is not allowed; allowed: a number of seconds >= 0")
        if self.max_runs < self.runs:
            raise PnagError(f"max_runs: {self.max_runs} is below runs ({self.runs}); allowed: max_runs >= runs")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LatencyEnv:
    """Where and how a figure was measured."""

    cpu_model: str
    cores: int  # logical CPUs the process may use
    threads: int
    backend: str
    backend_version: str
    device: str
    batch: int
    resolution: int | None
    torch_version: str
    python: str
    platform: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LatencyMeasurement:
    """One latency figure: statistics of the timed runs (ms) and the environment."""

    median_ms: float
    iqr_ms: float
    p25_ms: float
    p75_ms: float
    mean_ms: float
    min_ms: float
    runs: int
    warmup: int
    env: LatencyEnv

    def to_dict(self) -> dict:
        d = asdict(self)
        d["env"] = self.env.to_dict()
        return d

    def __str__(self) -> str:
        e = self.env
        return (f"{self.median_ms:.3f} ms median (IQR {self.iqr_ms:.3f} ms, {self.runs} runs) on {e.device}, "
                f"{e.backend_version}, {e.threads} thread(s), batch {e.batch}, resolution {e.resolution}")


def available_cores() -> int:
    """Logical CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(threads: Any) -> int:
    """``threads`` as an int >= 1; None means torch's current thread count."""
    if threads is None:
        return torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise PnagError(f"threads: {threads!r} is not allowed; allowed: an integer >= 1")
    return int(threads)


def check_batch(batch: Any) -> int:
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise PnagError(f"batch: {batch!r} is not allowed; allowed: an integer >= 1")
    return int(batch)


def environment(backend: Backend, threads: int, batch: int, resolution: int | None) -> LatencyEnv:
    """The environment record of a measurement with these settings on this machine."""
    return LatencyEnv(cpu_model=cpu_model(), cores=available_cores(), threads=threads, backend=backend.name,
                      backend_version=backend.version(), device=backend.device_name(), batch=batch,
                      resolution=resolution, torch_version=torch.__version__, python=sys.version.split()[0],
                      platform=platform.platform())


def summarize(times_ms: Sequence[float], warmup: int, env: LatencyEnv) -> LatencyMeasurement:
    """Statistics of timed runs (ms) as a :class:`LatencyMeasurement`."""
    t = np.asarray(times_ms, dtype=np.float64)
    p25, med, p75 = np.percentile(t, [25, 50, 75])
    return LatencyMeasurement(median_ms=float(med), iqr_ms=float(p75 - p25), p25_ms=float(p25), p75_ms=float(p75),
                              mean_ms=float(t.mean()), min_ms=float(t.min()), runs=int(t.size), warmup=warmup, env=env)


def time_runs(run, protocol: MeasureProtocol) -> np.ndarray:
    """Apply the protocol to a runner: warm up, then time passes; returns the timed durations (ms)."""
    for _ in range(protocol.warmup):
        run()
    times: list[float] = []
    spent_ms = 0.0
    budget_ms = protocol.min_time_s * 1000.0
    while len(times) < protocol.max_runs and (len(times) < protocol.runs or spent_ms < budget_ms):
        t = run()
        times.append(t)
        spent_ms += t
    return np.asarray(times)


@contextlib.contextmanager
def runner_pool(backend: Backend, threads: int) -> Iterator[Callable[..., Callable[[], float]]]:
    """Runners opened on first use and kept open until the pool closes, for measuring the same
    modules in several interleaved rounds without rebuilding them (an onnxruntime runner exports
    the module and opens a session; a CUDA runner copies it to the device).

    Yields ``get(key, make_module, input_shape, seed=0) -> runner``; ``make_module()`` is called
    once per key, the input is random (seeded).
    """
    with contextlib.ExitStack() as stack:
        runners: dict[Any, Callable[[], float]] = {}

        def get(key: Any, make_module: Callable[[], nn.Module], input_shape: Sequence[int], seed: int = 0):
            if key not in runners:
                x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(seed))
                runners[key] = stack.enter_context(backend.runner(make_module(), x, threads))
            return runners[key]

        yield get


def measure_module(module: nn.Module, input_shape: Sequence[int], backend: str | Backend = "torch",
                   threads: int | None = None, protocol: MeasureProtocol | None = None,
                   resolution: int | None = None, seed: int = 0) -> LatencyMeasurement:
    """Latency of ``module`` on a random input of ``input_shape`` (``(batch, C, H, W)``)."""
    be = backend if isinstance(backend, Backend) else get_backend(backend)
    threads = check_threads(threads)
    protocol = protocol or MeasureProtocol()
    with runner_pool(be, threads) as runner:
        times = time_runs(runner(0, lambda: module, input_shape, seed), protocol)
    env = environment(be, threads, int(input_shape[0]), resolution)
    return summarize(times, protocol.warmup, env)


def measure_latency(model_or_arch: Any, backend: str = "torch", threads: int | None = None, batch: int = 1,
                    resolution: int | None = None, width: float | None = None, warmup: int = 10, runs: int = 30,
                    min_time_s: float = 0.5, max_runs: int = 10_000) -> LatencyMeasurement:
    """Latency (ms) of a network: an ``nn.Module``, an ``MBV3Arch`` or an architecture's text form.

    Args:
        model_or_arch: the network. A module needs ``resolution`` unless it has an ``arch``
            attribute (as :class:`pnag.nn.MobileNetV3` does).
        backend: ``torch``, ``onnxruntime`` or ``torch-cuda``.
        threads: CPU threads (None: torch's current setting); restored afterwards.
        batch: images per forward pass.
        resolution: input size in pixels (default: the architecture's own).
        width: width multiplier for architectures (default: the architecture's own).
        warmup, runs, min_time_s, max_runs: the :class:`MeasureProtocol`.
    """
    be = get_backend(backend)
    threads = check_threads(threads)
    batch = check_batch(batch)
    protocol = MeasureProtocol(warmup, runs, min_time_s, max_runs)
    if isinstance(model_or_arch, nn.Module):
        module = model_or_arch
        arch = getattr(module, "arch", None)
        if resolution is None:
            resolution = getattr(arch, "resolution", None)
        if resolution is None:
            raise PnagError("resolution: a module without an 'arch' attribute needs resolution; allowed: an "
                            "integer number of pixels >= 1")
        if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 1:
            raise PnagError(f"resolution: {resolution!r} is not allowed; allowed: an integer number of pixels >= 1")
    else:
        from ..nn.mobilenetv3 import MobileNetV3
        from ..space.mbv3 import MBV3Arch, check_resolution, check_width, parse_arch

        arch = model_or_arch if isinstance(model_or_arch, MBV3Arch) else parse_arch(model_or_arch)
        if width is not None:
            arch = arch.with_(width=check_width(width))
        if resolution is not None:
            arch = arch.with_(resolution=check_resolution(resolution))
        resolution = arch.resolution
        module = MobileNetV3(arch)
    return measure_module(module, (batch, 3, resolution, resolution), be, threads, protocol, int(resolution))
