"""The NAS-Bench-201 cell space: 6 edges, each one of 5 operations (15,625 cells).

Standard string: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node 1 from node 0; node 2 from 0, 1;
node 3 from 0, 1, 2). The benchmark numbers cells in its own published order; the dataset reader
keeps that order and this module never assumes one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ArchError, allowed
from .base import SearchSpace

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
N_EDGES = 6
# (to-node, from-node) of each edge, in string order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
_NODE_SIZES = (1, 2, 3)
_TOKEN = re.compile(r"^([A-Za-z0-9_]+)~(\d+)$")


@dataclass(frozen=True)
class NB201Arch:
    """A NAS-Bench-201 cell: the operation on each of the 6 edges, in string order."""

    ops: tuple[str, ...]
    space: str = field(default="nb201", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ops = self.ops
        if isinstance(ops, str) or not isinstance(ops, Sequence):
            raise ArchError(f"nb201 ops: {ops!r} is not a list; allowed: a list of {N_EDGES} operation names")
        if len(ops) != N_EDGES:
            raise ArchError(f"nb201 ops: got {len(ops)} operations; allowed: exactly {N_EDGES}")
        for i, op in enumerate(ops):
            if op not in OPS:
                raise ArchError(f"nb201 ops[{i}] (edge {EDGES[i][1]}->{EDGES[i][0]}): {op!r} is not an operation; "
                                f"allowed: {allowed(OPS)}")
        object.__setattr__(self, "ops", tuple(ops))

    def to_string(self) -> str:
        o = self.ops
        return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"

    def __str__(self) -> str:
        return self.to_string()


def parse_nb201(text: str) -> NB201Arch:
    """Parse the standard NAS-Bench-201 string; errors name the node, the token and what is allowed."""
    if not isinstance(text, str):
        raise ArchError(f"nb201 arch: {text!r} is not a string; allowed: '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'")
    s = text.strip()
    nodes = s.split("+")
    if len(nodes) != 3:
        raise ArchError(f"nb201 arch {s!r}: found {len(nodes)} '+'-separated nodes; allowed: exactly 3 "
                        "(|op~0|+|op~0|op~1|+|op~0|op~1|op~2|)")
    ops: list[str] = []
    for n, (node, size) in enumerate(zip(nodes, _NODE_SIZES), start=1):
        if not (node.startswith("|") and node.endswith("|")) or len(node) < 2:
            raise ArchError(f"nb201 arch node {n} {node!r}: must start and end with '|'")
        tokens = node[1:-1].split("|")
        if len(tokens) != size:
            raise ArchError(f"nb201 arch node {n} {node!r}: got {len(tokens)} inputs; allowed: exactly {size}")
        for j, tok in enumerate(tokens):
            m = _TOKEN.match(tok)
            if not m:
                raise ArchError(f"nb201 arch node {n} input {j} {tok!r}: allowed form 'op~{j}'")
            op, src = m.group(1), int(m.group(2))
            if src != j:
                raise ArchError(f"nb201 arch node {n} input {j} {tok!r}: source node {src}; allowed: {j}")
            if op not in OPS:
                raise ArchError(f"nb201 arch node {n} input {j}: operation {op!r} is not known; allowed: {allowed(OPS)}")
            ops.append(op)
    return NB201Arch(tuple(ops))


def effective_indices(idx: torch.Tensor) -> torch.Tensor:
    """Operation indices ``(B, 6)`` with every edge that lies on no path from the input (node 0) to
    the output (node 3) set to ``none`` (0).

    A node sums its incoming edges and ``none`` is zero, so such an edge contributes nothing: either
    its source carries no signal from the input, or its target never reaches the output. The result
    computes the same function as the cell (up to training noise) with only the live edges.
    """
    idx = torch.as_tensor(idx).long()
    on = idx != 0
    B = idx.shape[0]
    from_input = [torch.ones(B, dtype=torch.bool)] + [torch.zeros(B, dtype=torch.bool) for _ in range(3)]
    for e, (to, src) in enumerate(EDGES):  # EDGES is in topological order of the target node
        from_input[to] = from_input[to] | (from_input[src] & on[:, e])
    to_output = [torch.zeros(B, dtype=torch.bool) for _ in range(3)] + [torch.ones(B, dtype=torch.bool)]
    for e in reversed(range(N_EDGES)):
        to, src = EDGES[e]
        to_output[src] = to_output[src] | (to_output[to] & on[:, e])
    live = torch.stack([from_input[src] & to_output[to] for to, src in EDGES], 1) & on
    return idx * live.long()


class NB201Space(SearchSpace[NB201Arch]):
    """NAS-Bench-201 cells. Encoding: 30-d, a one-hot over the 5 operations for each of 6 edges of
    the cell's *effective* graph (:func:`effective_indices`: an edge that no input-to-output path
    uses counts as ``none``), so cells that compute the same function share an encoding. Measured
    on NAS-Bench-201 (1,000 cells, 5-member ensembles, Kendall tau on the 14,625 others): 0.79 with
    the plain one-hot, 0.85 with this one, on each of cifar10, cifar100 and ImageNet16-120."""

    name = "nb201"
    encoding_size = N_EDGES * len(OPS)
    activity_controls: frozenset[int] | None = frozenset()  # every decision is always active

    def __repr__(self) -> str:
        return "NB201Space()"

    def parse(self, text: str) -> NB201Arch:
        return parse_nb201(text)

    def format(self, arch: NB201Arch) -> str:
        return arch.to_string()

    def validate(self, arch: Any) -> NB201Arch:
        if isinstance(arch, NB201Arch):
            return arch
        if isinstance(arch, (list, tuple)):
            return NB201Arch(tuple(arch))
        raise ArchError(f"nb201 arch: {arch!r} is not a NAS-Bench-201 cell")

    def encode(self, arch: NB201Arch) -> np.ndarray:
        idx = torch.as_tensor(self.to_indices(arch)).view(1, -1)
        return self.encode_indices(idx)[0].numpy()

    @property
    def decision_choices(self):
        return (OPS,) * N_EDGES

    @property
    def decision_names(self):
        return tuple(f"edge{b}->{a}" for a, b in EDGES)

    def to_indices(self, arch: NB201Arch) -> np.ndarray:
        return np.array([OPS.index(op) for op in arch.ops], dtype=np.int64)

    def from_indices(self, idx) -> NB201Arch:
        idx = [int(x) for x in idx]
        if len(idx) != N_EDGES:
            raise ArchError(f"decision indices: got {len(idx)}; allowed: exactly {N_EDGES}")
        for t, x in enumerate(idx):
            if not 0 <= x < len(OPS):
                raise ArchError(f"decision edge {t}: index {x} is out of range; allowed: 0..{len(OPS) - 1}")
        return NB201Arch(tuple(OPS[i] for i in idx))

    def encode_indices(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(effective_indices(idx), len(OPS)).float().reshape(idx.shape[0], -1)

    def all_indices(self) -> np.ndarray:
        """The operation indices of all 15,625 cells ``(15625, 6)``, in base-5 order (edge 0 most significant)."""
        return np.stack(np.meshgrid(*[np.arange(len(OPS))] * N_EDGES, indexing="ij"), -1).reshape(-1, N_EDGES)

    def all_archs(self) -> list[NB201Arch]:
        """All 15,625 cells, in the order of :meth:`all_indices`."""
        return [self.from_indices(row) for row in self.all_indices()]
