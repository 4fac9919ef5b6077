"""``pnag latency``: measure, profile a lookup table, validate it, and show a table's breakdown."""

from __future__ import annotations

import argparse

from ..errors import PnagError, allowed
from ._common import (MAX_ARCH_SAMPLES, MAX_BATCH, MAX_MEASURED, MAX_PIXELS, ascii_float, bounded_int,
                      check_output_path, non_negative_int, positive_int, print_json, seed_int, table, threads_int)


def _protocol_args(p: argparse.ArgumentParser, warmup: int, runs: int, min_time: float) -> None:
    p.add_argument("--warmup", type=non_negative_int("--warmup"), default=warmup,
                   help=f"untimed runs first (default {warmup})")
    p.add_argument("--runs", type=positive_int("--runs"), default=runs, help=f"timed runs at least (default {runs})")
    p.add_argument("--min-time", type=ascii_float("--min-time", "a number of seconds"), default=min_time,
                   help=f"keep timing until this many seconds were spent (default {min_time})")


def _progress(args: argparse.Namespace) -> bool | None:
    return False if getattr(args, "no_progress", False) else None


def _measure(args: argparse.Namespace) -> int:
    from ..latency import measure_latency
    from ..zoo import resolve_arch

    arch = resolve_arch(args.arch, width=args.width, resolution=args.resolution)
    m = measure_latency(arch, backend=args.backend, threads=args.threads, batch=args.batch, warmup=args.warmup,
                        runs=args.runs, min_time_s=args.min_time)
    if args.json:
        print_json(dict(m.to_dict(), arch=arch.to_legacy(), width=arch.width))
    else:
        e = m.env
        print(f"{m.median_ms:.3f} ms  median latency (IQR {m.iqr_ms:.3f} ms, p25 {m.p25_ms:.3f}, p75 {m.p75_ms:.3f}; "
              f"{m.runs} timed runs after {m.warmup} warm-up)")
        print(f"arch {arch.to_legacy()}  width {arch.width}  resolution {arch.resolution}  batch {e.batch}")
        print(f"{e.backend_version} on {e.device}; {e.threads} thread(s) of {e.cores} cores; torch {e.torch_version}")
    return 0


