"""Wall time of one ``--verify --max-measurements N`` call on a held-out MobileNetV3 GPU setting.

The setting of ``devices_generation_mbv3.py`` (help-ofa-gpu; a multi-device run trained on the other settings;
the held-out one served through ``adapted:`` from K = 10 measured subnets, its true latency the linear model
fitted to all its measurements): each call starts from a fresh copy of the adapted file, asks the held-out
device's 20 budgets and measures at most N networks. Each setting and seed is called ``--repeat`` times in a
row; the table gives the least and the median wall time and what the call answered (measurements, mean
predicted accuracy and a digest of the answers), so that two versions of pnag can be compared on the same
answers. Run it with ``PYTHONPATH`` set to another checkout to time that one; the header names the pnag it
imported (its git commit).

    OMP_NUM_THREADS=1 PNAG_DATA_DIR=../shared/datasets python benchmarks/verify_time.py --held-out titan_xp_1 \
        titan_rtx_32 --seeds 10 --repeat 3 -o benchmarks/results/verify_time.md

Defaults: titan_xp_1 (a call that spends all 400 measurements) and titan_rtx_32 (one that stops by itself near 110),
seed 10 (a tuning seed: speed, not quality, is measured here).
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from devices_generation_mbv3 import Bench, Truth, parse_args, parser  # noqa: E402  (the setting of the generation benchmark)

from pnag._io import write_text_atomic  # noqa: E402


def _commit(path: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = parser()
    p.description = __doc__.split("\n\n")[0]
    p.add_argument("--repeat", type=int, default=3, help="calls per held-out setting and seed")
    p.set_defaults(output=Path(__file__).resolve().parent / "results" / "verify_time.md", max_measurements=400,
                   seeds=[10], held_out=["titan_xp_1", "titan_rtx_32"],
                   workdir=str(Path(tempfile.gettempdir()) / "pnag-verify-time"))
    a = parse_args(p, argv)
    if a.repeat < 1:
        p.error(f"--repeat: {a.repeat}; allowed: an integer >= 1")
    import torch

    import pnag

    truth = Truth(a)
    bench = Bench(a, truth)
    rows = []
    for held in a.held_out:
        train = a.train_devices or [d for d in truth.sp.devices if d != held]
        for seed in a.seeds:
            budgets = truth.budgets(held)
            bench.multi_run(held, train, seed)  # trained (or read) and the adapted file built before the clock
            bench.serve_spec(held, train, seed)
            times, seen = [], set()
            for _ in range(a.repeat):
                out = bench.verified(held, train, seed, budgets)
                if "error" in out:
                    raise SystemExit(f"{held} / seed {seed}: {out['error']}")
                times.append(out["generate_s"])
                digest = hashlib.sha1(repr([round(x, 6) for x in out["ms"]] + out["acc"]).encode()).hexdigest()[:10]
                seen.add((out["measurements"], float(np.mean(out["acc"])), digest))
                if not a.no_progress:
                    print(f"{held} / seed {seed}: {out['generate_s']:.1f} s", file=sys.stderr)
            answers = "; ".join(f"{m} measured, acc {acc:.3f}, answers {d}" for m, acc, d in sorted(seen))
            rows.append(f"| {held} | {seed} | {min(times):.1f} | {statistics.median(times):.1f} | {answers} |")
    pkg = Path(pnag.__file__).resolve().parent
    cmd = "python benchmarks/verify_time.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = ["# Wall time of one --verify call with the search (MobileNetV3, help-ofa-gpu)", "",
             f"Command: `{cmd}`  ",
             f"pnag: {pkg} (commit {_commit(pkg.parent)}); machine: {platform.machine()} {platform.processor()}, "
             f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
             f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
             + (" (under load: 2 shared cores busy with other work)" if a.under_load else "") + ".  ",
             f"Each call: the held-out setting's 20 budgets, `--verify --max-measurements {a.max_measurements}`, from "
             f"a fresh copy of its adapted file (K = {a.k}); {a.repeat} call(s) per row. Answers: the measurements, "
             "the mean predicted top-1 % and a digest of the answers' true latencies and accuracies, one entry per "
             "distinct result (one: every call answered the same).", "",
             "| held-out setting | seed | least s | median s | answers |", "|---|---:|---:|---:|---|", *rows, ""]
    text = "\n".join(lines)
    a.output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(a.output, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
