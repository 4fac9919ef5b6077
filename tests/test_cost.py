"""Analytic cost: the public MACs/params columns, the built network's parameters, a hook counter."""

from __future__ import annotations

import csv

import pytest
import torch

from pnag.nn.cost import arch_cost, layer_costs
from pnag.nn.mobilenetv3 import MobileNetV3
from pnag.space.mbv3 import MBV3Space, parse_dict_literal

CSV_DIR = "ofa-mbv3-w1.0-imagenet"


def test_cost_equals_public_macs_and_params_for_every_row(mirror_dir):
    files = sorted((mirror_dir / CSV_DIR).glob("*.csv"))
    assert len(files) == 5
    n, worst_macs, worst_params = 0, 0, 0
    for f in files:
        with f.open(newline="") as fh:
            for row in csv.DictReader(fh):
                arch = parse_dict_literal(row["Sub-network"], width=1.0)
                cost = arch_cost(arch)
                worst_macs = max(worst_macs, abs(cost.madds - int(row["MACs"])))
                worst_params = max(worst_params, abs(cost.params - int(row["Model Parameters"])))
                n += 1
    print(f"{n} rows: largest MACs deviation {worst_macs}, largest params deviation {worst_params}")
    assert n == 2373
    assert worst_macs == 0
    assert worst_params == 0


def _hook_madds(model: torch.nn.Module, resolution: int) -> int:
    """Multiply-accumulates counted from the real tensors flowing through convs and linears."""
    total = 0

    def conv_hook(m, inp, out):
        nonlocal total
        total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, inp, out):
        nonlocal total
        total += out.numel() // out.shape[0] * m.in_features

    handles = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    handles += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, resolution, resolution))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("width,resolution,seed", [(1.2, 224, 0), (1.0, 160, 1), (1.2, 128, 2), (1.0, 208, 3)])
def test_cost_matches_the_built_network(width, resolution, seed):
    for arch in MBV3Space(width=width, resolution=resolution).sample(2, seed=seed):
        model = MobileNetV3(arch)
        cost = arch_cost(arch)
        assert cost.params == sum(p.numel() for p in model.parameters())
        assert cost.madds == _hook_madds(model, resolution)


def test_cost_overrides_and_layers():
    a = MBV3Space().sample(1, seed=9)[0]
    base = arch_cost(a)
    assert arch_cost(a, resolution=160).madds < base.madds
    assert arch_cost(a, resolution=160).params == base.params
    assert arch_cost(a, width=1.0).params < base.params
    rows = layer_costs(a)
    assert sum(r[1] for r in rows) == base.madds and sum(r[2] for r in rows) == base.params
    assert rows[-1][0] == "classifier" and rows[-1][1] == 1536 * 1000 and rows[-1][2] == 1536 * 1000 + 1000
    assert base.madds_m == base.madds / 1e6 and base.params_m == base.params / 1e6
    with pytest.raises(ValueError, match="resolution: 100 is outside the space"):
        arch_cost(a, resolution=100)
