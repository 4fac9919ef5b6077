"""``pnag arch``: inspect and sample architectures of the once-for-all MobileNetV3 space."""

from __future__ import annotations

import argparse

from ..nn.cost import arch_cost
from ..space.mbv3 import MBV3Arch, MBV3Space, check_resolution, check_width
from ..zoo import resolve_arch
from ._common import MAX_ARCH_SAMPLES, positive_int, print_json, seed_int, table


def arch_summary(arch: MBV3Arch) -> dict:
    """JSON-ready description: text forms, structure, encodings' sizes and cost (MAdds, params)."""
    cost = arch_cost(arch)
    return {
        "arch": arch.to_legacy(),
        "depths": list(arch.depths),
        "kernels": list(arch.kernels),
        "expands": list(arch.expands),
        "width": arch.width,
        "resolution": arch.resolution,
        "n_layers": arch.n_layers,
        "ofa": arch.to_ofa_dict(),
        "encoding_sizes": {"pnag": 120, "ofa": 128},
        "madds": cost.madds,
        "params": cost.params,
        "madds_m": round(cost.madds_m, 3),
        "params_m": round(cost.params_m, 4),
    }


def _info(args: argparse.Namespace) -> int:
    width = None if args.width is None else check_width(args.width, "--width")
    res = None if args.resolution is None else check_resolution(args.resolution, "--resolution")
    arch = resolve_arch(args.arch, width=width, resolution=res)
    s = arch_summary(arch)
    if args.json:
        print_json(s)
        return 0
    rows = [
        ["arch", s["arch"]],
        ["width", s["width"]],
        ["resolution (px)", s["resolution"]],
        ["depths", ",".join(map(str, s["depths"]))],
        ["MBConv layers", s["n_layers"]],
        ["MAdds (M)", f"{s['madds_m']:.1f}"],
        ["params (M)", f"{s['params_m']:.3f}"],
    ]
    print(table(rows, ["field", "value"]))
    print()
    print(table([[u, i, k, e] for u, i, k, e in arch.layers()], ["unit", "layer", "kernel", "expand"]))
    return 0


def _sample(args: argparse.Namespace) -> int:
    width = check_width(args.width, "--width")
    res = check_resolution(args.resolution, "--resolution")
    archs = MBV3Space(width=width, resolution=res).sample(args.n, seed=args.seed)
    summaries = [arch_summary(a) for a in archs]
    if args.json:
        print_json([{k: s[k] for k in ("arch", "width", "resolution", "madds_m", "params_m")} for s in summaries])
        return 0
    print(table([[s["arch"], f"{s['madds_m']:.1f}", f"{s['params_m']:.3f}"] for s in summaries],
                ["arch", "MAdds (M)", "params (M)"]))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("arch", help="inspect and sample MobileNetV3 architectures")
    sub = p.add_subparsers(dest="arch_command", metavar="SUBCOMMAND", required=True)

    info = sub.add_parser("info", help="structure and cost (MAdds, params) of one architecture")
    info.add_argument("arch", metavar="ARCH",
                      help="legacy string depths:kernels:expands, an OFA dict (JSON or Python literal) or a zoo name")
    info.add_argument("--width", default=None, help="width multiplier: 1.0 or 1.2 (default: the arch's own, else 1.2)")
    info.add_argument("--resolution", default=None, help="input resolution in pixels, 128..224 (default 224)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)

    sample = sub.add_parser("sample", help="uniformly sampled architectures with their cost")
    sample.add_argument("-n", type=positive_int("-n", MAX_ARCH_SAMPLES, " (memory and time)"), default=5,
                        help=f"how many, at most {MAX_ARCH_SAMPLES} (default 5)")
    sample.add_argument("--seed", type=seed_int(), default=0, help="random seed, 0..2**63-1 (default 0)")
    sample.add_argument("--width", default="1.2", help="width multiplier: 1.0 or 1.2 (default 1.2)")
    sample.add_argument("--resolution", default="224", help="input resolution in pixels, 128..224 (default 224)")
    sample.add_argument("--json", action="store_true", help="print JSON")
    sample.set_defaults(func=_sample)
