"""Progress that leaves a trace: a bar on a terminal, periodic lines elsewhere, a summary line at the end.

``progress``: ``False`` shows nothing; ``None`` a bar on a terminal only (nothing when stderr is not
one, e.g. in a pipe or a log file); ``True`` a bar on a terminal and, elsewhere, one line every
``every_s`` seconds. Both ``None`` and ``True`` end with one summary line when the step finishes.
"""

from __future__ import annotations

import sys
import time
from typing import IO

EVERY_S = 15.0  # seconds between progress lines when stderr is not a terminal


def shows(progress: bool | None, file: IO | None = None) -> bool:
    """Whether anything is shown for ``progress`` (see the module docstring)."""
    f = file or sys.stderr
    return bool(progress) or (progress is None and f.isatty())


def say(line: str, file: IO | None = None) -> None:
    """Print one line to stderr without breaking a progress bar that is on the screen."""
    from tqdm import tqdm

    tqdm.write(line, file=file or sys.stderr)


class Progress:
    """``total`` units of work under ``desc``; :meth:`update` as they are done, :meth:`close` at the end."""

    def __init__(self, total: int, desc: str, progress: bool | None = None, initial: int = 0, unit: str = "step",
                 every_s: float = EVERY_S, file: IO | None = None):
        self.total, self.desc, self.unit, self.every_s = int(total), desc, unit, float(every_s)
        self.file = file or sys.stderr
        self.n = self.initial = int(initial)
        self.shown = shows(progress, self.file)
        self.tty = self.file.isatty()
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if self.shown and self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.initial, desc=desc, unit=unit, file=self.file, leave=False)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if self.shown and now - self.last >= self.every_s:
            self.last = now
            done = self.n - self.initial
            left = (now - self.t0) / done * (self.total - self.n) if done else float("nan")
            pct = 100 * self.n / self.total if self.total else 100.0
            print(f"{self.desc}: {self.n}/{self.total} {self.unit}s ({pct:.0f} %), {now - self.t0:.0f} s, "
                  f"about {left:.0f} s left", file=self.file, flush=True)

    def close(self, summary: str = "") -> None:
        """End the display; one line saying what was done (and ``summary``) when anything was shown."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.shown:
            done = self.n - self.initial
            text = f"{self.desc}: done, {done} {self.unit}s in {time.perf_counter() - self.t0:.0f} s"
            if self.initial:
                text += f" ({self.initial} found saved)"
            print(text + (f"; {summary}" if summary else ""), file=self.file, flush=True)
            self.shown = False


__all__ = ["Progress", "shows", "say", "EVERY_S"]
