"""How long the main job, `pnag search`, takes a new user (the README's quickstart figures).

    PNAG_DATA_DIR=../shared/datasets python benchmarks/search_time.py [--under-load] [-o FILE]

Each command runs as a whole `python -m pnag` process with `PNAG_OFFLINE=1`, in an empty folder of its
own, all three with one private cache (`PNAG_CACHE_DIR`) that starts empty:

  1. pnag search --latency lut:i7-8700k      a published latency table: nothing to profile
  2. OMP_NUM_THREADS=1 pnag search            first run: profiles this machine's `local` table first
  3. OMP_NUM_THREADS=1 pnag search            again, in a new folder: the table cached, training only

Reports each wall time and the lines in which `pnag search` says what its latency table is (where it
is cached, the seconds of profiling, how noisy it was, and whether it warned that the table is too
noisy to trust), with the machine and its load average. Writes
``benchmarks/results/search_time.md`` (atomically) and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pnag._io import write_text_atomic  # noqa: E402

STEPS = (("pnag search --latency lut:i7-8700k", ["search", "--latency", "lut:i7-8700k"], {}),
         ("OMP_NUM_THREADS=1 pnag search (first run)", ["search"], {"OMP_NUM_THREADS": "1"}),
         ("OMP_NUM_THREADS=1 pnag search (again, table cached)", ["search"], {"OMP_NUM_THREADS": "1"}))


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--under-load", action="store_true", help="label the times as measured on a busy machine")
    p.add_argument("-o", "--output", type=Path, default=ROOT / "benchmarks" / "results" / "search_time.md")
    args = p.parse_args(argv)
    if not os.environ.get("PNAG_DATA_DIR"):
        raise SystemExit("set PNAG_DATA_DIR to the data mirror (the measured accuracies are read from it)")
    load_before = os.getloadavg()[0]
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="pnag-search-time-") as tmp:
        env = dict(os.environ, PNAG_CACHE_DIR=str(Path(tmp) / "cache"), PNAG_OFFLINE="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        env.pop("OMP_NUM_THREADS", None)
        for i, (label, cmd, extra) in enumerate(STEPS):
            cwd = Path(tmp) / f"step{i + 1}"
            cwd.mkdir()
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "pnag", *cmd], cwd=cwd, env={**env, **extra},
                                  capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"{label} failed with status {proc.returncode}:\n{proc.stderr[-3000:]}")
            rows.append(f"| `{label}` | {wall:.1f} |")
            out = (proc.stdout + proc.stderr).splitlines()
            said = [line.replace(tmp, "$TMP") for line in out if line.startswith("latency table")]
            if any(line.startswith("WARNING: this table is too noisy") for line in out):
                said.append("WARNING: this table is too noisy to trust (the machine was busy while profiling)")
            notes += [f"- step {i + 1}: {line}" for line in said]
            print(f"{label}: {wall:.1f} s", file=sys.stderr, flush=True)
    load_after = os.getloadavg()[0]
    under = " **under load** (the machine shared with other jobs)" if args.under_load else ""
    cmd = "python benchmarks/search_time.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                   else sys.argv[1:]))
    import torch

    text = "\n".join([
        "# `pnag search` wall time, as a new user runs it",
        "",
        f"Command: `PNAG_DATA_DIR=../shared/datasets {cmd.strip()}`  ",
        f"Machine: {_cpu()}, {os.cpu_count()} cores, torch {torch.__version__}; load average (1 min) "
        f"{load_before:.2f} before, {load_after:.2f} after; date {time.strftime('%Y-%m-%d %H:%M')}{under}.",
        "",
        "Each a whole process in an empty folder, one cache for the three that starts empty, offline.",
        "",
        "| command | wall s |",
        "|---|---:|",
        *rows,
        "",
        "What `pnag search` said about its latency table:",
        "",
        *notes,
    ]) + "\n"
    print(text)
    write_text_atomic(args.output, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
