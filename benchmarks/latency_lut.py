"""Latency lookup tables on this machine: build time and prediction error, plus the published tables
against the latencies published for the 15 PNAG models.

    python benchmarks/latency_lut.py [--configs torch:1 torch:2 onnxruntime:1 onnxruntime:2]
                                     [--samples 50] [--seed 1] [--width 1.2] [--resolution 224]
                                     [--work-dir DIR] [--under-load] [--quick]

Part 1, for each ``BACKEND:THREADS`` configuration, as a user would run it:

    pnag latency profile --backend B --threads T --width 1.2 --resolution 224 -o DIR/lut-B-tT.json
    pnag latency validate --lut DIR/lut-B-tT.json --samples 50 --seed 1 --json

(in-process through ``pnag.latency``, default protocols). Reports the table build time (94 layer
entries + 20 calibration networks, wall seconds), the median and largest absolute error (% of
measured) and Kendall tau of predicted vs measured on 50 random architectures, with and without
the fitted correction. Targets: build <= 300 s, median |error| <= 5 %, tau >= 0.9.
Tables are kept in ``--work-dir`` (default: the pnag cache), so an interrupted benchmark resumes.

Part 2 (no measurement): the Note10 and i7-8700K tables' latencies for the 15 published PNAG
models next to the latency published for each model (measured by the PNAG authors on their own
devices: mobile models on a phone, CPU models on an Intel Core i5-7400, GPU models on a TITAN X).
The tables describe other devices, so this is a comparison, not a calibration: the report gives
the ratio and the rank agreement (Kendall tau) within each platform.

Writes ``benchmarks/results/latency.md`` and ``benchmarks/results/latency_validation.png``
(atomically) and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pnag import zoo  # noqa: E402
from pnag._io import save_figure_atomic, write_json_atomic, write_text_atomic  # noqa: E402
from pnag.latency import MeasureProtocol, profile_lut, validate_lut  # noqa: E402
from pnag.latency.backends import cpu_model  # noqa: E402
from pnag.latency.measure import available_cores  # noqa: E402
from pnag.latency.base import cache_dir  # noqa: E402
from pnag.sources import get_latency_source  # noqa: E402

DATE = "2026-12-02"
TARGETS = {"build_s": 300.0, "median_abs_error_pct": 5.0, "kendall_tau": 0.9}


def _fmt(x: float, nd: int = 2) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def _round_iqr_pct(v: dict) -> float:
    """Machine noise during a validation: the median over its networks of the interquartile range of
    their round medians, % of the network's latency."""
    return float(np.median([r["iqr_ms"] / r["measured_ms"] * 100.0 for r in v["rows"]]))


def run_config(backend: str, threads: int, args: argparse.Namespace, work: Path) -> dict:
    quick = MeasureProtocol(warmup=1, runs=2, min_time_s=0.0) if args.quick else None
    out = work / f"lut-{backend}-t{threads}-w{args.width}-r{args.resolution}{'-quick' if args.quick else ''}.json"
    t0 = time.perf_counter()
    rep = profile_lut(backend, threads, args.width, args.resolution, out, protocol=quick, network_protocol=quick,
                      seed=0, progress=None)
    lut = rep.lut
    saved = out.with_name(out.stem + "-validation.json")  # kept, so that a re-run resumes (and re-renders)
    res = json.loads(saved.read_text()) if saved.is_file() else None
    this_table = {"a": lut.correction[0], "b": lut.correction[1]}  # a re-profiled table has another fit
    # a validation saved by an older pnag lacks figures the report shows (split half, drift-adjusted): redo it
    if not res or res.get("n") != args.samples or res.get("seed") != args.seed or res.get("correction") != this_table \
            or "split_half_tau" not in res:
        res = validate_lut(lut, samples=args.samples, seed=args.seed, progress=None, protocol=quick)
        write_json_atomic(saved, res)
    return {"backend": backend, "threads": threads, "file": str(out), "build_s": float(lut.data["profile_s"]),
            "resumed": rep.reused > 0 and rep.measured > 0, "wall_s": time.perf_counter() - t0, "entries": len(lut.entries),
            "correction": lut.correction, "validation": res, "rounds": int(lut.data.get("rounds", 1)),
            "calibration": len(lut.calibration)}


