"""New devices: few-shot latency (``pnag latency adapt``) against HELP's published figures and two baselines.

    python benchmarks/devices.py latency [--space nb201 help-ofa-gpu] [--test-devices A,B,...]
        [--train-devices A,B,...] [--k 5 10 20] [--seeds 0 1 2] [--tune] [-o benchmarks/results/devices_latency.md]
    python benchmarks/devices.py generation [...]   (generation on held-out devices: benchmarks/devices_generation.py)
    python benchmarks/devices.py residuals [--devices ...] [-o benchmarks/results/devices_residuals.md]

``latency`` runs, for each test device, what ``pnag latency adapt --from <training devices> --target <it>
--samples K --seed S`` runs (the same library calls: the prior from the training devices' full tables, the K
networks chosen by the prior alone, the posterior weights), and scores the model over the target's whole table:
Spearman rho, Kendall tau and median absolute error (% of the measured latency). Beside it:

* **FLOPs**: the rank of the networks' multiply-adds (NAS-Bench-201: the cells' convolutions and pooling, every
  edge counted as executed; MobileNetV3: :func:`pnag.nn.cost.arch_cost`); for the % error, a straight line
  fitted to the same K measurements;
* **nearest table**: the training device whose table agrees best (Spearman) with the K measurements, its table
  as the prediction (for the % error, a straight line fitted to the K measurements);
* **all measured**: the same linear model fitted to the target's whole table (what K = everything would give:
  the ceiling of the model, not of the method);
* **HELP**: the Spearman rho HELP (Lee et al., NeurIPS 2021, Table 2) reports for NAS-Bench-201 with 10
  measured networks.

Spaces: ``nb201`` (default split: HELP's test devices titan_rtx_256, gold_6226, fpga, pixel2, raspi4 and
eyeriss; trained on the other 21 device settings) and ``help-ofa-gpu`` (leave-one-out over its 12 GPU settings,
MobileNetV3 width 1.2 at its 25 input resolutions: each device is the target once, trained on the other 11).
``--tune`` adds the hyperparameter grid (``delta``, ``sigma`` of :func:`pnag.latency.adapt.device_prior`) and
the choice of the K networks against a random draw, by leave-one-out over the NAS-Bench-201 *training* devices
only: the record of how the defaults were chosen.
Writes one markdown file (and prints it).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pnag._io import write_text_atomic
from pnag.data import load_help_ofa_gpu
from pnag.data.nb201 import NB201_DEVICES
from pnag.latency.adapt import (ALPHA, DELTA, SIGMA, SIGMAS, LatencyFeatures, adapted_weights, choose_networks,
                                device_prior, device_weights, draw_pool, fit_device)
from pnag.latency.validate import error_metrics
from pnag.sources import get_latency_source
from pnag.sources.adapt import FLOOR_FRACTION, generic_networks

HELP_SPLIT = ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss")
HELP_RHO = {"titan_rtx_256": 0.987, "gold_6226": 0.989, "fpga": 0.985, "pixel2": 0.802, "raspi4": 0.890,
            "eyeriss": 0.940}  # HELP, NeurIPS 2021, NAS-Bench-201 with 10 samples (mean 0.932)
HELP_FLOPS_MEAN = 0.787  # HELP's FLOPs baseline, mean Spearman over the same six
TUNE_DELTAS = (1e-4, 1e-3, 1e-2, 1e-1)
TUNE_SIGMAS = (0.01, 0.03, 0.1)


def nb201_madds(archs) -> np.ndarray:
    """Multiply-adds of the NAS-Bench-201 CIFAR network's 15 cells (C = 16, 32, 64 at 32, 16, 8 px), every edge
    counted as executed: 3x3 conv 9 C^2 HW, 1x1 conv C^2 HW, 3x3 average pool 9 C HW (the stem, reductions
    and classifier are the same for every cell, so they change no rank)."""
    per_op = {"nor_conv_3x3": lambda c, hw: 9 * c * c * hw, "nor_conv_1x1": lambda c, hw: c * c * hw,
              "avg_pool_3x3": lambda c, hw: 9 * c * hw}
    out = np.zeros(len(archs))
    for i, a in enumerate(archs):
        out[i] = sum(5 * per_op[op](c, s * s) for c, s in ((16, 32), (32, 16), (64, 8)) for op in a.ops if op in per_op)
    return out


class Space:
    """One space's networks, their features and every device's full table, fitted once."""

    def __init__(self, name: str):
        self.name = name
        if name == "nb201":
            self.features = LatencyFeatures("nb201")
            self.archs = self.features.search_space().all_archs()  # the candidates pnag latency adapt uses
            self.devices = list(NB201_DEVICES)
            self.lat = {d: get_latency_source(f"nb201:{d}").latency_ms(self.archs) for d in self.devices}
            self.flops = nb201_madds(self.archs)
            self.spec = "nb201:{}"
        else:
            from pnag.nn.cost import arch_cost

            archs, lat = load_help_ofa_gpu()
            res = tuple(sorted({a.resolution for a in archs}))
            self.features = LatencyFeatures("mbv3", 1.2, res)
            self.archs, self.devices, self.lat = archs, sorted(lat), {d: np.asarray(v) for d, v in lat.items()}
            self.flops = np.array([arch_cost(a).madds_m for a in archs])
            self.spec = "table:help-ofa-gpu:{}"
        self.index: dict = {}
        for i, a in enumerate(self.archs):
            self.index.setdefault(a, i)  # a table answers for a network with its first row, as pnag's does
        self.X = self.features.of_archs(self.archs)
        generic = generic_networks(self.features)
        self.reference = self.X if name == "nb201" else self.features.of_archs(generic)
        self.weights = {d: device_weights(self.X, self.lat[d]) for d in self.devices}

    def prior(self, train, delta=DELTA, alpha=ALPHA, sigma=SIGMA):
        return device_prior([self.weights[d] for d in train], self.reference, [self.spec.format(d) for d in train],
                            delta, alpha, sigma)


def _line_fit_error(x, y_k, x_k, y) -> float:
    """Median |error| (%) of a straight line in ``x`` fitted to the K measurements."""
    A = np.c_[np.ones(len(x_k)), x_k]
    a, b = np.linalg.lstsq(A, y_k, rcond=None)[0]
    return error_metrics(a + b * x, y)["median_abs_error_pct"]


def run_target(sp: Space, target: str, train, ks, seeds, prior=None, baselines: bool = True,
               random_choice: bool = False) -> dict:
    """Metrics of pnag (and the baselines) for one target: ``{(method, K): [per-seed dicts]}``.
    ``random_choice``: the K networks drawn at random (with the seed) instead of chosen by the prior. A ``prior``
    given keeps its ``sigma`` in the fit (the tuning grid); else the fit chooses it as pnag's does (``fit_device``)."""
    from scipy.stats import spearmanr

    fixed = prior is not None
    prior = prior or sp.prior(train)
    y = sp.lat[target]
    out: dict = {}
    for k in ks:
        for seed in seeds:
            if random_choice:
                chosen = list(draw_pool(len(sp.archs), seed, k))
            else:
                chosen = [sp.index[a] for a in choose_networks(prior, sp.features, sp.archs, k, seed)]
            X, yk = sp.X[chosen], y[chosen]
            w = adapted_weights(prior, X, yk) if fixed else fit_device(prior, X, yk)[0]
            m = error_metrics(np.maximum(sp.X @ w, FLOOR_FRACTION * y[chosen].min()), y)
            out.setdefault(("pnag", k), []).append({"rho": m["spearman_rho"], "tau": m["kendall_tau"],
                                                   "mdape": m["median_abs_error_pct"], "chosen": chosen})
    if not baselines:
        return out
    m = error_metrics(sp.flops, y)
    out[("flops", 0)] = [{"rho": m["spearman_rho"], "tau": m["kendall_tau"]}]
    m = error_metrics(sp.X @ device_weights(sp.X, y), y)
    out[("ceiling", 0)] = [{"rho": m["spearman_rho"], "tau": m["kendall_tau"], "mdape": m["median_abs_error_pct"]}]
    for k in ks:
        for run in out[("pnag", k)]:
            chosen = run["chosen"]
            agree = [spearmanr(sp.lat[d][chosen], y[chosen]).statistic for d in train]
            best = train[int(np.nanargmax(np.nan_to_num(agree, nan=-2.0)))]
            m = error_metrics(sp.lat[best], y)
            out.setdefault(("nearest", k), []).append({
                "rho": m["spearman_rho"], "tau": m["kendall_tau"], "device": best,
                "mdape": _line_fit_error(sp.lat[best], y[chosen], sp.lat[best][chosen], y)})
            flops_error = _line_fit_error(sp.flops, y[chosen], sp.flops[chosen], y)
            out.setdefault(("flops", k), []).append({"mdape": flops_error})
    return out


