"""``pnag zoo``: the published PNAG models with their cost."""

from __future__ import annotations

import argparse

from .. import zoo
from ..nn.cost import arch_cost
from ._common import print_json, table


def zoo_rows(platform: str | None = None) -> list[dict]:
    """One JSON-ready dict per published model: facts, reported figures and pnag's cost."""
    out = []
    for name in zoo.list_models(platform):
        info = zoo.get_model_info(name)
        cost = arch_cost(info.arch)
        out.append({
            "name": info.name,
            "platform": info.platform,
            "device": info.device,
            "budget_ms": info.budget_ms,
            "reported_latency_ms": info.reported_latency_ms,
            "reported_top1": info.reported_top1,
            "arch": info.arch_string,
            "width": info.width,
            "resolution": info.resolution,
            "madds_m": round(cost.madds_m, 3),
            "params_m": round(cost.params_m, 4),
            "weights": info.weights_url,
        })
    return out


def zoo_table(rows: list[dict]) -> str:
    """The zoo as a plain-text table."""
    return table(
        [[r["name"], r["platform"], r["budget_ms"], r["reported_latency_ms"], r["reported_top1"],
          f"{r['madds_m']:.1f}", f"{r['params_m']:.3f}"] for r in rows],
        ["name", "platform", "budget (ms)", "reported latency (ms)", "reported top-1 (%)", "MAdds (M)", "params (M)"],
    )


def _list(args: argparse.Namespace) -> int:
    rows = zoo_rows(args.platform)
    if args.json:
        print_json(rows)
    else:
        print(zoo_table(rows))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("zoo", help="the published PNAG models")
    sub = p.add_subparsers(dest="zoo_command", metavar="SUBCOMMAND", required=True)
    ls = sub.add_parser("list", help="name, platform, budget, reported latency and top-1, MAdds, params")
    ls.add_argument("--platform", default=None, help="only this platform (cpu, gpu or mobile)")
    ls.add_argument("--json", action="store_true", help="print a JSON list")
    ls.set_defaults(func=_list)