def published_comparison() -> tuple[list[dict], dict]:
    note10 = get_latency_source("lut:note10")
    i7 = get_latency_source("lut:i7-8700k")
    rows = []
    for name in zoo.list_models():
        info = zoo.get_model_info(name)
        a = info.arch
        rows.append({"name": name, "platform": info.platform, "device": info.device,
                     "reported_ms": info.reported_latency_ms, "note10_ms": note10.latency_of(a),
                     "i7_ms": i7.latency_of(a)})
    from scipy.stats import kendalltau

    summary = {}
    for platform, col in (("mobile", "note10_ms"), ("cpu", "i7_ms")):
        sel = [r for r in rows if r["platform"] == platform]
        if len(sel) >= 2:
            rep = [r["reported_ms"] for r in sel]
            tab = [r[col] for r in sel]
            summary[platform] = {"table": col, "tau": float(kendalltau(tab, rep).statistic),
                                 "ratio_median": float(np.median(np.array(tab) / np.array(rep)))}
    return rows, summary


def plot(results: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    n = len(results)
    fig = Figure(figsize=(3.6 * n, 3.6))
    axes = fig.subplots(1, n, squeeze=False)
    for ax, r in zip(axes[0], results):
        v = r["validation"]
        m = [x["measured_ms"] for x in v["rows"]]
        p = [x["predicted_ms"] for x in v["rows"]]
        ax.scatter(m, p, s=10)
        lo, hi = min(m + p), max(m + p)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        drift = "" if v.get("drift_pct") is None else f", drift {v['drift_pct']:+.1f} %"
        ax.set_title(f"{r['backend']} x{r['threads']}: {v['median_abs_error_pct']:.1f} %, tau {v['kendall_tau']:.2f}"
                     f"{drift}", fontsize=9)
        ax.set_xlabel("measured (ms)")
        ax.set_ylabel("predicted (ms)")
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)


