"""MobileNetV3 end-to-end benchmark: `pnag train` with default settings, then `pnag generate`.

    python benchmarks/mbv3_train.py [--under-load] [--seed 0] [--keep RUN_DIR]

Runs, as a user would (a fresh ``python -m pnag`` process):

    pnag train --space mbv3 --accuracy dataset:ofa-mbv3-w1.0-imagenet --latency lut:i7-8700k --budgets 10:24 -o RUN
    pnag generate --run RUN --budgets B1,...,B100 --json          (100 budgets evenly over 10..24 ms)

and reports: train wall time; per-budget feasibility of the generated architectures under the
i7-8700K table (latency recomputed from the table for the printed architecture: the run's latency
source is that table, so this checks the plumbing, not a prediction), for the 15 integer budgets
10..24 ms and for the 100 generate budgets; how much of each budget the answer uses (table latency /
budget: a run that spends its budgets badly shows here); the time to generate 100 budgets (the
whole command, and in-process through ``pnag.cli.main`` once the run is loaded by it); and the
2-D hypervolume of the generated set against that of the dataset's own measured Pareto front.

Hypervolume: accuracy (top-1 %) x latency (ms, i7-8700K table), reference point = (lowest measured
accuracy in the dataset, 24 ms = the top budget). The dataset's points use their measured accuracy;
generated architectures use the run's *predicted* accuracy (their true accuracy is unknown unless
the architecture is in the dataset, which the report counts), so the comparison is optimistic for
the generated set by the predictor's error.

Writes ``benchmarks/results/mbv3_train.md`` (atomically) and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pnag._io import write_text_atomic
from pnag.search.pareto import hypervolume_2d, pareto_front
from pnag.sources import get_accuracy_source, get_latency_source
from pnag.space import MBV3Space

RESULTS = Path(__file__).resolve().parent / "results"
ACCURACY = "dataset:ofa-mbv3-w1.0-imagenet"
LATENCY = "lut:i7-8700k"
LO, HI = 10.0, 24.0


def _pnag(args: list[str], **kw) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pnag", *args], capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"pnag {' '.join(args)} failed with status {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc, wall


def _budget_grid(n: int) -> tuple[list[float], str]:
    """``n`` evenly spaced budgets over LO..HI ms and their ``--budgets B1,B2,...`` form."""
    grid = np.linspace(LO, HI, n).round(6).tolist()
    return grid, ",".join(f"{b:g}" for b in grid)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--under-load", action="store_true", help="label wall times as measured under load")
    p.add_argument("--keep", type=Path, default=None, help="keep the run in this directory")
    p.add_argument("-o", "--output", type=Path, default=RESULTS / "mbv3_train.md")
    args = p.parse_args(argv)

    load_before = os.getloadavg()[0]
    space = MBV3Space(width=1.0, resolution=224)
    lat_src = get_latency_source(LATENCY, space)
    archs, acc = get_accuracy_source(ACCURACY, space).table(None, args.seed)
    data_lat = np.asarray(lat_src.latency_ms(archs), dtype=np.float64)
    data_acc = np.asarray(acc, dtype=np.float64)
    data_keys = {space.format(a): float(x) for a, x in zip(archs, data_acc)}

    with tempfile.TemporaryDirectory(prefix="pnag-mbv3-") as tmp:
        run_dir = args.keep or Path(tmp) / "run"
        train_cmd = ["train", "--space", "mbv3", "--accuracy", ACCURACY, "--latency", LATENCY,
                     "--budgets", f"{LO:g}:{HI:g}", "--seed", str(args.seed), "-o", str(run_dir)]
        env = dict(os.environ)
        _, train_s = _pnag(train_cmd, env=env)

        ints = [float(b) for b in range(int(LO), int(HI) + 1)]
        gen_int, _ = _pnag(["generate", "--run", str(run_dir), "--budgets", ",".join(f"{b:g}" for b in ints),
                            "--json"], env=env)
        grid, grid_spec = _budget_grid(100)
        gen100, gen100_s = _pnag(["generate", "--run", str(run_dir), "--budgets", grid_spec, "--json"], env=env)

        from pnag.cli import main as cli_main

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            t0 = time.perf_counter()
            rc = cli_main(["generate", "--run", str(run_dir), "--budgets", grid_spec, "--json"])
            inproc_s = time.perf_counter() - t0
        if rc != 0:
            raise SystemExit(f"in-process pnag generate failed with status {rc}")

    def rows_of(proc_out: str) -> list[dict]:
        rows = json.loads(proc_out)
        if not isinstance(rows, list):
            raise SystemExit("pnag generate --json did not print a list")
        return rows

    r_int, r_100 = rows_of(gen_int.stdout), rows_of(gen100.stdout)
    if len(r_100) != 100:
        raise SystemExit(f"pnag generate returned {len(r_100)} rows for 100 budgets")

    def check(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
        gen_archs = [space.coerce(r["arch"]) if isinstance(r["arch"], str) else space.validate(r["arch"])
                     for r in rows]
        true_lat = np.asarray(lat_src.latency_ms(gen_archs), dtype=np.float64)
        budgets = np.array([float(r["budget_ms"]) for r in rows])
        pred_acc = np.array([float(r["accuracy"]) for r in rows])
        return budgets, true_lat, pred_acc, gen_archs

    b_int, lat_int, acc_int, archs_int = check(r_int)
    b_100, lat_100, acc_100, archs_100 = check(r_100)
    used_100 = lat_100 / b_100
    feas_int = lat_int <= b_int + 1e-9
    feas_100 = lat_100 <= b_100 + 1e-9

    ref_acc, ref_lat = float(data_acc.min()), HI
    hv_data = hypervolume_2d(data_acc, data_lat, ref_acc, ref_lat)
    hv_gen = hypervolume_2d(acc_100, lat_100, ref_acc, ref_lat)
    in_data = [space.format(a) in data_keys for a in archs_100]
    true_known = np.array([data_keys.get(space.format(a), np.nan) for a in archs_100])
    front = pareto_front(data_acc, data_lat) & (data_lat <= HI)

    cmd = "python benchmarks/mbv3_train.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                               else sys.argv[1:]))
    load = (" **under load** (2 cores shared with other engineers' jobs; the lead re-runs on a quiet machine)"
            if args.under_load else "")
    lines = [
        "# MobileNetV3 (width 1.0): `pnag train` + `pnag generate`, ImageNet data x i7-8700K table",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; load average (1 min) {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; date {time.strftime('%Y-%m-%d')}{load}.  ",
        f"Train: `pnag {' '.join(shlex.quote(a) for a in train_cmd[:-2])} -o RUN` (defaults otherwise).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| `pnag train` wall time (whole process) | {train_s:.1f} s |",
        f"| generate 100 budgets, whole `pnag generate` process | {gen100_s:.2f} s |",
        f"| generate 100 budgets, in process (`pnag.cli.main`, includes loading the run) | {inproc_s:.2f} s |",
        f"| integer budgets 10..24 ms within budget under the table | {int(feas_int.sum())} / {feas_int.size} |",
        f"| 100 budgets 10..24 ms within budget under the table | {int(feas_100.sum())} / {feas_100.size} |",
        f"| budget used (table latency / budget) over the 100: median, lowest | {np.median(used_100):.3f}, "
        f"{used_100.min():.3f} |",
        f"| distinct architectures among the 100 | {len(set(map(space.format, archs_100)))} |",
        f"| generated architectures found in the dataset | {sum(in_data)} / 100 |",
        f"| hypervolume, dataset measured points ({len(data_acc)} archs; {int(front.sum())} on the front <= 24 ms) "
        f"| {hv_data:.2f} %·ms |",
        f"| hypervolume, the 100 generated (predicted accuracy) | {hv_gen:.2f} %·ms ({hv_gen / hv_data:.3f} of the dataset's) |",
        "",
        f"Reference point: ({ref_acc:.2f} % = lowest measured accuracy, {ref_lat:g} ms = top budget). "
        "Latency of every point is recomputed from the i7-8700K table.",
        "",
        "Per integer budget:",
        "",
        "| budget ms | table latency ms | budget used | predicted top-1 % | measured top-1 % (if in dataset) | within |",
        "|---:|---:|---:|---:|---:|:---:|",
    ]
    for b, lt, pa, a in zip(b_int, lat_int, acc_int, archs_int):
        known = data_keys.get(space.format(a))
        lines.append(f"| {b:g} | {lt:.3f} | {lt / b:.3f} | {pa:.2f} | {'' if known is None else f'{known:.2f}'} | "
                     f"{'yes' if lt <= b + 1e-9 else '**no**'} |")
    if np.isfinite(true_known).any():
        diff = acc_100[np.isfinite(true_known)] - true_known[np.isfinite(true_known)]
        lines += ["", f"Predicted - measured accuracy on the {int(np.isfinite(true_known).sum())} generated "
                      f"architectures in the dataset: mean {diff.mean():+.2f}, max {diff.max():+.2f} points."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.output, text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
