"""Resumable training loops: the state of a model, its optimizer, learning-rate schedule and random
generator after ``step`` steps (or epochs), saved and put back exactly, so that a loop resumed from it
ends with the same weights, bit for bit, as one that ran through (same torch build and threads).

A loop takes an optional *checkpoint*: any object with ``state`` (the dict to resume from, or None),
``due()`` (whether to save now), ``save(state)`` and ``damaged(why) -> Exception`` (the error for a
saved state that cannot be resumed, naming where it came from); the run directory's is
:class:`pnag.search.checkpoint.StageCheckpoint`.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch

# what a damaged or foreign saved state raises while it is put back
_BAD_STATE = (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError)


def training_state(step: int, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
                   sched: Any = None, **extra: Any) -> dict[str, Any]:
    """The loop's state after ``step`` steps (plain types and tensors: ``weights_only`` safe), with ``extra``."""
    st = {"step": int(step), "model": model.state_dict(), "optim": opt.state_dict(), "rng": gen.get_state(), **extra}
    if sched is not None:
        st["sched"] = sched.state_dict()
    return st


def restore_training(state: dict[str, Any], total: int, model: torch.nn.Module, opt: torch.optim.Optimizer,
                     gen: torch.Generator, damaged: Callable[[str], Exception], sched: Any = None) -> int:
    """Put ``state`` (from :func:`training_state`) back into freshly built ``model``, ``opt``, ``gen`` and
    ``sched``; returns the step to go on from (0..``total``). A state that does not fit them raises
    ``damaged(why)``."""
    with restoring(damaged):
        step = state["step"]
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= total:
            raise ValueError(f"step {step!r} outside 0..{total}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        for group in opt.param_groups:  # a foreign optimizer state fails later, inside step(): check it now
            for p in group["params"]:
                for k, v in opt.state.get(p, {}).items():
                    if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape:
                        raise ValueError(f"optimizer {k} of shape {tuple(v.shape)} for a parameter {tuple(p.shape)}")
        if sched is not None:
            sched.load_state_dict(state["sched"])
            if isinstance(sched.last_epoch, bool) or not isinstance(sched.last_epoch, int) \
                    or not all(isinstance(x, float) for x in sched.base_lrs):
                raise ValueError("a schedule of other types")
        if not isinstance(state["rng"], torch.Tensor):
            raise TypeError(f"rng is a {type(state['rng']).__name__}, not a tensor")
        gen.set_state(state["rng"])
    return step


@contextlib.contextmanager
def restoring(damaged: Callable[[str], Exception]) -> Iterator[None]:
    """Inside the block, what a damaged or foreign saved state raises while it is put back becomes
    ``damaged(why)`` (one line: the exception's type and first line)."""
    try:
        yield
    except _BAD_STATE as exc:
        first = (str(exc).splitlines() or [""])[0][:120]
        raise damaged(f"{type(exc).__name__}: {first}" if first else type(exc).__name__) from None


__all__ = ["training_state", "restore_training", "restoring"]