def markdown(results: list[dict], rows: list[dict], summary: dict, args: argparse.Namespace, load: tuple) -> str:
    cmd = "python benchmarks/latency_lut.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [f"## Latency lookup tables ({DATE})", "",
             f"Command: `{cmd.strip()}`  ",
             f"Machine: {cpu_model()}, {available_cores()} logical cores; load average "
             f"{load[0]:.2f} before / {load[1]:.2f} after (1 min)" +
             ("  \n**Measured under load** (the CPU was shared with other jobs): figures are noisy and "
              "pessimistic; re-run on a quiet machine." if args.under_load else "") +
             ("  \n**Quick mode** (tiny protocols): a smoke run, not figures to quote." if args.quick else ""),
             "",
             f"Width {args.width}, resolution {args.resolution}, batch 1; table = 94 layer entries + "
             f"{results[0]['calibration'] if results else '?'} calibration networks, timed in "
             f"{results[0]['rounds'] if results else '?'} interleaved rounds; validation = {args.samples} random "
             f"architectures (seed {args.seed}) measured end to end in "
             f"{results[0]['validation'].get('rounds', '?') if results else '?'} interleaved rounds. Drift: the change "
             "of the smallest and the largest calibration network between profiling and validation (machine "
             "speed; reported, not corrected). Round IQR: machine noise during the validation (median over the "
             "networks of the interquartile range of their round medians, % of their latency). Split-half tau: "
             "Kendall tau between the medians of the odd and the even validation rounds (the measurement against "
             "itself: how much rank agreement this machine's noise lets a validation show). Drift-adjusted error: "
             "the predictions scaled by the drift (the table against the machine as fast as it ran during the "
             "validation). Validation divides each timing by the slowdown of a reference network timed around it "
             "(`pnag latency validate`'s default); tau without reference: the same timings undivided. "
             f"Targets: build <= {TARGETS['build_s']:.0f} s, median |error| <= {TARGETS['median_abs_error_pct']} %, "
             f"Kendall tau >= {TARGETS['kendall_tau']}.", "",
             "| backend | threads | build (s) | median abs err (%) | max abs err (%) | Kendall tau | "
             "sum-only median err (%) | correction a, b (ms) | drift (%) | drift-adjusted median err (%) | round IQR (%) | "
             "split-half tau | tau without reference | targets met |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        v, u = r["validation"], r["validation"]["uncorrected"]
        ok = (r["build_s"] <= TARGETS["build_s"] and v["median_abs_error_pct"] <= TARGETS["median_abs_error_pct"]
              and v["kendall_tau"] >= TARGETS["kendall_tau"])
        a, b = r["correction"]
        resumed = " (resumed)" if r["resumed"] else ""
        lines.append(f"| {r['backend']} | {r['threads']} | {_fmt(r['build_s'], 1)}{resumed}"
                     f" | {_fmt(v['median_abs_error_pct'])} | {_fmt(v['max_abs_error_pct'])}"
                     f" | {_fmt(v['kendall_tau'], 3)}"
                     f" | {_fmt(u['median_abs_error_pct'])} | {a:.3f}, {b:+.2f}"
                     f" | {_fmt(v.get('drift_pct'), 1)} | {_fmt((v['drift_adjusted'] or {}).get('median_abs_error_pct'))} | {_fmt(_round_iqr_pct(v), 1)}"
                     f" | {_fmt(v.get('split_half_tau'), 3)}"
                     f" | {_fmt((v.get('unreferenced') or {}).get('kendall_tau'), 3)} | {'yes' if ok else 'no'} |")
    devices = ", ".join(sorted({f"{r['platform']}: {r['device']}" for r in rows}))
    png = args.out.parent / "latency_validation.png"
    shown = png.relative_to(ROOT) if png.is_relative_to(ROOT) else png
    lines += ["", f"Predicted vs measured: `{shown}`.", "",
              "### Published tables vs the latencies published for the 15 PNAG models", "",
              "Different devices: the tables describe a Samsung Note10 (once-for-all) and an Intel i7-8700K "
              f"(NSGANetV2); the published latencies were measured on {devices}. Reported, not tuned: the Note10 "
              "table is compared with the mobile models, the i7-8700K table with the CPU models.", "",
              "| model | platform | published (ms) on device | Note10 table (ms) | i7-8700K table (ms) |",
              "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['platform']} | {r['reported_ms']:.1f} ({r['device']}) | "
                     f"{r['note10_ms']:.2f} | {r['i7_ms']:.2f} |")
    lines += ["", "| platform | table compared | median table / published | Kendall tau (5 models) |",
              "|---|---|---|---|"]
    for platform, s in summary.items():
        lines.append(f"| {platform} | {s['table'].replace('_ms', '')} | {s['ratio_median']:.3f} | {s['tau']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=["torch:1", "torch:2", "onnxruntime:1", "onnxruntime:2"],
                   help="BACKEND:THREADS pairs")
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--width", type=float, default=1.2)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--work-dir", type=Path, default=None, help="where tables are kept (default: the pnag cache)")
    p.add_argument("--under-load", action="store_true", help="label the figures as measured on a shared CPU")
    p.add_argument("--quick", action="store_true", help="tiny protocols: a smoke run of the script")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latency.md")
    args = p.parse_args(argv)
    work = args.work_dir or cache_dir() / "latency-bench"
    work.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    results = []
    for cfg in args.configs:
        backend, _, threads = cfg.partition(":")
        r = run_config(backend, int(threads or 1), args, work)
        v = r["validation"]
        print(f"{backend} x{r['threads']}: build {r['build_s']:.1f} s, median |err| {v['median_abs_error_pct']:.2f} %, "
              f"max {v['max_abs_error_pct']:.2f} %, tau {v['kendall_tau']:.3f}", file=sys.stderr)
        results.append(r)
    rows, summary = published_comparison()
    md = markdown(results, rows, summary, args, (load0, os.getloadavg()[0]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, md)
    if results:
        plot(results, args.out.parent / "latency_validation.png")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