def _profile(args: argparse.Namespace) -> int:
    from ..latency import MeasureProtocol, profile_lut
    from .train import parse_resolutions  # the train command's --resolutions form

    if args.resolution is not None and args.resolutions is not None:
        raise PnagError(f"--resolution {args.resolution} and --resolutions {args.resolutions}: give one; allowed: "
                        "--resolution R (one) or --resolutions R1,R2,... (one table over several)")
    resolutions = None if args.resolutions is None else parse_resolutions(args.resolutions)
    check_output_path(args.output, "-o/--output")
    protocol = MeasureProtocol(args.warmup, args.runs, args.min_time)
    network = MeasureProtocol(args.warmup, args.runs, args.network_min_time)
    r = profile_lut(args.backend, args.threads, args.width, args.resolution, args.output, batch=args.batch,
                    protocol=protocol, calibration=args.calibration, seed=args.seed, progress=_progress(args),
                    save_every_s=args.save_every, network_protocol=network,
                    rounds=args.rounds, resolutions=resolutions)
    lut = r.lut
    res = lut.resolutions
    summary = {"output": str(args.output), "entries": len(lut.entries), "calibration": len(lut.calibration),
               "measured": r.measured, "reused": r.reused, "seconds": round(r.seconds, 2),
               "total_profile_s": round(float(lut.data.get("profile_s", 0.0)), 2),
               "correction": {"a": lut.correction[0], "b": lut.correction[1]}, "backend": lut.backend,
               "threads": lut.threads, "width": lut.width, "resolution": lut.resolution, "resolutions": list(res),
               "corrections": {str(x): {"a": a, "b": b} for x, (a, b) in lut.corrections.items()}}
    if args.json:
        print_json(summary)
    else:
        said = f"resolution {res[0]}" if len(res) == 1 else f"resolutions {allowed(res)}"
        print(f"wrote {args.output}: {summary['entries']} layer entries + {summary['calibration']} whole networks "
              f"({lut.backend}, {lut.threads} thread(s), width {lut.width}, {said})")
        print(f"measured {r.measured}, reused {r.reused} from an earlier run; {r.seconds:.1f} s "
              f"(table total {summary['total_profile_s']:.1f} s)")
        for x in res:
            a, b = lut.correction_at(x)
            print(f"correction{'' if len(res) == 1 else f' at {x}'}: predicted_ms = {a:.4f} * sum_ms {b:+.4f}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from ..latency import load_lut, validate_lut

    if args.plot:
        check_output_path(args.plot, "--plot")
    lut = load_lut(args.lut)
    res = validate_lut(lut, samples=args.samples, seed=args.seed, progress=_progress(args), rounds=args.rounds,
                       reference=not args.no_reference)
    if args.plot:
        _plot_validation(res, args.plot)
    if args.json:
        print_json(res)
    else:
        u = res["uncorrected"]
        print(table([["corrected", f"{res['median_abs_error_pct']:.2f}", f"{res['max_abs_error_pct']:.2f}",
                      f"{res['kendall_tau']:.3f}"],
                     ["sum only", f"{u['median_abs_error_pct']:.2f}", f"{u['max_abs_error_pct']:.2f}",
                      f"{u['kendall_tau']:.3f}"]],
                    ["prediction", "median |err| (%)", "max |err| (%)", "Kendall tau"]))
        several = res["by_resolution"] is not None
        at = f"resolutions {allowed(res['resolutions'])} (archs drawn across them)" if several else \
            f"resolution {res['resolution']}"
        print(f"n={res['n']} random archs (seed {res['seed']}), {res['backend']}, {res['threads']} thread(s), "
              f"width {res['width']}, {at}, {res['rounds']} interleaved rounds")
        for r, m in (res["by_resolution"] or {}).items():
            print(f"  at {r}: n={m['n']}, median |err| {m['median_abs_error_pct']:.2f} %, "
                  f"max {m['max_abs_error_pct']:.2f} %, Kendall tau {m['kendall_tau']:.3f}")
        if res["reference"] is not None:
            ref, plain = res["reference"], res["unreferenced"]
            half = "" if plain["split_half_tau"] is None else f", split-half tau {plain['split_half_tau']:.3f}"
            print(f"reference network: the machine's speed moved by {ref['spread_pct']:.1f} % (IQR) during the "
                  f"validation; timings divided by it (without: median |err| {plain['median_abs_error_pct']:.2f} %, "
                  f"Kendall tau {plain['kendall_tau']:.3f}{half})")
        if res["split_half_tau"] is not None:
            print(f"measurement vs itself (odd vs even rounds): Kendall tau {res['split_half_tau']:.3f}, median "
                  f"difference {res['split_half_diff_pct']:.2f} % (this machine's noise now: even a perfect "
                  "table would show a tau only somewhat above this)")
        if res["drift_pct"] is not None:
            adj = res["drift_adjusted"]
            print(f"machine drift since profiling: {res['drift_pct']:+.1f} % (two calibration networks re-measured; "
                  f"reported, not corrected; with the predictions scaled by it: median |err| "
                  f"{adj['median_abs_error_pct']:.2f} %, max {adj['max_abs_error_pct']:.2f} %)")
    return 0


def _plot_validation(res: dict, path: str) -> None:
    from matplotlib.figure import Figure  # not pyplot: a library leaves the user's backend alone

    from .._io import save_figure_atomic

    m = [r["measured_ms"] for r in res["rows"]]
    p = [r["predicted_ms"] for r in res["rows"]]
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    ax.scatter(m, p, s=12)
    lo, hi = min(m + p), max(m + p)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(f"{res['backend']} x{res['threads']}: median |err| {res['median_abs_error_pct']:.1f} %, "
                 f"tau {res['kendall_tau']:.2f}", fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)


def _adapt(args: argparse.Namespace) -> int:
    from ..sources.adapt import adapt_latency
    from .train import parse_resolutions  # the train command's --resolutions form

    check_output_path(args.output, "-o/--output")
    res = None if args.resolutions is None else parse_resolutions(args.resolutions)
    r = adapt_latency(args.sources, args.target, args.samples, args.output, seed=args.seed, width=args.width,
                      resolutions=res, progress=_progress(args))
    if args.json:
        print_json(r)
        return 0
    res = r["resolutions"] or []
    said = allowed(res) if len(res) <= 5 else f"{res[0]}..{res[-1]} ({len(res)} of them)"
    where = "NAS-Bench-201" if r["space"] == "nb201" else f"MobileNetV3 width {r['width']} at resolution(s) {said}"
    print(f"wrote {r['output']}: {r['target']} adapted from {r['samples']} measured networks and {len(r['from'])} "
          f"training device(s) ({where}); use it as --latency adapted:{r['output']}")
    if r["spearman"] is None:
        print("the target has no full table here, so the model is not evaluated (the K measurements are in the file)")
    else:
        print(f"against {r['evaluated_on']}: Spearman {r['spearman']:.3f}, Kendall tau "
              f"{r['kendall_tau']:.3f}, median |error| {r['median_abs_error_pct']:.1f} %")
    print(f"{r['seconds']:.1f} s")
    return 0


def _show_table(args: argparse.Namespace) -> int:
    from ..latency import TableSource
    from ..sources import get_latency_source
    from ..space.mbv3 import MBV3Space
    from ..zoo import resolve_arch

    spec = args.table if ":" in args.table or args.table == "local" else f"lut:{args.table}"
    arch = resolve_arch(args.arch, width=args.width, resolution=args.resolution)
    src = get_latency_source(spec, space=MBV3Space(arch.width, arch.resolution))  # the arch's network
    if not isinstance(src, TableSource):
        raise PnagError(f"show-table: {args.table!r} is not a per-layer table; allowed: note10, i7-8700k or a FILE "
                        "written by 'pnag latency profile'")
    rows = src.breakdown(arch)
    total = src.latency_of(arch)
    if args.json:
        print_json({"source": src.name, "arch": arch.to_legacy(), "width": arch.width, "resolution": arch.resolution,
                    "layers": [{"layer": lay, "key": k, "ms": v} for lay, k, v in rows],
                    "sum_ms": float(sum(v for _, _, v in rows)), "latency_ms": total,
                    "correction": dict(zip("ab", src.correction_at(arch.resolution)))})
    else:
        print(table([[lay, k, f"{v:.4f}"] for lay, k, v in rows], ["layer", "table key", "ms"]))
        a, b = src.correction_at(arch.resolution)
        print(f"sum {sum(v for _, _, v in rows):.3f} ms; latency {total:.3f} ms"
              + ("" if (a, b) == (1.0, 0.0) else f" (= {a:.4f} * sum {b:+.4f})") + f"  [{src.name}]")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("latency", help="measure latency, profile and validate lookup tables")
    sub = p.add_subparsers(dest="latency_command", metavar="SUBCOMMAND", required=True)

    m = sub.add_parser("measure", help="measure one network end to end (median and IQR, ms)")
    m.add_argument("arch", metavar="NAME|ARCH", help="a zoo model name or an architecture (legacy string or dict)")
    m.add_argument("--backend", default="torch", help="torch, onnxruntime or torch-cuda (default torch)")
    m.add_argument("--threads", type=threads_int(), default=None, help="CPU threads (default: torch's)")
    m.add_argument("--batch", type=positive_int("--batch", MAX_BATCH), default=1,
                   help="images per forward pass (default 1)")
    m.add_argument("--resolution", type=positive_int("--resolution", MAX_PIXELS), default=None,
                   help="input size (default: the arch's)")
    m.add_argument("--width", type=ascii_float("--width", "1.0 or 1.2"), default=None,
                   help="width multiplier 1.0 or 1.2 (default: the arch's)")
    _protocol_args(m, 10, 30, 1.0)
    m.add_argument("--json", action="store_true", help="print the measurement and its environment as JSON")
    m.set_defaults(func=_measure)

    pr = sub.add_parser("profile", help="measure a per-layer lookup table for this machine (resumable)")
    pr.add_argument("--backend", default="torch", help="torch, onnxruntime or torch-cuda (default torch)")
    pr.add_argument("--threads", type=threads_int(), default=None, help="CPU threads (default: torch's)")
    pr.add_argument("--width", type=ascii_float("--width", "1.0 or 1.2"), default=1.2,
                    help="width multiplier 1.0 or 1.2 (default 1.2)")
    pr.add_argument("--resolution", type=positive_int("--resolution", MAX_PIXELS), default=None,
                    help="input size (default 224)")
    pr.add_argument("--resolutions", default=None, metavar="R1,R2,...",
                    help="one table over several input sizes, e.g. 160,176,192,208,224 (entries, calibration "
                         "networks and correction at each; instead of --resolution)")
    pr.add_argument("--batch", type=positive_int("--batch", MAX_BATCH), default=1,
                    help="images per forward pass (default 1)")
    pr.add_argument("-o", "--output", required=True, help="table file (JSON); an unfinished one is resumed")
    _protocol_args(pr, 5, 20, 0.5)
    pr.add_argument("--network-min-time", type=ascii_float("--network-min-time", "a number of seconds"), default=2.0,
                    help="seconds of timing for each whole (calibration) network at least (default 2.0)")
    pr.add_argument("--calibration", type=bounded_int("--calibration", 0, MAX_MEASURED), default=20,
                    help="whole networks measured to fit the correction (default 20)")
    pr.add_argument("--rounds", type=positive_int("--rounds"), default=10,
                    help="interleaved rounds: every entry and network is timed once per round and its value is "
                         "the median of its round medians (default 10)")
    pr.add_argument("--seed", type=seed_int(), default=0, help="seed of the calibration archs, 0..2**63-1 (default 0)")
    pr.add_argument("--save-every", type=ascii_float("--save-every", "a number of seconds"), default=2.0,
                    help="rewrite the output file at most every this many seconds (default 2)")
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    pr.add_argument("--json", action="store_true", help="print a JSON summary")
    pr.set_defaults(func=_profile)

    v = sub.add_parser("validate", help="predicted vs measured latency of random archs")
    v.add_argument("--lut", required=True, metavar="FILE", help="a table written by 'pnag latency profile'")
    v.add_argument("--samples", type=bounded_int("--samples", 2, MAX_MEASURED, " (each is measured)"), default=50,
                   help=f"random archs, at most {MAX_MEASURED} (default 50)")
    v.add_argument("--seed", type=seed_int(), default=1, help="seed of the random archs, 0..2**63-1 (default 1)")
    v.add_argument("--rounds", type=positive_int("--rounds"), default=None,
                   help="interleaved measurement rounds over all archs; each arch's latency is the median of its "
                        "round medians; each round times every arch for the table's per-round share of its "
                        "network protocol, so more rounds measure longer (default: twice the table's own rounds)")
    v.add_argument("--no-reference", action="store_true",
                   help="do not time the reference network between the others (by default each timing is divided "
                        "by the machine's slowdown the reference shows around it)")
    v.add_argument("--plot", metavar="PNG", default=None, help="also write a predicted-vs-measured scatter plot")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.add_argument("--json", action="store_true", help="print the metrics and per-arch rows as JSON")
    v.set_defaults(func=_validate)

    a = sub.add_parser("adapt", help="a latency model for a new device from K of its measured networks, the other "
                       "devices' full tables as the prior (a source: adapted:FILE)")
    a.add_argument("--from", dest="sources", required=True, metavar="SRC[,SRC...]",
                   help="training devices: latency sources with full tables (nb201:DEVICE, table:help-ofa-gpu:"
                        "GPU_BATCH, lut:FILE, lut:note10, lut:i7-8700k, local, adapted:FILE), comma-separated")
    a.add_argument("--target", required=True, metavar="SRC",
                   help="the new device: a table (looked up) or measure:BACKEND / local (timed on this machine)")
    a.add_argument("--samples", type=bounded_int("--samples", 2, MAX_ARCH_SAMPLES), required=True, metavar="K",
                   help="networks of the target measured (pnag chooses them: the most informative under the "
                        "training devices)")
    a.add_argument("--seed", type=seed_int(), default=0, help="seed of the candidate pool, 0..2**63-1 (default 0)")
    a.add_argument("--width", type=ascii_float("--width", "1.0 or 1.2"), default=None,
                   help="MobileNetV3 width multiplier (default 1.2)")
    a.add_argument("--resolutions", default=None, metavar="R1,R2,...",
                   help="MobileNetV3 input sizes the model covers (default: those of the whole-network tables "
                        "given, else 224)")
    a.add_argument("-o", "--output", required=True, help="the model file (JSON), for --latency adapted:FILE")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.add_argument("--json", action="store_true", help="print the summary (and metrics) as JSON")
    a.set_defaults(func=_adapt)

    s = sub.add_parser("show-table", help="per-layer breakdown of an arch's latency in a table")
    s.add_argument("table", metavar="NAME|FILE", help="note10, i7-8700k, a profiled FILE or a lut:/local spec")
    s.add_argument("arch", metavar="NAME|ARCH", help="a zoo model name or an architecture")
    s.add_argument("--width", type=ascii_float("--width", "1.0 or 1.2"), default=None,
                   help="width multiplier (default: the arch's)")
    s.add_argument("--resolution", type=positive_int("--resolution", MAX_PIXELS), default=None,
                   help="input size (default: the arch's)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_show_table)


__all__ = ["register"]
