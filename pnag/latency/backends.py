"""Latency backends: each one is a small profiler that runs a module on an input and times it.

A backend (nn-Meter style) turns ``(module, example input, threads)`` into a *runner*: a function
that executes one forward pass and returns its wall time in ms. The measurement protocol (warm-up,
repetitions, statistics) lives in :mod:`pnag.latency.measure` and is the same for every backend.

* ``torch``: eager PyTorch on the CPU, ``eval()`` + ``torch.inference_mode()``, with
  ``torch.set_num_threads(threads)`` for the duration (restored afterwards).
* ``onnxruntime``: the module exported to ONNX in memory, run by an ONNX Runtime CPU session with
  ``intra_op_num_threads = threads`` (and one inter-op thread, sequential execution).
* ``torch-cuda``: PyTorch on the first CUDA device, timed with CUDA events and a synchronise.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import platform
import time
from abc import ABC, abstractmethod
from typing import Callable, Iterator

import torch
from torch import nn

from ..errors import PnagError, allowed

Runner = Callable[[], float]
"""Runs one forward pass and returns its duration in ms."""


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one, else the platform module)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


class Backend(ABC):
    """A latency profiler. Subclasses set ``name`` and implement :meth:`runner`."""

    name: str = ""

    @abstractmethod
    def version(self) -> str:
        """Version string of the runtime (e.g. ``torch 2.13.0``)."""

    def check_available(self) -> None:
        """Raise :class:`PnagError` if this backend cannot run here."""

    def device_name(self) -> str:
        """The device that runs the module, in words."""
        return cpu_model()

    @abstractmethod
    def runner(self, module: nn.Module, example: torch.Tensor, threads: int) -> contextlib.AbstractContextManager:
        """Context manager yielding a :data:`Runner` for ``module`` on ``example`` with ``threads``."""


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


@functools.lru_cache(maxsize=1)
def keep_activation_buffers() -> bool:
    """Tell glibc's malloc to keep large freed blocks instead of returning them to the system.

    By default glibc serves blocks above a (dynamic) threshold with ``mmap`` and unmaps them when
    freed, so each forward pass of a PyTorch CPU model re-faults its activation buffers page by
    page: seen here as +5..45 % and erratic latency on the same network. Deployment runtimes keep
    such buffers in arenas; raising the thresholds does the same for the measurement. Process-wide
    and permanent (memory stays with the process); a no-op where glibc is not the allocator.
    Returns whether it was applied.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1  # glibc's largest allowed value
        return bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok)
    except (OSError, AttributeError):
        return False


class TorchBackend(Backend):
    name = "torch"

    def version(self) -> str:
        return f"torch {torch.__version__}"

    @contextlib.contextmanager
    def runner(self, module: nn.Module, example: torch.Tensor, threads: int) -> Iterator[Runner]:
        module = module.eval()
        keep_activation_buffers()
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                def run() -> float:
                    t0 = time.perf_counter_ns()
                    module(example)
                    return (time.perf_counter_ns() - t0) / 1e6

                yield run
        finally:
            torch.set_num_threads(previous)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def version(self) -> str:
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime (not installed)"
        return f"onnxruntime {ort.__version__}"

    def check_available(self) -> None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise PnagError("backend onnxruntime: the onnxruntime package is not installed; allowed here: "
                            "torch (or pip install onnxruntime)") from None

    @contextlib.contextmanager
    def runner(self, module: nn.Module, example: torch.Tensor, threads: int) -> Iterator[Runner]:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        from ..export import DEFAULT_OPSET, _onnx_bytes  # the exporter pnag export uses (TorchScript-based)

        model = _onnx_bytes(copy.deepcopy(module).eval(), example, opset=DEFAULT_OPSET, dynamic_batch=False)
        session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: example.detach().cpu().numpy()}

        def run() -> float:
            t0 = time.perf_counter_ns()
            session.run(None, feed)
            return (time.perf_counter_ns() - t0) / 1e6

        try:
            yield run
        finally:
            del session


class TorchCudaBackend(Backend):
    name = "torch-cuda"

    def version(self) -> str:
        return f"torch {torch.__version__} cuda {torch.version.cuda}"

    def check_available(self) -> None:
        if not torch.cuda.is_available():
            raise PnagError("backend torch-cuda: no CUDA device is available on this machine; allowed here: "
                            "torch or onnxruntime")

    def device_name(self) -> str:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"

    @contextlib.contextmanager
    def runner(self, module: nn.Module, example: torch.Tensor, threads: int) -> Iterator[Runner]:
        self.check_available()
        dev = torch.device("cuda", 0)
        module = copy.deepcopy(module).eval().to(dev)
        x = example.to(dev)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                def run() -> float:
                    start.record()
                    module(x)
                    end.record()
                    end.synchronize()
                    return float(start.elapsed_time(end))

                torch.cuda.synchronize(dev)
                yield run
        finally:
            torch.set_num_threads(previous)


BACKENDS: dict[str, type[Backend]] = {b.name: b for b in (TorchBackend, OnnxRuntimeBackend, TorchCudaBackend)}


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (torch, onnxruntime or torch-cuda), checked to be usable here."""
    if name not in BACKENDS:
        raise PnagError(f"backend: {name!r} is not known; allowed: {allowed(sorted(BACKENDS))}")
    backend = BACKENDS[name]()
    backend.check_available()
    return backend
