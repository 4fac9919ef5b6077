"""Scale-out under ``torchrun``: process-group set-up, work sharding and result reduction.

``torchrun --nproc_per_node N -m pnag eval ...`` (or across nodes) runs the unchanged command in N
processes; :func:`init_distributed` reads ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` from the
environment torchrun sets and joins the process group (gloo on CPU, nccl on CUDA). Without those
variables everything degenerates to one process and no process group is created.

Sharding never pads: a batch belongs to exactly one rank, so summed counts are
those of one process, and a batch holds the same images whatever the number of ranks (the same
arithmetic, so bitwise the same logits on a given device).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from ..errors import PnagError

@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # whether this context created the process group (and must destroy it)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints and writes."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise PnagError(f"environment {name}: {text!r} is not an integer; "
                        "allowed: an integer (as torchrun sets it)") from None


def resolve_device(device: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; ``cuda`` -> this rank's GPU."""
    name = "auto" if device is None else str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise PnagError("device: 'cuda' but no CUDA device is available; allowed: cpu or auto")
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    if name.startswith("cuda:") or name == "cpu":
        return torch.device(name)
    raise PnagError(f"device: {name!r}; allowed: auto, cpu, cuda or cuda:N")


def init_distributed(device: str | torch.device | None = "auto") -> DistContext:
    """Join the torchrun process group if ``WORLD_SIZE`` > 1; return this process's context."""
    world = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistContext(0, 1, 0, dev, False)
    if not 0 <= rank < world:
        raise PnagError(f"environment RANK: {rank}; allowed: 0..{world - 1} (WORLD_SIZE={world})")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method="env://")
        owns = True
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, owns)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group if this context created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


_LEAVE_AT_EXIT = False  # whether the atexit handler below is registered (once per process)


def _leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def leave_at_exit(ctx: DistContext) -> None:
    """Leave the process group at interpreter exit if ``ctx`` created it, for a context that outlives the
    call that made it (an accuracy source). One atexit handler per process, however often called."""
    global _LEAVE_AT_EXIT
    if ctx.owns_group and not _LEAVE_AT_EXIT:
        atexit.register(_leave_group)
        _LEAVE_AT_EXIT = True


@contextlib.contextmanager
def distributed(device: str | torch.device | None = "auto") -> Iterator[DistContext]:
    """``with distributed() as ctx:`` joins (and afterwards leaves) the torchrun process group."""
    ctx = init_distributed(device)
    try:
        yield ctx
    finally:
        shutdown(ctx)


def shard_batches(n_items: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """Index batches of this rank: batch ``j`` (items ``j*B .. j*B+B-1``) goes to rank ``j % world_size``.

    No padding: every item is in exactly one batch of one rank.
    """
    if batch_size < 1:
        raise PnagError(f"batch size: {batch_size}; allowed: an integer >= 1")
    return [list(range(s, min(n_items, s + batch_size)))
            for j, s in enumerate(range(0, n_items, batch_size)) if j % world_size == rank]


def all_reduce_sum(ctx: DistContext, values: Sequence[int]) -> list[int]:
    """Integer sums of ``values`` over all ranks (the values themselves in one process)."""
    if not ctx.distributed:
        return [int(v) for v in values]
    dev = ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([int(v) for v in values], dtype=torch.int64, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [int(v) for v in t.cpu().tolist()]


def broadcast_json(ctx: DistContext, obj=None, src: int = 0):
    """Rank ``src``'s JSON-serialisable ``obj`` on every rank (``obj`` itself in one process).

    Sent as UTF-8 JSON bytes, not pickled, so nothing is unpickled on the receiving ranks."""
    if not ctx.distributed:
        return obj
    dev = ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")
    data = json.dumps(obj).encode("utf-8") if ctx.rank == src else b""
    size = torch.tensor([len(data)], dtype=torch.int64, device=dev)
    dist.broadcast(size, src=src)
    buf = (torch.frombuffer(bytearray(data), dtype=torch.uint8).to(dev) if ctx.rank == src
           else torch.empty(int(size.item()), dtype=torch.uint8, device=dev))
    if buf.numel():
        dist.broadcast(buf, src=src)
    return obj if ctx.rank == src else json.loads(buf.cpu().numpy().tobytes().decode("utf-8"))


def broadcast_buffers(ctx: DistContext, module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (e.g. recalibrated batch-norm statistics) to every rank."""
    if not ctx.distributed:
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=src)


__all__ = ["DistContext", "init_distributed", "shutdown", "leave_at_exit", "distributed", "resolve_device", "shard_batches",
           "all_reduce_sum", "broadcast_json", "broadcast_buffers"]
