"""The static MobileNetV3 network of one architecture of the once-for-all space.

Module names follow once-for-all's static ``MobileNetV3`` so that ``state_dict()`` keys and shapes
are exactly those of the published PNAG checkpoints (``load_state_dict(strict=True)`` works).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..space.mbv3 import MAX_DEPTH, MBV3Arch, check_width

BASE_STEM = 16
BASE_FIRST_BLOCK = 16
BASE_UNIT_WIDTHS = (24, 40, 80, 112, 160)
BASE_FINAL_EXPAND = 960
BASE_FEATURE_MIX = 1280
UNIT_STRIDES = (2, 2, 2, 1, 2)
UNIT_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
UNIT_SE = (False, True, False, True, True)
SE_REDUCTION = 4


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Once-for-all's rounding of channel counts: nearest multiple of ``divisor``, never < 90 %."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def stage_widths(width: float) -> dict:
    """Channel counts at a width multiplier: stem, first block, units (5), final expand, feature mix."""
    width = check_width(width)
    return {
        "stem": make_divisible(BASE_STEM * width),
        "first_block": make_divisible(BASE_FIRST_BLOCK * width),
        "units": tuple(make_divisible(c * width) for c in BASE_UNIT_WIDTHS),
        "final_expand": make_divisible(BASE_FINAL_EXPAND * width),
        "feature_mix": make_divisible(BASE_FEATURE_MIX * width),
    }


def middle_channels(in_channels: int, expand: float) -> int:
    """Width of an MBConv layer's expanded (depthwise) stage."""
    return make_divisible(round(in_channels * expand))


def se_channels(channels: int) -> int:
    return make_divisible(channels // SE_REDUCTION)


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"activation: {name!r}; allowed: relu or h_swish")


class SEModule(nn.Module):
    """Squeeze-and-excitation: mean pool, 1x1 reduce (bias) + ReLU, 1x1 expand (bias) + h-sigmoid."""

    def __init__(self, channels: int):
        super().__init__()
        mid = se_channels(channels)
        self.fc = nn.Sequential(
            OrderedDict(
                reduce=nn.Conv2d(channels, mid, 1, bias=True),
                relu=nn.ReLU(inplace=True),
                expand=nn.Conv2d(mid, channels, 1, bias=True),
                h_sigmoid=nn.Hardsigmoid(inplace=True),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3), keepdim=True))


def conv_bn_act(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: str | None = None,
                bn: bool = True, se: bool = False) -> nn.Sequential:
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    layers["conv"] = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    if bn:
        layers["bn"] = nn.BatchNorm2d(cout)
    if act is not None:
        layers["act"] = activation(act)
    if se:
        layers["se"] = SEModule(cout)
    return nn.Sequential(layers)


