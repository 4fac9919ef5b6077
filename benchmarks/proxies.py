"""Kendall tau of each training-free proxy against measured ImageNet top-1 (ofa-mbv3-w1.0-imagenet).

    PNAG_DATA_DIR=../shared/datasets python benchmarks/proxies.py [--subset 300] [--seed 0] [--device cpu]
        [--out benchmarks/results/proxies.md]

``madds`` and ``params`` are scored on all distinct architectures of the dataset; the network proxies
(synflow, gradnorm, zico) on a seeded random subset (``--subset``, >= 300 recommended) for speed.
Cost per architecture is wall time (ms) of scoring, network construction included, on this machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pnag._io import write_text_atomic  # noqa: E402
from pnag.data import load_dataset  # noqa: E402
from pnag.predict.proxies import NETWORK_PROXIES, PROXIES, ProxyConfig, proxy_scores  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", type=int, default=300, help="archs scored by the network proxies (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--proxies", default=",".join(PROXIES))
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    args = ap.parse_args(argv)

    load_before = os.getloadavg()[0]
    ds = load_dataset("ofa-mbv3-w1.0-imagenet")
    archs = [r.arch for r in ds.records]
    acc = np.array([r.accuracy.value for r in ds.records])
    sub = np.sort(np.random.default_rng(args.seed).choice(len(archs), min(args.subset, len(archs)), replace=False))
    cfg = ProxyConfig(device=args.device)
    rows = []
    for name in args.proxies.split(","):
        idx = sub if name in NETWORK_PROXIES else np.arange(len(archs))
        a = [archs[i] for i in idx]
        if name in NETWORK_PROXIES:  # warm-up (allocator, kernels) outside the timing
            proxy_scores(name, a[:2], seed=args.seed, config=cfg)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        s = proxy_scores(name, a, seed=args.seed, config=cfg, progress=sys.stderr.isatty())
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t) / len(a) * 1000
        tau = kendalltau(s, acc[idx]).statistic
        rows.append((name, len(a), tau, ms))
        print(f"{name:9s} n={len(a):5d} tau={tau:+.3f} cost={ms:.2f} ms/arch", flush=True)

    dev = args.device if args.device == "cpu" else torch.cuda.get_device_name(0)
    lines = [
        "## Training-free accuracy proxies (Kendall tau vs measured ImageNet top-1)",
        "",
        f"Dataset: `ofa-mbv3-w1.0-imagenet` ({len(archs)} distinct OFA MobileNetV3 w1.0 subnets at 224 px, top-1 "
        f"measured with supernet weights). madds/params: all {len(archs)}; network proxies: a seeded random subset "
        f"of {len(sub)} (seed {args.seed}). Network proxies: {cfg.batch_size} random images at {cfg.resolution} px "
        f"(synflow: one all-ones image, float64), fresh weights from the seed, {cfg.n_batches} batches for ZiCo.",
        "",
        "| proxy | archs | Kendall tau | cost per arch (ms) |",
        "|---|---:|---:|---:|",
        *[f"| {n} | {k} | {t:+.3f} | {ms:.2f} |" for n, k, t, ms in rows],
        "",
        f"Command: `PNAG_DATA_DIR=../shared/datasets python benchmarks/proxies.py --subset {args.subset} "
        f"--seed {args.seed} --device {args.device}`",
        f"Machine: {dev}; {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, {os.cpu_count()} cores, load average {load_before:.1f} at start and "
        f"{os.getloadavg()[0]:.1f} at end (a shared machine inflates the costs). Date: 2026-11-26.",
        "",
        "Note: the rows come from search runs and lean towards the Pareto front, so accuracy rises with size "
        "along it; the cost proxies are strong baselines on this dataset.",
        "",
    ]
    if args.out:
        write_text_atomic(args.out, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
