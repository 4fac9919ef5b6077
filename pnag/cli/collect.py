"""``pnag collect``: sample architectures, record cost, latency and accuracy; resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import (ACCURACY_HELP, LATENCY_HELP, MAX_BATCH, MAX_PIXELS, MAX_WORKERS, ascii_float,
                      check_output_path, non_negative_int, positive_int, seed_int)

MAX_COLLECT = 50_000  # distinct architectures; the default stratification pool is 20 x as many (memory)
MAX_POOL = 1_000_000


def register(sub) -> None:
    p = sub.add_parser("collect", help="collect your own architecture dataset (append-only, resumable)",
                       description="Sample architectures (uniformly, or stratified over a latency source's range), "
                                   "record MAdds, params, latency and accuracy, one JSON line each. Re-running the "
                                   "same command resumes; interrupting (Ctrl-C) loses at most one architecture. "
                                   "Runs unchanged under `torchrun --nproc_per_node N -m pnag collect ...`: with "
                                   "--accuracy supernet:... the ranks share each evaluation's images; rank 0 alone "
                                   "writes and prints.")
    p.add_argument("--space", default="mbv3", choices=("mbv3", "nb201"))
    p.add_argument("--samples", required=True, type=positive_int("--samples", MAX_COLLECT, " (memory)"),
                   help=f"distinct architectures wanted, at most {MAX_COLLECT}")
    p.add_argument("--seed", type=seed_int(), default=0, help="random seed, 0..2**63-1 (default 0)")
    p.add_argument("--out", required=True, type=Path, help="collection file (JSON lines)")
    p.add_argument("--width", type=ascii_float("--width", "1.0 or 1.2"), default=None,
                   help="mbv3: 1.0 or 1.2 (default 1.2)")
    p.add_argument("--resolution", type=positive_int("--resolution", MAX_PIXELS), default=None,
                   help="mbv3: input px, 128..224 (default 224)")
    p.add_argument("--accuracy", default="none",
                   help="none or " + ACCURACY_HELP)
    p.add_argument("--latency", action="append", default=[], metavar="SRC",
                   help="latency source spec (repeatable): " + LATENCY_HELP)
    p.add_argument("--stratify-by", default=None, metavar="SRC",
                   help="latency source whose range the samples should cover evenly")
    p.add_argument("--pool", type=positive_int("--pool", MAX_POOL, " (memory)"), default=None,
                   help="candidates priced for stratification (default max(20 x samples, 2000))")
    p.add_argument("--strata", type=positive_int("--strata", MAX_COLLECT), default=None,
                   help="latency bins (default min(samples, 10))")
    p.add_argument("--imagenet", type=Path, default=None,
                   help="ImageNet folder with train/ and val/, for --accuracy supernet:CKPT|random")
    p.add_argument("--calib-images", type=non_negative_int("--calib-images", MAX_POOL), default=None,
                   help="supernet: training images for batch-norm recalibration (default 2000; 0: none)")
    p.add_argument("--batch-size", type=positive_int("--batch-size", MAX_BATCH), default=None,
                   help="supernet: evaluation batch size in images (default 100)")
    p.add_argument("--workers", type=non_negative_int("--workers", MAX_WORKERS), default=None,
                   help="supernet: image-loading worker processes per rank (default 2)")
    p.add_argument("--device", default=None,
                   help="auto, cpu, cuda or cuda:N (default auto; under torchrun each rank takes its local GPU)")
    p.add_argument("--proxy-batch", type=positive_int("--proxy-batch", MAX_BATCH), default=8,
                   help="proxy batch size (images)")
    p.add_argument("--proxy-resolution", type=positive_int("--proxy-resolution", MAX_PIXELS), default=96,
                   help="proxy input px")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_collect)


def _collect(args: argparse.Namespace) -> int:
    from ..collect import collect
    from ..data.collection import CollectConfig
    from ..errors import PnagError

    cfg = CollectConfig(space=args.space, samples=args.samples, seed=args.seed, width=args.width,
                        resolution=args.resolution, accuracy=args.accuracy, latency=tuple(args.latency),
                        stratify_by=args.stratify_by, pool=args.pool, strata=args.strata,
                        proxy_batch=args.proxy_batch, proxy_resolution=args.proxy_resolution)
    if args.accuracy.partition(":")[0] == "supernet" and args.imagenet is None:
        raise PnagError(f"--accuracy {args.accuracy}: needs --imagenet DIR (an ImageNet folder with train/ and val/)")
    opts = {k: v for k, v in (("imagenet", args.imagenet), ("calib_images", args.calib_images),
                              ("batch_size", args.batch_size), ("workers", args.workers),
                              ("device", args.device)) if v is not None}
    check_output_path(args.out, "--out")
    res = collect(cfg, args.out, accuracy_options=opts, progress=False if args.no_progress else None)
    if res.rank != 0:  # under torchrun rank 0 alone reports
        return 0
    note = " (a torn last line from an interrupted run was dropped)" if res.dropped_torn_line else ""
    print(f"{res.path}: {res.records} distinct records ({res.resumed_from} already there, {res.added} added){note}")
    for name, n in res.unpriced.items():
        print(f"  {n} architectures could not be priced by {name}")
    return 0