def _mean(rows, key) -> float:
    return float(np.mean([r[key] for r in rows]))


def tables(results: dict, ks, help_rho: dict | None) -> str:
    """Two markdown tables: Spearman rho of every method, then pnag's Kendall tau and median |error| %."""
    devs = list(results)
    k_mid = ks[len(ks) // 2]
    head = ["device"] + (["HELP K=10"] if help_rho else []) + ["FLOPs"] + [f"nearest K={k}" for k in ks] + \
        [f"pnag K={k}" for k in ks] + ["all measured"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    cols: dict = {h: [] for h in head[1:]}
    for d in devs:
        r = results[d]
        vals = ([help_rho.get(d, float("nan"))] if help_rho else []) + [_mean(r[("flops", 0)], "rho")] + \
            [_mean(r[("nearest", k)], "rho") for k in ks] + [_mean(r[("pnag", k)], "rho") for k in ks] + \
            [_mean(r[("ceiling", 0)], "rho")]
        cells = []
        for h, v in zip(head[1:], vals):
            cols[h].append(v)
            cell = f"{v:.3f}"
            if h == f"pnag K={k_mid}":
                seeds = [x["rho"] for x in r[("pnag", k_mid)]]
                cell += f" ({min(seeds):.3f}-{max(seeds):.3f})"
            cells.append(cell)
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{np.nanmean(cols[h]):.3f}**" for h in head[1:]) + " |")
    lines.append("| lowest | " + " | ".join(f"{np.nanmin(cols[h]):.3f}" for h in head[1:]) + " |")
    head2 = ["device"] + [f"pnag tau K={k}" for k in ks] + [f"pnag MdAPE % K={k}" for k in ks] + \
        [f"nearest MdAPE % K={k_mid}", f"FLOPs MdAPE % K={k_mid}", "nearest device chosen (K=" + str(k_mid) + ")"]
    lines += ["", "| " + " | ".join(head2) + " |", "|---" + "|---:" * (len(head2) - 2) + "|---|"]
    for d in devs:
        r = results[d]
        chosen = sorted({x["device"] for x in r[("nearest", k_mid)]})
        vals = [_mean(r[("pnag", k)], "tau") for k in ks] + [_mean(r[("pnag", k)], "mdape") for k in ks] + \
            [_mean(r[("nearest", k_mid)], "mdape"), _mean(r[("flops", k_mid)], "mdape")]
        lines.append(f"| {d} | " + " | ".join(f"{v:.3f}" if i < len(ks) else f"{v:.1f}" for i, v in enumerate(vals))
                     + f" | {', '.join(chosen)} |")
    return "\n".join(lines)


def tune(sp: Space, train, ks, seeds) -> str:
    """The hyperparameter grid, and the choice of the K networks against a random draw, by leave-one-out over
    the training devices (never the test devices)."""
    lines = ["| choice | delta | sigma | " + " | ".join(f"K={k} mean rho | K={k} lowest" for k in ks) + " |",
             "|---|---:|---:|" + "---:|---:|" * len(ks)]
    grid = [(False, d, s) for d in TUNE_DELTAS for s in TUNE_SIGMAS] + [(True, DELTA, SIGMA)]
    for random_choice, delta, sigma in grid:
        per_k = {k: [] for k in ks}
        for t in train:
            rest = [d for d in train if d != t]
            r = run_target(sp, t, rest, ks, seeds, prior=sp.prior(rest, delta=delta, sigma=sigma), baselines=False,
                           random_choice=random_choice)
            for k in ks:
                per_k[k].append(_mean(r[("pnag", k)], "rho"))
        how = "random" if random_choice else "max-variance"
        mark = " (default)" if (delta, sigma) == (DELTA, SIGMA) and not random_choice else ""
        lines.append(f"| {how}{mark} | {delta:g} | {sigma:g} | " + " | ".join(
            f"{np.mean(per_k[k]):.3f} | {np.min(per_k[k]):.3f}" for k in ks) + " |")
        print(f"tune {how} delta {delta:g} sigma {sigma:g}: " + ", ".join(
            f"K={k} {np.mean(v):.3f}" for k, v in per_k.items()), file=sys.stderr)
    return "\n".join(lines)


def _devices(text: str | None, known, what: str) -> list[str] | None:
    if text is None:
        return None
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in names if x not in known]
    if bad or not names:
        raise SystemExit(f"{what}: {bad[0] if bad else text!r} is not a device of the space; allowed: {', '.join(known)}")
    return names


def latency(args) -> str:
    out = [f"# Few-shot latency for a new device\n\nWritten by `python benchmarks/devices.py latency {' '.join(args.argv)}` "
           f"on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC ({platform.processor() or platform.machine()}, "
           f"{args.threads} thread(s)). K = networks of the target measured; seeds {', '.join(map(str, args.seeds))}; "
           "every figure is the mean over the seeds (beside pnag's K=10 figure: its lowest and highest seed). Spearman "
           "rho, Kendall "
           "tau and median absolute error (MdAPE, % of the measured latency) are over the target's whole table. "
           f"Hyperparameters: delta {DELTA:g}, alpha {ALPHA:g}, sigma {SIGMA:g} in the prior that chooses the K (chosen "
           "on the NAS-Bench-201 training devices only; see the tuning table); the fit to the K chooses its own sigma "
           f"of {', '.join(f'{s:g}' for s in SIGMAS)} by leave-one-out error (`fit_device`; the tuning grid keeps it)."]
    for name in args.space:
        t0 = time.perf_counter()
        sp = Space(name)
        if name == "nb201":
            test = _devices(args.test_devices, sp.devices, "--test-devices") or list(HELP_SPLIT)
            train = _devices(args.train_devices, sp.devices, "--train-devices") or \
                [d for d in sp.devices if d not in test]
            overlap = sorted(set(test) & set(train))
            if overlap:
                raise SystemExit(f"--train-devices: {overlap[0]} is also a test device; allowed: disjoint lists")
            results = {t: run_target(sp, t, train, args.k, args.seeds) for t in test}
            default = test == list(HELP_SPLIT) and sorted(train) == sorted(d for d in sp.devices if d not in HELP_SPLIT)
            split = "HELP's split" if default else "the split given"
            out.append(f"\n## NAS-Bench-201, {split}: test {', '.join(test)}; trained on {len(train)} others "
                       f"({', '.join(train)})\n")
            out.append(tables(results, args.k, HELP_RHO if default else None))
            if default:
                out.append(f"\nHELP's published mean: {np.mean(list(HELP_RHO.values())):.3f}; its FLOPs baseline "
                           f"{HELP_FLOPS_MEAN:.3f} (HELP's FLOPs count; the FLOPs column here is this script's).")
            if args.tune:
                out.append(f"\n### Tuning: leave-one-out over the {len(train)} training devices only\n\nEach training "
                           f"device in turn is the target, the other {len(train) - 1} the prior; the test devices "
                           "above are never used. Mean and lowest Spearman rho over the targets; the last row draws the K "
                           "networks at random (with the seed) instead of choosing them by the prior.\n")
                out.append(tune(sp, train, args.k, args.seeds))
        else:
            devs = _devices(args.test_devices, sp.devices, "--test-devices")
            results = {t: run_target(sp, t, [d for d in sp.devices if d != t], args.k, args.seeds)
                       for t in (devs or sp.devices)}
            out.append(f"\n## MobileNetV3 (help-ofa-gpu): leave-one-out over its {len(sp.devices)} GPU settings\n\n"
                       f"Each setting is the target once, trained on the other {len(sp.devices) - 1}; 5,000 width-1.2 "
                       f"networks at {len(sp.features.resolutions)} input resolutions "
                       f"({sp.features.resolutions[0]}..{sp.features.resolutions[-1]}), the model covering them all.\n")
            out.append(tables(results, args.k, None))
        out.append(f"\n({name}: {time.perf_counter() - t0:.0f} s)")
        print(f"{name}: done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return "\n".join(out) + "\n"


def residuals(devices: list[str]) -> str:
    """What a model of a device's table cannot learn: per NAS-Bench-201 device, the linear model (the one ``pnag
    latency adapt`` fits) fitted to the whole table, its Spearman rho and median |error|, the spread of its
    residual (log of measured / fitted) and the correlation of the residuals of two cells one edit apart (all
    such pairs): near 0, the residual is particular to each cell and only measuring that cell finds it."""
    from scipy.stats import spearmanr

    from pnag.data.nb201 import load_nb201
    from pnag.space.nb201 import N_EDGES, OPS, NB201Space

    tab, space = load_nb201(), NB201Space()
    archs = space.all_archs()
    X = LatencyFeatures("nb201").of_archs(archs)
    idx = np.stack([space.to_indices(a) for a in archs])
    at = np.array([tab.index_of(space.format(a)) for a in archs])  # the table's row of each cell
    radix = len(OPS) ** np.arange(N_EDGES)
    code = idx @ radix
    order = np.argsort(code)
    pairs = []
    for e in range(N_EDGES):
        for step in range(1, len(OPS)):
            other = idx.copy()
            other[:, e] = (other[:, e] + step) % len(OPS)
            pairs.append((np.arange(len(idx)), order[np.searchsorted(code[order], other @ radix)]))
    i, j = (np.concatenate(p) for p in zip(*pairs))
    rows = ["| device | distinct latency values | linear fit Spearman | linear fit MdAPE % | residual sd (log) | "
            "residual correlation, one edit apart |", "|---|---:|---:|---:|---:|---:|"]
    for dev in devices:
        y = tab.latency(dev)[at]
        fit = np.maximum(X @ device_weights(X, y), FLOOR_FRACTION * float(y.min()))
        r = np.log(y / fit)
        rows.append(f"| {dev} | {len(np.unique(y))} | {spearmanr(fit, y)[0]:.3f} | "
                    f"{100 * np.median(np.abs(fit / y - 1)):.1f} | {r.std():.3f} | {np.corrcoef(r[i], r[j])[0, 1]:.3f} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["residuals"]:
        r = argparse.ArgumentParser(prog="devices.py residuals", description=residuals.__doc__.split(":")[0])
        r.add_argument("--devices", nargs="+", default=list(NB201_DEVICES))
        r.add_argument("-o", "--output", default="benchmarks/results/devices_residuals.md")
        a = r.parse_args(argv[1:])
        text = (f"# What a linear latency model cannot learn\n\nWritten by `python benchmarks/devices.py residuals"
                f"{''.join(' ' + x for x in argv[1:])}` on {datetime.now(timezone.utc):%Y-%m-%d}. Per NAS-Bench-201 "
                "device: the linear model that `pnag latency adapt` fits, fitted to the device's whole table (15,625 "
                "cells); its Spearman rho and median |error|; the spread of its residual (log of measured / fitted); "
                "the correlation of the residuals of two cells one edit apart (all such pairs). A correlation near 0: "
                "what the model misses is particular to each cell, and only measuring that cell finds it.\n\n"
                f"{residuals(a.devices)}")
        write_text_atomic(Path(a.output), text)
        print(text)
        return 0
    if argv[:1] == ["generation"]:  # generation on held-out devices: its own script, its own options
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from devices_generation import main as generation

        return generation(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    q = sub.add_parser("latency", help="few-shot latency: pnag latency adapt against HELP and baselines")
    q.add_argument("--space", nargs="+", choices=("nb201", "help-ofa-gpu"), default=["nb201", "help-ofa-gpu"])
    q.add_argument("--test-devices", default=None, help="comma-separated, with one --space (default: nb201 HELP's "
                   "split; help-ofa-gpu all 12, each against the other 11)")
    q.add_argument("--train-devices", default=None, help="comma-separated, nb201 (default: every other device)")
    q.add_argument("--k", type=int, nargs="+", default=[5, 10, 20])
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    q.add_argument("--tune", action="store_true", help="add the hyperparameter grid (LOO over the training devices)")
    q.add_argument("-o", "--output", default="benchmarks/results/devices_latency.md")
    args = p.parse_args(argv)
    args.argv = argv[1:]
    if (args.test_devices or args.train_devices) and len(args.space) != 1:
        p.error("--test-devices/--train-devices: name one --space (the device names differ between the spaces)")
    import torch

    args.threads = torch.get_num_threads()
    text = latency(args)
    write_text_atomic(Path(args.output), text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
