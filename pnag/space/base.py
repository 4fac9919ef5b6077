"""What every search space offers.

A search space turns text into an architecture value (``parse``) and back (``format``), encodes
architectures as fixed-size float vectors for predictors (``encode``), samples them uniformly with
a seed, and describes itself as a fixed sequence of categorical *decisions* so that one generator
and one trainer serve every space:

* ``decision_choices[t]`` lists the values decision ``t`` can take (an architecture is a vector of
  choice *indices*, one per decision);
* ``active_mask(idx)`` says which decisions matter (in MobileNetV3, the expand/kernel decisions of
  layers beyond a unit's depth do not);
* ``encode_indices(idx)`` encodes a whole batch of index vectors at once, in torch, for training.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, Hashable, Sequence, TypeVar

import numpy as np
import torch

A = TypeVar("A", bound=Hashable)


def make_rng(seed: int | None = None, rng: np.random.Generator | None = None) -> np.random.Generator:
    """The generator to draw from: ``rng`` if given, else a new one seeded with ``seed``."""
    if rng is not None:
        return rng
    return np.random.default_rng(seed)


class SearchSpace(ABC, Generic[A]):
    """Base class of search spaces. Subclasses set ``name`` and ``encoding_size``."""

    name: str = ""
    encoding_size: int = 0

    # -- text ------------------------------------------------------------------------------------
    @abstractmethod
    def parse(self, text: str) -> A:
        """Parse an architecture from its standard text form; raises :class:`pnag.errors.ArchError`."""

    @abstractmethod
    def format(self, arch: A) -> str:
        """The standard text form of ``arch`` (``parse(format(a)) == a``)."""

    def coerce(self, value: Any) -> A:
        """Accept an architecture value, its text form, or a mapping the space understands."""
        if isinstance(value, str):
            return self.parse(value)
        return self.validate(value)

    @abstractmethod
    def validate(self, arch: Any) -> A:
        """Return ``arch`` if it is a valid architecture of this space, else raise ArchError."""

    # -- vectors ---------------------------------------------------------------------------------
    @abstractmethod
    def encode(self, arch: A) -> np.ndarray:
        """Float32 vector of length ``encoding_size``."""

    def encode_many(self, archs: Sequence[A]) -> np.ndarray:
        """Float32 matrix ``(len(archs), encoding_size)``."""
        if len(archs) == 0:
            return np.zeros((0, self.encoding_size), dtype=np.float32)
        return np.stack([self.encode(a) for a in archs]).astype(np.float32, copy=False)

    # -- sampling --------------------------------------------------------------------------------
    def sample(self, n: int, seed: int | None = None, rng: np.random.Generator | None = None) -> list[A]:
        """``n`` architectures drawn uniformly (each decision uniform), reproducible from ``seed``."""
        gen = make_rng(seed, rng)
        sizes = np.array([len(c) for c in self.decision_choices])
        idx = (gen.random((n, len(sizes))) * sizes).astype(np.int64)
        return [self.from_indices(row) for row in idx]

    # -- decisions (for generators and evolutionary search) ----------------------------------------
    @property
    @abstractmethod
    def decision_choices(self) -> tuple[tuple, ...]:
        """For each decision in order, the values it can take."""

    @property
    def decision_names(self) -> tuple[str, ...]:
        return tuple(f"d{t}" for t in range(len(self.decision_choices)))

    @abstractmethod
    def to_indices(self, arch: A) -> np.ndarray:
        """Choice index per decision (int64, length ``len(decision_choices)``); inactive ones are 0."""

    @abstractmethod
    def from_indices(self, idx: Sequence[int]) -> A:
        """The architecture a vector of choice indices describes (inactive decisions ignored)."""

    def active_mask(self, idx: torch.Tensor) -> torch.Tensor:
        """Bool ``(B, T)``: which decisions of each index vector in ``idx (B, T)`` matter."""
        return torch.ones_like(idx, dtype=torch.bool)

    #: the decisions whose choice can change which later decisions are active (``active_mask`` is
    #: causal); None: any may. A generator asks for the mask again only after these.
    activity_controls: frozenset[int] | None = None

    @abstractmethod
    def encode_indices(self, idx: torch.Tensor) -> torch.Tensor:
        """Vectorised ``encode``: long ``(B, T)`` choice indices -> float ``(B, encoding_size)``."""
