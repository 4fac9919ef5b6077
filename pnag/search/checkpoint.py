"""Checkpoints inside a run's stages, so that a run stopped at any moment (killed, out of time) resumes
where it was and ends with the same files as a run that went through.

``NAME.ckpt.pt`` in the run directory holds one fit under way (``predictors-accuracy``,
``predictors-latency``, ``ranker``, ``generator``; in look-up round ``r`` ``evalR-predictors-accuracy``,
``evalR-ranker`` and ``evalR``): its weights, optimizer, schedule, random generator and step
(:mod:`pnag.predict.resume`), saved atomically at least every ``CHECKPOINT_SECONDS`` of its work (the
generator also every ``checkpoint_every`` steps). It is read back checked, a damaged one named in a
one-line error, and removed once ``state.json`` records the stage (or round) done
(:meth:`pnag.search.run.Run.mark`).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from .._io import torch_save_atomic
from ..errors import DataError
from .run import Run
from .run_files import damaged

# a stage under way is saved at least this often (s): a process stopped every few seconds still gains
# ground (the MobileNetV3 main job starts in ~3 s on a 2-core machine); a save takes milliseconds
CHECKPOINT_SECONDS = 1.0


class StageCheckpoint:
    """The checkpoint ``NAME.ckpt.pt`` of ``run``: ``state`` is what it holds (checked to be a dict with
    ``keys``; None when there is none), ``due()`` says whether ``CHECKPOINT_SECONDS`` have passed since it
    was read or last saved, ``save(state)`` writes it atomically, ``damaged(why)`` is the error for a
    state that cannot be resumed (:mod:`pnag.predict.resume`)."""

    def __init__(self, run: Run, name: str, keys: Sequence[str] = ("step",)):
        self.run, self.name = run, f"{name}.ckpt.pt"
        self.path = run.dir / self.name
        self.state: dict[str, Any] | None = run.load_file(self.name, keys) if self.path.exists() else None
        self._last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._last >= CHECKPOINT_SECONDS

    def save(self, state: dict[str, Any]) -> None:
        torch_save_atomic(state, self.path)
        self._last = time.monotonic()

    def damaged(self, why: str) -> DataError:
        return damaged(self.run.dir, self.name, why)


__all__ = ["StageCheckpoint", "CHECKPOINT_SECONDS"]
