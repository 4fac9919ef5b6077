"""ImageNet evaluation throughput of one zoo model on a synthetic ImageFolder.

    python benchmarks/eval_throughput.py [--images 300] [--workers 0 1 2] [--model pnag_cpu_30]
                                         [--batch-size 50] [--threads N] [--device cpu] [--under-load]

Generates ``--images`` JPEG files (quality 90) at ImageNet-like sizes (width 375..500 x height
333..500 pixels, smooth random content; the mean file size is reported) in 10 class folders, then
runs ``pnag.evaluate.evaluate_imagefolder`` (decode with Pillow, resize 256, centre crop 224,
normalise, forward, top-1/top-5) end to end for each worker count, after one untimed warm-up pass.
Reports images/s (readable images evaluated / wall seconds of the whole pass). The model has random
weights (throughput does not depend on them). Weights are never downloaded.

Writes ``benchmarks/results/eval.md`` (atomically) and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pnag import zoo  # noqa: E402
from pnag._io import write_text_atomic  # noqa: E402
from pnag.evaluate.distributed import DistContext, resolve_device  # noqa: E402
from pnag.evaluate.imagenet import evaluate_imagefolder  # noqa: E402


def make_synthetic_imagefolder(root: Path, n_images: int, classes: int = 10, seed: int = 0) -> Path:
    """``root/val/<class>/<i>.JPEG`` with ImageNet-like sizes; returns ``root``."""
    rng = np.random.default_rng(seed)
    for i in range(n_images):
        d = root / "val" / f"n{i % classes:08d}"
        d.mkdir(parents=True, exist_ok=True)
        w, h = int(rng.integers(375, 501)), int(rng.integers(333, 501))
        # low-frequency noise upsampled: decodes like a photo, not like a flat colour
        small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
        img.save(d / f"{i:06d}.JPEG", quality=90)
    return root


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--model", default="pnag_cpu_30")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--under-load", action="store_true", help="label figures as taken on a shared, busy CPU")
    ap.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "eval.md"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    ctx = DistContext(device=device)
    info = zoo.get_model_info(args.model)
    model = zoo.create_model(args.model, pretrained=False).to(device).eval()

    # Compute alone (no decoding): forward passes over random tensors of the same count.
    x = torch.randn(args.batch_size, 3, info.resolution, info.resolution, device=device)
    with torch.no_grad():
        model(x[:2])
        t0 = time.perf_counter()
        for _ in range(0, args.images, args.batch_size):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        fwd_ips = (len(range(0, args.images, args.batch_size)) * args.batch_size) / (time.perf_counter() - t0)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = make_synthetic_imagefolder(Path(tmp), args.images)
        gen_s = time.perf_counter() - t0
        size_kb = np.mean([p.stat().st_size for p in data.rglob("*.JPEG")]) / 1024
        evaluate_imagefolder(model, data, info.resolution, ctx, args.batch_size, 0, progress=False)  # warm-up
        for w in args.workers:
            t0 = time.perf_counter()
            r = evaluate_imagefolder(model, data, info.resolution, ctx, args.batch_size, w, progress=False)
            dt = time.perf_counter() - t0
            rows.append((w, r.images, dt, r.images / dt))
            print(f"workers={w}: {r.images} images in {dt:.2f} s = {r.images / dt:.1f} images/s", file=sys.stderr)

    cmd = "python benchmarks/eval_throughput.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    load = " **under load**: the 2-core CPU was shared with other jobs; figures are lower bounds" \
        if args.under_load else ""
    lines = [
        "# ImageNet evaluation throughput",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Date: {time.strftime('%Y-%m-%d')}. Machine: {cpu_name()} ({os.cpu_count()} cores), "
        f"{torch.get_num_threads()} torch threads, device {device}, torch {torch.__version__}.{load}",
        "",
        f"Model `{info.name}` (random weights) at {info.resolution} px, batch {args.batch_size}; "
        f"{args.images} synthetic JPEGs (375..500 x 333..500 px, mean {size_kb:.0f} KB; generated in {gen_s:.1f} s). "
        "End to end: decode (Pillow), resize 256, centre crop 224, normalise, forward, top-1/top-5. "
        "One untimed warm-up pass first.",
        "",
        "| workers | images | wall s | images/s |",
        "|--:|--:|--:|--:|",
        *[f"| {w} | {n} | {dt:.2f} | {ips:.1f} |" for w, n, dt, ips in rows],
        "",
        f"Forward passes alone (random tensors, no decoding): {fwd_ips:.1f} images/s.",
        "",
    ]
    text = "\n".join(lines)
    write_text_atomic(args.output, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
