"""``pnag eval``: ImageNet top-1 / top-5 of zoo models or of supernet sub-networks.

Runs unchanged under ``torchrun --nproc_per_node N -m pnag eval ...``: ranks share the images, counts
are summed, rank 0 prints and writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .._io import write_json_atomic
from ..errors import PnagError
from ._common import (MAX_BATCH, MAX_PIXELS, MAX_WORKERS, ascii_float, check_output_path, non_negative_int, positive_int,
                      print_json, seed_int, table)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="ImageNet top-1/top-5 of zoo models or supernet sub-networks",
        description="Evaluate on DATA_DIR/val (ImageFolder layout: val/<class>/<image>). Without --supernet, "
                    "evaluates zoo models (all of them unless --models). With --supernet CKPT|random and --arch, "
                    "evaluates architectures with weights inherited from the once-for-all supernet after "
                    "batch-norm recalibration on DATA_DIR/train (2,000 images, seed 937162211, batches of 100). "
                    "Runs unchanged under torchrun (ranks share the images; rank 0 prints).")
    p.add_argument("data_dir", metavar="DATA_DIR", help="ImageNet folder with train/ and val/ class folders")
    p.add_argument("--models", nargs="+", metavar="NAME", help="zoo models to evaluate (default: all)")
    p.add_argument("--weights-dir", metavar="DIR", help="folder holding the published weight files "
                   "(e.g. pnag-cpu-30-048f7ba8.pt or pnag_cpu_30.pt) instead of downloading")
    p.add_argument("--no-pretrained", action="store_true", help="zoo models with random weights (testing)")
    p.add_argument("--supernet", metavar="CKPT|random", help="once-for-all supernet checkpoint, or 'random' "
                   "for seeded random weights (testing)")
    p.add_argument("--arch", nargs="+", metavar="ARCH", help="architectures (legacy string, OFA dict or dict "
                   "literal) to evaluate with --supernet")
    p.add_argument("--width", type=ascii_float("--width", "1.0 or 1.2"), default=1.2,
                   help="supernet width multiplier: 1.0 or 1.2 (default 1.2)")
    p.add_argument("--seed", type=seed_int(), default=0,
                   help="seed of --supernet random weights, 0..2**63-1 (default 0)")
    p.add_argument("--resolution", type=positive_int("--resolution", MAX_PIXELS),
                   help="input crop (pixels); default: the "
                   "model's or architecture's resolution (224)")
    p.add_argument("--calib-images", type=non_negative_int("--calib-images"), help="training images for "
                   "batch-norm recalibration (default 2000 with --supernet, 0 for zoo models)")
    p.add_argument("--calib-batch-size", type=positive_int("--calib-batch-size", MAX_BATCH), default=100,
                   help="recalibration batch size (default 100)")
    p.add_argument("--batch-size", type=positive_int("--batch-size", MAX_BATCH), default=100,
                   help="evaluation batch size (default 100)")
    p.add_argument("--workers", type=non_negative_int("--workers", MAX_WORKERS), default=2,
                   help="data-loading worker processes per rank (default 2; 0 loads in the main process)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto; under torchrun "
                   "cuda means each rank's LOCAL_RANK GPU)")
    p.add_argument("--json", action="store_true", help="print JSON (one object, or a list for several)")
    p.add_argument("--output", "--json-out", metavar="FILE", help="also write the JSON results to FILE (atomically; "
                   "checked before the evaluation)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _zoo_weights(weights_dir: str | None, info) -> str | None:
    if weights_dir is None:
        return None
    d = Path(weights_dir)
    if not d.is_dir():
        raise PnagError(f"--weights-dir: {weights_dir!r} is not a folder; allowed: a folder of weight files")
    names = [info.file_name] + [f"{n}{ext}" for n in (info.name, info.hyphen_name) for ext in (".pt", ".pth")]
    for n in names:
        if (d / n).is_file():
            return str(d / n)
    raise PnagError(f"--weights-dir: no weights for {info.name} in {weights_dir!r}; expected one of "
                    f"{', '.join(names)}")


def _check_combination(args) -> None:
    if args.supernet is None and args.arch:
        raise PnagError("--arch: needs --supernet CKPT|random (the weights come from the supernet); "
                        "allowed: --arch with --supernet, or --models for zoo models")
    if args.supernet is not None and args.models:
        raise PnagError("--models: cannot be combined with --supernet; allowed: one of them")
    if args.supernet is not None and not args.arch:
        raise PnagError("--supernet: needs --arch ARCH [ARCH ...]; allowed: architectures of the "
                        "once-for-all MobileNetV3 space")


def _eval_zoo(args, ctx, progress: bool) -> list[dict]:
    from .. import zoo
    from ..evaluate.imagenet import calibrate_on_imagefolder, evaluate_imagefolder

    infos = [zoo.get_model_info(n) for n in (args.models or zoo.list_models())]  # check names before work
    weights = [_zoo_weights(args.weights_dir, i) for i in infos]
    calib = args.calib_images or 0
    results = []
    for info, w in zip(infos, weights):
        net = zoo.create_model(info.name, pretrained=not args.no_pretrained, weights=w, progress=progress)
        net = net.to(ctx.device).eval()
        crop = args.resolution or info.resolution
        used = skipped = 0
        if calib:
            used, skipped = calibrate_on_imagefolder(net, args.data_dir, crop, ctx, calib, args.calib_batch_size,
                                                     workers=args.workers, progress=progress)
        r = evaluate_imagefolder(net, args.data_dir, crop, ctx, args.batch_size, args.workers, progress)
        results.append({"model": info.name, "resolution": crop,
                        **{**r.to_dict(), "calib_images": used, "calib_skipped": skipped}})
    return results


def _eval_supernet(args, ctx, progress: bool) -> list[dict]:
    from ..evaluate.imagenet import CALIB_IMAGES, evaluate_supernet_arch, load_supernet_spec
    from ..evaluate.imagefolder import find_split
    from ..space.mbv3 import check_width, parse_arch

    width = check_width(args.width, "--width")
    archs = [parse_arch(a, width=width, resolution=args.resolution) for a in args.arch]
    calib = CALIB_IMAGES if args.calib_images is None else args.calib_images
    if calib:
        find_split(args.data_dir, "train")
    supernet = load_supernet_spec(args.supernet, width, args.seed).to(ctx.device)
    results = []
    for arch in archs:
        r = evaluate_supernet_arch(supernet, arch, args.data_dir, ctx, calib, args.calib_batch_size,
                                   batch_size=args.batch_size, workers=args.workers, progress=progress)
        results.append({"arch": arch.to_legacy(), "width": width, "resolution": arch.resolution,
                        "supernet": args.supernet, **r.to_dict()})
    return results


def run(args) -> int:
    from ..evaluate.distributed import distributed
    from ..evaluate.imagefolder import find_split

    _check_combination(args)
    if args.output:
        check_output_path(args.output, "--output")
    find_split(args.data_dir, "val")  # fail fast, before building networks
    with distributed(args.device) as ctx:
        progress = not args.quiet and ctx.is_main
        results = (_eval_zoo if args.supernet is None else _eval_supernet)(args, ctx, progress)
        if not ctx.is_main:
            return 0
    payload = results[0] if len(results) == 1 else results
    if args.output:
        try:
            write_json_atomic(args.output, payload)
        except PnagError:  # the folder changed during the evaluation: keep the results on stdout
            print_json(payload)
            raise
    if args.json:
        print_json(payload)
    else:
        key = "model" if args.supernet is None else "arch"
        rows = [[r[key], f"{r['top1']:.2f}", f"{r['top5']:.2f}", r["images"], r["skipped"]] for r in results]
        print(table(rows, [key, "top1 %", "top5 %", "images", "skipped"]))
    skipped = max(r["skipped"] for r in results)
    if skipped:
        print(f"pnag eval: {skipped} unreadable image(s) skipped and not counted", file=sys.stderr)
    return 0


__all__ = ["register", "run"]
