"""Analytic cost of an architecture: multiply-adds (MAdds) and parameter count.

Definition (the one used by once-for-all's ``count_net_flops`` and by the public DyNAS-T
``MACs`` column, which this count matches exactly):

* MAdds count one multiply-accumulate per weight use of every convolution (dense, depthwise and
  the squeeze-excitation 1x1 convolutions) and of the final linear classifier. Biases, batch norm,
  activations, additions of shortcuts, pooling and the SE gating product are not counted.
* Parameters count every learnable weight and bias, batch norm's affine parameters included,
  running statistics excluded; the classifier (1000 classes unless stated) is included.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..space.mbv3 import MBV3Arch, check_resolution, check_width
from .mobilenetv3 import layer_specs, se_channels


@dataclass(frozen=True)
class Cost:
    """Cost of one network. ``madds`` and ``params`` are plain counts (not millions)."""

    madds: int
    params: int

    @property
    def madds_m(self) -> float:
        return self.madds / 1e6

    @property
    def params_m(self) -> float:
        return self.params / 1e6


def _conv(cin: int, cout: int, k: int, out_size: int, groups: int = 1, bias: bool = False, bn: bool = True):
    weights = cout * (cin // groups) * k * k
    madds = weights * out_size * out_size
    params = weights + (cout if bias else 0) + (2 * cout if bn else 0)
    return madds, params


def layer_costs(arch: MBV3Arch, width: float | None = None, n_classes: int = 1000) -> list[tuple[str, int, int]]:
    """``(kind, madds, params)`` for every layer in network order."""
    out = []
    for s in layer_specs(arch, width):
        kind = s["kind"]
        if kind in ("stem", "final_expand", "feature_mix"):
            m, p = _conv(s["in_channels"], s["out_channels"], s["kernel"], s["output_size"],
                         bn=kind != "feature_mix")
        elif kind == "classifier":
            m = s["in_channels"] * n_classes
            p = m + n_classes
        else:  # first_block or mbconv
            cin, mid, cout, k = s["in_channels"], s["mid_channels"], s["out_channels"], s["kernel"]
            size, osize = s["input_size"], s["output_size"]
            m = p = 0
            if s["expand"] != 1:
                dm, dp = _conv(cin, mid, 1, size)
                m, p = m + dm, p + dp
            dm, dp = _conv(mid, mid, k, osize, groups=mid)
            m, p = m + dm, p + dp
            if s["se"]:
                r = se_channels(mid)
                dm1, dp1 = _conv(mid, r, 1, 1, bias=True, bn=False)
                dm2, dp2 = _conv(r, mid, 1, 1, bias=True, bn=False)
                m, p = m + dm1 + dm2, p + dp1 + dp2
            dm, dp = _conv(mid, cout, 1, osize)
            m, p = m + dm, p + dp
        out.append((kind, m, p))
    return out


def arch_cost(arch: MBV3Arch, width: float | None = None, resolution: int | None = None,
              n_classes: int = 1000) -> Cost:
    """MAdds and parameters of ``arch`` (at ``width`` / ``resolution`` if given, else its own)."""
    if width is not None:
        arch = arch.with_(width=check_width(width))
    if resolution is not None:
        arch = arch.with_(resolution=check_resolution(resolution))
    rows = layer_costs(arch, n_classes=n_classes)
    return Cost(madds=sum(r[1] for r in rows), params=sum(r[2] for r in rows))
