"""``pnag export``: a zoo model or any architecture to ONNX or TorchScript, verified."""

from __future__ import annotations

import argparse

from .._io import cannot_write
from ..export import FORMATS, export_model, resolve_model
from ..space.mbv3 import check_resolution, check_width
from ._common import check_output_path


def _export(args: argparse.Namespace) -> int:
    width = None if args.width is None else check_width(args.width, "--width")
    res = None if args.resolution is None else check_resolution(args.resolution, "--resolution")
    check_output_path(args.output, "-o/--output")
    model = resolve_model(args.model, width=width, resolution=res, pretrained=args.pretrained, weights=args.weights)
    weights = "published" if args.pretrained and args.weights is None else ("from " + args.weights if args.weights else "random")
    try:
        result = export_model(model, args.output, fmt=args.format, resolution=res, verify=not args.no_verify)
    except OSError as exc:
        raise cannot_write(args.output, exc, "-o/--output") from None
    print(f"wrote {result.path} ({result.fmt}, {result.n_bytes / 1e6:.1f} MB, {weights} weights, "
          f"input {result.resolution}x{result.resolution}, dynamic batch)")
    if args.no_verify:
        print("verification skipped (--no-verify)")
    else:
        runtime = "onnxruntime" if result.fmt == "onnx" else "torch.jit.load"
        print(f"verified with {runtime} at batch sizes {', '.join(map(str, result.batch_sizes))}: "
              f"max abs diff vs PyTorch {result.max_abs_diff:.3g}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a zoo model or an architecture to ONNX or TorchScript")
    p.add_argument("model", metavar="NAME|ARCH", help="a zoo name (pnag_cpu_30) or an architecture (legacy string or OFA dict)")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (default) or torchscript")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write (atomically)")
    p.add_argument("--width", default=None, help="width multiplier: 1.0 or 1.2")
    p.add_argument("--resolution", default=None, help="input resolution in pixels, 128..224")
    p.add_argument("--weights", default=None, metavar="FILE", help="local state-dict file to load (weights-only)")
    p.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=False,
                   help="download the published weights of a zoo model (default: random weights, so that export "
                        "works offline; torch.hub.load's default is pretrained=True)")
    p.add_argument("--no-verify", action="store_true", help="skip the comparison with PyTorch")
    p.set_defaults(func=_export)
