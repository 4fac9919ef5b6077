"""While a run trains: one line per finished stage, read from the run's own files (``state.json``,
``metrics.json``), and off a terminal a line every few seconds saying which stage is running."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path


class StageLines:
    """While a run trains in ``run_dir``: one line per finished stage (from the run's own ``state.json``
    and ``metrics.json``), and when stderr is not a terminal a line every :data:`pnag._progress.EVERY_S`
    seconds saying which stage is running. ``progress`` as in :mod:`pnag._progress`."""

    STAGES = ("data", "predictors", "ranker", "generator", "eval")

    def __init__(self, run_dir: Path, progress: bool | None):
        from .._progress import shows

        self.run_dir, self.on = Path(run_dir), shows(progress)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        if self.on:
            self.seen = set(self._read("state.json").get("done", []))
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.on:
            self.stop.set()
            self.thread.join()
            if exc[0] is None:
                self._report()

    def _read(self, name: str) -> dict:
        try:
            value = json.loads((self.run_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def _report(self) -> list[str]:
        from .._progress import say

        done = [s for s in self._read("state.json").get("done", []) if s in self.STAGES]
        metrics = self._read("metrics.json")
        for stage in done:
            if stage not in self.seen:
                self.seen.add(stage)
                seconds = metrics.get("seconds", {}).get(stage, 0.0)
                say(f"train: {stage} done ({seconds:.1f} s){_stage_detail(stage, metrics)}")
        return done

    def _watch(self) -> None:
        from .._progress import EVERY_S, say

        t0 = last = time.perf_counter()
        tty = sys.stderr.isatty()
        while not self.stop.wait(1.0):
            done = self._report()
            if not tty and time.perf_counter() - last >= EVERY_S:
                last = time.perf_counter()
                running = next((s for s in self.STAGES if s not in done), "the last stage")
                say(f"train: {running} running, {last - t0:.0f} s so far")


def _stage_detail(stage: str, metrics: dict) -> str:
    """What a finished stage gave, in a few words."""
    data = metrics.get("data", {})
    if stage == "data" and data:
        return f": {data.get('n')} architectures, {data.get('note', '')}"
    if stage == "predictors" and "accuracy" in metrics.get("predictors", {}):
        acc = metrics["predictors"]["accuracy"]
        unit = "points of top-1 %" if data.get("accuracy_unit", "%") == "%" else "score units"
        return f": accuracy predictor RMSE {acc['rmse']:.3f} {unit}, Kendall tau {acc['kendall_tau']:.3f} (held out)"
    if stage == "ranker" and "ranker" in metrics:
        return f": pair accuracy {metrics['ranker']['pair_accuracy']:.3f} (held out)"
    return ""


__all__ = ["StageLines"]