class MBConvLayer(nn.Module):
    """Inverted bottleneck: 1x1 expand (absent when expand == 1), kxk depthwise (+SE), 1x1 project."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: float, act: str, se: bool):
        super().__init__()
        self.in_channels, self.out_channels = cin, cout
        self.kernel_size, self.stride, self.expand_ratio = kernel, stride, expand
        self.act, self.use_se = act, se
        mid = middle_channels(cin, expand)
        self.mid_channels = mid
        self.inverted_bottleneck = None if expand == 1 else conv_bn_act(cin, mid, 1, act=act)
        self.depth_conv = conv_bn_act(mid, mid, kernel, stride, groups=mid, act=act, se=se)
        self.point_linear = conv_bn_act(mid, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverted_bottleneck is not None:
            x = self.inverted_bottleneck(x)
        return self.point_linear(self.depth_conv(x))


class MBBlock(nn.Module):
    """An MBConv layer with an identity shortcut where stride is 1 and widths match."""

    def __init__(self, conv: MBConvLayer):
        super().__init__()
        self.mobile_inverted_conv = conv
        self.has_shortcut = conv.stride == 1 and conv.in_channels == conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mobile_inverted_conv(x)
        return y + x if self.has_shortcut else y


class Classifier(nn.Module):
    def __init__(self, cin: int, n_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(cin, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(x))


def layer_specs(arch: MBV3Arch, width: float | None = None) -> list[dict]:
    """Every layer of the network in order, with its real shapes, for ``arch`` at ``width``.

    Each spec: ``kind`` (stem, first_block, mbconv, final_expand, feature_mix, classifier),
    ``in_channels``, ``out_channels``, ``kernel``, ``stride``, ``expand``, ``mid_channels``, ``act``,
    ``se``, ``shortcut``, ``input_size`` (pixels, square), ``unit`` and ``layer`` for MBConv layers.
    The network, its cost and latency lookup tables all walk this one list.
    """
    w = check_width(arch.width if width is None else width)
    sw = stage_widths(w)
    size = arch.resolution
    specs = [dict(kind="stem", in_channels=3, out_channels=sw["stem"], kernel=3, stride=2, expand=None,
                  mid_channels=None, act="h_swish", se=False, shortcut=False, input_size=size)]
    size = (size + 1) // 2
    specs.append(dict(kind="first_block", in_channels=sw["stem"], out_channels=sw["first_block"], kernel=3,
                      stride=1, expand=1, mid_channels=sw["stem"], act="relu", se=False,
                      shortcut=sw["stem"] == sw["first_block"], input_size=size))
    cin = sw["first_block"]
    for u, (cout, stride0, act, se) in enumerate(zip(sw["units"], UNIT_STRIDES, UNIT_ACTS, UNIT_SE)):
        for i in range(arch.depths[u]):
            s = u * MAX_DEPTH + i
            stride = stride0 if i == 0 else 1
            k, e = arch.kernels[s], arch.expands[s]
            specs.append(dict(kind="mbconv", in_channels=cin, out_channels=cout, kernel=k, stride=stride,
                              expand=e, mid_channels=middle_channels(cin, e), act=act, se=se,
                              shortcut=stride == 1 and cin == cout, input_size=size, unit=u, layer=i))
            if stride == 2:
                size = (size + 1) // 2
            cin = cout
    specs.append(dict(kind="final_expand", in_channels=cin, out_channels=sw["final_expand"], kernel=1, stride=1,
                      expand=None, mid_channels=None, act="h_swish", se=False, shortcut=False, input_size=size))
    specs.append(dict(kind="feature_mix", in_channels=sw["final_expand"], out_channels=sw["feature_mix"], kernel=1,
                      stride=1, expand=None, mid_channels=None, act="h_swish", se=False, shortcut=False,
                      input_size=1))
    specs.append(dict(kind="classifier", in_channels=sw["feature_mix"], out_channels=None, kernel=None, stride=None,
                      expand=None, mid_channels=None, act=None, se=False, shortcut=False, input_size=1))
    for spec in specs:
        spec["output_size"] = (spec["input_size"] + 1) // 2 if spec["stride"] == 2 else spec["input_size"]
    return specs


class MobileNetV3(nn.Module):
    """Static MobileNetV3 for one architecture.

    Args:
        arch: the architecture (its ``width`` is used unless ``width`` is given).
        width: width multiplier, 1.0 or 1.2.
        n_classes: classifier outputs (1000 for ImageNet).
        dropout: dropout rate before the classifier (once-for-all: 0.1).
    """

    def __init__(self, arch: MBV3Arch, width: float | None = None, n_classes: int = 1000, dropout: float = 0.1):
        super().__init__()
        if width is not None:
            arch = arch.with_(width=check_width(width))
        self.arch = arch
        specs = layer_specs(arch)
        stem, first, *mb, final, mix, cls = specs
        self.first_conv = conv_bn_act(3, stem["out_channels"], 3, 2, act="h_swish")
        blocks = [MBBlock(MBConvLayer(first["in_channels"], first["out_channels"], 3, 1, 1, "relu", False))]
        for s in mb:
            blocks.append(MBBlock(MBConvLayer(s["in_channels"], s["out_channels"], s["kernel"], s["stride"],
                                              s["expand"], s["act"], s["se"])))
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = conv_bn_act(final["in_channels"], final["out_channels"], 1, act="h_swish")
        self.feature_mix_layer = conv_bn_act(mix["in_channels"], mix["out_channels"], 1, act="h_swish", bn=False)
        self.classifier = Classifier(cls["in_channels"], n_classes, dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features after the feature-mix layer, shape ``(B, 1280 x width)``."""
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        x = self.final_expand_layer(x)
        x = x.mean((2, 3), keepdim=True)
        x = self.feature_mix_layer(x)
        return torch.flatten(x, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))
