"""Architectures as decision-index rows ``(N, T)``: random rows, canonical form, neighbours, keys.

Every search works on a space's decision interface (``decision_choices``, ``active_mask``), so
these helpers serve any search space. They accept torch tensors or numpy arrays and return the
same kind.
"""

from __future__ import annotations

import numpy as np
import torch


def random_indices(space, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` uniformly random decision-index rows ``(n, T)`` (not canonical)."""
    sizes = torch.tensor([len(c) for c in space.decision_choices], dtype=torch.float64)
    return (torch.rand(n, len(sizes), generator=generator, dtype=torch.float64) * sizes).long()


def canonical(space, idx):
    """Index rows with inactive decisions zeroed (equal architectures give equal rows).

    ``idx`` a long tensor or an integer array ``(N, T)``; returns the same kind."""
    if isinstance(idx, torch.Tensor):
        return idx * space.active_mask(idx).long()
    idx = np.asarray(idx, dtype=np.int64)
    mask = space.active_mask(torch.from_numpy(idx)).numpy()
    return np.where(mask, idx, 0)


def neighbours(space, idx: torch.Tensor) -> torch.Tensor:
    """Every architecture one decision away from each row of ``idx (M, T)``: ``(M * S, T)`` with
    ``S = sum(len(choices) - 1)`` over the decisions, canonical (a change to an inactive decision
    gives the row back, which callers drop as already known)."""
    sizes = [len(c) for c in space.decision_choices]
    rows = []
    for t, n in enumerate(sizes):
        for shift in range(1, n):
            m = idx.clone()
            m[:, t] = (m[:, t] + shift) % n
            rows.append(m)
    out = torch.stack(rows, 1).reshape(-1, idx.shape[1]) if rows else idx[:0]
    return canonical(space, out)


def index_keys(idx) -> list[bytes]:
    """A hashable key per row (rows of at most 127 choices per decision)."""
    arr = idx.numpy() if isinstance(idx, torch.Tensor) else np.asarray(idx)
    return [r.tobytes() for r in arr.astype(np.int8)]


__all__ = ["random_indices", "canonical", "neighbours", "index_keys"]
